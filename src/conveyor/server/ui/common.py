"""What every page handler needs: the database, a refusal of cross-site posts, and the
"not found" and "something went wrong" pages."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from conveyor.server.database.engine import Database
from conveyor.server.ui import templating


def database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


def parse_id(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def cross_site(request: Request) -> bool:
    """Whether a state-changing form post came from another site's page.

    The server listens on loopback, but any web page a person opens could still post a
    form to it; browsers say where a request came from (``Sec-Fetch-Site``, ``Origin``)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin == "null"
    return urlsplit(origin).netloc != request.headers.get("host")


def forbidden() -> HTMLResponse:
    return templating.page(
        "message.html",
        status_code=403,
        title="Refused",
        message="This action was posted from another site's page, so it was refused. "
        "Use the buttons on Conveyor's own pages.",
    )


def not_found(what: str) -> HTMLResponse:
    return templating.page("message.html", status_code=404, title="Not found", message=what)


async def server_error(request: Request, exc: Exception) -> Response:
    """An unexpected failure: a page saying so in words (the API keeps its plain 500).

    Starlette logs the exception with its traceback after this answer is sent."""
    if request.url.path.startswith("/api/"):
        return PlainTextResponse("Internal Server Error", status_code=500)
    return templating.page(
        "message.html",
        status_code=500,
        title="Something went wrong",
        message=f"The server failed to show this page ({type(exc).__name__}: {exc}). "
        "Its log has the details; reloading may help if the database was busy.",
    )
