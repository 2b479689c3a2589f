"""What every page handler needs: the database, a refusal of cross-site posts, and the
"not found" page."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse

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
