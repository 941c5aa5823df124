"""The shared cart: merges, the line limit, decimal quantities, samples, highlight, session
prices, client price rounding, soft holds across sessions and orders, and who may edit when.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from tests.conftest import Rpc
from tests.factories import Customer, Room, Shop, Stock, line_of, refusal, rpc_on

CENT = Decimal("0.01")


@pytest.fixture
def shop(rpc: Rpc) -> Shop:
    """SQLite, for the bulk of the rules."""
    return Shop(rpc)


@pytest.fixture
async def any_db_shop(db_url: str) -> AsyncIterator[Shop]:
    """SQLite and MariaDB, where the rule rests on locking or decimal storage."""
    async with rpc_on(db_url) as rpc:
        yield Shop(rpc)


# --- merging and the line limit ---------------------------------------------------------------


async def test_adding_a_batch_already_in_the_cart_merges_into_its_line(shop: Shop) -> None:
    stock = await shop.stock(on_hand="10")
    room = await shop.session(await shop.customer())
    first = line_of(await shop.add(room, stock, "2"), stock)

    cart = await shop.add(room, stock, "3")

    assert cart["itemCount"] == 1
    assert line_of(cart, stock)["id"] == first["id"]
    assert Decimal(line_of(cart, stock)["quantity"]) == Decimal("5")


async def test_a_cart_refuses_a_line_beyond_max_cart_items_and_adds_nothing(
    sqlite_url: str,
) -> None:
    async with rpc_on(sqlite_url, LIVE_SHOPPING_MAX_CART_ITEMS="2") as rpc:
        shop = Shop(rpc)
        a, b, c = [await shop.stock(on_hand="10") for _ in range(3)]
        room = await shop.session(await shop.customer())
        await shop.add(room, a, "1")
        await shop.add(room, b, "1")

        failure = await refusal(shop.add(room, c, "1"))

        # A business rule, not an oversized request: 412 naming the limit (DESIGN 4).
        assert failure.code == "PRECONDITION_FAILED"
        assert failure.status == 412
        assert failure.error["data"]["limit"] == 2
        cart = await shop.cart(room)
        assert [x["batchId"] for x in cart["items"]] == [a.batch_id, b.batch_id]
        assert await shop.available(c) == Decimal("10")


async def test_the_line_limit_applies_to_the_client_too(sqlite_url: str) -> None:
    async with rpc_on(sqlite_url, LIVE_SHOPPING_MAX_CART_ITEMS="2") as rpc:
        shop = Shop(rpc)
        a, b, c = [await shop.stock(on_hand="10") for _ in range(3)]
        ada = await shop.customer()
        room = await shop.session(ada)
        await shop.add(room, a, "1")
        await shop.client_add(ada, room, b, "1")

        failure = await refusal(shop.client_add(ada, room, c, "1"))

        assert failure.code == "PRECONDITION_FAILED"
        assert failure.error["data"]["limit"] == 2
        assert (await shop.cart(room))["itemCount"] == 2


async def test_merging_into_an_existing_line_is_allowed_at_the_line_limit(
    sqlite_url: str,
) -> None:
    async with rpc_on(sqlite_url, LIVE_SHOPPING_MAX_CART_ITEMS="2") as rpc:
        shop = Shop(rpc)
        a, b = await shop.stock(on_hand="10"), await shop.stock(on_hand="10")
        room = await shop.session(await shop.customer())
        await shop.add(room, a, "1")
        await shop.add(room, b, "1")

        cart = await shop.add(room, a, "2")

        assert Decimal(line_of(cart, a)["quantity"]) == Decimal("3")


# --- quantities -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("1.2345", "1.2345"), ("0.0001", "0.0001"), (1.5, "1.5"), (3, "3"), ("2.50000", "2.5")],
)
async def test_quantities_are_decimals_with_up_to_four_places(
    shop: Shop, quantity: Any, expected: str
) -> None:
    stock = await shop.stock(list_price="10.00", on_hand="10")
    room = await shop.session(await shop.customer())

    cart = await shop.rpc.staff(
        "liveShopping.addToCart",
        {"sessionId": room.id, "batchId": stock.batch_id, "quantity": quantity},
    )

    line = line_of(cart, stock)
    assert Decimal(line["quantity"]) == Decimal(expected)
    assert Decimal(line["subtotal"]) == (Decimal(expected) * 10).quantize(CENT, ROUND_HALF_UP)
    assert Decimal((await shop.cart(room))["items"][0]["quantity"]) == Decimal(expected)


async def test_a_quantity_that_is_not_positive_or_has_more_than_four_places_is_refused(
    shop: Shop,
) -> None:
    stock = await shop.stock(on_hand="10")
    room = await shop.session(await shop.customer())

    for quantity in ["1.23456", "0", "0.00001", "-1", "NaN", "abc"]:
        failure = await refusal(shop.add(room, stock, quantity))
        assert failure.code == "BAD_REQUEST", quantity

    assert (await shop.cart(room))["items"] == []


async def test_a_line_subtotal_is_rounded_half_up_to_cents(shop: Shop) -> None:
    stock = await shop.stock(list_price="10.00", on_hand="10")
    room = await shop.session(await shop.customer())

    cart = await shop.add(room, stock, "1.2345")  # 12.345

    assert line_of(cart, stock)["subtotal"] == "12.35"
    assert cart["subtotal"] == "12.35"


# --- samples ----------------------------------------------------------------------------------


async def test_a_sample_holds_inventory_but_is_excluded_from_the_subtotal(shop: Shop) -> None:
    bag = await shop.stock(list_price="100.00", on_hand="10")
    perfume = await shop.stock(list_price="50.00", on_hand="10")
    room = await shop.session(await shop.customer())
    await shop.add(room, bag, "2")

    cart = await shop.add(room, perfume, "3", sample=True)

    assert line_of(cart, perfume)["isSample"] is True
    assert Decimal(cart["subtotal"]) == Decimal("200.00")
    assert await shop.available(perfume) == Decimal("7")


async def test_toggling_a_sample_moves_the_line_in_and_out_of_the_subtotal(shop: Shop) -> None:
    bag = await shop.stock(list_price="100.00", on_hand="10")
    room = await shop.session(await shop.customer())
    line = line_of(await shop.add(room, bag, "2"), bag)

    as_sample = await shop.rpc.staff(
        "liveShopping.toggleCartItemSample",
        {"sessionId": room.id, "cartItemId": line["id"], "isSample": True},
    )
    billed_again = await shop.rpc.staff(
        "liveShopping.toggleCartItemSample",
        {"sessionId": room.id, "cartItemId": line["id"], "isSample": False},
    )

    assert Decimal(as_sample["subtotal"]) == Decimal("0")
    assert Decimal(billed_again["subtotal"]) == Decimal("200.00")


# --- highlight --------------------------------------------------------------------------------


async def _highlight(shop: Shop, room: Room, stock: Stock | None) -> dict[str, Any]:
    cart: dict[str, Any] = await shop.rpc.staff(
        "liveShopping.highlightProduct",
        {"sessionId": room.id, "batchId": stock.batch_id if stock else None},
    )
    return cart


def _highlighted(cart: dict[str, Any]) -> list[int]:
    return [x["batchId"] for x in cart["items"] if x["isHighlighted"]]


async def test_highlighting_flags_only_the_matching_line_and_null_clears_it(shop: Shop) -> None:
    a, b = await shop.stock(), await shop.stock()
    room = await shop.session(await shop.customer())
    await shop.add(room, a, "1")
    await shop.add(room, b, "1")

    assert _highlighted(await _highlight(shop, room, a)) == [a.batch_id]
    assert (await shop.get(room))["session"]["highlight"]["batchId"] == a.batch_id
    assert _highlighted(await _highlight(shop, room, b)) == [b.batch_id]
    assert _highlighted(await _highlight(shop, room, None)) == []
    assert (await shop.get(room))["session"]["highlight"] is None


async def test_a_highlighted_batch_need_not_be_in_the_cart_and_flags_its_line_once_added(
    shop: Shop,
) -> None:
    in_cart, showcased = await shop.stock(), await shop.stock()
    room = await shop.session(await shop.customer())
    await shop.add(room, in_cart, "1")

    assert _highlighted(await _highlight(shop, room, showcased)) == []
    assert (await shop.get(room))["session"]["highlight"]["batchId"] == showcased.batch_id
    assert _highlighted(await shop.add(room, showcased, "1")) == [showcased.batch_id]


# --- session prices ---------------------------------------------------------------------------


async def _override(shop: Shop, room: Room, stock: Stock, price: str | None) -> dict[str, Any]:
    cart: dict[str, Any] = await shop.rpc.staff(
        "liveShopping.setOverridePrice",
        {"sessionId": room.id, "productId": stock.product_id, "overridePrice": price},
    )
    return cart


async def test_an_override_reprices_only_that_products_lines_in_that_session(shop: Shop) -> None:
    scarf = await shop.stock(list_price="100.00")
    scarf_second_batch = await shop.batch_of(scarf.product_id, on_hand="10")
    wrap = await shop.stock(list_price="50.00")
    ada = await shop.customer(price_adjustment="-10")
    room, other_room = await shop.session(ada), await shop.session(ada)
    for stock in (scarf, scarf_second_batch, wrap):
        await shop.add(room, stock, "1")
    await shop.add(other_room, scarf, "1")

    cart = await _override(shop, room, scarf, "70.00")

    assert line_of(cart, scarf)["unitPrice"] == "70.00"
    assert line_of(cart, scarf_second_batch)["unitPrice"] == "70.00"
    assert line_of(cart, wrap)["unitPrice"] == "45.00"
    assert Decimal(cart["subtotal"]) == Decimal("185.00")
    assert line_of(await shop.cart(other_room), scarf)["unitPrice"] == "90.00"


async def test_a_line_added_after_an_override_gets_the_session_price(shop: Shop) -> None:
    scarf = await shop.stock(list_price="100.00")
    room = await shop.session(await shop.customer(price_adjustment="-10"))
    await _override(shop, room, scarf, "70.00")

    assert line_of(await shop.add(room, scarf, "1"), scarf)["unitPrice"] == "70.00"


async def test_clearing_an_override_returns_lines_to_the_client_adjusted_list_price(
    shop: Shop,
) -> None:
    scarf = await shop.stock(list_price="100.00")
    room = await shop.session(await shop.customer(price_adjustment="-10"))
    await shop.add(room, scarf, "1")
    await _override(shop, room, scarf, "70.00")

    cart = await _override(shop, room, scarf, None)

    assert line_of(cart, scarf)["unitPrice"] == "90.00"
    assert line_of(await shop.add(room, scarf, "1"), scarf)["unitPrice"] == "90.00"


@pytest.mark.parametrize(
    ("list_price", "adjustment", "expected"),
    [
        ("10.05", "-50", "5.03"),  # 5.025 rounds half up
        ("1.15", "-50", "0.58"),  # 0.575, where a binary float would round down
        ("10.00", "-33.33", "6.67"),  # 6.667
        ("19.99", "12.5", "22.49"),  # 22.48875
        ("0.01", "-50", "0.01"),  # 0.005
        ("100.00", "0", "100.00"),
    ],
)
async def test_the_client_price_is_the_adjusted_list_price_rounded_half_up_to_cents(
    shop: Shop, list_price: str, adjustment: str, expected: str
) -> None:
    # SQLite is the interesting store here: it has no exact DECIMAL type.
    stock = await shop.stock(list_price=list_price)
    room = await shop.session(await shop.customer(price_adjustment=adjustment))

    assert line_of(await shop.add(room, stock, "1"), stock)["unitPrice"] == expected


# --- soft holds -------------------------------------------------------------------------------


async def test_another_sessions_cart_holds_units_so_this_session_gets_only_the_rest(
    any_db_shop: Shop,
) -> None:
    shop = any_db_shop
    stock = await shop.stock(on_hand="10")
    holder, taker = (
        await shop.session(await shop.customer()),
        await shop.session(await shop.customer()),
    )
    await shop.add(holder, stock, "6")

    failure = await refusal(shop.add(taker, stock, "4.0001"))

    assert failure.code == "PRECONDITION_FAILED"
    assert Decimal(failure.error["data"]["available"]) == Decimal("4")
    assert (await shop.cart(taker))["items"] == []
    assert Decimal(line_of(await shop.add(taker, stock, "4"), stock)["quantity"]) == 4
    assert await shop.available(stock) == Decimal("0")


async def test_fractional_holds_across_sessions_add_up_exactly(any_db_shop: Shop) -> None:
    shop = any_db_shop
    stock = await shop.stock(on_hand="1")
    rooms = [await shop.session(await shop.customer()) for _ in range(4)]
    await shop.add(rooms[0], stock, "0.1")
    await shop.add(rooms[1], stock, "0.2")  # 0.1 + 0.2 is not 0.3 in binary floating point

    assert await shop.available(stock) == Decimal("0.7")
    assert Decimal(line_of(await shop.add(rooms[2], stock, "0.7"), stock)["quantity"]) == Decimal(
        "0.7"
    )
    assert (await refusal(shop.add(rooms[3], stock, "0.0001"))).code == "PRECONDITION_FAILED"


async def test_raising_a_quantity_cannot_take_units_another_session_holds(shop: Shop) -> None:
    stock = await shop.stock(on_hand="10")
    holder, taker = (
        await shop.session(await shop.customer()),
        await shop.session(await shop.customer()),
    )
    await shop.add(holder, stock, "6")
    line = line_of(await shop.add(taker, stock, "2"), stock)

    failure = await refusal(
        shop.rpc.staff(
            "liveShopping.updateCartQuantity",
            {"sessionId": taker.id, "cartItemId": line["id"], "quantity": "5"},
        )
    )

    assert failure.code == "PRECONDITION_FAILED"
    assert Decimal(line_of(await shop.cart(taker), stock)["quantity"]) == Decimal("2")


@pytest.mark.parametrize("how", ["end", "cancel", "convert"])
async def test_a_hold_vanishes_when_its_session_closes(any_db_shop: Shop, how: str) -> None:
    shop = any_db_shop
    stock = await shop.stock(on_hand="10")
    holder, taker = (
        await shop.session(await shop.customer()),
        await shop.session(await shop.customer()),
    )
    await shop.add(holder, stock, "6")

    if how == "end":
        await shop.end(holder)
        free = Decimal("10")
    elif how == "cancel":
        await shop.rpc.staff("liveShopping.cancelSession", {"sessionId": holder.id})
        free = Decimal("10")
    else:  # converted: the hold becomes an order reservation
        await shop.end(holder, convert=True)
        free = Decimal("4")

    assert await shop.available(stock) == free
    cart = await shop.add(taker, stock, str(free))
    assert Decimal(line_of(cart, stock)["quantity"]) == free


async def test_an_order_outside_live_shopping_respects_soft_holds(any_db_shop: Shop) -> None:
    shop = any_db_shop
    stock = await shop.stock(on_hand="10")
    buyer = await shop.customer()
    await shop.add(await shop.session(await shop.customer()), stock, "6")

    failure = await refusal(shop.order(buyer, stock, "5"))

    assert failure.code == "PRECONDITION_FAILED"
    assert await shop.rpc.staff("orders.list", {}) == []
    await shop.order(buyer, stock, "4")
    assert Decimal((await shop.batch_row(stock))["reservedQty"]) == Decimal("4")


# --- who may edit, and when -------------------------------------------------------------------


def _cart_edit(edit: str, room: Room, stock: Stock, line_id: int) -> dict[str, Any]:
    """The params of one staff cart edit."""
    params: dict[str, dict[str, Any]] = {
        "addToCart": {"batchId": stock.batch_id, "quantity": "1"},
        "updateCartQuantity": {"cartItemId": line_id, "quantity": "2"},
        "removeFromCart": {"cartItemId": line_id},
        "toggleCartItemSample": {"cartItemId": line_id, "isSample": True},
        "setOverridePrice": {"productId": stock.product_id, "overridePrice": "1.00"},
        "highlightProduct": {"batchId": stock.batch_id},
    }
    return {"sessionId": room.id, **params[edit]}


CART_EDITS = [
    "addToCart",
    "updateCartQuantity",
    "removeFromCart",
    "toggleCartItemSample",
    "setOverridePrice",
    "highlightProduct",
]


@pytest.mark.parametrize("status", ["ENDED", "CANCELLED", "CONVERTED"])
async def test_the_cart_cannot_change_once_the_session_is_closed(shop: Shop, status: str) -> None:
    stock = await shop.stock(on_hand="10")
    room = await shop.session_in(status, await shop.customer(), stock)
    before = await shop.cart(room)

    for edit in CART_EDITS:
        params = _cart_edit(edit, room, stock, before["items"][0]["id"])
        failure = await refusal(shop.rpc.staff(f"liveShopping.{edit}", params))
        assert failure.code == "PRECONDITION_FAILED", edit
        assert status in failure.error["message"], edit

    assert await shop.cart(room) == before


async def _client_edits(shop: Shop, ada: Customer, room: Room, stock: Stock) -> list[str]:
    """Try add, update and remove as the client; the codes of the refusals."""
    line_id = line_of(await shop.cart(room), stock)["id"]
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("addToCart", {"batchId": stock.batch_id, "quantity": "1"}),
        ("updateCartQuantity", {"cartItemId": line_id, "quantity": "3"}),
        ("removeFromCart", {"cartItemId": line_id}),
    ]
    codes = []
    for method, params in attempts:
        call = shop.rpc.call(
            f"vipPortalLiveShopping.{method}", {"roomCode": room.code, **params}, ada.token
        )
        codes.append((await refusal(call)).code)
    return codes


async def test_the_client_may_not_edit_a_paused_session_while_the_host_may(shop: Shop) -> None:
    stock = await shop.stock(on_hand="10")
    ada = await shop.customer()
    room = await shop.session(ada)
    await shop.client_add(ada, room, stock, "1")
    await shop.set_status(room, "PAUSED")
    before = await shop.cart(room)

    assert await _client_edits(shop, ada, room, stock) == ["PRECONDITION_FAILED"] * 3
    assert await shop.cart(room) == before
    # The host's add is a line of its own: it never grows the client's line.
    cart = await shop.add(room, stock, "1")
    assert sorted((x["addedByRole"], Decimal(x["quantity"])) for x in cart["items"]) == [
        ("CLIENT", Decimal("1")),
        ("HOST", Decimal("1")),
    ]


async def test_the_client_may_not_add_before_a_scheduled_session_starts_while_the_host_may(
    shop: Shop,
) -> None:
    stock = await shop.stock(on_hand="10")
    ada = await shop.customer()
    room = await shop.session(ada, starts_in=timedelta(days=1))

    failure = await refusal(shop.client_add(ada, room, stock, "1"))

    assert failure.code == "PRECONDITION_FAILED"
    assert (await shop.cart(room))["items"] == []
    assert Decimal(line_of(await shop.add(room, stock, "1"), stock)["quantity"]) == Decimal("1")


async def test_the_client_may_change_only_the_lines_it_added(shop: Shop) -> None:
    hosts, own = await shop.stock(on_hand="10"), await shop.stock(on_hand="10")
    ada = await shop.customer()
    room = await shop.session(ada)
    host_line = line_of(await shop.add(room, hosts, "1"), hosts)
    own_line = line_of(await shop.client_add(ada, room, own, "1"), own)

    for method, params in [
        ("updateCartQuantity", {"cartItemId": host_line["id"], "quantity": "3"}),
        ("removeFromCart", {"cartItemId": host_line["id"]}),
    ]:
        failure = await refusal(
            shop.rpc.call(
                f"vipPortalLiveShopping.{method}", {"roomCode": room.code, **params}, ada.token
            )
        )
        assert failure.code == "FORBIDDEN", method
    assert Decimal(line_of(await shop.cart(room), hosts)["quantity"]) == Decimal("1")

    updated = await shop.rpc.call(
        "vipPortalLiveShopping.updateCartQuantity",
        {"roomCode": room.code, "cartItemId": own_line["id"], "quantity": "3"},
        ada.token,
    )
    assert Decimal(line_of(updated, own)["quantity"]) == Decimal("3")
    removed = await shop.rpc.call(
        "vipPortalLiveShopping.removeFromCart",
        {"roomCode": room.code, "cartItemId": own_line["id"]},
        ada.token,
    )
    assert [x["batchId"] for x in removed["items"]] == [hosts.batch_id]
