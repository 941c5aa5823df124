"""POST /rpc over HTTP: allowed methods, the body limit while a body streams, ids, base URL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar, Request
from litestar.testing import AsyncTestClient

from app.rpc.http import caller_of
from app.server import create_app
from tests.conftest import make_settings

HEALTH = b'{"jsonrpc":"2.0","id":1,"method":"system.health"}'
LIMIT = 2000


@pytest.fixture
def limited_app(sqlite_url: str) -> Litestar:
    return create_app(make_settings(sqlite_url, RPC_MAX_BODY_BYTES=str(LIMIT)))


@pytest.fixture
async def rpc_client(limited_app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=limited_app) as client:
        yield client


class Exchange:
    """Drives one request through the ASGI app, feeding the body chunk by chunk."""

    def __init__(
        self, chunks: list[bytes], headers: list[tuple[bytes, bytes]], *, complete: bool = True
    ) -> None:
        self.chunks = chunks
        self.headers = headers
        self.complete = complete  # False: the client goes away after the last chunk
        self.chunks_read = 0
        self.sent: list[dict[str, Any]] = []

    async def run(self, app: Litestar, method: str = "POST") -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": "/rpc",
            "raw_path": b"/rpc",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"testserver"), *self.headers],
            "server": ("testserver", 80),
            "client": ("127.0.0.1", 50000),
        }
        await app(scope, self.receive, self.send)  # type: ignore[arg-type]

    async def receive(self) -> dict[str, Any]:
        if self.chunks_read == len(self.chunks):
            return {"type": "http.disconnect"}
        self.chunks_read += 1
        more = self.chunks_read < len(self.chunks) or not self.complete
        return {
            "type": "http.request",
            "body": self.chunks[self.chunks_read - 1],
            "more_body": more,
        }

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        status: int = self.sent[0]["status"]
        return status

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


async def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(
    limited_app: Litestar,
) -> None:
    exchange = Exchange([b" " * 500] * 10, headers=[])  # no Content-Length, as when chunked
    await exchange.run(limited_app)
    assert exchange.status == 413
    assert b'"code":"PAYLOAD_TOO_LARGE"' in exchange.body
    assert exchange.chunks_read == 5  # 2500 bytes in: the other 2500 were never read


async def test_an_announced_length_over_the_limit_is_refused_before_reading(
    limited_app: Litestar,
) -> None:
    exchange = Exchange([HEALTH], headers=[(b"content-length", b"1000000")])
    await exchange.run(limited_app)
    assert exchange.status == 413
    assert exchange.chunks_read == 0


async def test_a_body_in_many_chunks_under_the_limit_is_answered(limited_app: Litestar) -> None:
    exchange = Exchange([HEALTH[:10], b"", HEALTH[10:30], HEALTH[30:]], headers=[])
    await exchange.run(limited_app)
    assert exchange.status == 200
    assert b'"result":{"status":"ok"' in exchange.body


async def test_a_client_that_disconnects_mid_body_gets_no_answer(limited_app: Litestar) -> None:
    exchange = Exchange([HEALTH[:10]], headers=[], complete=False)
    await exchange.run(limited_app)
    assert exchange.sent == []


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_rpc_accepts_only_post(rpc_client: AsyncTestClient[Litestar], method: str) -> None:
    response = await rpc_client.request(method, "/rpc")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, OPTIONS"


async def test_options_on_rpc_lists_post(rpc_client: AsyncTestClient[Litestar]) -> None:
    response = await rpc_client.options("/rpc")
    assert response.status_code == 204
    assert response.headers["allow"] == "OPTIONS, POST"


async def test_get_rpc_method_is_still_the_query_route(
    rpc_client: AsyncTestClient[Litestar],
) -> None:
    response = await rpc_client.get("/rpc/system.health")
    assert response.status_code == 200
    assert response.json()["result"]["status"] == "ok"


async def test_an_unsafe_request_id_is_replaced_and_each_generated_one_is_new(
    rpc_client: AsyncTestClient[Litestar],
) -> None:
    unsafe = await rpc_client.post("/rpc", content=HEALTH, headers={"x-request-id": "a b/c"})
    again = await rpc_client.post("/rpc", content=HEALTH)
    assert unsafe.headers["x-request-id"] != "a b/c"
    assert unsafe.headers["x-request-id"] != again.headers["x-request-id"]
    assert all(len(r.headers["x-request-id"]) == 32 for r in (unsafe, again))


@pytest.mark.parametrize(
    ("scheme", "server", "host", "root_path", "app_root_path"),
    [
        ("http", ("127.0.0.1", 8000), b"127.0.0.1:8000", "", None),
        ("https", ("10.0.0.1", 443), b"shop.example.com", "", None),
        ("https", ("10.0.0.1", 8443), None, "", None),
        ("http", ("10.0.0.1", 80), None, "/api", None),
        ("http", ("10.0.0.1", 80), b"shop.example.com", "/api/", "/mounted"),
        ("http", None, b"shop.example.com", "", None),
        ("http", None, None, "/api", None),
    ],
)
def test_the_callers_base_url_is_litestars_without_its_trailing_slash(
    scheme: str,
    server: tuple[str, int] | None,
    host: bytes | None,
    root_path: str,
    app_root_path: str | None,
) -> None:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "scheme": scheme,
        "server": server,
        "path": "/rpc",
        "root_path": root_path,
        "query_string": b"",
        "headers": [(b"host", host)] if host is not None else [],
    }
    if app_root_path is not None:
        scope["app_root_path"] = app_root_path
    expected = str(Request(scope).base_url).rstrip("/")  # type: ignore[arg-type]
    assert caller_of(Request(scope)).base_url == expected  # type: ignore[arg-type]


class StalledExchange(Exchange):
    """A client that sends the first chunks of its body and then nothing, without leaving."""

    async def receive(self) -> dict[str, Any]:
        if self.chunks_read == len(self.chunks):
            await asyncio.Event().wait()  # until the server stops waiting for it
        return await super().receive()


async def test_a_body_that_stops_arriving_answers_408_and_closes_the_connection(
    sqlite_url: str,
) -> None:
    app = create_app(make_settings(sqlite_url, RPC_BODY_TIMEOUT_S="0.2"))
    length = (b"content-length", b"%d" % len(HEALTH))
    exchange = StalledExchange([HEALTH[:10]], headers=[length], complete=False)
    await asyncio.wait_for(exchange.run(app), timeout=5)
    assert exchange.status == 408
    assert (b"connection", b"close") in exchange.sent[0]["headers"]
    error = json.loads(exchange.body)["error"]
    assert (error["code"], error["data"]["code"]) == (-32008, "TIMEOUT")
