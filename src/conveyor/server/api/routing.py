"""Routes added to the application flat, not as included routers.

FastAPI (0.16x) keeps an included router as a wrapper that it walks on every request, and
walks again to handle the one it matched: finding ``POST /api/deployments/{id}/...``
cost ~0.25 ms of the event loop's time, and routing was a fifth of the server's CPU under
a burst of small requests. Added flat, each route is one regular expression in one list,
as FastAPI itself did before. Each route is re-created with the settings it was declared
with, plus the prefix and dependencies given here; a test pins that the OpenAPI document
and the routes' behaviour are what ``include_router`` gives.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI, params
from fastapi.routing import APIRoute


def include_flat(
    app: FastAPI,
    router: APIRouter,
    *,
    prefix: str = "",
    dependencies: Sequence[params.Depends] = (),
    include_in_schema: bool = True,
) -> None:
    """Add ``router``'s routes to ``app`` as ``app.include_router`` would, but flat."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"only API routes can be added flat, not {route!r}")
        app.router.add_api_route(
            prefix + route.path,
            route.endpoint,
            response_model=route.response_model,
            status_code=route.status_code,
            tags=list(route.tags),
            dependencies=[*dependencies, *route.dependencies],
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            responses=dict(route.responses),
            deprecated=route.deprecated,
            methods=sorted(route.methods or ()),
            operation_id=route.operation_id,
            response_model_include=route.response_model_include,
            response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none,
            include_in_schema=route.include_in_schema and include_in_schema,
            response_class=route.response_class,
            name=route.name,
            callbacks=route.callbacks,
            openapi_extra=route.openapi_extra,
            generate_unique_id_function=route.generate_unique_id_function,
        )
