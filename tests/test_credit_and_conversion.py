"""Client credit (exposure = open unpaid orders + this cart) and converting a cart to an order.

Conversion is one transaction: re-validate inventory, check credit (an ADMIN may bypass),
create the order linked to the session, reserve stock, mark the session CONVERTED. Repeating
it answers CONFLICT with the first order's id; a refused conversion changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import Rpc
from tests.factories import Customer, Room, Shop, Stock, refusal, rpc_on


@pytest.fixture
def shop(rpc: Rpc) -> Shop:
    return Shop(rpc)


@pytest.fixture
async def any_db_shop(db_url: str) -> AsyncIterator[Shop]:
    async with rpc_on(db_url) as rpc:
        yield Shop(rpc)


async def _credit(shop: Shop, room: Room) -> dict[str, Any]:
    status: dict[str, Any] = await shop.rpc.staff(
        "liveShopping.checkCreditStatus", {"sessionId": room.id}
    )
    return status


async def _orders(shop: Shop) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = await shop.rpc.staff("orders.list", {})
    return orders


async def _world(shop: Shop, *, credit_limit: str | None) -> tuple[Stock, Customer, Room]:
    """A 100.00 product with 100 on hand, a client with that limit, and an open session."""
    stock = await shop.stock(list_price="100.00", on_hand="100")
    customer = await shop.customer(credit_limit=credit_limit)
    return stock, customer, await shop.session(customer)


# --- credit status ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "level"),
    [("7.99", "OK"), ("8", "WARNING"), ("10", "WARNING"), ("10.01", "EXCEEDED")],
)
async def test_the_credit_level_is_warning_from_80_percent_and_exceeded_over_the_limit(
    shop: Shop, quantity: str, level: str
) -> None:
    stock, _, room = await _world(shop, credit_limit="1000.00")
    await shop.add(room, stock, quantity)

    credit = await _credit(shop, room)

    exposure = Decimal(quantity) * 100
    assert credit["level"] == level
    assert Decimal(credit["creditLimit"]) == Decimal("1000")
    assert Decimal(credit["exposure"]) == exposure
    assert Decimal(credit["cartTotal"]) == exposure
    assert Decimal(credit["available"]) == Decimal("1000") - exposure
    assert Decimal(credit["utilization"]) == exposure / 1000


async def test_exposure_is_open_unpaid_orders_plus_the_cart_without_samples(shop: Shop) -> None:
    stock, customer, room = await _world(shop, credit_limit="1000.00")
    giveaway = await shop.stock(list_price="500.00", on_hand="10")
    await shop.order(customer, stock, "5")
    await shop.add(room, stock, "3")
    await shop.add(room, giveaway, "4", sample=True)

    credit = await _credit(shop, room)

    assert Decimal(credit["openOrders"]) == Decimal("500.00")
    assert Decimal(credit["cartTotal"]) == Decimal("300.00")
    assert Decimal(credit["exposure"]) == Decimal("800.00")
    assert credit["level"] == "WARNING"

    await shop.add(room, stock, "2.01")
    assert (await _credit(shop, room))["level"] == "EXCEEDED"


async def test_other_clients_orders_do_not_count_towards_exposure(shop: Shop) -> None:
    stock, _, room = await _world(shop, credit_limit="1000.00")
    await shop.order(await shop.customer(), stock, "50")

    credit = await _credit(shop, room)

    assert Decimal(credit["openOrders"]) == Decimal("0")
    assert credit["level"] == "OK"


async def test_a_client_without_a_limit_is_always_ok(shop: Shop) -> None:
    stock, customer, room = await _world(shop, credit_limit=None)
    await shop.order(customer, stock, "40")
    await shop.add(room, stock, "60")

    credit = await _credit(shop, room)

    assert credit["level"] == "OK"
    assert credit["creditLimit"] is None
    assert credit["available"] is None
    assert Decimal(credit["exposure"]) == Decimal("10000.00")


# --- conversion and credit --------------------------------------------------------------------


async def test_conversion_is_refused_while_credit_is_exceeded_and_changes_nothing(
    shop: Shop,
) -> None:
    stock, _, room = await _world(shop, credit_limit="1000.00")
    await shop.add(room, stock, "11")

    failure = await refusal(shop.end(room, convert=True))

    assert failure.code == "PRECONDITION_FAILED"
    assert await shop.status(room) == "ACTIVE"
    assert await _orders(shop) == []
    assert Decimal((await shop.batch_row(stock))["reservedQty"]) == 0


async def test_an_admin_may_bypass_the_credit_check(shop: Shop) -> None:
    stock, _, room = await _world(shop, credit_limit="1000.00")
    await shop.add(room, stock, "11")

    ended = await shop.rpc.admin(
        "liveShopping.endSession",
        {"sessionId": room.id, "convertToOrder": True, "bypassCreditCheck": True},
    )

    assert ended["status"] == "CONVERTED"
    order = await shop.rpc.staff("orders.get", {"orderId": ended["orderId"]})
    assert Decimal(order["total"]) == Decimal("1100.00")


async def test_staff_may_not_bypass_the_credit_check(shop: Shop) -> None:
    stock, _, room = await _world(shop, credit_limit="1000.00")
    await shop.add(room, stock, "11")

    failure = await refusal(shop.end(room, convert=True, bypassCreditCheck=True))

    assert failure.code == "FORBIDDEN"
    assert await shop.status(room) == "ACTIVE"
    assert await _orders(shop) == []


# --- conversion -------------------------------------------------------------------------------


async def test_samples_go_on_the_order_unbilled(shop: Shop) -> None:
    stock, _, room = await _world(shop, credit_limit=None)
    giveaway = await shop.stock(list_price="500.00", on_hand="10")
    await shop.add(room, stock, "2")
    await shop.add(room, giveaway, "1", sample=True)

    order = await shop.rpc.staff(
        "orders.get", {"orderId": (await shop.end(room, convert=True))["orderId"]}
    )

    assert Decimal(order["total"]) == Decimal("200.00")
    sample = next(x for x in order["lines"] if x["batchId"] == giveaway.batch_id)
    assert sample["isSample"] is True
    assert Decimal(sample["lineTotal"]) == 0
    assert Decimal((await shop.batch_row(giveaway))["reservedQty"]) == 1


async def test_converting_twice_answers_conflict_with_the_first_order_id(shop: Shop) -> None:
    stock, _, room = await _world(shop, credit_limit=None)
    await shop.add(room, stock, "2")
    first = await shop.end(room, convert=True)

    failure = await refusal(shop.end(room, convert=True))

    assert failure.code == "CONFLICT"
    assert failure.error["data"]["orderId"] == first["orderId"]
    assert [o["id"] for o in await _orders(shop)] == [first["orderId"]]
    assert Decimal((await shop.batch_row(stock))["reservedQty"]) == 2


async def test_an_empty_cart_cannot_be_converted(shop: Shop) -> None:
    _, _, room = await _world(shop, credit_limit=None)

    failure = await refusal(shop.end(room, convert=True))

    assert failure.code == "PRECONDITION_FAILED"
    assert await shop.status(room) == "ACTIVE"
    assert await _orders(shop) == []


async def test_an_ended_session_keeps_its_cart_as_a_draft_that_converts_later(
    any_db_shop: Shop,
) -> None:
    shop = any_db_shop
    stock, _, room = await _world(shop, credit_limit=None)
    await shop.add(room, stock, "6")

    ended = await shop.end(room)

    assert ended["status"] == "ENDED"
    assert "orderId" not in ended
    assert Decimal((await shop.cart(room))["items"][0]["quantity"]) == 6
    assert await shop.available(stock) == 100  # a draft holds nothing

    converted = await shop.end(room, convert=True)

    assert converted["status"] == "CONVERTED"
    order = await shop.rpc.staff("orders.get", {"orderId": converted["orderId"]})
    assert order["sessionId"] == room.id
    assert [(x["batchId"], Decimal(x["quantity"])) for x in order["lines"]] == [
        (stock.batch_id, Decimal(6))
    ]
    assert await shop.available(stock) == 94


async def test_converting_a_draft_rechecks_inventory_and_changes_nothing_when_short(
    any_db_shop: Shop,
) -> None:
    shop = any_db_shop
    stock = await shop.stock(on_hand="10")
    room = await shop.session(await shop.customer())
    await shop.add(room, stock, "6")
    await shop.end(room)
    other_order = await shop.order(await shop.customer(), stock, "5")  # the draft held nothing

    failure = await refusal(shop.end(room, convert=True))

    assert failure.code == "PRECONDITION_FAILED"
    assert Decimal(failure.error["data"]["available"]) == 5
    assert await shop.status(room) == "ENDED"
    assert [o["id"] for o in await _orders(shop)] == [other_order]
    assert Decimal((await shop.batch_row(stock))["reservedQty"]) == 5
    assert Decimal((await shop.cart(room))["items"][0]["quantity"]) == 6
