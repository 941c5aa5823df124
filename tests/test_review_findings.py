"""Defects found in review of the live-update path and the RPC edge, each pinned by a test.

Every test here failed before its fix (or is a strict xfail naming a defect left open).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from redis import asyncio as aioredis

from app.config import Settings
from app.events import outbox_watch, replay
from app.events.bus import UNSCOPED_CHANNELS, RedisBus
from app.events.frames import Audience, LiveEvent
from app.events.hub import Listener, Signal
from app.events.sse import streams
from app.runtime import Services
from app.server import create_app
from tests import services
from tests.conftest import Rpc, make_settings
from tests.test_event_bus import appended, next_event, started, until_numsub
from tests.test_slow_consumer import staff_scope

WAIT_S = 3.0


# --- WebSocket upgrades on the stream paths ----------------------------------------------------


async def websocket_exchange(app: Litestar, path: str) -> list[dict[str, Any]]:
    """What the app sends to a WebSocket handshake on `path` (as uvicorn would hand it over)."""
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "subprotocols": [],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[arg-type]
    return sent


@pytest.mark.parametrize("path", ["/api/sse/live-shopping/1", "/api/sse/no-such-stream"])
async def test_a_websocket_handshake_on_a_stream_path_is_refused_not_an_internal_error(
    settings: Settings, path: str
) -> None:
    # uvicorn raises on an `http.*` message in a WebSocket scope: a 500 and a stack trace.
    sent = await websocket_exchange(create_app(settings), path)
    assert [m["type"] for m in sent] == ["websocket.close"], sent


# --- deeply nested JSON ------------------------------------------------------------------------

DEEP = b"[" * 5000  # far beyond msgspec's nesting limit, and only 5 kB


@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        b'{"jsonrpc":"2.0","id":1,"method":"system.health","params":' + DEEP + b"}",
        b'{"jsonrpc":"2.0","id":' + DEEP + b"}",
        b'{"jsonrpc":"2.0","id":1,"method":"system.health","extra":' + DEEP + b"]}",
    ],
    ids=["batch", "params", "id", "unknown-member"],
)
async def test_deeply_nested_json_on_post_rpc_is_a_parse_error_not_an_internal_error(
    rpc: Rpc, body: bytes
) -> None:
    response = await rpc.http.post("/rpc", content=body)
    assert response.status_code == 400, response.text
    document = response.json()
    [error] = [d["error"] for d in document] if isinstance(document, list) else [document["error"]]
    assert error["data"]["code"] == "PARSE_ERROR"


async def test_deeply_nested_json_in_a_trpc_batch_input_is_a_parse_error_not_an_internal_error(
    rpc: Rpc,
) -> None:
    nested = "%7B%220%22:" + "[" * 2000  # {"0":[[[[...
    response = await rpc.http.get(f"/trpc/system.health,system.health?batch=1&input={nested}")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["data"]["code"] == "PARSE_ERROR"


# --- the Redis bus -------------------------------------------------------------------------------


def random_session_id() -> int:
    return random.randrange(10**9, 2**31)


@pytest.fixture
async def redis_url() -> str:
    services.require("redis")
    return services.REDIS_URL


@pytest.fixture
async def redis_admin(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def two_workers(redis_url: str) -> AsyncIterator[tuple[RedisBus, RedisBus]]:
    buses: list[RedisBus] = []
    try:
        for _ in range(2):
            bus = RedisBus(redis_url)
            buses.append(bus)
            await started(bus)
        yield buses[0], buses[1]
    finally:
        for bus in buses:
            await bus.close()


async def live_seqs(listener: Listener, count: int) -> set[int]:
    seqs: set[int] = set()
    async with asyncio.timeout(WAIT_S):
        while len(seqs) < count:
            item = await listener.next(WAIT_S)
            if isinstance(item, LiveEvent):
                seqs.add(item.seq)
    return seqs


@pytest.mark.redis
async def test_a_burst_of_concurrent_publishes_reaches_other_workers_in_full(
    two_workers: tuple[RedisBus, RedisBus], redis_admin: aioredis.Redis
) -> None:
    # More calls committing at once than the bus has pooled connections: a publish must wait
    # for a connection, not fail with "Too many connections" and leave streams to the heartbeat.
    receiving, publishing = two_workers
    session_id = random_session_id()
    listener = await receiving.listen(session_id, Audience.STAFF)
    await until_numsub(redis_admin, session_id, 1)

    count = 100
    await asyncio.gather(
        *(publishing.publish([appended(session_id, seq)]) for seq in range(1, count + 1))
    )

    assert await live_seqs(listener, count) == set(range(1, count + 1))
    await receiving.unlisten(listener)


@pytest.mark.redis
@pytest.mark.parametrize(
    "payload", [b'{"staff":"v2"}', b'{"staff":{"session":{"status":["ENDED"]}}}']
)
async def test_a_malformed_message_on_a_session_channel_does_not_stop_the_bus(
    two_workers: tuple[RedisBus, RedisBus], redis_admin: aioredis.Redis, payload: bytes
) -> None:
    # Well-formed JSON of the wrong shape (say, from another version of the service during a
    # rolling deploy) must be skipped; it used to kill the reader task silently, while
    # `healthy` (and /readyz) went on saying "redis".
    receiving, publishing = two_workers
    session_id = random_session_id()
    listener = await receiving.listen(session_id, Audience.STAFF)
    await until_numsub(redis_admin, session_id, 1)

    odd = b'{"sessionId":%d,"seq":1,"type":"CART_UPDATED","payload":%s}' % (session_id, payload)
    await redis_admin.publish(UNSCOPED_CHANNELS.session(session_id), odd)
    await publishing.publish([appended(session_id, 2)])

    assert (await next_event(listener)).seq == 2
    await receiving.unlisten(listener)


async def drain(listener: Listener) -> None:
    while await listener.next(0.05) is not None:
        pass


@pytest.mark.redis
async def test_a_silently_dead_pubsub_connection_is_noticed_and_replaced(
    redis_url: str, redis_admin: aioredis.Redis
) -> None:
    # A NAT or load balancer that forgets an idle connection leaves it open at our end and
    # dead: no FIN, no RST. The bus must notice (it pings), reconnect and resync its streams.
    async with tcp_proxy(redis_url) as proxy:
        bus = RedisBus(proxy.url, liveness_s=0.2)
        publisher = RedisBus(redis_url)
        try:
            await started(bus)
            await started(publisher)
            session_id = random_session_id()
            listener = await bus.listen(session_id, Audience.STAFF)
            await until_numsub(redis_admin, session_id, 1)
            await drain(listener)

            proxy.blackhole_open_connections()

            assert await listener.next(WAIT_S) is Signal.RESYNC
            # And it subscribes again on a new connection: events flow once more.
            async with asyncio.timeout(WAIT_S):
                while not isinstance(item := await listener.next(0.2), LiveEvent):
                    await publisher.publish([appended(session_id, 7)])
            assert item.seq == 7
            await bus.unlisten(listener)
        finally:
            await bus.close()
            await publisher.close()


class TcpProxy:
    """Forwards TCP to Redis; can make the connections it holds go silent without closing."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self._silenced: set[asyncio.StreamWriter] = set()
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def blackhole_open_connections(self) -> None:
        self._silenced |= self._open

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._open:
            writer.close()
        await self.server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._open |= {writer, up_writer}
        pair = {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink, pair))
            self._tasks.add(task)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        pair: set[asyncio.StreamWriter],
    ) -> None:
        while data := await source.read(65536):
            if pair & self._silenced:
                continue  # swallowed: neither side hears anything, neither side is told
            sink.write(data)
            await sink.drain()
        sink.close()


class _ProxyContext:
    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("redis://").split("/")[0].partition(":")
        self.proxy = TcpProxy(host, int(port or 6379))

    async def __aenter__(self) -> TcpProxy:
        await self.proxy.start()
        return self.proxy

    async def __aexit__(self, *exc: object) -> None:
        await self.proxy.close()


def tcp_proxy(url: str) -> _ProxyContext:
    return _ProxyContext(url)


# --- the documented nginx front ------------------------------------------------------------------


def test_the_documented_nginx_config_forwards_the_public_host() -> None:
    # createStreamTicket's streamUrl and sales sheets' shareUrl are built from the Host header.
    # nginx sends `Host: $proxy_host` (here the upstream's name, "liveshop") unless told
    # otherwise, so without this line every such link would point at http://liveshop/...
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    config = readme.split("```nginx", 1)[1].split("```", 1)[0]
    root = config.split("location / {", 1)[1].split("}", 1)[0]
    assert re.search(r"proxy_set_header\s+Host\s+\$host;", root), root


# --- idle streams and the database ---------------------------------------------------------------


class Reader:
    """An ASGI client that reads every byte and hangs up when told."""

    def __init__(self) -> None:
        self.body = b""
        self.opened = asyncio.Event()
        self.hang_up = asyncio.Event()

    async def send(self, message: Any) -> None:
        self.body += message.get("body", b"")
        if b"event: SESSION_SNAPSHOT" in self.body:
            self.opened.set()

    async def receive(self) -> Any:
        await self.hang_up.wait()
        return {"type": "http.disconnect"}


async def test_idle_streams_of_one_session_share_their_outbox_polling(
    rpc: Rpc, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await rpc.staff("clients.create", {"name": "Popular show"})
    session_id = (await rpc.staff("liveShopping.createSession", {"clientId": client["id"]}))[
        "sessionId"
    ]
    heartbeat_s = 0.1
    services = Services.create(
        make_settings(settings.database_url, LIVE_SHOPPING_HEARTBEAT_MS="100")
    )
    polls = 0
    real_events_after = replay.events_after

    async def counted_events_after(db: Any, sid: int, after: int, **kwargs: Any) -> Any:
        nonlocal polls
        polls += 1
        return await real_events_after(db, sid, after, **kwargs)

    real_latest_seqs = outbox_watch.latest_seqs

    async def counted_latest_seqs(db: Any, sids: list[int]) -> dict[int, int]:
        nonlocal polls
        polls += 1
        return await real_latest_seqs(db, sids)

    monkeypatch.setattr(replay, "events_after", counted_events_after)
    monkeypatch.setattr(outbox_watch, "latest_seqs", counted_latest_seqs)
    watcher = asyncio.create_task(outbox_watch.watch_outbox(services))
    readers = [Reader() for _ in range(20)]
    try:
        tasks = [
            asyncio.create_task(
                streams.fn(staff_scope(services, rpc, session_id), r.receive, r.send)
            )
            for r in readers
        ]
        async with asyncio.timeout(WAIT_S):
            for reader in readers:
                await reader.opened.wait()
        polls = 0
        await asyncio.sleep(5 * heartbeat_s)
        for reader in readers:
            reader.hang_up.set()
        await asyncio.gather(*tasks)
    finally:
        # Awaited, so that a poll it was making has given its connection back before the
        # engine is disposed (else the driver's thread answers a closed event loop later).
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await services.close()

    assert polls >= 3  # the worker did keep checking the outbox
    # Five heartbeats of one session: a handful of polls, not one per stream per heartbeat.
    assert polls <= 10, polls
