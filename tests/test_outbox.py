"""The transactional outbox: every session mutation appends one event row in its transaction,
numbered 1, 2, 3... per session, typed per DESIGN.md 5, carrying a staff payload and a separate
client projection that never holds cost, internal notes or credit data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import Rpc
from tests.factories import Customer, Event, Room, Shop, line_of, outbox_events, refusal, rpc_on

# What a client must never see, in any event.
STAFF_ONLY_KEYS = {
    "unitCogs",
    "internalNotes",
    "creditLimit",
    "openOrders",
    "exposure",
    "utilization",
    "creditLevel",
}


@pytest.fixture
def shop(rpc: Rpc) -> Shop:
    return Shop(rpc)


@pytest.fixture
async def any_db_shop(db_url: str) -> AsyncIterator[Shop]:
    async with rpc_on(db_url) as rpc:
        yield Shop(rpc)


class EventLog:
    """The outbox of one session, read incrementally."""

    def __init__(self, database_url: str, room: Room) -> None:
        self.database_url = database_url
        self.room = room
        self.seen = 0

    async def all(self) -> list[Event]:
        return await outbox_events(self.database_url, self.room.id)

    async def new(self) -> list[str]:
        """Types of the events appended since the last call."""
        events = await self.all()
        fresh, self.seen = events[self.seen :], len(events)
        return [e.type for e in fresh]


def keys_in(value: Any) -> set[str]:
    """Every object key anywhere inside a JSON value."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_in(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_in(v)}
    return set()


async def _client_call(shop: Shop, ada: Customer, method: str, **params: Any) -> Any:
    return await shop.rpc.call(f"vipPortalLiveShopping.{method}", params, ada.token)


async def test_every_mutation_appends_exactly_one_event_of_its_type(
    shop: Shop, sqlite_url: str
) -> None:
    staff = shop.rpc.staff
    scarf, wrap = await shop.stock(on_hand="10"), await shop.stock(on_hand="10")
    ada = await shop.customer(credit_limit="5000.00")
    room = await shop.session(ada, internal_notes="likes silk")
    log = EventLog(sqlite_url, room)
    assert await log.new() == ["SESSION_STATUS"]

    host_line = line_of(await shop.add(room, scarf, "2"), scarf)
    assert await log.new() == ["CART_UPDATED"]
    own_line = line_of(await shop.client_add(ada, room, wrap, "1"), wrap)
    assert await log.new() == ["CART_UPDATED"]
    await staff(
        "liveShopping.updateCartQuantity",
        {"sessionId": room.id, "cartItemId": host_line["id"], "quantity": "3"},
    )
    assert await log.new() == ["CART_UPDATED"]
    await staff(
        "liveShopping.toggleCartItemSample",
        {"sessionId": room.id, "cartItemId": host_line["id"], "isSample": True},
    )
    assert await log.new() == ["CART_UPDATED"]
    await _client_call(
        shop, ada, "updateCartQuantity", roomCode=room.code, cartItemId=own_line["id"], quantity=2
    )
    assert await log.new() == ["CART_UPDATED"]
    await _client_call(shop, ada, "removeFromCart", roomCode=room.code, cartItemId=own_line["id"])
    assert await log.new() == ["CART_UPDATED"]
    await staff("liveShopping.highlightProduct", {"sessionId": room.id, "batchId": wrap.batch_id})
    assert await log.new() == ["HIGHLIGHTED"]
    await staff(
        "liveShopping.setOverridePrice",
        {"sessionId": room.id, "productId": scarf.product_id, "overridePrice": "80.00"},
    )
    assert await log.new() == ["PRICE_CHANGED"]
    await _client_call(shop, ada, "requestCheckout", roomCode=room.code)
    assert await log.new() == ["CHECKOUT_REQUESTED"]
    await staff("liveShopping.generateSalesSheet", {"sessionId": room.id})
    assert await log.new() == ["SALES_SHEET_READY"]
    await shop.set_status(room, "PAUSED")
    assert await log.new() == ["SESSION_STATUS"]
    await shop.set_status(room, "ACTIVE")
    assert await log.new() == ["SESSION_STATUS"]
    await shop.add(room, wrap, "1")
    assert await log.new() == ["CART_UPDATED"]

    # Reads and refused changes append nothing.
    await shop.get(room)
    await staff("liveShopping.checkCreditStatus", {"sessionId": room.id})
    await _client_call(shop, ada, "getSessionByRoomCode", roomCode=room.code)
    await refusal(shop.add(room, wrap, "100"))
    await refusal(shop.set_status(room, "SCHEDULED"))
    assert await log.new() == []

    # Converting with a sales sheet documents two changes: the conversion, then the sheet.
    await shop.end(room, convert=True, generateSalesSheet=True)
    assert await log.new() == ["SESSION_CONVERTED", "SALES_SHEET_READY"]


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("end", ["SESSION_STATUS"]),
        ("end with sales sheet", ["SESSION_STATUS", "SALES_SHEET_READY"]),
        ("cancel", ["SESSION_STATUS"]),
    ],
)
async def test_closing_a_session_appends_its_status_event(
    shop: Shop, sqlite_url: str, how: str, expected: list[str]
) -> None:
    room = await shop.session(await shop.customer())
    await shop.add(room, await shop.stock(), "1")
    log = EventLog(sqlite_url, room)
    await log.new()

    if how == "cancel":
        await shop.rpc.staff("liveShopping.cancelSession", {"sessionId": room.id})
    else:
        await shop.end(room, generateSalesSheet=how == "end with sales sheet")

    assert await log.new() == expected


async def test_sequence_numbers_start_at_1_and_rise_by_one_within_each_session(
    any_db_shop: Shop, db_url: str
) -> None:
    shop = any_db_shop
    stock = await shop.stock(on_hand="10")
    first, second = (
        await shop.session(await shop.customer()),
        await shop.session(await shop.customer()),
    )
    for quantity in ("1", "2", "3"):
        await shop.add(first, stock, quantity)
        await shop.add(second, stock, "0.5")
    await shop.end(first, convert=True)

    for room, count in ((first, 5), (second, 4)):
        events = await outbox_events(db_url, room.id)
        assert [e.seq for e in events] == list(range(1, count + 1))


async def test_an_event_carries_the_state_after_its_change_for_staff_and_client(
    shop: Shop, sqlite_url: str
) -> None:
    stock = await shop.stock(list_price="100.00", on_hand="10")
    room = await shop.session(await shop.customer())
    log = EventLog(sqlite_url, room)
    await shop.add(room, stock, "2")

    ended = await shop.end(room, convert=True, generateSalesSheet=True)

    added, converted, sheet_ready = (await log.all())[1:]
    for event in (added, converted, sheet_ready):
        assert set(event.payload) == {"staff", "client"}
    for side in ("staff", "client"):
        assert added.payload[side]["cart"]["items"][0]["quantity"] == "2.0000"
        assert added.payload[side]["cart"]["subtotal"] == "200.00"
        assert converted.payload[side]["session"]["status"] == "CONVERTED"
        assert converted.payload[side]["orderId"] == ended["orderId"]
        assert ended["shareUrl"].endswith(sheet_ready.payload[side]["shareUrl"])


async def test_the_client_projection_never_carries_cost_internal_notes_or_credit(
    shop: Shop, sqlite_url: str
) -> None:
    stock = await shop.stock(unit_cogs="42.00")
    ada = await shop.customer(credit_limit="1000.00")
    room = await shop.session(ada, internal_notes="margin is thin; do not go below 80")
    await shop.add(room, stock, "1")
    await shop.client_add(ada, room, await shop.stock(), "1")
    await shop.rpc.staff(
        "liveShopping.highlightProduct", {"sessionId": room.id, "batchId": stock.batch_id}
    )
    await shop.rpc.staff(
        "liveShopping.setOverridePrice",
        {"sessionId": room.id, "productId": stock.product_id, "overridePrice": "90.00"},
    )
    await shop.end(room, convert=True, generateSalesSheet=True)

    events = await outbox_events(sqlite_url, room.id)

    assert len(events) == 7
    for event in events:
        assert keys_in(event.payload["client"]) & STAFF_ONLY_KEYS == set(), event.type
        assert "margin is thin" not in repr(event.payload["client"]), event.type
    # The staff side does carry them, so the check above is looking in the right place.
    assert {"unitCogs", "internalNotes"} <= keys_in(events[-1].payload["staff"])
