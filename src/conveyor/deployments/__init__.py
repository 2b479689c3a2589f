"""Deployments: where a flow's code comes from, and loading the flow from it.

* ``conveyor.deployments.sources.fetch`` puts a deployment's code in a directory;
* ``conveyor.deployments.entrypoints.load_flow`` imports the flow from there.
"""
