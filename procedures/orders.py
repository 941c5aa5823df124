"""`orders.*`: orders outside live shopping; they respect live sessions' soft holds."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import msgspec

from app.db.models import Order, OrderStatus, PaymentStatus
from app.domain import orders
from app.domain.actors import STAFF_ROLES
from app.rpc.context import CallContext
from app.rpc.paging import Limit, Offset
from app.rpc.registry import Input, Namespace, Output
from app.rpc.types import Id, MoneyIn, QuantityIn

ns = Namespace("orders")


class OrderLineIn(Input):
    batch_id: Id
    quantity: QuantityIn
    unit_price: MoneyIn | None = None


class CreateOrder(Input):
    client_id: Id
    lines: Annotated[list[OrderLineIn], msgspec.Meta(min_length=1, max_length=500)]
    payment_terms: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class GetOrder(Input):
    order_id: Id


class ListOrders(Input):
    client_id: Id | None = None
    limit: Limit = 50
    offset: Offset = 0


class CreatedOrder(Output):
    order_id: int


class OrderLineView(Output):
    id: int
    batch_id: int
    product_id: int
    quantity: Decimal
    unit_price: Decimal
    list_price: Decimal
    is_sample: bool
    line_total: Decimal


class OrderView(Output):
    id: int
    client_id: int
    session_id: int | None
    status: OrderStatus
    payment_status: PaymentStatus
    payment_terms: str | None
    total: Decimal
    created_at: datetime
    lines: list[OrderLineView]

    @classmethod
    def of(cls, o: Order) -> OrderView:
        return cls(
            id=o.id,
            client_id=o.client_id,
            session_id=o.session_id,
            status=o.status,
            payment_status=o.payment_status,
            payment_terms=o.payment_terms,
            total=o.total,
            created_at=o.created_at,
            lines=[
                OrderLineView(
                    id=line.id,
                    batch_id=line.batch_id,
                    product_id=line.product_id,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    list_price=line.list_price,
                    is_sample=line.is_sample,
                    line_total=line.line_total,
                )
                for line in o.lines
            ],
        )


@ns.mutation("create", roles=STAFF_ROLES)
async def create_order(ctx: CallContext, params: CreateOrder) -> CreatedOrder:
    """Create an order; refused whole if any batch lacks net availability."""
    order = await orders.create_order(
        ctx.db,
        ctx.actor,
        client_id=params.client_id,
        lines=[
            orders.LineRequest(batch_id=x.batch_id, quantity=x.quantity, unit_price=x.unit_price)
            for x in params.lines
        ],
        payment_terms=params.payment_terms,
    )
    return CreatedOrder(order_id=order.id)


@ns.query("get", roles=STAFF_ROLES)
async def get_order(ctx: CallContext, params: GetOrder) -> OrderView:
    """One order with its lines."""
    return OrderView.of(await orders.get_order(ctx.db, params.order_id))


@ns.query("list", roles=STAFF_ROLES)
async def list_orders(ctx: CallContext, params: ListOrders) -> list[OrderView]:
    """Orders, newest first, optionally for one client."""
    rows = await orders.list_orders(
        ctx.db, client_id=params.client_id, limit=params.limit, offset=params.offset
    )
    return [OrderView.of(o) for o in rows]
