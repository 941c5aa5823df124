"""The timeline: a session's story, who did what when, read back from the outbox (DESIGN.md 3-4).

`liveShopping.getTimeline` gives staff every stored event in seq order as
{seq, type, actor, occurredAt, subject?, before?, after?}, products named; quantities and
prices show before and after. `vipPortalLiveShopping.getTimeline` gives the client's projection:
no notes, cost or credit, and staff-only events (an edit of internal notes alone) left out.
Both page with `cursor` (the last seq seen) and `limit`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from tests.factories import Customer, Room, Shop, Stock, at, outbox_events, refusal, rpc_on

NOTES = "Pays late; floor is cost plus 5%"
SECRET_NOTES = "Asks for the staff discount, never give it"


@pytest.fixture
async def shop(db_url: str) -> AsyncIterator[Shop]:
    async with rpc_on(db_url) as rpc:
        yield Shop(rpc)


@dataclass(frozen=True)
class Story:
    """The typical flow of DESIGN 3, as the host and the client played it."""

    room: Room
    customer: Customer
    coat: Stock
    scarf: Stock
    belt: Stock
    requested_at: str
    order_id: int
    share_url: str


async def play_the_typical_flow(shop: Shop) -> Story:
    coat = await shop.stock(name="Merino Coat", list_price="400.00")
    scarf = await shop.stock(name="Silk Scarf", list_price="90.00")
    belt = await shop.stock(name="Leather Belt", list_price="60.00")
    customer = await shop.customer(price_adjustment="-10")
    room = await shop.session(customer, title="Autumn preview", internal_notes=NOTES)
    await shop.add(room, coat, "2")
    cart = await shop.client_add(customer, room, scarf, "1")
    scarf_line = next(x["id"] for x in cart["items"] if x["batchId"] == scarf.batch_id)
    await shop.rpc.call(
        "vipPortalLiveShopping.updateCartQuantity",
        {"roomCode": room.code, "cartItemId": scarf_line, "quantity": "1.5"},
        customer.token,
    )
    await shop.rpc.staff(
        "liveShopping.setOverridePrice",
        {"sessionId": room.id, "productId": coat.product_id, "overridePrice": "350.00"},
    )
    await shop.rpc.staff(
        "liveShopping.highlightProduct", {"sessionId": room.id, "batchId": scarf.batch_id}
    )
    cart = await shop.add(room, belt, "1")
    belt_line = next(x["id"] for x in cart["items"] if x["batchId"] == belt.batch_id)
    await shop.rpc.staff(
        "liveShopping.toggleCartItemSample",
        {"sessionId": room.id, "cartItemId": belt_line, "isSample": True},
    )
    await shop.update(room, internalNotes=SECRET_NOTES)
    requested_at = await shop.request_checkout(customer, room)
    await shop.respond_to_checkout(room, accept=True, message="Wrapping it up")
    ended = await shop.end(room, convert=True, generateSalesSheet=True)
    return Story(
        room, customer, coat, scarf, belt, requested_at, ended["orderId"], ended["shareUrl"]
    )


def told(entry: dict[str, Any]) -> tuple[Any, ...]:
    """An entry as one line of the story: what happened, by whom, to which product, the values
    before and after (quantities as numbers: "1.0000" and "1" are the same quantity).
    """
    actor = entry["actor"]
    subject = entry["subject"] or {}
    return (
        entry["type"],
        actor and actor["role"],
        subject.get("productName"),
        _numbers(entry["before"]),
        _numbers(entry["after"]),
    )


def _numbers(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None or "quantity" not in values:
        return values
    return {**values, "quantity": Decimal(values["quantity"])}


def quantity(values: dict[str, Any] | None) -> Decimal | None:
    return None if values is None else Decimal(values["quantity"])


async def whole(shop: Shop, room: Room, customer: Customer | None = None, **page: Any) -> Any:
    """Every entry, walking the pages by nextCursor; and the pages' sizes."""
    entries: list[dict[str, Any]] = []
    sizes: list[int] = []
    cursor: int | None = 0
    while cursor is not None:
        timeline = (
            await shop.timeline(room, cursor=cursor, **page)
            if customer is None
            else await shop.client_timeline(customer, room, cursor=cursor, **page)
        )
        entries += timeline["entries"]
        sizes.append(len(timeline["entries"]))
        cursor = timeline["nextCursor"]
    return entries, sizes


# --- the story ------------------------------------------------------------------------------


async def test_the_typical_flow_reads_as_the_story_of_the_session(shop: Shop) -> None:
    story = await play_the_typical_flow(shop)

    timeline = await shop.timeline(story.room)

    assert timeline["nextCursor"] is None
    # (what, by whom, to which product, before, after); quantities compared as numbers.
    assert [told(e) for e in timeline["entries"]] == [
        ("SESSION_STATUS", "STAFF", None, None, {"status": "ACTIVE"}),
        ("CART_UPDATED", "STAFF", "Merino Coat", None, {"quantity": 2}),
        ("CART_UPDATED", "CLIENT", "Silk Scarf", None, {"quantity": 1}),
        ("CART_UPDATED", "CLIENT", "Silk Scarf", {"quantity": 1}, {"quantity": Decimal("1.5")}),
        # The session price shows the old price (list price less the client's 10%) and the new.
        (
            "PRICE_CHANGED",
            "STAFF",
            "Merino Coat",
            {"unitPrice": "360.00"},
            {"unitPrice": "350.00", "overridePrice": "350.00"},
        ),
        (
            "HIGHLIGHTED",
            "STAFF",
            "Silk Scarf",
            {"batchId": None},
            {"batchId": story.scarf.batch_id},
        ),
        ("CART_UPDATED", "STAFF", "Leather Belt", None, {"quantity": 1}),
        ("CART_UPDATED", "STAFF", "Leather Belt", {"isSample": False}, {"isSample": True}),
        (
            "SESSION_UPDATED",
            "STAFF",
            None,
            {"internalNotes": NOTES},
            {"internalNotes": SECRET_NOTES},
        ),
        ("CHECKOUT_REQUESTED", "CLIENT", None, None, {"requestedAt": story.requested_at}),
        (
            "CHECKOUT_ANSWERED",
            "STAFF",
            None,
            None,
            {"accepted": True, "message": "Wrapping it up"},
        ),
        # 2 x 350.00 + 1.5 x 81.00; the sample bills nothing.
        (
            "SESSION_CONVERTED",
            "STAFF",
            None,
            {"status": "ACTIVE"},
            {"status": "CONVERTED", "total": "821.50"},
        ),
        ("SALES_SHEET_READY", "STAFF", None, None, {"shareUrl": story.share_url}),
    ]
    subjects = [e["subject"] for e in timeline["entries"]]
    assert [s["addedByRole"] for s in subjects if s and "addedByRole" in s] == [
        "HOST",
        "CLIENT",
        "CLIENT",
        "HOST",
        "HOST",
    ]
    assert subjects[4]["productId"] == story.coat.product_id
    assert subjects[-2] == {"orderId": story.order_id}
    assert list(subjects[-1]) == ["salesSheetId"]


async def test_every_entry_says_who_and_when_in_seq_order_as_the_outbox_holds_it(
    shop: Shop, db_url: str
) -> None:
    story = await play_the_typical_flow(shop)

    entries = (await shop.timeline(story.room))["entries"]

    outbox = await outbox_events(db_url, story.room.id)
    assert [e["seq"] for e in entries] == [e.seq for e in outbox]  # no second history
    assert [e["type"] for e in entries] == [e.type for e in outbox]
    for entry, event in zip(entries, outbox, strict=True):
        assert entry["actor"] == event.payload["staff"]["actor"]
        assert entry["occurredAt"] == event.payload["staff"]["occurredAt"]
    client_actor = {"userId": 1000 + story.customer.id, "role": "CLIENT"}
    assert {json.dumps(e["actor"], sort_keys=True) for e in entries} == {
        json.dumps({"userId": 2, "role": "STAFF"}, sort_keys=True),
        json.dumps(client_actor, sort_keys=True),
    }
    times = [at(e["occurredAt"]) for e in entries]
    assert times == sorted(times)


async def test_removing_a_line_shows_the_quantity_it_had(shop: Shop) -> None:
    stock = await shop.stock(name="Cashmere Gloves")
    room = await shop.session(await shop.customer())
    cart = await shop.add(room, stock, "3")
    line = cart["items"][0]["id"]
    await shop.rpc.staff(
        "liveShopping.updateCartQuantity",
        {"sessionId": room.id, "cartItemId": line, "quantity": "2"},
    )
    await shop.rpc.staff("liveShopping.removeFromCart", {"sessionId": room.id, "cartItemId": line})

    *_, changed, removed = (await shop.timeline(room))["entries"]

    assert (quantity(changed["before"]), quantity(changed["after"])) == (Decimal(3), Decimal(2))
    assert (quantity(removed["before"]), removed["after"]) == (Decimal(2), None)
    assert removed["subject"]["productName"] == "Cashmere Gloves"
    assert removed["subject"]["cartItemId"] == line


async def test_clearing_the_highlight_names_the_product_taken_down(shop: Shop) -> None:
    stock = await shop.stock(name="Silk Scarf")
    room = await shop.session(await shop.customer())
    for batch_id in (stock.batch_id, None):
        await shop.rpc.staff(
            "liveShopping.highlightProduct", {"sessionId": room.id, "batchId": batch_id}
        )

    *_, shown, cleared = (await shop.timeline(room))["entries"]

    assert shown["subject"]["productName"] == cleared["subject"]["productName"] == "Silk Scarf"
    assert (cleared["before"], cleared["after"]) == (
        {"batchId": stock.batch_id},
        {"batchId": None},
    )


# --- the client's projection ----------------------------------------------------------------


async def test_the_clients_timeline_leaves_out_staff_only_edits_and_never_has_notes(
    shop: Shop,
) -> None:
    story = await play_the_typical_flow(shop)

    staff = (await shop.timeline(story.room))["entries"]
    client = await shop.client_timeline(story.customer, story.room)

    body = json.dumps(client)
    assert "internalNotes" not in body
    assert NOTES not in body and SECRET_NOTES not in body
    assert client["nextCursor"] is None
    notes_edit = next(e for e in staff if e["type"] == "SESSION_UPDATED")
    assert [e["seq"] for e in client["entries"]] == [e["seq"] for e in staff if e is not notes_edit]
    # Everything else the client sees as staff do (its events carry no cost in their changes).
    assert client["entries"] == [e for e in staff if e is not notes_edit]


async def test_the_client_sees_a_retitling_but_not_the_notes_changed_with_it(
    shop: Shop,
) -> None:
    customer = await shop.customer()
    room = await shop.session(customer, title="Preview", internal_notes=NOTES)

    await shop.update(room, title="Private preview", internalNotes=SECRET_NOTES)

    *_, staff_entry = (await shop.timeline(room))["entries"]
    *_, client_entry = (await shop.client_timeline(customer, room))["entries"]
    assert staff_entry["after"] == {"title": "Private preview", "internalNotes": SECRET_NOTES}
    assert client_entry["seq"] == staff_entry["seq"]
    assert (client_entry["before"], client_entry["after"]) == (
        {"title": "Preview"},
        {"title": "Private preview"},
    )


# --- paging ---------------------------------------------------------------------------------


async def test_pages_put_together_are_the_whole_timeline(shop: Shop) -> None:
    story = await play_the_typical_flow(shop)
    full = (await shop.timeline(story.room))["entries"]

    entries, sizes = await whole(shop, story.room, limit=4)

    assert entries == full
    assert sizes == [4, 4, 4, 1]


async def test_the_page_after_the_last_entry_is_empty_and_says_so(shop: Shop) -> None:
    room = await shop.session(await shop.customer())
    stock = await shop.stock()
    await shop.add(room, stock, "1")

    first = await shop.timeline(room, limit=1)
    last = await shop.timeline(room, cursor=first["nextCursor"], limit=1)
    beyond = await shop.timeline(room, cursor=last["entries"][0]["seq"])

    assert [e["seq"] for e in first["entries"] + last["entries"]] == [1, 2]
    assert last["nextCursor"] is None  # the page that reaches the end says it is the last
    assert beyond == {"entries": [], "nextCursor": None}


async def test_staff_only_entries_never_shorten_a_clients_page(shop: Shop) -> None:
    stock = await shop.stock()
    customer = await shop.customer()
    room = await shop.session(customer, internal_notes=NOTES)
    for n in range(3):
        await shop.update(room, internalNotes=f"{NOTES} ({n})")  # hidden from the client
        await shop.add(room, stock, "1")
    full = (await shop.client_timeline(customer, room))["entries"]

    entries, sizes = await whole(shop, room, customer, limit=2)

    assert entries == full
    assert [e["type"] for e in full] == ["SESSION_STATUS"] + ["CART_UPDATED"] * 3
    assert sizes == [2, 2]


@pytest.mark.parametrize("page", [{"limit": 0}, {"limit": 101}, {"cursor": -1}])
async def test_a_page_out_of_bounds_is_refused(shop: Shop, page: dict[str, int]) -> None:
    customer = await shop.customer()
    room = await shop.session(customer)

    staff = await refusal(shop.timeline(room, **page))
    client = await refusal(shop.client_timeline(customer, room, **page))

    assert staff.code == client.code == "BAD_REQUEST"
    (key,) = page
    assert [i["path"] for i in staff.error["data"]["issues"]] == [f"$.{key}"]
