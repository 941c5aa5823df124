"""Idle timeout: open sessions idle past LIVE_SHOPPING_SESSION_TIMEOUT_MINS are ended by the
sweeper in every worker, exactly once (a conditional UPDATE decides), releasing their holds and
appending a SESSION_TIMEOUT event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.domain.timeouts import SWEEP_BATCH
from app.idle_sweeper import sweep_idle_sessions
from app.runtime import Services
from tests.conftest import make_settings
from tests.factories import Room, Shop, outbox_events, rpc_on

TIMEOUT_MINS = 30


@pytest.fixture
async def shop(db_url: str) -> AsyncIterator[Shop]:
    async with rpc_on(db_url, LIVE_SHOPPING_SESSION_TIMEOUT_MINS=str(TIMEOUT_MINS)) as rpc:
        yield Shop(rpc)


async def sweep(
    database_url: str, *, after_minutes: float, batch_size: int = SWEEP_BATCH
) -> list[int]:
    """One worker's sweep, run as if `after_minutes` had passed since now."""
    services = Services.create(
        make_settings(database_url, LIVE_SHOPPING_SESSION_TIMEOUT_MINS=str(TIMEOUT_MINS))
    )
    try:
        now = datetime.now(UTC) + timedelta(minutes=after_minutes)
        return await sweep_idle_sessions(services, now=now, batch_size=batch_size)
    finally:
        await services.close()


async def _timeouts(database_url: str, room: Room) -> int:
    return sum(e.type == "SESSION_TIMEOUT" for e in await outbox_events(database_url, room.id))


@pytest.mark.parametrize("status", ["ACTIVE", "PAUSED"])
async def test_a_session_idle_past_the_timeout_is_ended_and_its_holds_released(
    shop: Shop, db_url: str, status: str
) -> None:
    stock = await shop.stock(on_hand="10")
    room = await shop.session_in(status, await shop.customer(), stock)
    await shop.add(room, stock, "3")  # 4 held in all

    ended = await sweep(db_url, after_minutes=TIMEOUT_MINS + 1)

    assert ended == [room.id]
    session = (await shop.get(room))["session"]
    assert session["status"] == "ENDED"
    assert session["endedAt"] is not None
    assert await shop.available(stock) == Decimal("10")
    last = (await outbox_events(db_url, room.id))[-1]
    assert last.type == "SESSION_TIMEOUT"
    assert last.payload["staff"]["session"]["status"] == "ENDED"
    assert last.payload["client"]["session"]["status"] == "ENDED"


async def test_a_session_active_within_the_timeout_is_left_open(shop: Shop, db_url: str) -> None:
    stock = await shop.stock(on_hand="10")
    room = await shop.session(await shop.customer())
    await shop.add(room, stock, "4")

    assert await sweep(db_url, after_minutes=TIMEOUT_MINS - 1) == []

    assert await shop.status(room) == "ACTIVE"
    assert await shop.available(stock) == Decimal("6")
    assert await _timeouts(db_url, room) == 0


async def test_closed_sessions_are_left_alone_by_the_sweep(shop: Shop, db_url: str) -> None:
    stock = await shop.stock(on_hand="10")
    customer = await shop.customer()
    rooms = {s: await shop.session_in(s, customer, stock) for s in ("ENDED", "CANCELLED")}
    rooms["CONVERTED"] = await shop.session_in("CONVERTED", customer, stock)

    assert await sweep(db_url, after_minutes=TIMEOUT_MINS + 1) == []

    for status, room in rooms.items():
        assert await shop.status(room) == status
        assert await _timeouts(db_url, room) == 0


async def test_a_session_scheduled_for_later_is_not_ended_before_it_starts(
    shop: Shop, db_url: str
) -> None:
    room = await shop.session(await shop.customer(), starts_in=timedelta(days=7))

    await sweep(db_url, after_minutes=TIMEOUT_MINS + 1)

    assert await shop.status(room) == "SCHEDULED"
    assert await _timeouts(db_url, room) == 0


async def test_one_sweep_ends_every_idle_session_not_just_its_first_batch(
    shop: Shop, db_url: str
) -> None:
    rooms = [await shop.session(await shop.customer()) for _ in range(5)]

    ended = await sweep(db_url, after_minutes=TIMEOUT_MINS + 1, batch_size=2)

    assert ended == sorted(room.id for room in rooms)
    for room in rooms:
        assert await shop.status(room) == "ENDED"


async def test_concurrent_sweeps_in_several_workers_end_each_session_exactly_once(
    shop: Shop, db_url: str
) -> None:
    stock = await shop.stock(on_hand="100")
    rooms = [await shop.session(await shop.customer()) for _ in range(6)]
    for room in rooms:
        await shop.add(room, stock, "2")

    results = await asyncio.gather(
        *(sweep(db_url, after_minutes=TIMEOUT_MINS + 1) for _ in range(3))
    )

    ended = [session_id for result in results for session_id in result]
    assert sorted(ended) == sorted(room.id for room in rooms)  # each by exactly one worker
    for room in rooms:
        assert await shop.status(room) == "ENDED"
        assert await _timeouts(db_url, room) == 1
    assert await shop.available(stock) == Decimal("100")
