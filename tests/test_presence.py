"""Presence (DESIGN 4 and 5): an open stream of the host's side or the client's is announced as
PRESENCE, counts as activity, and keeps the session from timing out; leaving is announced
after a grace period; a worker that dies stops counting once its rows go stale.

The streams run on a real server process over real HTTP (one SQLite file); the dead-worker
case writes a worker's rows as a crashed worker leaves them and reconciles in-process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.auth import TokenService
from app.config import load_settings
from app.db.engine import Database
from app.db.models import PresenceSide, SessionPresence
from app.domain.presence import reconcile, sessions_to_reconcile
from app.idle_sweeper import sweep_idle_sessions
from app.runtime import Services
from tests import live_server
from tests.conftest import Rpc, Tokens
from tests.factories import Shop, at, outbox_events, rpc_on
from tests.live_server import Server
from tests.sse_client import EventStream, open_stream

READ_S = 5.0
# A beat (1 s) to see a stream, a 5 s grace before a leave counts, and slack for a busy machine.
LEAVE_S = 12.0


@pytest.fixture(scope="module")
def env(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return live_server.sqlite_env(
        sqlite_template, tmp_path_factory.mktemp("presence"), LIVE_SHOPPING_HEARTBEAT_MS="500"
    )


@pytest.fixture(scope="module")
def server(env: dict[str, str]) -> Iterator[Server]:
    with live_server.running_servers(env, 1) as [running]:
        yield running


@pytest.fixture
async def shop(server: Server, env: dict[str, str]) -> AsyncIterator[Shop]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=READ_S) as http:
        yield Shop(Rpc(http, Tokens(TokenService(load_settings(env)))))


async def presence_event(stream: EventStream, within: float) -> dict[str, Any]:
    frame = await stream.frame_where(lambda f: f.event == "PRESENCE", within=within)
    data: dict[str, Any] = frame.json()
    return data


@pytest.mark.slow  # waits out real leave grace periods: about 20 s
async def test_watching_is_announced_kept_in_the_views_and_leaving_is_announced_once(
    shop: Shop, env: dict[str, str]
) -> None:
    customer = await shop.customer()
    room = await shop.session(customer)
    before = at((await shop.get(room))["session"]["holdsExpireAt"])
    http = shop.rpc.http
    async with open_stream(
        http, f"/api/sse/live-shopping/{room.id}", token=shop.rpc.tokens.staff
    ) as staff:
        joined = await presence_event(staff, within=READ_S)
        assert joined["change"]["after"] == {"host": True, "client": False}
        assert joined["actor"] is None
        async with open_stream(
            http, f"/api/sse/vip/live-shopping/{room.code}", token=customer.token
        ) as client:
            both = await presence_event(staff, within=READ_S)
            assert both["session"]["presence"] == {"host": True, "client": True}
            seen_by_client = await presence_event(client, within=READ_S)
            assert seen_by_client["session"]["presence"] == {"host": True, "client": True}
            view = (
                await shop.rpc.call(
                    "vipPortalLiveShopping.getSessionByRoomCode",
                    {"roomCode": room.code},
                    customer.token,
                )
            )["session"]
            assert view["presence"] == {"host": True, "client": True}
            # Arriving is activity: the deadline runs from then.
            assert at(view["holdsExpireAt"]) >= before
        left = await presence_event(staff, within=LEAVE_S)
        assert left["change"]["after"] == {"host": True, "client": False}

    await asyncio.sleep(LEAVE_S)
    assert (await shop.get(room))["session"]["presence"] == {"host": False, "client": False}
    database_url = env["DATABASE_URL"]
    presence = [e for e in await outbox_events(database_url, room.id) if e.type == "PRESENCE"]
    afters = [e.payload["staff"]["change"]["after"] for e in presence]
    assert afters == [
        {"host": True, "client": False},
        {"host": True, "client": True},
        {"host": True, "client": False},
        {"host": False, "client": False},
    ]


async def test_a_watched_session_is_never_ended_by_the_idle_sweep(
    shop: Shop, env: dict[str, str]
) -> None:
    room = await shop.session(await shop.customer())
    async with open_stream(
        shop.rpc.http, f"/api/sse/live-shopping/{room.id}", token=shop.rpc.tokens.staff
    ) as staff:
        await presence_event(staff, within=READ_S)
        services = Services.create(load_settings(env))
        try:
            # Far past any deadline: still watched, so still open.
            ended = await sweep_idle_sessions(services, now=datetime.now(UTC) + timedelta(days=2))
        finally:
            await services.close()
        assert room.id not in ended
        assert (await shop.get(room))["session"]["status"] == "ACTIVE"


async def test_the_rows_of_a_worker_that_died_stop_counting_once_stale(
    sqlite_url: str,
) -> None:
    async with rpc_on(sqlite_url) as rpc:
        shop = Shop(rpc)
        room = await shop.session(await shop.customer())
        db = Database(sqlite_url)
        now = datetime.now(UTC)
        try:
            async with db.write_sessions() as session:
                session.add(
                    SessionPresence(
                        session_id=room.id, side=PresenceSide.CLIENT, worker="dead", seen_at=now
                    )
                )
                await session.commit()
            async with db.write_sessions() as session:
                assert await reconcile(session, room.id, stale_before=now - timedelta(seconds=30))
                await session.commit()
            assert (await shop.get(room))["session"]["presence"] == {"host": False, "client": True}

            # The worker stops refreshing: 30 s later its row is stale, and the client is gone.
            later = now + timedelta(seconds=31)
            async with db.read_sessions() as session:
                assert await sessions_to_reconcile(
                    session, stale_before=later - timedelta(seconds=30)
                ) == [room.id]
            async with db.write_sessions() as session:
                assert await reconcile(session, room.id, stale_before=later - timedelta(seconds=30))
                await session.commit()
        finally:
            await db.dispose()
        view = (await shop.get(room))["session"]
        assert view["presence"] == {"host": False, "client": False}
        # Leaving is activity: the deadline runs a whole timeout from the leave.
        assert at(view["holdsExpireAt"]) >= at(view["lastActivityAt"]) + timedelta(minutes=120)
