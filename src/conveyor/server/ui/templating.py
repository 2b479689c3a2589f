"""Jinja2 set-up: the templates shipped in this package, their filters, and responses.

A *live* fragment is a piece of a page that re-renders itself: it is wrapped in an
element that htmx asks for again every ``POLL_SECONDS``, carrying a fingerprint of what
it showed (``v``). When the new rendering has the same fingerprint the answer is an empty
204, which htmx leaves alone: nothing is swapped, so the DOM, scroll position, open
``<details>`` and ticked boxes stay as they were, and an idle page costs one small query
set and no traffic beyond the headers.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from conveyor.server.ui import formatting

POLL_SECONDS = 1.5
TEMPLATES = Path(__file__).parent / "templates"


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=formatting.when,
        ago=formatting.ago,
        duration=formatting.duration,
        state_class=formatting.state_class,
        pretty_json=_pretty_json,
        count=formatting.count,
        short_id=formatting.short_id,
        run_duration=formatting.run_duration,
        schedule_text=formatting.schedule_text,
    )
    env.globals["poll_seconds"] = POLL_SECONDS
    return env


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _render(name: str, context: dict[str, Any]) -> str:
    return environment().get_template(name).render(context)


def page(name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A whole page (templates extend ``base.html``)."""
    context.setdefault("now", datetime.datetime.now(datetime.timezone.utc))
    return HTMLResponse(_render(name, context), status_code=status_code)


def live(
    name: str,
    url: str,
    *,
    poll: bool = True,
    element_id: str,
    version: str | None = None,
    **context: Any,
) -> Markup:
    """``name`` rendered inside its self-refreshing wrapper (see the module docstring).

    ``version`` overrides the fingerprint: a form shown with what a person typed and its
    errors carries the version of the blank form, so polls leave it alone until the
    thing it acts on changes."""
    context.setdefault("now", datetime.datetime.now(datetime.timezone.utc))
    inner = _render(name, context)
    version = version or fingerprint(inner)
    wrapper = _render(
        "live.html",
        {
            "inner": Markup(inner),
            "url": _with_version(url, version),
            "version": version,
            "poll": poll,
            "element_id": element_id,
        },
    )
    return Markup(wrapper)


def live_response(request: Request, fragment: Markup) -> Response:
    """The answer to a live fragment's poll: 204 when unchanged, else the new wrapper."""
    sent = request.query_params.get("v")
    if sent is not None and f'data-version="{sent}"' in fragment:
        return Response(status_code=204)
    return HTMLResponse(str(fragment))


def version_of(name: str, **context: Any) -> str:
    """The version ``live`` gives ``name`` rendered with ``context``."""
    return fingerprint(_render(name, context))


def fingerprint(html: str) -> str:
    return hashlib.blake2b(html.encode(), digest_size=8).hexdigest()


def _with_version(url: str, version: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}v={version}"
