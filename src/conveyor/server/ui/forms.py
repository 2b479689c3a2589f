"""Reading the URL-encoded forms the pages post (no multipart: the pages send none)."""

from __future__ import annotations

import urllib.parse

from starlette.requests import Request

Form = dict[str, list[str]]


async def read_form(request: Request) -> Form:
    body = (await request.body()).decode("utf-8", errors="replace")
    return urllib.parse.parse_qs(body, keep_blank_values=True)


def first(form: Form, name: str, default: str = "") -> str:
    values = form.get(name)
    return values[0] if values else default
