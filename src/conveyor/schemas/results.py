"""A reference to a persisted result: where it is and how to read it back."""

from __future__ import annotations

from pydantic import ConfigDict

from conveyor.schemas.base import ConveyorModel


class ResultRef(ConveyorModel):
    """Points at a result written by a result store; never the data itself."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    storage: str
    """The result store's base URL (any fsspec URL, or a local folder)."""
    key: str
    """The key of the result inside the store."""
    serializer: str
    """The name of the serializer that wrote it: pickle, cloudpickle or json."""
