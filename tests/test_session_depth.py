"""Session depth (issue 12, DESIGN.md 3-5): edits, hold extensions, the answer to a checkout
request, the hold deadline in every view and event, and who did what on every event.

Refusals of bad input for these procedures live in test_bad_input.py, who may call them in
test_roles.py, what a client may never see in test_client_leaks.py, the warning and the
timeout in test_idle_timeout.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.domain.outbox import EventType
from app.idle_sweeper import sweep_idle_sessions, warn_expiring_holds
from app.runtime import Services
from tests.conftest import RpcFailure, make_settings
from tests.factories import Customer, Event, Room, Shop, at, outbox_events, refusal, rpc_on

TIMEOUT_MINS = 30
SETTINGS = {"LIVE_SHOPPING_SESSION_TIMEOUT_MINS": str(TIMEOUT_MINS)}
HOST = {"userId": 2, "role": "STAFF"}
ADMIN = {"userId": 1, "role": "ADMIN"}


@pytest.fixture
async def shop(db_url: str) -> AsyncIterator[Shop]:
    async with rpc_on(db_url, **SETTINGS) as rpc:
        yield Shop(rpc)


def client_actor(customer: Customer) -> dict[str, Any]:
    return {"userId": 1000 + customer.id, "role": "CLIENT"}


async def last_event(database_url: str, room: Room) -> Event:
    return (await outbox_events(database_url, room.id))[-1]


async def event_types(database_url: str, room: Room) -> list[str]:
    return [e.type for e in await outbox_events(database_url, room.id)]


# --- updateSession --------------------------------------------------------------------------


async def test_the_host_retitles_a_session_and_both_sides_see_it_with_who_did_it(
    shop: Shop, db_url: str
) -> None:
    customer = await shop.customer()
    room = await shop.session(customer, title="Autumn preview")

    session = await shop.update(room, title="Winter preview")

    assert session["title"] == "Winter preview"
    assert (await shop.client_view(customer, room))["session"]["title"] == "Winter preview"
    event = await last_event(db_url, room)
    assert event.type == "SESSION_UPDATED"
    for side in ("staff", "client"):
        assert event.payload[side]["actor"] == HOST
        assert event.payload[side]["change"]["before"] == {"title": "Autumn preview"}
        assert event.payload[side]["change"]["after"] == {"title": "Winter preview"}
        assert event.payload[side]["session"]["title"] == "Winter preview"


async def test_omitted_fields_stay_as_they_are_and_null_clears_title_and_notes(
    shop: Shop,
) -> None:
    room = await shop.session(await shop.customer(), title="Preview", internal_notes="VIP")

    kept = await shop.update(room, internalNotes="VIP, pays on time")
    assert (kept["title"], kept["internalNotes"]) == ("Preview", "VIP, pays on time")

    cleared = await shop.update(room, title=None, internalNotes=None)
    assert (cleared["title"], cleared["internalNotes"]) == (None, None)
    assert (await shop.get(room))["session"] == cleared


async def test_a_scheduled_session_can_be_moved_to_another_time_in_the_future(
    shop: Shop, db_url: str
) -> None:
    room = await shop.session(await shop.customer(), starts_in=timedelta(days=1))
    was = (await shop.get(room))["session"]["scheduledAt"]
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)

    session = await shop.update(room, scheduledAt=later.isoformat())

    assert at(session["scheduledAt"]) == later
    assert session["status"] == "SCHEDULED"
    change = (await last_event(db_url, room)).payload["client"]["change"]
    assert change == {
        "subject": None,
        "before": {"scheduledAt": was},
        "after": {"scheduledAt": session["scheduledAt"]},  # times written as views write them
    }


async def test_a_change_of_internal_notes_alone_is_staff_only_on_the_clients_side(
    shop: Shop, db_url: str
) -> None:
    room = await shop.session(await shop.customer(), title="Preview", internal_notes="VIP")

    await shop.update(room, internalNotes="asks for discounts")

    event = await last_event(db_url, room)
    assert event.type == "SESSION_UPDATED"
    assert event.payload["staff"]["change"]["after"] == {"internalNotes": "asks for discounts"}
    assert event.payload["staff"].get("staffOnly") is None  # staff see everything
    assert event.payload["client"]["staffOnly"] is True
    assert event.payload["client"]["change"] is None


async def test_an_edit_with_notes_and_title_shows_the_client_only_the_title(
    shop: Shop, db_url: str
) -> None:
    room = await shop.session(await shop.customer(), title="Preview", internal_notes="VIP")

    await shop.update(room, title="Private preview", internalNotes="asks for discounts")

    client = (await last_event(db_url, room)).payload["client"]
    assert client["staffOnly"] is False
    assert client["change"]["before"] == {"title": "Preview"}
    assert client["change"]["after"] == {"title": "Private preview"}


async def test_an_edit_that_changes_nothing_sends_no_event(shop: Shop, db_url: str) -> None:
    room = await shop.session(await shop.customer(), title="Preview", internal_notes="VIP")
    before = await shop.get(room)
    events = await event_types(db_url, room)

    session = await shop.update(room, title="Preview", internalNotes="VIP")

    assert session == before["session"]
    assert await shop.get(room) == before
    assert await event_types(db_url, room) == events


async def test_an_admin_may_edit_a_session_someone_else_hosts(shop: Shop, db_url: str) -> None:
    room = await shop.session(await shop.customer(), title="Preview")

    result = await shop.rpc.admin(
        "liveShopping.updateSession", {"sessionId": room.id, "title": "Checked by admin"}
    )

    assert result["session"]["title"] == "Checked by admin"
    assert result["session"]["hostUserId"] == 2  # the host stays the host
    assert (await last_event(db_url, room)).payload["staff"]["actor"] == ADMIN


async def test_an_ended_session_may_still_be_retitled_but_a_converted_one_not(
    shop: Shop,
) -> None:
    stock = await shop.stock()
    customer = await shop.customer()
    ended = await shop.session_in("ENDED", customer, stock)
    converted = await shop.session_in("CONVERTED", customer, stock)

    assert (await shop.update(ended, title="Draft for Monday"))["title"] == "Draft for Monday"
    failure = await refusal(shop.update(converted, title="Too late"))
    assert failure.code == "PRECONDITION_FAILED"


# --- extendHolds ----------------------------------------------------------------------------


async def test_extending_the_holds_adds_the_minutes_to_the_deadline_both_sides_see(
    shop: Shop, db_url: str
) -> None:
    customer = await shop.customer()
    room = await shop.session(customer)
    first = (await shop.get(room))["session"]["holdsExpireAt"]
    asked_at = datetime.now(UTC)

    session = await shop.extend_holds(room, 15)

    extended = session["holdsExpireAt"]
    assert at(extended) == at(first) + timedelta(minutes=15)
    assert at(extended) >= asked_at + timedelta(minutes=15)  # max(deadline, now) + minutes
    assert (await shop.client_view(customer, room))["session"]["holdsExpireAt"] == extended
    event = await last_event(db_url, room)
    assert event.type == "HOLDS_EXTENDED"
    for side in ("staff", "client"):
        assert event.payload[side]["actor"] == HOST
        assert event.payload[side]["change"]["before"] == {"holdsExpireAt": first}
        assert event.payload[side]["change"]["after"] == {"holdsExpireAt": extended, "minutes": 15}
        assert event.payload[side]["session"]["holdsExpireAt"] == extended


async def test_extensions_add_up_and_activity_never_shortens_them(shop: Shop) -> None:
    stock = await shop.stock()
    room = await shop.session(await shop.customer())
    first = at((await shop.get(room))["session"]["holdsExpireAt"])

    await shop.extend_holds(room, TIMEOUT_MINS)
    extended = await shop.extend_holds(room, TIMEOUT_MINS)
    assert at(extended["holdsExpireAt"]) == first + timedelta(minutes=2 * TIMEOUT_MINS)

    await shop.add(room, stock, "1")  # a whole timeout after now is sooner than that

    assert (await shop.get(room))["session"]["holdsExpireAt"] == extended["holdsExpireAt"]


async def test_extensions_at_the_same_time_both_count(shop: Shop) -> None:
    room = await shop.session(await shop.customer())
    first = at((await shop.get(room))["session"]["holdsExpireAt"])

    await asyncio.gather(shop.extend_holds(room, 5), shop.extend_holds(room, 7))

    assert at((await shop.get(room))["session"]["holdsExpireAt"]) == first + timedelta(minutes=12)


async def test_holds_of_a_paused_session_can_be_extended(shop: Shop) -> None:
    stock = await shop.stock()
    room = await shop.session_in("PAUSED", stock=stock, customer=await shop.customer())
    first = at((await shop.get(room))["session"]["holdsExpireAt"])
    session = await shop.extend_holds(room, 1)
    assert at(session["holdsExpireAt"]) == first + timedelta(minutes=1)
    assert session["status"] == "PAUSED"


async def test_a_scheduled_session_shows_no_deadline_and_has_none_to_extend(shop: Shop) -> None:
    # It keeps its holds until it starts: the idle timeout only ends ACTIVE or PAUSED sessions.
    stock = await shop.stock()
    room = await shop.session_in("SCHEDULED", stock=stock, customer=await shop.customer())
    assert (await shop.get(room))["session"]["holdsExpireAt"] is None
    failure = await refusal(shop.extend_holds(room, 1))
    assert failure.code == "PRECONDITION_FAILED"
    started = await shop.set_status(room, "ACTIVE")
    assert started["session"]["holdsExpireAt"] is not None


async def test_a_session_keeps_the_timeout_it_was_made_with(shop: Shop, db_url: str) -> None:
    stock = await shop.stock()
    room = await shop.session(await shop.customer())  # made with a 30-minute timeout
    async with rpc_on(db_url, LIVE_SHOPPING_SESSION_TIMEOUT_MINS="60") as rpc:
        restarted = Shop(rpc)  # the service restarted with another setting
        newer = await restarted.session(await restarted.customer())
        for made_with, session in ((TIMEOUT_MINS, room), (60, newer)):
            await restarted.add(session, stock, "1")
            view = (await restarted.get(session))["session"]
            assert at(view["holdsExpireAt"]) == at(view["lastActivityAt"]) + timedelta(
                minutes=made_with
            )
        # One extension is bounded by the session's own timeout too.
        failure = await refusal(restarted.extend_holds(room, TIMEOUT_MINS + 1))
        assert failure.code == "BAD_REQUEST"
        await restarted.extend_holds(newer, TIMEOUT_MINS + 1)


# --- the checkout request and its answer ----------------------------------------------------


async def test_the_host_accepts_a_checkout_request_and_the_room_shows_the_answer(
    shop: Shop, db_url: str
) -> None:
    stock = await shop.stock()
    customer = await shop.customer()
    room = await shop.session(customer)
    await shop.client_add(customer, room, stock, "1")

    requested_at = await shop.request_checkout(customer, room)

    pending = (await shop.client_view(customer, room))["session"]["checkout"]
    assert pending == {
        "requestedAt": requested_at,
        "answeredAt": None,
        "accepted": None,
        "message": None,
    }
    assert (await shop.get(room))["session"]["checkout"] == pending
    requested = await last_event(db_url, room)
    assert requested.type == "CHECKOUT_REQUESTED"
    assert requested.payload["client"]["actor"] == client_actor(customer)
    assert requested.payload["staff"]["change"]["after"] == {"requestedAt": requested_at}

    session = await shop.respond_to_checkout(room, accept=True, message="Wrapping it now")

    answer = session["checkout"]
    assert answer["requestedAt"] == requested_at
    assert (answer["accepted"], answer["message"]) == (True, "Wrapping it now")
    assert at(answer["answeredAt"]) >= at(requested_at)
    assert (await shop.client_view(customer, room))["session"]["checkout"] == answer
    answered = await last_event(db_url, room)
    assert answered.type == "CHECKOUT_ANSWERED"
    for side in ("staff", "client"):
        assert answered.payload[side]["actor"] == HOST
        assert answered.payload[side]["change"]["after"] == {
            "accepted": True,
            "message": "Wrapping it now",
        }
        assert answered.payload[side]["session"]["checkout"] == answer


async def test_asking_again_while_pending_returns_the_first_request_and_sends_nothing(
    shop: Shop, db_url: str
) -> None:
    stock = await shop.stock()
    customer = await shop.customer()
    room = await shop.session(customer)
    await shop.client_add(customer, room, stock, "1")
    first = await shop.request_checkout(customer, room)
    before = await shop.get(room)
    events = await event_types(db_url, room)

    again = await shop.request_checkout(customer, room)

    assert again == first
    assert await shop.get(room) == before  # not even activity
    assert await event_types(db_url, room) == events


async def test_two_asks_at_once_are_one_request(shop: Shop, db_url: str) -> None:
    stock = await shop.stock()
    customer = await shop.customer()
    room = await shop.session(customer)
    await shop.client_add(customer, room, stock, "1")

    answers = await asyncio.gather(*(shop.request_checkout(customer, room) for _ in range(3)))

    assert len(set(answers)) == 1
    assert (await event_types(db_url, room)).count("CHECKOUT_REQUESTED") == 1


async def test_after_a_declined_request_the_client_may_ask_again_and_get_a_new_answer(
    shop: Shop, db_url: str
) -> None:
    stock = await shop.stock()
    customer = await shop.customer()
    room = await shop.session(customer)
    await shop.client_add(customer, room, stock, "1")
    first = await shop.request_checkout(customer, room)
    declined = await shop.respond_to_checkout(room, accept=False, message="Add the belt first")
    assert declined["checkout"]["accepted"] is False

    second = await shop.request_checkout(customer, room)

    assert at(second) > at(first)
    assert (await shop.client_view(customer, room))["session"]["checkout"] == {
        "requestedAt": second,
        "answeredAt": None,
        "accepted": None,
        "message": None,
    }
    accepted = await shop.respond_to_checkout(room, accept=True)
    assert accepted["checkout"]["requestedAt"] == second
    assert (accepted["checkout"]["accepted"], accepted["checkout"]["message"]) == (True, None)
    assert (await event_types(db_url, room))[-4:] == [
        "CHECKOUT_REQUESTED",
        "CHECKOUT_ANSWERED",
        "CHECKOUT_REQUESTED",
        "CHECKOUT_ANSWERED",
    ]


async def test_a_request_is_answered_once(shop: Shop) -> None:
    stock = await shop.stock()
    customer = await shop.customer()
    room = await shop.session(customer)
    await shop.client_add(customer, room, stock, "1")
    await shop.request_checkout(customer, room)
    answered = await shop.respond_to_checkout(room, accept=True)

    failure = await refusal(shop.respond_to_checkout(room, accept=False))

    assert failure.code == "PRECONDITION_FAILED"
    assert (await shop.get(room))["session"]["checkout"] == answered["checkout"]


async def test_of_two_answers_at_once_exactly_one_counts(shop: Shop, db_url: str) -> None:
    stock = await shop.stock()
    customer = await shop.customer()
    room = await shop.session(customer)
    await shop.client_add(customer, room, stock, "1")
    await shop.request_checkout(customer, room)

    outcomes = await asyncio.gather(
        shop.respond_to_checkout(room, accept=True, message="Yes"),
        shop.respond_to_checkout(room, accept=False, message="No"),
        return_exceptions=True,
    )

    answers = [o for o in outcomes if isinstance(o, dict)]
    refusals = [o.code for o in outcomes if isinstance(o, RpcFailure)]
    assert (len(answers), refusals) == (1, ["PRECONDITION_FAILED"])
    assert (await shop.get(room))["session"]["checkout"] == answers[0]["checkout"]
    assert (await event_types(db_url, room)).count("CHECKOUT_ANSWERED") == 1


async def test_a_request_left_pending_when_the_session_converts_can_no_longer_be_answered(
    shop: Shop, db_url: str
) -> None:
    stock = await shop.stock()
    customer = await shop.customer()
    room = await shop.session(customer)
    await shop.client_add(customer, room, stock, "1")
    await shop.request_checkout(customer, room)
    await shop.end(room, convert=True)
    events = await event_types(db_url, room)

    failure = await refusal(shop.respond_to_checkout(room, accept=True))

    # The session's story ended with its conversion (its streams have closed): nothing after.
    assert failure.code == "PRECONDITION_FAILED"
    assert await event_types(db_url, room) == events


# --- the deadline, presence and checkout in every view and event ----------------------------


def assert_has_depth(session: dict[str, Any]) -> None:
    assert at(session["holdsExpireAt"]) > datetime.now(UTC)
    assert session["presence"] == {"host": False, "client": False}
    assert "checkout" in session


async def test_every_view_carries_the_hold_deadline_presence_and_checkout(
    shop: Shop, db_url: str
) -> None:
    customer = await shop.customer()
    room = await shop.session(customer)
    deadline = (await shop.get(room))["session"]["holdsExpireAt"]

    paused = (await shop.set_status(room, "PAUSED"))["session"]
    resumed = (await shop.set_status(room, "ACTIVE"))["session"]
    listed = await shop.rpc.staff("liveShopping.listSessions", {"clientId": customer.id})
    active = await shop.rpc.call("vipPortalLiveShopping.getActiveSession", None, customer.token)
    views = [
        paused,
        resumed,
        (await shop.get(room))["session"],
        *listed,
        (await shop.client_view(customer, room))["session"],
        active["session"],
    ]

    for view in views:
        assert_has_depth(view)
        assert view["checkout"] is None
    assert at(views[-1]["holdsExpireAt"]) >= at(deadline)
    for event in await outbox_events(db_url, room.id):
        for side in ("staff", "client"):
            assert_has_depth(event.payload[side]["session"])


# --- actor and occurredAt on every event type -----------------------------------------------

SYSTEM_EVENTS = {"HOLDS_EXPIRING", "SESSION_TIMEOUT"}
NOT_COVERED_HERE = {
    "SESSION_SNAPSHOT",  # sent on connect, never stored
    "PRESENCE",  # needs open streams: tested with the presence wiring
}


async def sweep_at(database_url: str, now: datetime) -> None:
    services = Services.create(make_settings(database_url, **SETTINGS))
    try:
        await warn_expiring_holds(services, now=now - timedelta(minutes=5))
        await sweep_idle_sessions(services, now=now)
    finally:
        await services.close()


async def test_every_event_type_records_its_actor_and_when_it_occurred(
    shop: Shop, db_url: str
) -> None:
    started = datetime.now(UTC)
    stock = await shop.stock()
    customer = await shop.customer()
    room = await shop.session(customer, title="Preview")
    cart = await shop.add(room, stock, "2")
    line = cart["items"][0]["id"]
    await shop.client_add(customer, room, stock, "1")
    await shop.rpc.staff(
        "liveShopping.setOverridePrice",
        {"sessionId": room.id, "productId": stock.product_id, "overridePrice": "80.00"},
    )
    await shop.rpc.staff(
        "liveShopping.highlightProduct", {"sessionId": room.id, "batchId": stock.batch_id}
    )
    await shop.rpc.staff(
        "liveShopping.toggleCartItemSample",
        {"sessionId": room.id, "cartItemId": line, "isSample": True},
    )
    await shop.update(room, title="Private preview")
    await shop.extend_holds(room, 5)
    await shop.request_checkout(customer, room)
    await shop.respond_to_checkout(room, accept=True)
    await shop.rpc.admin("liveShopping.generateSalesSheet", {"sessionId": room.id})
    await shop.end(room, convert=True)
    idle = await shop.session(customer)  # a second session, left to time out
    await sweep_at(db_url, at((await shop.get(idle))["session"]["holdsExpireAt"]))
    finished = datetime.now(UTC)

    idle_events = await outbox_events(db_url, idle.id)
    events = await outbox_events(db_url, room.id) + idle_events

    covered = {e.type for e in events}
    assert covered == {t.value for t in EventType} - NOT_COVERED_HERE
    for event in events:
        for side in ("staff", "client"):
            payload = event.payload[side]
            when = at(payload["occurredAt"])
            assert started <= when <= finished, (event.type, side)
            assert when.utcoffset() == timedelta(0)
            if event.type in SYSTEM_EVENTS:
                assert payload["actor"] is None, event.type
            elif event.type == "CHECKOUT_REQUESTED" or (
                event.type == "CART_UPDATED"
                and payload["change"]["subject"]["addedByRole"] == "CLIENT"
            ):
                assert payload["actor"] == client_actor(customer), event.type
            elif event.type == "SALES_SHEET_READY":
                assert payload["actor"] == ADMIN
            else:
                assert payload["actor"] == HOST, event.type
    # In each session, later events occurred later.
    for session_events in (events[: -len(idle_events)], idle_events):
        times = [at(e.payload["staff"]["occurredAt"]) for e in session_events]
        assert times == sorted(times)
