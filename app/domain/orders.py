"""Orders: created here directly or by converting a live session; both respect soft holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.db.models import Batch, Order, OrderLine, Product
from app.domain.actors import Actor
from app.domain.clients import get_client
from app.domain.decimals import recordable_money, to_cents
from app.domain.errors import NotFound
from app.domain.holds import net_available, require_available
from app.domain.pricing import line_subtotal, unit_price


@dataclass(frozen=True, slots=True)
class LineRequest:
    batch_id: int
    quantity: Decimal
    unit_price: Decimal | None = None
    is_sample: bool = False


async def create_order(
    session: AsyncSession,
    actor: Actor,
    *,
    client_id: int,
    lines: Sequence[LineRequest],
    session_id: int | None = None,
    payment_terms: str | None = None,
) -> Order:
    """Reserve inventory and record the order, refusing it whole if any batch is short.

    `session_id` is the live session being converted: its own cart is not a hold against it.
    """
    client = await get_client(session, client_id)
    wanted: dict[int, Decimal] = {}
    for line in lines:
        wanted[line.batch_id] = wanted.get(line.batch_id, Decimal(0)) + line.quantity
    available = await net_available(session, wanted, exclude_session_id=session_id)
    require_available(wanted, available)

    batches = await _batches_with_products(session, wanted)
    order = Order(
        client_id=client.id,
        session_id=session_id,
        payment_terms=payment_terms,
        created_by_user_id=actor.user_id,
        total=Decimal(0),
    )
    total = Decimal(0)
    for line in lines:
        batch, product = batches[line.batch_id]
        price = (
            to_cents(line.unit_price)
            if line.unit_price is not None
            else unit_price(product.list_price, client.price_adjustment_percent, None)
        )
        line_total = line_subtotal(line.quantity, price, is_sample=line.is_sample)
        # Checked before anything is reserved: an order the database cannot store is refused
        # whole (on MariaDB it would fail at flush, on SQLite be stored out of range).
        recordable_money(line_total, f"The total of the line for batch {batch.id}")
        total = recordable_money(total + line_total, "The order total")
        order.lines.append(
            OrderLine(
                batch_id=batch.id,
                product_id=product.id,
                quantity=line.quantity,
                unit_price=price,
                list_price=product.list_price,
                is_sample=line.is_sample,
                line_total=line_total,
            )
        )
    for batch_id, quantity in wanted.items():
        batches[batch_id][0].reserved_qty += quantity
    order.total = total
    session.add(order)
    await session.flush()
    return order


async def _batches_with_products(
    session: AsyncSession, batch_ids: dict[int, Decimal]
) -> dict[int, tuple[Batch, Product]]:
    rows = await session.execute(
        select(Batch, Product).join(Product).where(Batch.id.in_(list(batch_ids)))
    )
    return {batch.id: (batch, product) for batch, product in rows.all()}


async def get_order(session: AsyncSession, order_id: int) -> Order:
    order = await session.scalar(
        select(Order).where(Order.id == order_id).options(selectinload(Order.lines))
    )
    if order is None:
        raise NotFound("Order", order_id)
    return order


async def list_orders(
    session: AsyncSession, *, client_id: int | None, limit: int, offset: int
) -> Sequence[Order]:
    stmt = (
        select(Order)
        .options(selectinload(Order.lines))
        .order_by(Order.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if client_id is not None:
        stmt = stmt.where(Order.client_id == client_id)
    return (await session.scalars(stmt)).all()
