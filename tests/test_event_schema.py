"""The typed event schema (app/events/schema.py) says exactly what the streams send.

A session is played through the public procedures until it has produced every event type, and
a second one is left to the system (presence, the deadline kept, the warning, the timeout).
Each outbox event is then framed as the SSE streams frame it, for staff and for the client, and
its data must decode into the Struct of its type with nothing unknown (the Structs forbid
unknown fields) and nothing left behind: encoded again, it gives back the data that was sent.
So a field added, renamed or retyped on one side only fails here. On SQLite and on MariaDB,
whose times and JSON columns read back differently.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import msgspec
import pytest
from sqlalchemy import delete, select

from app.db.engine import Database
from app.db.models import LiveSession, PresenceSide, SessionPresence
from app.domain.announce import client_snapshot, staff_snapshot
from app.domain.outbox import AppendedEvent, EventType
from app.domain.presence import keep_watched_alive, reconcile
from app.domain.timeouts import end_if_idle, warn_if_expiring
from app.events.frames import Audience, LiveEvent, snapshot_frame
from app.events.schema import RoomEvent, SessionEvent
from tests.factories import Customer, Room, Shop, line_of, outbox_events, rpc_on

STAFF = msgspec.json.Decoder(SessionEvent)
CLIENT = msgspec.json.Decoder(RoomEvent)
DECODERS: dict[Audience, msgspec.json.Decoder[Any]] = {
    Audience.STAFF: STAFF,
    Audience.CLIENT: CLIENT,
}
EVERY_TYPE = {t.value for t in EventType}


@pytest.fixture
async def shop(db_url: str) -> AsyncIterator[Shop]:
    async with rpc_on(db_url) as rpc:
        yield Shop(rpc)


async def play_every_change(shop: Shop) -> tuple[Room, Customer]:
    """A session taken through every change a person can make (DESIGN 3), ending converted."""
    coat = await shop.stock(name="Coat", list_price="400.00")
    scarf = await shop.stock(name="Scarf", list_price="90.00")
    customer = await shop.customer(price_adjustment="-10")
    room = await shop.session(customer, title="Autumn", internal_notes="Pays late")
    await shop.set_status(room, "PAUSED")
    await shop.set_status(room, "ACTIVE")
    await shop.add(room, coat, "2")
    cart = await shop.add(room, coat, "1", sample=True)
    sample = next(x for x in cart["items"] if x["isSample"])
    # Marked paid, the sample line merges into the paid one: `mergedInto` in the change.
    await shop.rpc.staff(
        "liveShopping.toggleCartItemSample",
        {"sessionId": room.id, "cartItemId": sample["id"], "isSample": False},
    )
    cart = await shop.client_add(customer, room, scarf, "1")
    scarf_line = line_of(cart, scarf)["id"]
    await shop.rpc.call(
        "vipPortalLiveShopping.updateCartQuantity",
        {"roomCode": room.code, "cartItemId": scarf_line, "quantity": "1.5"},
        customer.token,
    )
    await shop.rpc.call(
        "vipPortalLiveShopping.removeFromCart",
        {"roomCode": room.code, "cartItemId": scarf_line},
        customer.token,
    )
    for price in ("350.00", None):
        await shop.rpc.staff(
            "liveShopping.setOverridePrice",
            {"sessionId": room.id, "productId": coat.product_id, "overridePrice": price},
        )
    for batch in (scarf.batch_id, None):
        await shop.rpc.staff(
            "liveShopping.highlightProduct", {"sessionId": room.id, "batchId": batch}
        )
    await shop.update(room, title="Winter", internalNotes="Pays on time now")
    await shop.update(room, internalNotes="Staff only")  # the client sees no change
    await shop.extend_holds(room, 15)
    await shop.request_checkout(customer, room)
    await shop.respond_to_checkout(room, accept=False, message="Not yet")
    await shop.request_checkout(customer, room)
    await shop.respond_to_checkout(room, accept=True)
    await shop.rpc.staff("liveShopping.generateSalesSheet", {"sessionId": room.id})
    await shop.end(room, convert=True, generateSalesSheet=True)
    return room, customer


async def leave_to_the_system(shop: Shop, database_url: str) -> Room:
    """A session the system acts on: a client arrives and leaves (PRESENCE), the deadline is
    kept while watched (HOLDS_EXTENDED), then warned about and passed (SESSION_TIMEOUT)."""
    stock = await shop.stock()
    room = await shop.session(await shop.customer())
    await shop.add(room, stock, "1")
    db = Database(database_url)
    now = datetime.now(UTC)
    fresh = now - timedelta(seconds=30)
    try:
        async with db.write_sessions() as s:
            s.add(
                SessionPresence(
                    session_id=room.id, side=PresenceSide.CLIENT, worker="w", seen_at=now
                )
            )
            await s.flush()
            assert await reconcile(s, room.id, stale_before=fresh)
            await s.commit()
        async with db.write_sessions() as s:
            assert await keep_watched_alive(
                s, room.id, now=now + timedelta(minutes=60), margin=timedelta(minutes=61)
            )
            await s.commit()
        async with db.write_sessions() as s:
            await s.execute(delete(SessionPresence).where(SessionPresence.session_id == room.id))
            assert await reconcile(s, room.id, stale_before=fresh)
            await s.commit()
        async with db.write_sessions() as s:
            deadline = await s.scalar(
                select(LiveSession.holds_expire_at).where(LiveSession.id == room.id)
            )
            assert deadline is not None
            warn_at = deadline.replace(tzinfo=deadline.tzinfo or UTC) - timedelta(minutes=5)
            assert await warn_if_expiring(s, room.id, now=warn_at, warning=timedelta(minutes=10))
            await s.commit()
        async with db.write_sessions() as s:
            assert await end_if_idle(s, room.id, now=now + timedelta(days=1))
            await s.commit()
    finally:
        await db.dispose()
    return room


def sse_data(frame: bytes) -> tuple[int, str, bytes]:
    """The id, event name and data of one SSE frame as the streams write it."""
    fields = dict(line.split(b": ", 1) for line in frame.rstrip(b"\n").split(b"\n"))
    return int(fields[b"id"]), fields[b"event"].decode(), fields[b"data"]


def with_type(event_type: str, data: bytes) -> bytes:
    """The data as the tRPC wire carries it: the event type inside, `{"type": ..., ...state}`."""
    assert data.startswith(b"{") and data != b"{}"
    return b'{"type":' + msgspec.json.encode(event_type) + b"," + data[1:]


def decoded_strictly(audience: Audience, event_type: str, data: bytes) -> Any:
    """The typed event, checked to hold exactly what was sent (encoded again, it is the same)."""
    typed = DECODERS[audience].decode(with_type(event_type, data))
    assert type(typed).__struct_config__.tag == event_type
    sent = msgspec.json.decode(data)
    again = msgspec.json.decode(msgspec.json.encode(typed))
    assert again.pop("type") == event_type
    assert same(again, sent), (event_type, audience, again, sent)
    return typed


def same(left: Any, right: Any) -> bool:
    """Equal JSON, where one time may be written with `Z` and the other with `+00:00`."""
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(same, left, right))
    if isinstance(left, str) and isinstance(right, str) and left != right:
        try:
            return datetime.fromisoformat(left) == datetime.fromisoformat(right)
        except ValueError:
            return False
    return type(left) is type(right) and left == right


async def sent_events(database_url: str, session_id: int) -> list[tuple[Audience, str, bytes]]:
    """Every event of the session as each audience's stream frames it."""
    framed = []
    for event in await outbox_events(database_url, session_id):
        live = LiveEvent.of(AppendedEvent(session_id, event.seq, event.type, event.payload))
        for audience in Audience:
            seq, name, data = sse_data(live.frame_for(audience))
            assert (seq, name) == (event.seq, event.type)
            framed.append((audience, name, data))
    return framed


async def snapshots(database_url: str, session_id: int) -> list[tuple[Audience, str, bytes]]:
    """The snapshots a stream opens with: fresh, and marked `reset`, for each audience."""
    framed = []
    db = Database(database_url)
    try:
        async with db.read_sessions() as s:
            live = await s.get(LiveSession, session_id)
            assert live is not None
            views = {
                Audience.STAFF: await staff_snapshot(s, live),
                Audience.CLIENT: await client_snapshot(s, live),
            }
    finally:
        await db.dispose()
    for audience, view in views.items():
        for reset in (False, True):
            _, name, data = sse_data(snapshot_frame(7, view, reset=reset))
            framed.append((audience, name, data))
    return framed


async def test_every_event_of_every_type_decodes_strictly_into_its_struct_for_both_audiences(
    shop: Shop, db_url: str
) -> None:
    played, _ = await play_every_change(shop)
    left = await leave_to_the_system(shop, db_url)
    framed = [
        *await sent_events(db_url, played.id),
        *await sent_events(db_url, left.id),
        *await snapshots(db_url, played.id),
    ]

    seen: dict[Audience, set[str]] = {audience: set() for audience in Audience}
    for audience, name, data in framed:
        decoded_strictly(audience, name, data)
        seen[audience].add(name)
    assert seen[Audience.STAFF] == EVERY_TYPE
    assert seen[Audience.CLIENT] == EVERY_TYPE


async def test_the_client_events_never_decode_as_staff_events_nor_the_reverse(
    shop: Shop, db_url: str
) -> None:
    # Each audience's Structs are its own: cost and notes are unknown fields to the client's,
    # and the staff's require them.
    room = await shop.session(await shop.customer(), internal_notes="Secret")
    await shop.add(room, await shop.stock(), "1")
    events = await sent_events(db_url, room.id)
    assert events
    for audience, name, data in events:
        other = Audience.CLIENT if audience is Audience.STAFF else Audience.STAFF
        with pytest.raises(msgspec.ValidationError):
            DECODERS[other].decode(with_type(name, data))


async def test_a_field_the_schema_does_not_know_is_refused(shop: Shop, db_url: str) -> None:
    room = await shop.session(await shop.customer())
    [(_, name, data), *_] = await sent_events(db_url, room.id)
    assert name == "SESSION_STATUS"
    decoded_strictly(Audience.STAFF, name, data)
    extra = b'{"surprise":1,' + data[1:]
    with pytest.raises(msgspec.ValidationError, match="surprise"):
        STAFF.decode(with_type(name, extra))
    changed = data.replace(b'"after":{"status":"ACTIVE"}', b'"after":{"status":"ACTIVE","x":1}')
    assert changed != data
    with pytest.raises(msgspec.ValidationError, match="x"):
        STAFF.decode(with_type(name, changed))


@pytest.mark.parametrize("union", [SessionEvent, RoomEvent], ids=["staff", "client"])
def test_each_event_type_has_exactly_one_struct_per_audience(union: object) -> None:
    tags = [struct.__struct_config__.tag for struct in get_args(union)]
    assert sorted(tags) == sorted(EVERY_TYPE)
