"""Errors as one readable sentence plus machine-readable details; never a bare 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from conveyor.server.models.errors import Conflict, Invalid, ModelError, NotFound

logger = logging.getLogger("conveyor.server")


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    if len(parts) == 1 and parts[0].isdigit():
        return "body"  # a JSON syntax error carries the character offset, not a field
    return ".".join(parts) or "body"


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    message = "; ".join(f"{_where(tuple(e['loc']))}: {e['msg']}" for e in errors[:10])
    details = [{"field": _where(tuple(e["loc"])), "message": e["msg"]} for e in errors]
    return JSONResponse(
        status_code=422, content={"detail": f"Invalid request: {message}", "errors": details}
    )


async def integrity_error(request: Request, exc: Exception) -> JSONResponse:
    # A foreign key or uniqueness violation is the caller's input, not a server fault.
    reason = str(getattr(exc, "orig", exc)).splitlines()[0]
    return JSONResponse(
        status_code=409, content={"detail": f"The request conflicts with stored data: {reason}"}
    )


_STATUS: dict[type[ModelError], int] = {NotFound: 404, Conflict: 409, Invalid: 422}


async def model_error(request: Request, exc: Exception) -> JSONResponse:
    # What a query function refused: its message already names the field at fault.
    assert isinstance(exc, ModelError)
    return JSONResponse(status_code=_STATUS[type(exc)], content={"detail": exc.message})


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(IntegrityError, integrity_error)
    for error in _STATUS:
        app.add_exception_handler(error, model_error)
