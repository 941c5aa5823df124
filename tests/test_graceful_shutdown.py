"""A worker told to stop (SIGTERM) ends its streams cleanly, and its clients resume elsewhere.

Every open stream ends with a complete response (a final comment, then the chunked body's
terminator: never a connection cut mid-frame) within the grace period; the process exits 0
and logs no traceback and no error. Each client then resumes on another worker with its
Last-Event-ID and misses nothing (DESIGN.md 5).

Two real `python -m app serve` processes share one SQLite file (the in-memory bus): the one
that stops and the one the clients move to. The stream handler also runs in process, with a
client that stops reading, and with a stream that opens while the worker is already stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from app.auth import TokenService
from app.config import Settings, load_settings
from app.events import sse
from app.events.sse import DRAIN_WRITE_S, SHUTDOWN_GRACE_S, WRITE_STALL_S, streams
from app.runtime import Services
from tests import live_server
from tests.conftest import Rpc, Tokens
from tests.factories import Shop
from tests.live_server import Server
from tests.sse_client import EventStream, assert_consecutive, changes, open_stream

STREAMS = 50
READ_S = 5.0


@pytest.fixture
def env(sqlite_template: Path, tmp_path: Path) -> dict[str, str]:
    return live_server.sqlite_env(sqlite_template, tmp_path)


@pytest.fixture
def servers(env: dict[str, str]) -> Iterator[list[Server]]:
    with live_server.running_servers(env, 2) as running:
        yield running


async def read_to_the_end(stream: EventStream) -> float:
    """Read until the server ends the response; returns when (monotonic) it ended."""
    await stream.rest(within=SHUTDOWN_GRACE_S + READ_S)
    return time.monotonic()


async def test_sigterm_ends_every_stream_cleanly_and_its_client_resumes_on_another_worker(
    servers: list[Server], env: dict[str, str]
) -> None:
    stopping, other = servers
    limits = live_server.http_limits(STREAMS + 4)
    async with (
        httpx.AsyncClient(base_url=stopping.base_url, timeout=READ_S, limits=limits) as http,
        httpx.AsyncClient(base_url=other.base_url, timeout=READ_S, limits=limits) as elsewhere,
    ):
        shop = Shop(Rpc(http, Tokens(TokenService(load_settings(env)))))
        scarf = await shop.stock(on_hand="100")
        customer = await shop.customer()
        room = await shop.session(customer)
        await shop.add(room, scarf, "1")
        paths = [
            (f"/api/sse/live-shopping/{room.id}", shop.rpc.tokens.staff)
            if n % 2
            else (f"/api/sse/vip/live-shopping/{room.code}", customer.token)
            for n in range(STREAMS)
        ]

        async with open_all(http, paths) as streams:
            for stream in streams:
                await stream.next_events(1, within=READ_S)  # the snapshot: it is streaming
            readers = [asyncio.create_task(read_to_the_end(s)) for s in streams]

            signalled = time.monotonic()
            stopping.process.send_signal(signal.SIGTERM)
            outcomes = await asyncio.gather(*readers, return_exceptions=True)
            exit_code = await asyncio.to_thread(_exit_code, stopping, SHUTDOWN_GRACE_S + READ_S)

            failures = [o for o in outcomes if isinstance(o, BaseException)]
            assert not failures, failures[:3]
            ended = [o - signalled for o in outcomes if isinstance(o, float)]
            assert max(ended) < SHUTDOWN_GRACE_S, ended
            for stream in streams:
                assert stream.frames[-1].comments == ("shutting down",), stream.frames[-3:]
            log = stopping.log_text()
            assert exit_code == 0, log
            assert "Traceback" not in log, log
            assert "ERROR" not in log, log

            # Every client resumes on the other worker from the last id it saw.
            last_seen = [stream.events[-1].seq for stream in streams]

        async with open_all(elsewhere, paths, last_seen) as resumed:
            await Shop(Rpc(elsewhere, shop.rpc.tokens)).add(room, scarf, "2")
            for stream, after in zip(resumed, last_seen, strict=True):
                await stream.frame_where(lambda f: f.event == "CART_UPDATED", within=READ_S)
                assert stream.response.status_code == 200
                assert "SESSION_SNAPSHOT" not in [e.event for e in stream.events]
                assert_consecutive(stream.events, after=after)
                [line] = changes(stream.events)[-1].json()["cart"]["items"]
                assert line["quantity"] == "3.0000"  # the unit added before and the two after


def _exit_code(server: Server, within: float) -> int | None:
    try:
        return server.process.wait(within)
    except subprocess.TimeoutExpired:
        return None


@asynccontextmanager
async def open_all(
    http: httpx.AsyncClient,
    paths: list[tuple[str, str]],
    last_event_ids: list[int] | None = None,
) -> AsyncIterator[list[EventStream]]:
    """One stream per (path, token), each from its own Last-Event-ID if given."""
    ids: list[int | None] = [*last_event_ids] if last_event_ids else [None] * len(paths)
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                open_stream(http, path, token=token, last_event_id=last_id)
            )
            for (path, token), last_id in zip(paths, ids, strict=True)
        ]


MANY_STREAMS = 500
OPEN_CONCURRENCY = 50


class RawStream(asyncio.Protocol):
    """One SSE connection kept as raw bytes: 500 of them cost the test little CPU."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received = bytearray()
        self.streaming = asyncio.get_running_loop().create_future()
        self.ended = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.received += data
        if not self.streaming.done() and b"event: SESSION_SNAPSHOT" in self.received:
            self.streaming.set_result(None)
        # A chunked response ends with a zero-length chunk.
        if not self.ended.done() and self.received.endswith(b"\r\n0\r\n\r\n"):
            self.ended.set_result(time.monotonic())

    def connection_lost(self, exc: Exception | None) -> None:
        for waiter in (self.streaming, self.ended):
            if not waiter.done():
                waiter.set_exception(ConnectionError("closed before the response ended"))


async def test_sigterm_ends_500_open_streams_cleanly_without_a_traceback(
    env: dict[str, str],
) -> None:
    with live_server.running_servers(env, 1) as [server]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=READ_S) as http:
            shop = Shop(Rpc(http, Tokens(TokenService(load_settings(env)))))
            customer = await shop.customer()
            room = await shop.session(customer)
        host, port = server.base_url.removeprefix("http://").split(":")
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)
        transports: list[asyncio.BaseTransport] = []

        async def open_one(n: int) -> RawStream:
            path, token = (
                (f"/api/sse/live-shopping/{room.id}", shop.rpc.tokens.staff)
                if n % 2
                else (f"/api/sse/vip/live-shopping/{room.code}", customer.token)
            )
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {token}\r\n\r\n"
            ).encode()
            stream = RawStream(request)
            async with gate:
                transport, _ = await loop.create_connection(lambda: stream, host, int(port))
                transports.append(transport)
                await asyncio.wait_for(stream.streaming, 30)
            return stream

        try:
            streams_open = await asyncio.gather(*(open_one(n) for n in range(MANY_STREAMS)))
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            outcomes = await asyncio.gather(
                *(asyncio.wait_for(s.ended, SHUTDOWN_GRACE_S + READ_S) for s in streams_open),
                return_exceptions=True,
            )
            exit_code = await asyncio.to_thread(_exit_code, server, SHUTDOWN_GRACE_S + READ_S)
        finally:
            for transport in transports:
                transport.close()

        failures = [o for o in outcomes if isinstance(o, BaseException)]
        assert not failures, (len(failures), failures[:3])
        assert max(o - signalled for o in outcomes if isinstance(o, float)) < SHUTDOWN_GRACE_S
        for stream in streams_open:
            assert b": shutting down\n\n" in stream.received
        log = server.log_text()
        assert exit_code == 0, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        assert "ERROR" not in log, log[-3000:]


# --- in process: the stream handler alone ------------------------------------------------------


class Client:
    """An ASGI client that takes the first `accepts` messages, then blocks as a full socket."""

    def __init__(self, accepts: int = 1_000) -> None:
        self.accepts = accepts
        self.messages: list[dict[str, Any]] = []
        self.stuck = asyncio.Event()

    async def send(self, message: Any) -> None:
        self.messages.append(message)
        if len(self.messages) > self.accepts:
            self.stuck.set()
            await asyncio.Event().wait()

    async def receive(self) -> Any:
        await asyncio.Event().wait()  # the client never hangs up


@pytest.fixture
async def stopping(
    rpc: Rpc, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Services, dict[str, Any]]]:
    """This worker's own streams (the process-wide set stays untouched) and a stream's scope."""
    monkeypatch.setattr(sse, "OPEN_STREAMS", sse.OpenStreams())
    client = await rpc.staff("clients.create", {"name": "Watching at closing time"})
    session = await rpc.staff("liveShopping.createSession", {"clientId": client["id"]})
    services = Services.create(settings)
    scope = {
        "type": "http",
        "method": "GET",
        "path": f"/live-shopping/{session['sessionId']}",
        "headers": [(b"authorization", f"Bearer {rpc.tokens.staff}".encode())],
        "query_string": b"",
        "app": SimpleNamespace(state=SimpleNamespace(services=services)),
    }
    try:
        yield services, scope
    finally:
        await services.close()


async def test_a_stream_whose_client_stopped_reading_does_not_hold_up_the_shutdown(
    stopping: tuple[Services, dict[str, Any]],
) -> None:
    services, scope = stopping
    client = Client(accepts=1)  # the response head; stuck on the retry hint with the snapshot
    stream = asyncio.create_task(streams.fn(scope, client.receive, client.send))
    await asyncio.wait_for(client.stuck.wait(), READ_S)

    started = time.monotonic()
    sse.OPEN_STREAMS.close_all(spread_s=0)
    await asyncio.wait_for(stream, READ_S)

    # Given up after the final frame's short wait, not after WRITE_STALL_S: within the grace.
    assert time.monotonic() - started < DRAIN_WRITE_S + 1 < WRITE_STALL_S
    assert services.bus.hub.listener_count == 0
    assert len(sse.OPEN_STREAMS) == 0


async def test_a_stream_opened_while_the_worker_stops_is_a_complete_response_that_ends_at_once(
    stopping: tuple[Services, dict[str, Any]],
) -> None:
    services, scope = stopping
    sse.OPEN_STREAMS.close_all(spread_s=0)
    client = Client()
    await asyncio.wait_for(streams.fn(scope, client.receive, client.send), READ_S)

    start, *body = client.messages
    assert start["type"] == "http.response.start" and start["status"] == 200
    assert [m["more_body"] for m in body] == [True] * (len(body) - 1) + [False]
    # EventSource reconnects (elsewhere) after the retry hint's delay.
    assert body[0]["body"].startswith(b"retry: ")
    assert services.bus.hub.listener_count == 0
