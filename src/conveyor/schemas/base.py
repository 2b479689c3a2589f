"""The base of every schema model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConveyorModel(BaseModel):
    # Building validators at class creation would cost ~3 ms per model at
    # `import conveyor`; build them on first use instead.
    model_config = ConfigDict(defer_build=True)
