"""Bodies validated from the raw JSON bytes, for the bulk endpoint, and their docs.

FastAPI parses a JSON body with ``json.loads`` and validates the resulting objects;
pydantic validating the bytes itself is several times faster for a batch of thousands
of records. A route that does this takes the ``Request``, so ``openapi_body`` puts the
model back into the API's documentation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
_REF = "#/components/schemas/{model}"
_documented: dict[str, type[BaseModel]] = {}


def parse(raw: bytes, from_json: Callable[[bytes], M]) -> M:
    """The body, or a 422 naming each bad field exactly as FastAPI's own would."""
    try:
        return from_json(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route whose JSON body is ``model``."""
    _documented[model.__name__] = model
    schema = {"$ref": _REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def document_bodies(app: FastAPI) -> None:
    """Add the models of ``openapi_body`` routes to the app's schema components."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, model in _documented.items():
                body = model.model_json_schema(ref_template=_REF)
                components.update(body.pop("$defs", {}))
                components[name] = body
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]
