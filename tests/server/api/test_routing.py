"""Routes added flat behave and document exactly as included routers do."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request, status
from fastapi.routing import APIRoute
from pydantic import BaseModel

from conveyor.server.api.routing import include_flat


class Thing(BaseModel):
    name: str


def _router() -> APIRouter:
    router = APIRouter(prefix="/things", tags=["things"])

    @router.post("/", response_model=Thing, status_code=status.HTTP_201_CREATED, summary="Make")
    async def make(thing: Thing) -> Thing:
        return thing

    @router.get("/{name}", response_model=Thing, responses={404: {"description": "No thing"}})
    async def read(name: str, request: Request) -> Thing:
        request.state.seen.append("endpoint")
        return Thing(name=name)

    @router.delete("/{name}", status_code=204, include_in_schema=False)
    async def remove(name: str) -> None:
        return None

    return router


async def _mark(request: Request) -> Any:
    request.state.seen.append("dependency")
    yield


def _app(flat: bool) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def seen(request: Request, call_next: Any) -> Any:
        request.state.seen = []
        response = await call_next(request)
        response.headers["x-seen"] = ",".join(request.state.seen)
        return response

    if flat:
        include_flat(app, _router(), prefix="/api", dependencies=[Depends(_mark)])
    else:
        app.include_router(_router(), prefix="/api", dependencies=[Depends(_mark)])
    return app


def test_the_openapi_document_is_the_same() -> None:
    assert _app(flat=True).openapi() == _app(flat=False).openapi()


async def _exercise(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        made = await client.post("/api/things/", json={"name": "a"})
        assert (made.status_code, made.json()) == (201, {"name": "a"})
        assert (await client.post("/api/things/", json={"name": 1})).status_code == 422
        read = await client.get("/api/things/b")
        assert read.json() == {"name": "b"}
        assert read.headers["x-seen"] == "dependency,endpoint"  # prefix dependencies run
        assert (await client.delete("/api/things/b")).status_code == 204
        assert (await client.put("/api/things/b")).status_code == 405
        assert (await client.get("/api/nothing")).status_code == 404


def test_the_routes_answer_the_same() -> None:
    for flat in (True, False):
        asyncio.run(_exercise(_app(flat)))


def test_the_routes_are_flat() -> None:
    app = _app(flat=True)
    paths = {r.path for r in app.router.routes if isinstance(r, APIRoute)}
    assert {"/api/things/", "/api/things/{name}"} <= paths


def test_the_server_s_api_routes_are_flat() -> None:
    from conveyor.server.app import create_app
    from conveyor.settings import Settings

    app = create_app(Settings(database_url="sqlite://"))
    paths = [(r, getattr(r, "path", "")) for r in app.router.routes]
    api = [r for r, path in paths if path.startswith("/api/") and path != app.openapi_url]
    assert len(api) > 40 and all(isinstance(r, APIRoute) for r in api)
