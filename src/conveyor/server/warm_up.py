"""Work a fresh server would do in its first requests, done at start-up instead.

A worker's first claims and runs must not wait for it: on a fresh server the first
burst of runs spent about a second of CPU importing the schema validators' libraries
(loaded lazily, because the client shares those schemas and ``import conveyor`` must
stay fast) and building FastAPI's route tables, which it does on the first request
that walks them.
"""

from __future__ import annotations

import importlib

import httpx
from fastapi import FastAPI

# What request handlers import on first use: job-template and parameter schemas
# (jsonschema), schedules (croniter, dateutil).
LAZY_MODULES = (
    "jsonschema",
    "jsonschema.exceptions",
    "jsonschema.protocols",
    "referencing",
    "referencing.exceptions",
    "referencing.jsonschema",
    "croniter",
    "dateutil.rrule",
)


async def warm_up(app: FastAPI) -> None:
    for name in LAZY_MODULES:
        importlib.import_module(name)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://warm-up") as client:
        # A path no route matches walks, and so builds, every route table.
        await client.get("/api/warm-up/no-such-route")
        await client.get("/api/health")
