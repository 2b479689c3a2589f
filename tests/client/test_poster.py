"""The recorder's blocking poster against a real HTTP server on loopback: it retries what
the async client retries, fails in words when it must, and survives the server closing
an idle kept-alive connection."""

from __future__ import annotations

import http.server
import json
import threading
import time
import types
from collections.abc import Callable, Iterator

import pytest
from tests.real_server import free_port

from conveyor.client import poster as poster_module
from conveyor.client.api import ApiError, ConveyorClient, ServerUnreachable
from conveyor.client.poster import BlockingPoster, proxied

Reply = tuple[int, dict[str, object]]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, replies: Callable[[int], Reply], close_after_reply: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.replies = replies
        self.close_after_reply = close_after_reply
        self.bodies: list[tuple[str, bytes]] = []
        self.connections = 0


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.bodies.append((self.path, body))
        status, payload = self.server.replies(len(self.server.bodies))
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if self.server.close_after_reply:
            # Gone without saying so, as a server whose keep-alive timer ran out.
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[_Server, str]]]:
    servers: list[_Server] = []

    def start(
        replies: Callable[[int], Reply], close_after_reply: bool = False
    ) -> tuple[_Server, str]:
        server = _Server(replies, close_after_reply)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, f"http://127.0.0.1:{server.server_address[1]}/api"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    delays: list[float] = []
    monkeypatch.setattr(poster_module, "time", types.SimpleNamespace(sleep=delays.append))
    return delays


def _poster(api_url: str, retries: int = 5) -> BlockingPoster:
    return BlockingPoster(api_url, timeout=5, retries=retries, backoff=0.2)


def test_a_flaky_server_costs_retries_then_the_answer(
    serve: Callable[..., tuple[_Server, str]], sleeps: list[float]
) -> None:
    server, api = serve(lambda n: (503, {"detail": "busy"}) if n <= 2 else (200, {"logs": 1}))
    poster = _poster(api)
    assert poster.post("/records", '{"logs": []}') == {"logs": 1}
    assert server.bodies == [("/api/records", b'{"logs": []}')] * 3
    assert len(sleeps) == 2
    assert server.connections == 1  # one kept-alive connection for all three
    poster.close()


def test_a_refusal_is_an_api_error_naming_the_field(
    serve: Callable[..., tuple[_Server, str]], sleeps: list[float]
) -> None:
    _, api = serve(lambda n: (422, {"detail": "logs.0: bad"}))
    with pytest.raises(ApiError, match=r"logs\.0: bad") as caught:
        _poster(api).post("/records", b"{}")
    assert caught.value.status == 422
    assert sleeps == []


def test_a_server_that_is_down_is_unreachable_in_words(sleeps: list[float]) -> None:
    poster = _poster(f"http://127.0.0.1:{free_port()}/api", retries=2)
    with pytest.raises(ServerUnreachable, match="conveyor server start"):
        poster.post("/records", b"{}")
    assert len(sleeps) == 2


def test_a_connection_the_server_closed_is_replaced_without_a_retry(
    serve: Callable[..., tuple[_Server, str]], sleeps: list[float]
) -> None:
    server, api = serve(lambda n: (200, {"n": n}), close_after_reply=True)
    poster = _poster(api, retries=0)  # no retries to spend: a reconnect must not need one
    assert [poster.post("/records", b"{}") for _ in range(3)] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert server.connections == 3
    assert sleeps == []


def test_the_client_hands_out_a_poster_unless_a_proxy_or_transport_is_in_the_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(ConveyorClient("http://10.1.2.3:4200").blocking_poster(), BlockingPoster)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert proxied("http://10.1.2.3:4200/api")
    assert ConveyorClient("http://10.1.2.3:4200").blocking_poster() is None
    monkeypatch.setenv("NO_PROXY", "10.1.2.3")
    assert not proxied("http://10.1.2.3:4200/api")


def test_only_http_urls_make_a_poster() -> None:
    with pytest.raises(ValueError, match="not an http"):
        _poster("ftp://example/api")


def test_a_post_started_now_is_answered_later(
    serve: Callable[..., tuple[_Server, str]], sleeps: list[float]
) -> None:
    """``start`` sends without waiting; ``answered`` tells, without blocking, when the
    answer is there to ``finish``; the connection then serves the next one."""
    release = threading.Event()

    def replies(n: int) -> Reply:
        release.wait(10)
        return (200, {"n": n})

    server, api = serve(replies)
    poster = _poster(api)
    poster.start("/records", b'{"logs": []}')
    assert not poster.answered()  # the server holds its answer
    release.set()
    deadline = time.monotonic() + 10
    while not poster.answered() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert poster.answered()
    assert poster.finish() == {"n": 1}
    poster.start("/records", b"{}")
    assert poster.finish() == {"n": 2}  # finish waits when it must
    assert server.bodies == [("/api/records", b'{"logs": []}'), ("/api/records", b"{}")]
    assert server.connections == 1
    poster.close()


def test_a_started_post_fails_in_words_and_is_not_retried(
    serve: Callable[..., tuple[_Server, str]], sleeps: list[float]
) -> None:
    _, api = serve(lambda n: (503, {"detail": "busy"}))
    poster = _poster(api)
    poster.start("/records", b"{}")
    with pytest.raises(ApiError, match="busy"):
        poster.finish()
    down = _poster(f"http://127.0.0.1:{free_port()}/api")
    with pytest.raises(ServerUnreachable, match="conveyor server start"):
        down.start("/records", b"{}")
    assert sleeps == []


def test_a_post_started_on_a_connection_the_server_closed_goes_on_a_new_one(
    serve: Callable[..., tuple[_Server, str]], sleeps: list[float]
) -> None:
    server, api = serve(lambda n: (200, {"n": n}), close_after_reply=True)
    poster = _poster(api)
    poster.start("/records", b"{}")
    assert poster.finish() == {"n": 1}
    deadline = time.monotonic() + 10
    while not poster.answered() and time.monotonic() < deadline:
        time.sleep(0.005)  # until the server's close is seen, as after a keep-alive timeout
    poster.start("/records", b"{}")
    assert poster.finish() == {"n": 2}
    assert server.connections == 2
