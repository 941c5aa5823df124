"""Holds last while someone watches, and expire once nobody does (issue 12, DESIGN 4 and 5).

Real parts only: two worker processes on MariaDB, a Redis of the test's own, real HTTP
streams, and a one-minute timeout. The host and the client only watch (streams open, no
changes) for three minutes: the session stays ACTIVE. Once both streams close it times out
about a minute later, with exactly one SESSION_TIMEOUT and, before it, exactly one
HOLDS_EXPIRING.

It takes about five minutes of wall time (mostly waiting), so it is marked `slow`: `make test`
leaves it out and `.ci/run` runs it beside the suite (`make test-slow`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from app.auth import TokenService
from app.config import load_settings
from tests import live_server, services
from tests.conftest import Rpc, Tokens
from tests.factories import Shop
from tests.live_server import Server
from tests.private_redis import PrivateRedis, private_redis
from tests.sse_client import EventStream, open_stream

pytestmark = [pytest.mark.mariadb, pytest.mark.redis, pytest.mark.slow]

WATCH_S = 180
TIMEOUT_MINS = 1


@pytest.fixture(scope="module")
def redis_server() -> Iterator[PrivateRedis]:
    with private_redis() as running:
        yield running


@pytest.fixture(scope="module")
def servers(redis_server: PrivateRedis) -> Iterator[list[Server]]:
    services.require("mariadb")
    with live_server.fresh_database("ls_presence") as url:
        env = live_server.server_env(
            url,
            REDIS_URL=redis_server.url,
            LIVE_SHOPPING_SESSION_TIMEOUT_MINS=str(TIMEOUT_MINS),
            LIVE_SHOPPING_HEARTBEAT_MS="5000",
        )
        with live_server.running_servers(env, 2) as running:
            yield running


def rpc_for(server: Server) -> Rpc:
    settings = load_settings(live_server.server_env("sqlite+aiosqlite:///unused.db"))
    http = httpx.AsyncClient(base_url=server.base_url, timeout=10)
    return Rpc(http, Tokens(TokenService(settings)))


async def watch(stream: EventStream, seen: list[dict[str, Any]]) -> None:
    """Read a stream until it is closed, keeping every event (type, seq, data)."""
    while True:
        frame = await stream.next_frame()
        if frame.is_event:
            seen.append({"type": frame.event, "seq": frame.seq, "data": frame.json()})


async def timeline(rpc: Rpc, session_id: int) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor = 0
    while True:
        page = await rpc.staff(
            "liveShopping.getTimeline", {"sessionId": session_id, "cursor": cursor, "limit": 100}
        )
        entries += page["entries"]
        if page["nextCursor"] is None:
            return entries
        cursor = page["nextCursor"]


async def test_watched_holds_last_and_unwatched_ones_time_out_once_with_one_warning(
    servers: list[Server],
) -> None:
    a, b = rpc_for(servers[0]), rpc_for(servers[1])
    shop = Shop(a)
    customer = await shop.customer()
    stock = await shop.stock(on_hand="5")
    room = await shop.session(customer)
    await shop.add(room, stock, "2")

    staff_seen: list[dict[str, Any]] = []
    client_seen: list[dict[str, Any]] = []
    staff_url = f"/api/sse/live-shopping/{room.id}"
    client_url = f"/api/sse/vip/live-shopping/{room.code}"
    async with (
        open_stream(a.http, staff_url, token=a.tokens.staff) as staff,
        open_stream(b.http, client_url, token=customer.token) as client,
    ):
        readers = [
            asyncio.create_task(watch(staff, staff_seen)),
            asyncio.create_task(watch(client, client_seen)),
        ]
        await asyncio.sleep(WATCH_S)
        watched = await shop.get(room)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    closed_at = time.monotonic()

    assert watched["session"]["status"] == "ACTIVE", watched["session"]
    assert watched["session"]["presence"] == {"host": True, "client": True}
    types = [e["type"] for e in staff_seen]
    assert "PRESENCE" in types, types
    assert "SESSION_TIMEOUT" not in types and "HOLDS_EXPIRING" not in types, types
    assert [e["type"] for e in client_seen if e["type"] == "PRESENCE"], client_seen

    # Nobody watches now: about a minute later the session times out, on its own.
    deadline = closed_at + TIMEOUT_MINS * 60 + 90
    for _ in range(100):  # polled every 2 s, until the deadline at the latest
        if await shop.status(room) != "ACTIVE" or time.monotonic() > deadline:
            break
        await asyncio.sleep(2)
    ended_after = time.monotonic() - closed_at
    assert await shop.status(room) == "ENDED"
    assert TIMEOUT_MINS * 60 - 5 <= ended_after <= TIMEOUT_MINS * 60 + 60, ended_after

    story = await timeline(b, room.id)
    kinds = [entry["type"] for entry in story]
    assert kinds.count("SESSION_TIMEOUT") == 1, kinds
    assert kinds.count("HOLDS_EXPIRING") == 1, kinds
    assert kinds.index("HOLDS_EXPIRING") < kinds.index("SESSION_TIMEOUT"), kinds
    timeout = story[kinds.index("SESSION_TIMEOUT")]
    assert timeout["actor"] is None
    # The warning came after both had left, for the deadline that then expired.
    left = [
        e
        for e in story
        if e["type"] == "PRESENCE" and e["after"] == {"host": False, "client": False}
    ]
    assert left, kinds
    warning = story[kinds.index("HOLDS_EXPIRING")]
    assert left[-1]["seq"] < warning["seq"]
    warned_deadline = datetime.fromisoformat(warning["after"]["holdsExpireAt"])
    assert warned_deadline <= datetime.fromisoformat(timeout["occurredAt"])

    for rpc in (a, b):
        await rpc.http.aclose()
