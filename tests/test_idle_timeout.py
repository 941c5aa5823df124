"""Hold deadlines and the idle timeout (DESIGN.md 4).

Every open session shows `holdsExpireAt`: its last activity plus the timeout it was made with
(LIVE_SHOPPING_SESSION_TIMEOUT_MINS), or later when the host extended the holds. The sweeper
in every worker sends HOLDS_EXPIRING once per deadline when it comes within the warning window,
and ends a session whose deadline has passed with a SESSION_TIMEOUT by no one (actor null),
releasing its holds. Exactly once across workers: a conditional UPDATE decides.

Time is not waited for: each sweep runs as if at a given moment (`now=`), chosen relative to
the deadline the session itself shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.domain.timeouts import SWEEP_BATCH
from app.idle_sweeper import sweep_idle_sessions, warn_expiring_holds
from app.runtime import Services
from tests.conftest import make_settings
from tests.factories import Event, Room, Shop, at, outbox_events, rpc_on

TIMEOUT_MINS = 30
WARNING = timedelta(minutes=10)  # LIVE_SHOPPING_HOLD_WARNING_MINS, below half the timeout
SETTINGS = {"LIVE_SHOPPING_SESSION_TIMEOUT_MINS": str(TIMEOUT_MINS)}
EPSILON = timedelta(microseconds=1)


@pytest.fixture
async def shop(db_url: str) -> AsyncIterator[Shop]:
    async with rpc_on(db_url, **SETTINGS) as rpc:
        yield Shop(rpc)


async def sweep(
    database_url: str, *, now: datetime, batch_size: int = SWEEP_BATCH, **env: str
) -> list[int]:
    """One worker's sweep of idle sessions, run as if it were `now`; the ids it ended."""
    services = Services.create(make_settings(database_url, **{**SETTINGS, **env}))
    try:
        return await sweep_idle_sessions(services, now=now, batch_size=batch_size)
    finally:
        await services.close()


async def warn(database_url: str, *, now: datetime, **env: str) -> list[int]:
    """One worker's round of hold warnings, run as if it were `now`; the ids it warned."""
    services = Services.create(make_settings(database_url, **{**SETTINGS, **env}))
    try:
        return await warn_expiring_holds(services, now=now)
    finally:
        await services.close()


async def deadline(shop: Shop, room: Room) -> datetime:
    return at((await shop.get(room))["session"]["holdsExpireAt"])


async def events_of(database_url: str, room: Room, event_type: str) -> list[Event]:
    return [e for e in await outbox_events(database_url, room.id) if e.type == event_type]


# --- ending idle sessions -------------------------------------------------------------------


@pytest.mark.parametrize("status", ["ACTIVE", "PAUSED"])
async def test_a_session_whose_hold_deadline_passes_is_ended_and_its_holds_released(
    shop: Shop, db_url: str, status: str
) -> None:
    stock = await shop.stock(on_hand="10")
    room = await shop.session_in(status, await shop.customer(), stock)
    await shop.add(room, stock, "3")  # 4 held in all
    expires = await deadline(shop, room)

    ended = await sweep(db_url, now=expires)

    assert ended == [room.id]
    session = (await shop.get(room))["session"]
    assert session["status"] == "ENDED"
    assert session["endedAt"] is not None
    assert await shop.available(stock) == Decimal("10")
    last = (await outbox_events(db_url, room.id))[-1]
    assert last.type == "SESSION_TIMEOUT"
    for side in ("staff", "client"):
        event = last.payload[side]
        assert event["session"]["status"] == "ENDED"
        assert event["actor"] is None  # nobody ended it: the system did
        assert event["change"]["before"] == {"status": status}
        assert event["change"]["after"]["status"] == "ENDED"
        # The deadline that passed is in the change; an ended session shows none.
        assert at(event["change"]["after"]["holdsExpireAt"]) == expires
        assert event["session"]["holdsExpireAt"] is None


async def test_a_session_is_left_open_until_its_hold_deadline(shop: Shop, db_url: str) -> None:
    stock = await shop.stock(on_hand="10")
    room = await shop.session(await shop.customer())
    await shop.add(room, stock, "4")

    assert await sweep(db_url, now=await deadline(shop, room) - EPSILON) == []

    assert await shop.status(room) == "ACTIVE"
    assert await shop.available(stock) == Decimal("6")
    assert await events_of(db_url, room, "SESSION_TIMEOUT") == []


async def test_the_deadline_is_the_last_activity_plus_the_timeout(shop: Shop) -> None:
    stock = await shop.stock()
    room = await shop.session(await shop.customer())
    created = (await shop.get(room))["session"]

    await shop.add(room, stock, "1")

    session = (await shop.get(room))["session"]
    for view in (created, session):
        assert at(view["holdsExpireAt"]) == at(view["lastActivityAt"]) + timedelta(
            minutes=TIMEOUT_MINS
        )
    assert at(session["holdsExpireAt"]) > at(created["holdsExpireAt"])


async def test_activity_moves_the_timeout_to_a_whole_timeout_after_it(
    shop: Shop, db_url: str
) -> None:
    stock = await shop.stock()
    room = await shop.session(await shop.customer())
    first = await deadline(shop, room)

    await shop.add(room, stock, "1")
    moved = await deadline(shop, room)

    assert await sweep(db_url, now=first) == []  # the old deadline no longer counts
    assert await shop.status(room) == "ACTIVE"
    assert await sweep(db_url, now=moved) == [room.id]
    assert await shop.status(room) == "ENDED"


async def test_extending_the_holds_postpones_the_timeout_by_those_minutes(
    shop: Shop, db_url: str
) -> None:
    room = await shop.session(await shop.customer())
    first = await deadline(shop, room)

    session = await shop.extend_holds(room, 10)

    extended = at(session["holdsExpireAt"])
    assert extended == first + timedelta(minutes=10)
    assert await sweep(db_url, now=first + timedelta(minutes=5)) == []
    assert await sweep(db_url, now=extended - EPSILON) == []
    assert await shop.status(room) == "ACTIVE"
    assert await sweep(db_url, now=extended) == [room.id]


async def test_closed_sessions_are_left_alone_by_the_sweep(shop: Shop, db_url: str) -> None:
    stock = await shop.stock(on_hand="10")
    customer = await shop.customer()
    rooms = {s: await shop.session_in(s, customer, stock) for s in ("ENDED", "CANCELLED")}
    rooms["CONVERTED"] = await shop.session_in("CONVERTED", customer, stock)
    # A closed session shows no deadline; this is when an open one made now would expire.
    assert {(await shop.get(room))["session"]["holdsExpireAt"] for room in rooms.values()} == {None}
    latest = datetime.now(UTC) + timedelta(minutes=TIMEOUT_MINS)

    assert await warn(db_url, now=latest - WARNING / 2) == []
    assert await sweep(db_url, now=latest + timedelta(days=1)) == []

    for status, room in rooms.items():
        assert await shop.status(room) == status
        assert await events_of(db_url, room, "SESSION_TIMEOUT") == []
        assert await events_of(db_url, room, "HOLDS_EXPIRING") == []


async def test_a_session_scheduled_for_later_is_neither_warned_nor_ended_before_it_starts(
    shop: Shop, db_url: str
) -> None:
    room = await shop.session(await shop.customer(), starts_in=timedelta(days=7))
    assert (await shop.get(room))["session"]["holdsExpireAt"] is None  # it has not started
    expires = datetime.now(UTC) + timedelta(minutes=TIMEOUT_MINS)

    assert await warn(db_url, now=expires - WARNING / 2) == []
    assert await sweep(db_url, now=expires + timedelta(days=1)) == []

    assert await shop.status(room) == "SCHEDULED"
    assert [e.type for e in await outbox_events(db_url, room.id)] == ["SESSION_STATUS"]


async def test_one_sweep_ends_every_idle_session_not_just_its_first_batch(
    shop: Shop, db_url: str
) -> None:
    rooms = [await shop.session(await shop.customer()) for _ in range(5)]
    latest = max([await deadline(shop, room) for room in rooms])

    ended = await sweep(db_url, now=latest, batch_size=2)

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
    latest = max([await deadline(shop, room) for room in rooms])

    results = await asyncio.gather(*(sweep(db_url, now=latest) for _ in range(3)))

    ended = [session_id for result in results for session_id in result]
    assert sorted(ended) == sorted(room.id for room in rooms)  # each by exactly one worker
    for room in rooms:
        assert await shop.status(room) == "ENDED"
        assert len(await events_of(db_url, room, "SESSION_TIMEOUT")) == 1
    assert await shop.available(stock) == Decimal("100")


# --- the warning before a deadline ----------------------------------------------------------


async def test_holds_expiring_is_sent_once_when_the_deadline_comes_within_the_warning(
    shop: Shop, db_url: str
) -> None:
    customer = await shop.customer()
    room = await shop.session(customer)
    expires = await deadline(shop, room)

    assert await warn(db_url, now=expires - WARNING - EPSILON) == []  # not yet
    assert await warn(db_url, now=expires - WARNING) == [room.id]
    assert await warn(db_url, now=expires - WARNING / 2) == []  # this deadline: warned
    assert await warn(db_url, now=expires - EPSILON) == []

    (warning,) = await events_of(db_url, room, "HOLDS_EXPIRING")
    for side in ("staff", "client"):
        event = warning.payload[side]
        assert event["actor"] is None
        assert event["occurredAt"] is not None
        # The deadline warned about, written as the views write times.
        assert event["change"]["after"] == {"holdsExpireAt": event["session"]["holdsExpireAt"]}
        assert at(event["session"]["holdsExpireAt"]) == expires
    assert await shop.status(room) == "ACTIVE"  # a warning is not activity
    assert await deadline(shop, room) == expires
    assert (await shop.client_view(customer, room))["session"]["holdsExpireAt"] == (
        warning.payload["client"]["session"]["holdsExpireAt"]
    )


async def test_no_warning_for_a_deadline_already_past_the_sweep_ends_it_instead(
    shop: Shop, db_url: str
) -> None:
    room = await shop.session(await shop.customer())
    expires = await deadline(shop, room)

    assert await warn(db_url, now=expires) == []
    assert await sweep(db_url, now=expires) == [room.id]

    assert await events_of(db_url, room, "HOLDS_EXPIRING") == []


async def test_concurrent_sweepers_send_each_warning_exactly_once(shop: Shop, db_url: str) -> None:
    rooms = [await shop.session(await shop.customer()) for _ in range(4)]
    latest = max([await deadline(shop, room) for room in rooms])
    now = latest - WARNING / 2  # every deadline is within the window

    results = await asyncio.gather(*(warn(db_url, now=now) for _ in range(3)))

    warned = [session_id for result in results for session_id in result]
    assert sorted(warned) == sorted(room.id for room in rooms)  # each by exactly one worker
    for room in rooms:
        assert len(await events_of(db_url, room, "HOLDS_EXPIRING")) == 1


async def test_an_extension_makes_a_new_deadline_that_gets_its_own_warning(
    shop: Shop, db_url: str
) -> None:
    room = await shop.session(await shop.customer())
    first = await deadline(shop, room)
    assert await warn(db_url, now=first - WARNING / 2) == [room.id]

    second = at((await shop.extend_holds(room, 20))["holdsExpireAt"])

    assert second == first + timedelta(minutes=20)
    assert await warn(db_url, now=first - WARNING / 4) == []  # the new one is not near yet
    assert await warn(db_url, now=second - WARNING / 2) == [room.id]
    assert await warn(db_url, now=second - WARNING / 4) == []
    warnings = await events_of(db_url, room, "HOLDS_EXPIRING")
    assert [at(e.payload["staff"]["change"]["after"]["holdsExpireAt"]) for e in warnings] == [
        first,
        second,
    ]


async def test_activity_after_a_warning_makes_a_new_deadline_that_is_warned_again(
    shop: Shop, db_url: str
) -> None:
    stock = await shop.stock()
    room = await shop.session(await shop.customer())
    first = await deadline(shop, room)
    assert await warn(db_url, now=first - WARNING / 2) == [room.id]

    await shop.add(room, stock, "1")
    second = await deadline(shop, room)

    assert second > first
    assert await warn(db_url, now=second - WARNING / 2) == [room.id]
    assert len(await events_of(db_url, room, "HOLDS_EXPIRING")) == 2


async def test_with_a_short_timeout_the_warning_comes_at_half_of_it(db_url: str) -> None:
    short = {"LIVE_SHOPPING_SESSION_TIMEOUT_MINS": "4"}  # the 10-minute warning would precede
    async with rpc_on(db_url, **short) as rpc:  # the last change; it comes 2 minutes before
        shop = Shop(rpc)
        room = await shop.session(await shop.customer())
        expires = await deadline(shop, room)

        assert await warn(db_url, now=expires - timedelta(minutes=2) - EPSILON, **short) == []
        assert await warn(db_url, now=expires - timedelta(minutes=2), **short) == [room.id]


async def test_the_warning_and_the_timeout_tell_their_story_in_the_timeline(
    shop: Shop, db_url: str
) -> None:
    customer = await shop.customer()
    room = await shop.session(customer)
    expires = await deadline(shop, room)
    await warn(db_url, now=expires - WARNING / 2)
    await sweep(db_url, now=expires)

    for timeline in (await shop.timeline(room), await shop.client_timeline(customer, room)):
        *_, warned, ended = timeline["entries"]
        assert (warned["type"], warned["actor"]) == ("HOLDS_EXPIRING", None)
        assert at(warned["after"]["holdsExpireAt"]) == expires
        assert (ended["type"], ended["actor"]) == ("SESSION_TIMEOUT", None)
        assert (ended["before"]["status"], ended["after"]["status"]) == ("ACTIVE", "ENDED")
