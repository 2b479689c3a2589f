"""The errors of fetching a deployment's code and loading its flow."""

from __future__ import annotations

from conveyor.exceptions import ConveyorError


class CodeSourceError(ConveyorError):
    """A deployment's code could not be fetched from its source."""


class EntrypointError(ConveyorError, ValueError):
    """An entrypoint is malformed, or does not lead to a flow in the deployment's code."""


class DeployError(ConveyorError, ValueError):
    """A deployment cannot be made as declared; the message names it and the field."""
