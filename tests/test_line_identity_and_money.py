"""Whose units are on which cart line, and what the money adds up to (DESIGN.md 3 and 4).

A cart line is identified by (batch, isSample, the side that added it: HOST or CLIENT). An add
merges only into the line with the same three, so paid units never join a sample line and
neither side's adds grow the other's line; a toggle into a collision merges the two lines. A
sample line's subtotal is 0.00, so line subtotals add up to the cart subtotal, the order total
and the sales sheet total. A converted cart counts towards credit once, as its order. The line
limit is a business rule (412, with the limit). A checkout request needs a non-empty cart and
is asked once. The room view shows the order and the sales sheet's absolute link.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app.db.engine import Database
from app.db.models import SalesSheet
from tests.factories import Customer, Room, Shop, Stock, outbox_events, refusal, rpc_on

BASE_URL = "http://testserver.local"  # where the test client sends its requests
# Line identities as (addedByRole, isSample).
HOST_PAID, HOST_SAMPLE = ("HOST", False), ("HOST", True)
CLIENT_PAID = ("CLIENT", False)


@pytest.fixture
async def shop(db_url: str) -> AsyncIterator[Shop]:
    """SQLite and MariaDB: line identity rests on a unique key, money on decimal storage."""
    async with rpc_on(db_url) as rpc:
        yield Shop(rpc)


def lines_of(cart: dict[str, Any], stock: Stock) -> dict[tuple[str, bool], dict[str, Any]]:
    """The lines of one batch, by (side that added it, isSample)."""
    lines = [x for x in cart["items"] if x["batchId"] == stock.batch_id]
    by_key = {(x["addedByRole"], x["isSample"]): x for x in lines}
    assert len(by_key) == len(lines), "two lines with the same identity"
    return by_key


def quantities(cart: dict[str, Any], stock: Stock) -> dict[tuple[str, bool], Decimal]:
    return {key: Decimal(x["quantity"]) for key, x in lines_of(cart, stock).items()}


async def client_call(shop: Shop, ada: Customer, room: Room, method: str, **params: Any) -> Any:
    return await shop.rpc.call(
        f"vipPortalLiveShopping.{method}", {"roomCode": room.code, **params}, ada.token
    )


async def toggle(shop: Shop, room: Room, line_id: int, is_sample: bool) -> dict[str, Any]:
    cart: dict[str, Any] = await shop.rpc.staff(
        "liveShopping.toggleCartItemSample",
        {"sessionId": room.id, "cartItemId": line_id, "isSample": is_sample},
    )
    return cart


async def order_of(shop: Shop, order_id: int) -> dict[str, Any]:
    order: dict[str, Any] = await shop.rpc.staff("orders.get", {"orderId": order_id})
    return order


async def sheet_snapshot(database_url: str, share_url: str) -> dict[str, Any]:
    """The stored snapshot of the sales sheet behind a share link."""
    token = share_url.rsplit("/", 1)[1]
    db = Database(database_url)
    try:
        async with db.read_sessions() as s:
            sheet = await s.scalar(select(SalesSheet).where(SalesSheet.token == token))
            assert sheet is not None
            return sheet.snapshot
    finally:
        await db.dispose()


# --- a line is (batch, isSample, side) --------------------------------------------------------


async def test_a_clients_add_never_lands_in_the_hosts_sample_line_and_is_billed(
    shop: Shop,
) -> None:
    scarf = await shop.stock(list_price="100.00", on_hand="20")
    ada = await shop.customer()
    room = await shop.session(ada)
    await shop.add(room, scarf, "1", sample=True)

    cart = await shop.client_add(ada, room, scarf, "10")

    assert quantities(cart, scarf) == {HOST_SAMPLE: 1, CLIENT_PAID: 10}
    assert cart["subtotal"] == "1000.00"
    own = lines_of(cart, scarf)[CLIENT_PAID]
    lowered = await client_call(
        shop, ada, room, "updateCartQuantity", cartItemId=own["id"], quantity="4"
    )
    assert quantities(lowered, scarf) == {HOST_SAMPLE: 1, CLIENT_PAID: 4}
    ended = await shop.end(room, convert=True)
    assert Decimal((await order_of(shop, ended["orderId"]))["total"]) == Decimal("400.00")


async def test_paid_and_sample_units_of_one_batch_stay_on_separate_lines(shop: Shop) -> None:
    scarf = await shop.stock(list_price="100.00", on_hand="20")
    room = await shop.session(await shop.customer())
    await shop.add(room, scarf, "3")

    cart = await shop.add(room, scarf, "1", sample=True)

    assert quantities(cart, scarf) == {HOST_PAID: 3, HOST_SAMPLE: 1}
    assert cart["subtotal"] == "300.00"
    assert cart["itemCount"] == 2


async def test_adds_by_the_same_side_with_the_same_sample_flag_merge(shop: Shop) -> None:
    scarf = await shop.stock(on_hand="20")
    ada = await shop.customer()
    room = await shop.session(ada)
    first = lines_of(await shop.client_add(ada, room, scarf, "1"), scarf)[CLIENT_PAID]
    await shop.add(room, scarf, "1", sample=True)
    await shop.add(room, scarf, "1", sample=True)

    cart = await shop.client_add(ada, room, scarf, "2")

    assert quantities(cart, scarf) == {CLIENT_PAID: 3, HOST_SAMPLE: 2}
    assert lines_of(cart, scarf)[CLIENT_PAID]["id"] == first["id"]


async def test_the_hosts_add_of_a_batch_the_client_has_gets_its_own_line(shop: Shop) -> None:
    scarf = await shop.stock(on_hand="20")
    ada = await shop.customer()
    room = await shop.session(ada)
    await shop.client_add(ada, room, scarf, "2")

    cart = await shop.add(room, scarf, "3")

    assert quantities(cart, scarf) == {CLIENT_PAID: 2, HOST_PAID: 3}
    hosts, own = lines_of(cart, scarf)[HOST_PAID], lines_of(cart, scarf)[CLIENT_PAID]
    for method, params in [
        ("updateCartQuantity", {"cartItemId": hosts["id"], "quantity": "1"}),
        ("removeFromCart", {"cartItemId": hosts["id"]}),
    ]:
        assert (await refusal(client_call(shop, ada, room, method, **params))).code == "FORBIDDEN"
    removed = await client_call(shop, ada, room, "removeFromCart", cartItemId=own["id"])
    assert quantities(removed, scarf) == {HOST_PAID: 3}


async def test_the_clients_add_of_a_batch_the_host_has_gets_a_line_the_client_controls(
    shop: Shop,
) -> None:
    scarf = await shop.stock(on_hand="20")
    ada = await shop.customer()
    room = await shop.session(ada)
    await shop.add(room, scarf, "2")

    cart = await shop.client_add(ada, room, scarf, "1")

    assert quantities(cart, scarf) == {HOST_PAID: 2, CLIENT_PAID: 1}
    own = lines_of(cart, scarf)[CLIENT_PAID]
    raised = await client_call(
        shop, ada, room, "updateCartQuantity", cartItemId=own["id"], quantity="5"
    )
    assert quantities(raised, scarf) == {HOST_PAID: 2, CLIENT_PAID: 5}


async def test_the_host_may_change_or_remove_a_client_line_as_a_whole(shop: Shop) -> None:
    scarf = await shop.stock(on_hand="20")
    ada = await shop.customer()
    room = await shop.session(ada)
    own = lines_of(await shop.client_add(ada, room, scarf, "2"), scarf)[CLIENT_PAID]

    changed = await shop.rpc.staff(
        "liveShopping.updateCartQuantity",
        {"sessionId": room.id, "cartItemId": own["id"], "quantity": "7"},
    )
    assert quantities(changed, scarf) == {CLIENT_PAID: 7}
    removed = await shop.rpc.staff(
        "liveShopping.removeFromCart", {"sessionId": room.id, "cartItemId": own["id"]}
    )
    assert removed["items"] == []


async def test_the_lines_of_one_batch_together_cannot_hold_more_than_is_available(
    shop: Shop,
) -> None:
    scarf = await shop.stock(on_hand="10")
    ada = await shop.customer()
    room = await shop.session(ada)
    await shop.add(room, scarf, "6")
    sample = lines_of(await shop.add(room, scarf, "1", sample=True), scarf)[HOST_SAMPLE]

    failure = await refusal(shop.client_add(ada, room, scarf, "3.0001"))

    assert failure.code == "PRECONDITION_FAILED"
    assert Decimal(failure.error["data"]["available"]) == Decimal("3")
    raise_sample = {"sessionId": room.id, "cartItemId": sample["id"], "quantity": "4.0001"}
    failure = await refusal(shop.rpc.staff("liveShopping.updateCartQuantity", raise_sample))
    assert failure.code == "PRECONDITION_FAILED"
    assert quantities(await shop.cart(room), scarf) == {HOST_PAID: 6, HOST_SAMPLE: 1}
    cart = await shop.client_add(ada, room, scarf, "3")
    assert quantities(cart, scarf) == {HOST_PAID: 6, HOST_SAMPLE: 1, CLIENT_PAID: 3}
    assert await shop.available(scarf) == 0


# --- toggling into a collision ----------------------------------------------------------------


async def test_toggling_a_sample_into_a_paid_line_of_the_same_side_merges_them(
    shop: Shop,
) -> None:
    scarf = await shop.stock(list_price="100.00", on_hand="20")
    room = await shop.session(await shop.customer())
    await shop.rpc.staff(
        "liveShopping.highlightProduct", {"sessionId": room.id, "batchId": scarf.batch_id}
    )
    paid = lines_of(await shop.add(room, scarf, "3"), scarf)[HOST_PAID]
    sample = lines_of(await shop.add(room, scarf, "1", sample=True), scarf)[HOST_SAMPLE]

    cart = await toggle(shop, room, sample["id"], False)

    (line,) = cart["items"]
    assert line["id"] == paid["id"]
    assert (line["addedByRole"], line["isSample"], line["quantity"]) == ("HOST", False, "4.0000")
    assert line["isHighlighted"] is True
    assert cart["subtotal"] == "400.00"
    assert await shop.available(scarf) == 16


async def test_toggling_a_paid_line_into_a_sample_line_merges_them_and_bills_nothing(
    shop: Shop,
) -> None:
    scarf = await shop.stock(list_price="100.00", on_hand="20")
    ada = await shop.customer()
    room = await shop.session(ada)
    await shop.add(room, scarf, "1", sample=True)
    sample = lines_of(await shop.add(room, scarf, "1", sample=True), scarf)[HOST_SAMPLE]
    paid = lines_of(await shop.add(room, scarf, "3"), scarf)[HOST_PAID]
    await shop.client_add(ada, room, scarf, "2")  # another side's line is not a collision

    cart = await toggle(shop, room, paid["id"], True)

    assert quantities(cart, scarf) == {HOST_SAMPLE: 5, CLIENT_PAID: 2}
    assert lines_of(cart, scarf)[HOST_SAMPLE]["id"] == sample["id"]
    assert cart["subtotal"] == "200.00"


async def test_toggling_into_a_collision_at_the_line_limit_never_needs_a_new_line(
    sqlite_url: str,
) -> None:
    async with rpc_on(sqlite_url, LIVE_SHOPPING_MAX_CART_ITEMS="2") as rpc:
        shop = Shop(rpc)
        scarf = await shop.stock(on_hand="20")
        room = await shop.session(await shop.customer())
        await shop.add(room, scarf, "3")
        sample = lines_of(await shop.add(room, scarf, "1", sample=True), scarf)[HOST_SAMPLE]

        cart = await toggle(shop, room, sample["id"], False)

        assert quantities(cart, scarf) == {HOST_PAID: 4}


# --- money: samples are 0.00 everywhere ------------------------------------------------------


async def test_a_sample_lines_subtotal_is_zero_and_line_subtotals_add_up_everywhere(
    shop: Shop, db_url: str
) -> None:
    soap = await shop.stock(list_price="10.00", on_hand="20")
    ada = await shop.customer()
    room = await shop.session(ada)
    await shop.add(room, soap, "2", sample=True)
    await shop.add(room, soap, "3")

    cart = await shop.client_add(ada, room, soap, "1.5")

    assert lines_of(cart, soap)[HOST_SAMPLE]["subtotal"] == "0.00"
    assert sum(Decimal(x["subtotal"]) for x in cart["items"]) == Decimal(cart["subtotal"])
    assert cart["subtotal"] == "45.00"
    joined = await client_call(shop, ada, room, "getSessionByRoomCode")
    client_lines = joined["cart"]["items"]
    assert [x["subtotal"] for x in client_lines if x["isSample"]] == ["0.00"]
    assert sum(Decimal(x["subtotal"]) for x in client_lines) == Decimal("45.00")

    ended = await shop.end(room, convert=True, generateSalesSheet=True)

    order = await order_of(shop, ended["orderId"])
    assert sum(Decimal(x["lineTotal"]) for x in order["lines"]) == Decimal(order["total"])
    assert Decimal(order["total"]) == Decimal("45.00")
    sheet = await sheet_snapshot(db_url, ended["shareUrl"])
    assert sum(Decimal(x["subtotal"]) for x in sheet["lines"]) == Decimal(sheet["total"])
    assert sum(Decimal(x["listSubtotal"]) for x in sheet["lines"]) == Decimal(sheet["listTotal"])
    assert Decimal(sheet["total"]) == Decimal("45.00")


# --- credit: a converted cart counts once ----------------------------------------------------


async def _credit(shop: Shop, room: Room) -> dict[str, Any]:
    status: dict[str, Any] = await shop.rpc.staff(
        "liveShopping.checkCreditStatus", {"sessionId": room.id}
    )
    return status


async def test_a_converted_cart_counts_towards_credit_once_as_its_order(shop: Shop) -> None:
    scarf = await shop.stock(list_price="100.00", on_hand="20")
    room = await shop.session(await shop.customer(credit_limit="1000.00"))
    await shop.add(room, scarf, "10")
    await shop.end(room, convert=True)

    credit = await _credit(shop, room)

    assert Decimal(credit["openOrders"]) == Decimal("1000.00")
    assert Decimal(credit["cartTotal"]) == 0
    assert Decimal(credit["exposure"]) == Decimal("1000.00")
    assert credit["level"] == "WARNING"


async def test_an_ended_draft_is_no_exposure_until_it_converts_and_then_is_checked(
    shop: Shop,
) -> None:
    scarf = await shop.stock(list_price="100.00", on_hand="20")
    room = await shop.session(await shop.customer(credit_limit="1000.00"))
    await shop.add(room, scarf, "11")
    await shop.end(room)

    credit = await _credit(shop, room)

    assert Decimal(credit["cartTotal"]) == 0
    assert Decimal(credit["exposure"]) == 0
    assert credit["level"] == "OK"
    # Converting the draft still weighs its cart: 1100 over a limit of 1000.
    failure = await refusal(shop.end(room, convert=True))
    assert failure.code == "PRECONDITION_FAILED"
    assert await shop.status(room) == "ENDED"


# --- the line limit is a business rule --------------------------------------------------------


async def test_a_line_beyond_the_limit_is_a_failed_precondition_that_names_the_limit(
    sqlite_url: str,
) -> None:
    async with rpc_on(sqlite_url, LIVE_SHOPPING_MAX_CART_ITEMS="2") as rpc:
        shop = Shop(rpc)
        scarf = await shop.stock(on_hand="20")
        ada = await shop.customer()
        room = await shop.session(ada)
        await shop.add(room, scarf, "1")
        await shop.add(room, scarf, "1", sample=True)  # the same batch, a second line

        failure = await refusal(shop.client_add(ada, room, scarf, "1"))

        assert (failure.code, failure.status) == ("PRECONDITION_FAILED", 412)
        assert failure.error["code"] == -32012
        assert failure.error["data"]["limit"] == 2
        assert quantities(await shop.cart(room), scarf) == {HOST_PAID: 1, HOST_SAMPLE: 1}


# --- checkout requests ------------------------------------------------------------------------


async def _events_of(db_url: str, room: Room, event_type: str) -> int:
    return sum(1 for e in await outbox_events(db_url, room.id) if e.type == event_type)


async def test_checkout_cannot_be_requested_on_an_empty_cart(shop: Shop, db_url: str) -> None:
    ada = await shop.customer()
    room = await shop.session(ada)

    failure = await refusal(client_call(shop, ada, room, "requestCheckout"))

    assert failure.code == "PRECONDITION_FAILED"
    assert (await shop.get(room))["session"]["checkoutRequestedAt"] is None
    assert await _events_of(db_url, room, "CHECKOUT_REQUESTED") == 0


async def test_repeating_a_pending_checkout_request_changes_nothing_and_sends_nothing(
    shop: Shop, db_url: str
) -> None:
    scarf = await shop.stock(on_hand="20")
    ada = await shop.customer()
    room = await shop.session(ada)
    await shop.client_add(ada, room, scarf, "1")
    first = await client_call(shop, ada, room, "requestCheckout")
    before = await shop.get(room)

    again = await client_call(shop, ada, room, "requestCheckout")

    assert again == first
    assert await shop.get(room) == before
    assert await _events_of(db_url, room, "CHECKOUT_REQUESTED") == 1


# --- the room view: order and sales sheet links -----------------------------------------------


async def test_the_room_view_shows_the_order_and_the_sales_sheets_absolute_link(
    shop: Shop,
) -> None:
    scarf = await shop.stock(on_hand="20")
    ada = await shop.customer()
    room = await shop.session(ada)
    await shop.add(room, scarf, "1")
    joined = await client_call(shop, ada, room, "getSessionByRoomCode")
    assert (joined["session"]["orderId"], joined["session"]["shareUrl"]) == (None, None)

    sheet = await shop.rpc.staff("liveShopping.generateSalesSheet", {"sessionId": room.id})

    assert sheet["shareUrl"].startswith(f"{BASE_URL}/sales-sheets/")
    active = await shop.rpc.call("vipPortalLiveShopping.getActiveSession", None, ada.token)
    assert active["session"]["shareUrl"] == sheet["shareUrl"]
    assert (await shop.get(room))["session"]["shareUrl"] == sheet["shareUrl"]

    ended = await shop.end(room, convert=True, generateSalesSheet=True)

    assert ended["shareUrl"].startswith(f"{BASE_URL}/sales-sheets/")
    assert ended["shareUrl"] != sheet["shareUrl"]  # the latest sheet is the one shown
    seen = (await client_call(shop, ada, room, "getSessionByRoomCode"))["session"]
    assert (seen["orderId"], seen["shareUrl"]) == (ended["orderId"], ended["shareUrl"])
    staff = (await shop.get(room))["session"]
    assert (staff["orderId"], staff["shareUrl"]) == (ended["orderId"], ended["shareUrl"])


async def test_a_sales_sheet_keeps_the_link_it_was_handed_out_with(shop: Shop) -> None:
    scarf = await shop.stock(on_hand="20")
    ada = await shop.customer()
    room = await shop.session(ada)
    await shop.add(room, scarf, "1")
    made = await shop.rpc.http.post(
        "/rpc",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "liveShopping.generateSalesSheet",
            "params": {"sessionId": room.id},
        },
        headers={"authorization": f"Bearer {shop.rpc.tokens.staff}", "host": "shop.example"},
    )
    link = made.json()["result"]["shareUrl"]
    assert link.startswith("http://shop.example/sales-sheets/")

    seen = await client_call(shop, ada, room, "getSessionByRoomCode")  # asked via another host

    assert seen["session"]["shareUrl"] == link


@pytest.mark.parametrize("how", ["generateSalesSheet", "end", "convert"])
async def test_every_sales_sheet_event_carries_the_absolute_link_for_both_sides(
    shop: Shop, db_url: str, how: str
) -> None:
    scarf = await shop.stock(on_hand="20")
    room = await shop.session(await shop.customer())
    await shop.add(room, scarf, "1")

    if how == "generateSalesSheet":
        made = await shop.rpc.staff("liveShopping.generateSalesSheet", {"sessionId": room.id})
    else:
        made = await shop.end(room, convert=how == "convert", generateSalesSheet=True)

    link = made["shareUrl"]
    assert link.startswith(f"{BASE_URL}/sales-sheets/")
    (ready,) = [e for e in await outbox_events(db_url, room.id) if e.type == "SALES_SHEET_READY"]
    for side in ("staff", "client"):
        assert ready.payload[side]["shareUrl"] == link, side
        assert ready.payload[side]["session"]["shareUrl"] == link, side
    assert (await shop.rpc.http.get(link.removeprefix(BASE_URL))).status_code == 200


async def test_a_host_name_too_long_for_a_share_link_is_refused_and_makes_no_sheet(
    shop: Shop, db_url: str
) -> None:
    scarf = await shop.stock(on_hand="20")
    ada = await shop.customer()
    room = await shop.session(ada)
    await shop.add(room, scarf, "1")

    made = await shop.rpc.http.post(
        "/rpc",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "liveShopping.generateSalesSheet",
            "params": {"sessionId": room.id},
        },
        headers={"authorization": f"Bearer {shop.rpc.tokens.staff}", "host": "a" * 600},
    )

    assert (made.status_code, made.json()["error"]["data"]["code"]) == (400, "BAD_REQUEST")
    assert (await client_call(shop, ada, room, "getSessionByRoomCode"))["session"][
        "shareUrl"
    ] is None
    assert [e.type for e in await outbox_events(db_url, room.id)][-1] == "CART_UPDATED"
