"""Fan-out without waking streams: the served protocol's Wire, a listener's direct writer, and
the one heartbeat clock per worker (app/events/wire.py, hub.py, heartbeat.py).

The Wire is tried on a real uvicorn server with the protocol `python -m app serve` runs and a
plain HTTP client, so a uvicorn release that changes what it relies on fails here; every
stream test that runs served processes goes through it as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import uvicorn

from app.events.frames import Audience, LiveEvent
from app.events.hub import Hub, Listener, Signal
from app.events.wire import StreamingHttpToolsProtocol, Wire, wire_of
from tests.test_event_bus import live

WAIT_S = 5.0
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/event-stream")],
}

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@contextlib.asynccontextmanager
async def served(app: App) -> AsyncIterator[str]:
    """`app` on a real uvicorn server speaking through StreamingHttpToolsProtocol."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=StreamingHttpToolsProtocol,
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(WAIT_S):
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for it
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_a_wire_writes_chunks_of_the_response_a_stream_started_through_asgi() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        wire = wire_of(scope)
        assert wire is not None
        seen["before start"] = wire.write(b"too early\n\n")
        await send(START)
        seen["written"] = [wire.write(b"data: one\n\n"), wire.write(b"data: two\n\n")]
        await send({"type": "http.response.body", "body": b"data: three\n\n", "more_body": False})
        seen["after end"] = wire.write(b"too late\n\n")

    async with served(app) as url, httpx.AsyncClient() as http:
        answer = await http.get(url + "/stream")

    # The chunks are framed right (the client decoded them), in order, between ASGI's own.
    assert answer.content == b"data: one\n\ndata: two\n\ndata: three\n\n"
    assert seen == {"before start": False, "written": [True, True], "after end": False}


async def test_a_wire_tells_its_stream_when_the_client_goes_away() -> None:
    gone = asyncio.Event()
    started = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        wire = wire_of(scope)
        assert wire is not None
        wire.on_lost = gone.set
        await send(START)
        started.set()
        await gone.wait()  # nothing else waits for http.disconnect
        assert wire.lost
        assert not wire.write(b"data: nobody\n\n")

    async with served(app) as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(WAIT_S):
            await started.wait()
            await reader.readuntil(b"\r\n\r\n")
        writer.close()
        async with asyncio.timeout(WAIT_S):
            await gone.wait()


async def test_a_wire_declines_once_the_client_has_stopped_reading() -> None:
    """A client that takes nothing fills the buffers; then the wire writes nothing more and
    the stream falls back to ASGI's send, with its stall limit."""
    outcome: dict[str, Any] = {}
    done = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        wire = wire_of(scope)
        assert wire is not None
        await send(START)
        chunk = b"data: " + b"x" * 16_000 + b"\n\n"
        written = 0
        while written < 256 * 1024 * 1024 and wire.write(chunk):
            written += len(chunk)
        outcome["declined after"] = written
        done.set()
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async with served(app) as url:
        host, port = url.removeprefix("http://").split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            async with asyncio.timeout(WAIT_S):
                await done.wait()
        finally:
            sock.close()

    # Socket buffers and the transport's own (64 KiB high-water mark): a few MB at most.
    assert 0 < outcome["declined after"] < 32 * 1024 * 1024


async def test_another_server_gives_no_wire_and_streams_work_without_one() -> None:
    assert wire_of({"type": "http", "headers": []}) is None
    assert wire_of({"type": "http", "extensions": {"liveshop.wire": object()}}) is None


# --- a listener's direct writer -----------------------------------------------------------------


class DirectWriter:
    """Stands in for a stream's `_write_now`: takes what it is told to, records it."""

    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.taken: list[LiveEvent | Signal] = []

    def __call__(self, item: LiveEvent | Signal) -> bool:
        if self.accept:
            self.taken.append(item)
        return self.accept


async def waiting(listener: Listener) -> asyncio.Task[Any]:
    """A task waiting on the listener as a stream does, once it is suspended there."""
    task = asyncio.create_task(_wait(listener))
    await asyncio.sleep(0)
    return task


async def _wait(listener: Listener) -> Any:
    await listener.wait()
    return listener.take()


async def test_a_waiting_stream_takes_an_event_through_its_direct_writer_and_is_not_woken() -> None:
    listener = Listener(1, Audience.STAFF, maxsize=10)
    writer = listener.direct = DirectWriter()
    task = await waiting(listener)

    event = live(1, 1)
    listener.offer(event)
    await asyncio.sleep(0.01)

    assert writer.taken == [event]
    assert not task.done()  # nothing was queued for it
    task.cancel()


async def test_what_the_direct_writer_declines_wakes_the_stream_in_order() -> None:
    listener = Listener(1, Audience.STAFF, maxsize=10)
    writer = listener.direct = DirectWriter(accept=False)
    task = await waiting(listener)

    first, second = live(1, 1), live(1, 2)
    listener.offer(first)
    writer.accept = True
    listener.offer(second)  # the stream has one pending: this one must queue behind it

    assert await asyncio.wait_for(task, WAIT_S) is first
    assert listener.take() is second
    assert writer.taken == []


async def test_a_stream_that_is_busy_gets_nothing_directly() -> None:
    listener = Listener(1, Audience.STAFF, maxsize=10)
    writer = listener.direct = DirectWriter()

    listener.offer(live(1, 1))  # nobody waits: the stream is writing, say

    assert writer.taken == []
    assert isinstance(listener.take(), LiveEvent)


# --- the heartbeat clock ------------------------------------------------------------------------


async def test_the_heartbeat_clock_gives_a_heartbeat_only_to_streams_silent_for_an_interval() -> (
    None
):
    hub = Hub()
    quiet, busy = Listener(1, Audience.STAFF, 10), Listener(1, Audience.CLIENT, 10)
    hub.add(quiet)
    hub.add(busy)
    now = time.monotonic()
    quiet.last_write = now - 31
    busy.last_write = now - 1

    hub.beat(due_before=now - 27)

    assert quiet.take() is Signal.HEARTBEAT
    assert busy.take() is None


async def test_a_heartbeat_goes_to_an_idle_stream_directly_and_only_once_when_queued() -> None:
    listener = Listener(1, Audience.STAFF, 10)
    writer = listener.direct = DirectWriter()
    task = await waiting(listener)
    listener.offer(Signal.HEARTBEAT)
    assert writer.taken == [Signal.HEARTBEAT]
    task.cancel()

    busy = Listener(1, Audience.STAFF, 10)
    busy.offer(live(1, 1))
    busy.offer(Signal.HEARTBEAT)  # it is about to write anyway
    assert isinstance(busy.take(), LiveEvent)
    assert busy.take() is None


@pytest.mark.parametrize("paused", [False, True])
async def test_a_wire_checks_the_connection_before_each_write(paused: bool) -> None:
    """Against uvicorn's own cycle object: the flags the wire reads are the ones it sets."""
    written: list[bytes] = []

    class Transport:
        def write(self, data: bytes) -> None:
            written.append(data)

        def is_closing(self) -> bool:
            return False

    class Flow:
        write_paused = paused

    class Cycle:
        response_started = True
        response_complete = False
        chunked_encoding = True
        disconnected = False
        transport = Transport()
        flow = Flow()

    wire = Wire(Cycle())  # type: ignore[arg-type]
    assert wire.write(b"abc") is (not paused)
    assert written == ([] if paused else [b"3\r\nabc\r\n"])


async def test_a_direct_writer_that_fails_costs_the_publisher_nothing_and_the_stream_is_woken() -> (
    None
):
    hub = Hub()
    broken, fine = Listener(1, Audience.STAFF, 10), Listener(1, Audience.CLIENT, 10)

    def explode(item: LiveEvent | Signal) -> bool:
        raise OSError("the connection broke oddly")

    broken.direct = explode
    writer = fine.direct = DirectWriter()
    hub.add(broken)
    hub.add(fine)
    waiters = [await waiting(broken), await waiting(fine)]

    event = live(1, 1)
    hub.deliver(event)  # does not raise

    assert await asyncio.wait_for(waiters[0], WAIT_S) is event  # its own task writes it
    assert broken.direct is None
    assert writer.taken == [event]
    waiters[1].cancel()
