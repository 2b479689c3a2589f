"""Deployments: where a flow's code comes from, loading the flow from it, running one.

* ``conveyor.deployments.sources.fetch`` puts a deployment's code in a directory;
* ``conveyor.deployments.entrypoints.load_flow`` imports the flow from there;
* ``conveyor.deployments.run_deployment`` starts a run of a deployment and waits for it.
"""

from conveyor.deployments.run import run_deployment

__all__ = ["run_deployment"]
