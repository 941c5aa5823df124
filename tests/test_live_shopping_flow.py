"""The spec's typical session flow end to end, on SQLite and on MariaDB.

Staff creates a session, the client joins by room code, staff showcases a product, both sides
fill the cart, staff negotiates a price, credit is checked, and the session is converted into
an order with a sales sheet the client can open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from tests.factories import Shop, line_of, rpc_on


@pytest.fixture
async def shop(db_url: str) -> AsyncIterator[Shop]:
    async with rpc_on(db_url) as rpc:
        yield Shop(rpc)


class _SheetTable(HTMLParser):
    """The sales sheet's line table as {product cell: {column header: cell text}}."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: list[str] = []
        self.rows: list[list[str]] = []
        self._section = ""
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in ("thead", "tbody", "tfoot"):
            self._section = tag
        elif tag == "tr" and self._section == "tbody":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            if self._section == "thead":
                self.headers.append(text)
            elif self._section == "tbody":
                self.rows[-1].append(text)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def lines(self) -> dict[str, dict[str, str]]:
        return {row[0]: dict(zip(self.headers, row, strict=True)) for row in self.rows}


def sheet_lines(html: str) -> dict[str, dict[str, str]]:
    table = _SheetTable()
    table.feed(html)
    return table.lines()


async def test_a_session_runs_from_creation_to_an_order_with_a_sales_sheet(shop: Shop) -> None:
    rpc = shop.rpc
    scarf = await shop.stock(name="Silk Scarf", list_price="100.00", on_hand="10")
    wrap = await shop.stock(name="Cashmere Wrap", list_price="50.00", on_hand="10")
    ada = await shop.customer(credit_limit="1000.00", price_adjustment="-10")

    # 1. Staff creates the session for the client.
    created = await rpc.staff(
        "liveShopping.createSession",
        {"clientId": ada.id, "title": "Autumn preview", "internalNotes": "push the wraps"},
    )
    room_id, room_code = created["sessionId"], created["roomCode"]

    # 2. The client joins by room code and sees its session, without staff-only fields.
    joined = await rpc.call(
        "vipPortalLiveShopping.getSessionByRoomCode", {"roomCode": room_code}, ada.token
    )
    assert joined["session"]["id"] == room_id
    assert joined["session"]["status"] == "ACTIVE"
    assert "internalNotes" not in joined["session"]
    assert joined["cart"]["items"] == []

    # 3. Staff showcases the scarf; the client sees the highlight.
    await rpc.staff(
        "liveShopping.highlightProduct", {"sessionId": room_id, "batchId": scarf.batch_id}
    )
    seen = await rpc.call(
        "vipPortalLiveShopping.getSessionByRoomCode", {"roomCode": room_code}, ada.token
    )
    assert seen["session"]["highlight"]["batchId"] == scarf.batch_id

    # 4. Both sides add to the shared cart, at the client's price (list -10%).
    cart = await rpc.staff(
        "liveShopping.addToCart", {"sessionId": room_id, "batchId": scarf.batch_id, "quantity": "2"}
    )
    assert line_of(cart, scarf)["unitPrice"] == "90.00"
    assert line_of(cart, scarf)["isHighlighted"] is True
    client_cart = await rpc.call(
        "vipPortalLiveShopping.addToCart",
        {"roomCode": room_code, "batchId": wrap.batch_id, "quantity": "1.5"},
        ada.token,
    )
    assert {x["addedByRole"] for x in client_cart["items"]} == {"HOST", "CLIENT"}
    assert all("unitCogs" not in x for x in client_cart["items"])

    # 5. Staff negotiates the scarf down; only the scarf's line is re-priced.
    cart = await rpc.staff(
        "liveShopping.setOverridePrice",
        {"sessionId": room_id, "productId": scarf.product_id, "overridePrice": "80.00"},
    )
    assert line_of(cart, scarf)["unitPrice"] == "80.00"
    assert line_of(cart, wrap)["unitPrice"] == "45.00"
    assert Decimal(cart["subtotal"]) == Decimal("227.50")  # 2 x 80.00 + 1.5 x 45.00

    # 6. Credit check: well within the limit.
    credit = await rpc.staff("liveShopping.checkCreditStatus", {"sessionId": room_id})
    assert credit["level"] == "OK"
    assert Decimal(credit["exposure"]) == Decimal("227.50")

    # 7. The session ends converted into an order, with a sales sheet.
    ended = await rpc.staff(
        "liveShopping.endSession",
        {
            "sessionId": room_id,
            "convertToOrder": True,
            "generateSalesSheet": True,
            "paymentTerms": "NET30",
        },
    )
    assert ended["status"] == "CONVERTED"

    # The order exists, linked to the session, with the cart's lines at the session prices.
    order = await rpc.staff("orders.get", {"orderId": ended["orderId"]})
    assert order["sessionId"] == room_id
    assert order["clientId"] == ada.id
    assert order["paymentTerms"] == "NET30"
    assert Decimal(order["total"]) == Decimal("227.50")
    assert sorted(
        (x["batchId"], Decimal(x["quantity"]), Decimal(x["unitPrice"])) for x in order["lines"]
    ) == sorted(
        [
            (scarf.batch_id, Decimal("2"), Decimal("80.00")),
            (wrap.batch_id, Decimal("1.5"), Decimal("45.00")),
        ]
    )

    # Inventory is reserved by the order (and no longer double-counted as a cart hold).
    assert Decimal((await shop.batch_row(scarf))["reservedQty"]) == Decimal("2")
    assert Decimal((await shop.batch_row(wrap))["reservedQty"]) == Decimal("1.5")
    assert await shop.available(scarf) == Decimal("8")
    assert await shop.available(wrap) == Decimal("8.5")

    # The session is CONVERTED and points at its order.
    session = (await rpc.staff("liveShopping.getSession", {"sessionId": room_id}))["session"]
    assert session["status"] == "CONVERTED"
    assert session["orderId"] == ended["orderId"]

    # 8. The sales sheet at its share link shows list price, session price and discount.
    page = await rpc.http.get(urlsplit(ended["shareUrl"]).path)
    assert page.status_code == 200
    lines = sheet_lines(page.text)
    scarf_line = next(v for k, v in lines.items() if k.startswith("Silk Scarf"))
    wrap_line = next(v for k, v in lines.items() if k.startswith("Cashmere Wrap"))
    assert scarf_line["List price"] == "100.00"
    assert scarf_line["Your price"] == "80.00"
    assert scarf_line["Discount / unit"] == "20.00 (20.00%)"
    assert wrap_line["List price"] == "50.00"
    assert wrap_line["Your price"] == "45.00"
    assert wrap_line["Discount / unit"] == "5.00 (10.00%)"


async def test_the_sales_sheet_rounds_the_discount_percent_half_up(shop: Shop) -> None:
    rpc = shop.rpc
    belt = await shop.stock(name="Belt", list_price="40.00")
    room = await shop.session(await shop.customer())
    await shop.add(room, belt, "1")
    await rpc.staff(  # 0.01 off 40.00 is 0.025%: half-up gives 0.03, half-even would give 0.02
        "liveShopping.setOverridePrice",
        {"sessionId": room.id, "productId": belt.product_id, "overridePrice": "39.99"},
    )
    sheet = await rpc.staff("liveShopping.generateSalesSheet", {"sessionId": room.id})

    page = await rpc.http.get(urlsplit(sheet["shareUrl"]).path)

    (line,) = sheet_lines(page.text).values()
    assert line["Discount / unit"] == "0.01 (0.03%)"
