"""Variables: named JSON values, addressed by name."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status

from conveyor.schemas.api import (
    MAX_PAGE,
    VARIABLE_NAME_MAX_LENGTH,
    VARIABLE_NAME_PATTERN,
    VariableRead,
    VariableSet,
)
from conveyor.server.api.deps import get_database
from conveyor.server.database.engine import Database
from conveyor.server.models import variables

router = APIRouter(prefix="/variables", tags=["variables"])
DB = Annotated[Database, Depends(get_database)]
Name = Annotated[
    str, Path(min_length=1, max_length=VARIABLE_NAME_MAX_LENGTH, pattern=VARIABLE_NAME_PATTERN)
]


@router.put("/{name}", response_model=VariableRead)
async def set_variable(name: Name, body: VariableSet, database: DB) -> VariableRead:
    """Create the variable, or replace its value and tags."""
    variable = await database.write(variables.set_variable, name, body.value, body.tags)
    return VariableRead.model_validate(variable)


@router.get("/", response_model=list[VariableRead])
async def list_variables(
    database: DB,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[VariableRead]:
    """Variables sorted by name."""
    rows = await database.read(variables.list_variables, limit, offset)
    return [VariableRead.model_validate(v) for v in rows]


@router.get("/{name}", response_model=VariableRead)
async def read_variable(name: Name, database: DB) -> VariableRead:
    variable = await database.read(variables.read_variable, name)
    if variable is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No variable named {name!r}.")
    return VariableRead.model_validate(variable)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_variable(name: Name, database: DB) -> Response:
    deleted = await database.write(variables.delete_variable, name)
    if not deleted:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No variable named {name!r}.")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
