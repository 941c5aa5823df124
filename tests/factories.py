"""Builds the test world through the public RPC API: stock, clients and live sessions.

`Shop` wraps an `Rpc` client so a test states its world in a few lines
(`stock = await shop.stock(on_hand="5")`, `room = await shop.session(client)`), then calls the
procedure under test by name. Nothing here touches the database behind the API's back except
`outbox_events`, which reads the outbox rows a test asserts on.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from app.auth import TokenService
from app.db.engine import Database
from app.db.models import SessionEvent
from app.server import create_app
from tests.conftest import Rpc, RpcFailure, Tokens, make_settings

_serial = itertools.count(1)

STATUSES = ("SCHEDULED", "ACTIVE", "PAUSED", "ENDED", "CONVERTED", "CANCELLED")


@asynccontextmanager
async def rpc_on(database_url: str, **env: str) -> AsyncIterator[Rpc]:
    """A running app on that database (extra settings from env) and an RPC client for it."""
    settings = make_settings(database_url, **env)
    async with AsyncTestClient(app=create_app(settings)) as http:
        yield Rpc(http, Tokens(TokenService(settings)))


async def refusal(call: Awaitable[Any]) -> RpcFailure:
    """Await a call that must fail and return its error."""
    with pytest.raises(RpcFailure) as failure:
        await call
    return failure.value


@dataclass(frozen=True)
class Stock:
    """A product with one inventory batch of it."""

    product_id: int
    batch_id: int
    code: str


@dataclass(frozen=True)
class Customer:
    """A VIP client and a CLIENT token for it."""

    id: int
    token: str


@dataclass(frozen=True)
class Room:
    """A live session as staff (id) and client (room code) address it."""

    id: int
    code: str


class Shop:
    """The staff host (STAFF, sub 2) running sessions over one app, plus an ADMIN for stock."""

    def __init__(self, rpc: Rpc) -> None:
        self.rpc = rpc

    # --- catalog and clients ---------------------------------------------------------------

    async def stock(
        self,
        *,
        list_price: str = "100.00",
        on_hand: str = "10",
        unit_cogs: str = "40.00",
        name: str = "Silk Scarf",
    ) -> Stock:
        n = next(_serial)
        product = await self.rpc.admin(
            "catalog.createProduct", {"name": name, "sku": f"SKU-{n:05d}", "listPrice": list_price}
        )
        return await self.batch_of(product["id"], on_hand=on_hand, unit_cogs=unit_cogs)

    async def batch_of(self, product_id: int, *, on_hand: str, unit_cogs: str = "40.00") -> Stock:
        code = f"B-{next(_serial):05d}"
        batch = await self.rpc.admin(
            "catalog.createBatch",
            {"productId": product_id, "code": code, "onHandQty": on_hand, "unitCogs": unit_cogs},
        )
        return Stock(product_id, batch["id"], code)

    async def customer(
        self, *, credit_limit: str | None = None, price_adjustment: str = "0"
    ) -> Customer:
        created = await self.rpc.staff(
            "clients.create",
            {
                "name": f"Client {next(_serial)}",
                "creditLimit": credit_limit,
                "priceAdjustmentPercent": price_adjustment,
            },
        )
        return Customer(created["id"], self.rpc.tokens.client(created["id"]))

    async def available(self, stock: Stock) -> Decimal:
        """Net availability as staff see it in searchInventory."""
        rows = await self.rpc.staff("liveShopping.searchInventory", {"query": stock.code})
        (row,) = [r for r in rows if r["batchId"] == stock.batch_id]
        return Decimal(row["available"])

    async def batch_row(self, stock: Stock) -> dict[str, Any]:
        rows = await self.rpc.admin("catalog.listBatches", {"productId": stock.product_id})
        matching: list[dict[str, Any]] = [r for r in rows if r["id"] == stock.batch_id]
        (row,) = matching
        return row

    async def order(self, customer: Customer, stock: Stock, quantity: str) -> int:
        created = await self.rpc.staff(
            "orders.create",
            {"clientId": customer.id, "lines": [{"batchId": stock.batch_id, "quantity": quantity}]},
        )
        return int(created["orderId"])

    # --- sessions --------------------------------------------------------------------------

    async def session(
        self,
        customer: Customer,
        *,
        starts_in: timedelta | None = None,
        title: str | None = None,
        internal_notes: str | None = None,
    ) -> Room:
        params: dict[str, Any] = {"clientId": customer.id}
        if starts_in is not None:
            params["scheduledAt"] = (datetime.now(UTC) + starts_in).isoformat()
        if title is not None:
            params["title"] = title
        if internal_notes is not None:
            params["internalNotes"] = internal_notes
        created = await self.rpc.staff("liveShopping.createSession", params)
        return Room(created["sessionId"], created["roomCode"])

    async def session_in(self, status: str, customer: Customer, stock: Stock) -> Room:
        """A session brought to `status` by the public procedures; it holds 1 unit of stock."""
        if status == "SCHEDULED":
            room = await self.session(customer, starts_in=timedelta(days=1))
            await self.add(room, stock, "1")
            return room
        room = await self.session(customer)
        await self.add(room, stock, "1")
        if status == "PAUSED":
            await self.set_status(room, "PAUSED")
        elif status == "ENDED":
            await self.end(room)
        elif status == "CANCELLED":
            await self.set_status(room, "CANCELLED")
        elif status == "CONVERTED":
            await self.end(room, convert=True)
        return room

    async def set_status(self, room: Room, status: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.rpc.staff(
            "liveShopping.updateSessionStatus", {"sessionId": room.id, "status": status}
        )
        return result

    async def end(self, room: Room, *, convert: bool = False, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.rpc.staff(
            "liveShopping.endSession", {"sessionId": room.id, "convertToOrder": convert, **params}
        )
        return result

    async def get(self, room: Room) -> dict[str, Any]:
        result: dict[str, Any] = await self.rpc.staff(
            "liveShopping.getSession", {"sessionId": room.id}
        )
        return result

    async def status(self, room: Room) -> str:
        return str((await self.get(room))["session"]["status"])

    async def cart(self, room: Room) -> dict[str, Any]:
        cart: dict[str, Any] = (await self.get(room))["cart"]
        return cart

    async def add(
        self, room: Room, stock: Stock, quantity: str, *, sample: bool = False
    ) -> dict[str, Any]:
        """The host adds to the cart."""
        cart: dict[str, Any] = await self.rpc.staff(
            "liveShopping.addToCart",
            {
                "sessionId": room.id,
                "batchId": stock.batch_id,
                "quantity": quantity,
                "isSample": sample,
            },
        )
        return cart

    async def client_add(
        self, customer: Customer, room: Room, stock: Stock, quantity: str
    ) -> dict[str, Any]:
        """The client adds to the cart from the VIP portal."""
        cart: dict[str, Any] = await self.rpc.call(
            "vipPortalLiveShopping.addToCart",
            {"roomCode": room.code, "batchId": stock.batch_id, "quantity": quantity},
            customer.token,
        )
        return cart

    async def client_view(self, customer: Customer, room: Room) -> dict[str, Any]:
        """The room as the client sees it: {session, cart}."""
        result: dict[str, Any] = await self.rpc.call(
            "vipPortalLiveShopping.getSessionByRoomCode", {"roomCode": room.code}, customer.token
        )
        return result

    async def request_checkout(self, customer: Customer, room: Room) -> str:
        """The client asks to check out; returns requestedAt."""
        result = await self.rpc.call(
            "vipPortalLiveShopping.requestCheckout", {"roomCode": room.code}, customer.token
        )
        return str(result["requestedAt"])

    async def respond_to_checkout(
        self, room: Room, *, accept: bool, message: str | None = None
    ) -> dict[str, Any]:
        """The host answers the pending checkout request; returns the session view."""
        params: dict[str, Any] = {"sessionId": room.id, "accept": accept}
        if message is not None:
            params["message"] = message
        result = await self.rpc.staff("liveShopping.respondToCheckout", params)
        session: dict[str, Any] = result["session"]
        return session

    async def update(self, room: Room, **fields: Any) -> dict[str, Any]:
        """updateSession with these fields (camelCase); returns the session view."""
        result = await self.rpc.staff(
            "liveShopping.updateSession", {"sessionId": room.id, **fields}
        )
        session: dict[str, Any] = result["session"]
        return session

    async def extend_holds(self, room: Room, minutes: int) -> dict[str, Any]:
        """The host extends the holds; returns the session view."""
        result = await self.rpc.staff(
            "liveShopping.extendHolds", {"sessionId": room.id, "minutes": minutes}
        )
        session: dict[str, Any] = result["session"]
        return session

    async def timeline(self, room: Room, **paging: Any) -> dict[str, Any]:
        """The staff timeline: {entries, nextCursor}."""
        result: dict[str, Any] = await self.rpc.staff(
            "liveShopping.getTimeline", {"sessionId": room.id, **paging}
        )
        return result

    async def client_timeline(
        self, customer: Customer, room: Room, **paging: Any
    ) -> dict[str, Any]:
        """The client's projection of the timeline: {entries, nextCursor}."""
        result: dict[str, Any] = await self.rpc.call(
            "vipPortalLiveShopping.getTimeline", {"roomCode": room.code, **paging}, customer.token
        )
        return result


def line_of(cart: dict[str, Any], stock: Stock) -> dict[str, Any]:
    """The one cart line of that batch."""
    lines: list[dict[str, Any]] = [x for x in cart["items"] if x["batchId"] == stock.batch_id]
    (line,) = lines
    return line


def at(value: str) -> datetime:
    """An RFC 3339 time from the wire as an aware datetime."""
    return datetime.fromisoformat(value)


@dataclass(frozen=True)
class Event:
    seq: int
    type: str
    payload: dict[str, Any]


async def outbox_events(database_url: str, session_id: int) -> list[Event]:
    """The outbox rows of one session, in sequence order, read straight from the database."""
    db = Database(database_url)
    try:
        async with db.read_sessions() as s:
            rows = (
                await s.scalars(
                    select(SessionEvent)
                    .where(SessionEvent.session_id == session_id)
                    .order_by(SessionEvent.seq)
                )
            ).all()
            return [Event(r.seq, r.type, r.payload) for r in rows]
    finally:
        await db.dispose()
