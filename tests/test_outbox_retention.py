"""Outbox retention (DESIGN.md 5): what the outbox keeps, how it is pruned, and what a resume gets.

Every event of an open session is kept, and those of a session final (converted or cancelled)
for less than LIVE_SHOPPING_EVENT_RETENTION_DAYS; a session final for longer loses its events,
oldest first, in batches of short transactions, pruned by one worker at a time. A resume from
before what is kept cannot be replayed: the stream answers with a reset snapshot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from app.auth import TokenService
from app.config import load_settings
from app.db.models import LiveSession
from app.domain.retention import oldest_kept_seq, prune_session_events, retention_cutoff
from app.domain.sessions import utcnow
from app.events.outbox_pruning import prune_outbox, pruning_turn
from app.runtime import Services
from tests import live_server
from tests.conftest import Rpc, Tokens, make_settings
from tests.factories import Customer, Room, Shop, Stock, outbox_events, rpc_on

RETENTION_DAYS = 30


# A worker's resources on the test's own event loop (the app under test runs on another).
_WORKERS: dict[int, Services] = {}


@pytest.fixture
async def shop(db_url: str) -> AsyncIterator[Shop]:
    env = {"LIVE_SHOPPING_EVENT_RETENTION_DAYS": str(RETENTION_DAYS)}
    async with rpc_on(db_url, **env) as rpc, worker(db_url, **env) as services:
        shop = Shop(rpc)
        _WORKERS[id(shop)] = services
        try:
            yield shop
        finally:
            del _WORKERS[id(shop)]


@asynccontextmanager
async def worker(db_url: str, **env: str) -> AsyncIterator[Services]:
    services = Services.create(make_settings(db_url, **env))
    try:
        yield services
    finally:
        await services.db.dispose()


def services_of(shop: Shop) -> Services:
    return _WORKERS[id(shop)]


async def age(shop: Shop, room: Room, days: int) -> None:
    """Make the session's last activity `days` old, as if time had passed since."""
    async with services_of(shop).db.write_sessions() as db:
        await db.execute(
            update(LiveSession)
            .where(LiveSession.id == room.id)
            .values(last_activity_at=utcnow() - timedelta(days=days))
        )
        await db.commit()


async def kept(db_url: str, room: Room) -> list[int]:
    return [event.seq for event in await outbox_events(db_url, room.id)]


async def first_kept(shop: Shop, room: Room) -> int:
    async with services_of(shop).db.read_sessions() as db:
        live = await db.get(LiveSession, room.id)
        assert live is not None
        return await oldest_kept_seq(db, live)


async def session_with_history(shop: Shop, customer: Customer, stock: Stock, status: str) -> Room:
    room = await shop.session_in(status, customer, stock)
    await shop.update(room, title="A few more events") if status in ("ACTIVE", "PAUSED") else None
    return room


async def test_pruning_keeps_open_and_recently_final_sessions_whole_and_empties_old_final_ones(
    shop: Shop, db_url: str
) -> None:
    stock = await shop.stock(on_hand="100")
    customer = await shop.customer()
    rooms = {
        status: await session_with_history(shop, customer, stock, status)
        for status in ("ACTIVE", "PAUSED", "ENDED", "CANCELLED", "CONVERTED")
    }
    young_final = await shop.session_in("CANCELLED", customer, stock)
    # Everything but young_final has been quiet for longer than the retention period: an open
    # or ended (not final) session keeps its events however old.
    for room in rooms.values():
        await age(shop, room, RETENTION_DAYS + 1)
    await age(shop, young_final, RETENTION_DAYS - 1)
    before = {status: await kept(db_url, room) for status, room in rooms.items()}
    young_before = await kept(db_url, young_final)

    deleted = await prune_outbox(services_of(shop), batch=2)

    for status in ("ACTIVE", "PAUSED", "ENDED"):
        assert await kept(db_url, rooms[status]) == before[status], status
        assert await first_kept(shop, rooms[status]) == 1
    assert await kept(db_url, young_final) == young_before
    assert await first_kept(shop, young_final) == 1
    for status in ("CANCELLED", "CONVERTED"):
        assert await kept(db_url, rooms[status]) == [], status
        # Nothing left: only the newest id resumes (to "nothing more"), anything older resets.
        assert await first_kept(shop, rooms[status]) == before[status][-1] + 1
    assert deleted == len(before["CANCELLED"]) + len(before["CONVERTED"])


async def test_a_session_loses_its_events_oldest_first_one_batch_per_transaction(
    shop: Shop, db_url: str
) -> None:
    stock = await shop.stock(on_hand="100")
    room = await shop.session_in("CANCELLED", await shop.customer(), stock)
    await age(shop, room, RETENTION_DAYS + 1)
    history = await kept(db_url, room)
    assert len(history) >= 3
    cutoff = retention_cutoff(utcnow(), RETENTION_DAYS)

    async with services_of(shop).db.write_sessions() as db:
        assert await prune_session_events(db, room.id, cutoff=cutoff, batch=2) == 2
        await db.commit()

    assert await kept(db_url, room) == history[2:]
    assert await first_kept(shop, room) == history[2]


async def test_a_session_active_again_since_it_was_listed_is_not_pruned(
    shop: Shop, db_url: str
) -> None:
    stock = await shop.stock(on_hand="100")
    room = await shop.session_in("CANCELLED", await shop.customer(), stock)
    cutoff = retention_cutoff(utcnow(), RETENTION_DAYS)  # listed long ago...
    history = await kept(db_url, room)  # ...but its last activity is now

    async with services_of(shop).db.write_sessions() as db:
        assert await prune_session_events(db, room.id, cutoff=cutoff) == 0
        await db.commit()
    assert await kept(db_url, room) == history


@pytest.mark.mariadb
async def test_only_one_worker_at_a_time_prunes(mariadb_url: str) -> None:
    async with (
        rpc_on(mariadb_url) as rpc,
        worker(mariadb_url) as first,
        worker(mariadb_url) as second,
    ):
        shop = Shop(rpc)
        _WORKERS[id(shop)] = first
        stock = await shop.stock(on_hand="100")
        room = await shop.session_in("CONVERTED", await shop.customer(), stock)
        await age(shop, room, RETENTION_DAYS + 1)
        history = await kept(mariadb_url, room)
        del _WORKERS[id(shop)]

        async with pruning_turn(first) as ours:
            assert ours
            # The other worker skips its round while this one holds the turn.
            assert await prune_outbox(second) == 0
            assert await kept(mariadb_url, room) == history
        assert await prune_outbox(second) == len(history)
        assert await kept(mariadb_url, room) == []


async def test_a_resume_from_before_what_is_kept_gets_a_reset_snapshot(
    sqlite_template: Path, tmp_path: Path
) -> None:
    env = live_server.sqlite_env(sqlite_template, tmp_path)
    env["LIVE_SHOPPING_EVENT_RETENTION_DAYS"] = str(RETENTION_DAYS)
    with live_server.running_servers(env, 1) as [server]:
        async with (
            httpx.AsyncClient(base_url=server.base_url, timeout=5.0) as http,
            worker(env["DATABASE_URL"]) as services,
        ):
            shop = Shop(Rpc(http, Tokens(TokenService(load_settings(env)))))
            _WORKERS[id(shop)] = services
            stock = await shop.stock(on_hand="100")
            customer = await shop.customer()
            room = await shop.session_in("CANCELLED", customer, stock)
            history = await kept(env["DATABASE_URL"], room)
            await age(shop, room, RETENTION_DAYS + 1)
            await prune_outbox(services)
            del _WORKERS[id(shop)]

            headers = {
                "authorization": f"Bearer {customer.token}",
                "last-event-id": str(history[0]),
            }
            # A final session's stream ends after its opening: the whole response can be read.
            response = await http.get(f"/api/sse/vip/live-shopping/{room.code}", headers=headers)
    assert response.status_code == 200
    body = response.text
    assert "event: SESSION_SNAPSHOT" in body
    assert f"id: {history[-1]}\n" in body
    assert '"reset":true' in body
