"""POSTs from a plain thread over one blocking HTTP connection: how the recorder's flusher
ships record batches to a server.

Not through the async client: it would hand each request to the portal's event loop
thread and back, and every hand-off waits for the GIL, so while a flow's thread is busy a
request took ~90 ms instead of ~16 ms. Not through httpx's blocking client either: its
layers (URL merging, auth, redirects, h11) cost ~0.7 ms of the GIL per request, which the
flow's own thread then waits for; the standard library's ``http.client`` costs a third of
that. A batch may be sent again safely (recording is idempotent), so a request that fails
on a connection the server had closed is simply repeated on a new one.
"""

from __future__ import annotations

import http.client
import select
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from conveyor.client.api import Backoff, decode_body, ssl_context, unreachable

_HEADERS = {"content-type": "application/json"}


def proxied(api_url: str) -> bool:
    """Whether the environment sends requests to ``api_url`` through a proxy (which only
    the async client honours)."""
    parts = urlsplit(api_url)
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


class BlockingPoster:
    """Sends JSON bodies to ``api_url`` + path; retried as ``ConveyorClient.request``
    retries (connection errors, 5xx, 429), refusals raised as ``ApiError``."""

    def __init__(self, api_url: str, *, timeout: float, retries: int, backoff: float) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {api_url!r}")
        self._api_url = api_url
        self._prefix = parts.path.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._connection: http.client.HTTPConnection | None = None

    def post(self, path: str, content: str | bytes) -> Any:
        body = content.encode() if isinstance(content, str) else content
        backoff = Backoff(self._retries, self._backoff)
        while True:
            try:
                status, reason, retry_after, payload = self._exchange(self._prefix + path, body)
            except (OSError, http.client.HTTPException) as exc:
                delay = backoff.next_delay(None)
                if delay is None:
                    raise unreachable(self._api_url, exc) from exc
            else:
                delay = backoff.next_delay(status, retry_after)
                if delay is None:
                    return decode_body(status, reason, payload)
            time.sleep(delay)

    def start(self, path: str, body: bytes) -> None:
        """Send a POST and return without its answer (``answered``, ``finish``): for a
        batch the sender need not wait on. Not retried: a caller gives a failed one to
        ``post``, which retries."""
        if self._connection is not None and self.answered():
            # Readable before a request: the server closed the idle connection (its
            # keep-alive timer ran out). ``post`` finds out by failing; here nothing would
            # until the answer, so a new connection it is.
            self.close()
        try:
            self._connect().request("POST", self._prefix + path, body=body, headers=_HEADERS)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise unreachable(self._api_url, exc) from exc

    def answered(self) -> bool:
        """Whether the answer to ``start``'s request has arrived (or the connection
        broke, which ``finish`` then reports); never blocks."""
        connection = self._connection
        if connection is None or connection.sock is None:
            return True
        try:
            if hasattr(select, "poll"):  # (select() refuses descriptors past 1023)
                poller = select.poll()
                poller.register(connection.sock, select.POLLIN)
                return bool(poller.poll(0))
            readable, _, _ = select.select([connection.sock], [], [], 0)
        except (OSError, ValueError):
            return True  # ``finish`` reads the answer, or reports the trouble
        return bool(readable)

    def finish(self) -> Any:
        """The answer to ``start``'s request, as ``post`` returns it (waits for it)."""
        connection = self._connection
        if connection is None:
            raise unreachable(self._api_url, ConnectionError("the connection was closed"))
        try:
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise unreachable(self._api_url, exc) from exc
        return decode_body(response.status, response.reason, payload)

    def _exchange(self, url: str, body: bytes) -> tuple[int, str, str | None, bytes]:
        reused = self._connection is not None
        try:
            return self._send(url, body)
        except (OSError, http.client.HTTPException):
            self.close()
            if not reused:
                raise
        # The server may close an idle kept-alive connection just as a request goes out:
        # that costs no retry, the request goes again on a new connection.
        try:
            return self._send(url, body)
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def _send(self, url: str, body: bytes) -> tuple[int, str, str | None, bytes]:
        connection = self._connect()
        connection.request("POST", url, body=body, headers=_HEADERS)
        response = connection.getresponse()
        payload = response.read()  # read whole, so the connection can be used again
        return response.status, response.reason, response.getheader("retry-after"), payload

    def _connect(self) -> http.client.HTTPConnection:
        connection = self._connection
        if connection is None:
            if self._https:
                connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=ssl_context()
                )
            else:
                connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
            self._connection = connection
        return connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
