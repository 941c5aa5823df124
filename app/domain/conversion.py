"""Ending a session, and converting its cart into an order in one transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LiveSession, Order, SalesSheet, SessionCartItem, SessionStatus
from app.domain.actors import Actor
from app.domain.credit import CreditLevel, credit_if_converted
from app.domain.errors import Conflict, Forbidden, PreconditionFailed
from app.domain.orders import LineRequest, create_order
from app.domain.sales_sheets import generate_sales_sheet
from app.domain.sessions import change_status
from app.domain.status import check_transition


@dataclass(frozen=True, slots=True)
class Conversion:
    order: Order
    sales_sheet: SalesSheet | None
    previous_status: SessionStatus


async def convert_session_to_order(
    db: AsyncSession,
    actor: Actor,
    live: LiveSession,
    *,
    bypass_credit_check: bool,
    payment_terms: str | None,
    with_sales_sheet: bool,
    base_url: str,
) -> Conversion:
    """Lock held by the caller on the session row; every line is re-validated here.

    A second conversion finds the session CONVERTED (it waited on the lock) and is refused
    with the existing order id; the unique orders.session_id is the last line of defence.
    """
    if live.status is SessionStatus.CONVERTED:
        existing = await db.scalar(select(Order.id).where(Order.session_id == live.id))
        raise Conflict(f"Session {live.id} was already converted", orderId=existing)
    check_transition(live.status, SessionStatus.CONVERTED)
    if bypass_credit_check and not actor.is_admin:
        raise Forbidden("Only an ADMIN may bypass the credit check")

    items = (
        await db.scalars(
            select(SessionCartItem)
            .where(SessionCartItem.session_id == live.id)
            .order_by(SessionCartItem.id)
        )
    ).all()
    if not items:
        raise PreconditionFailed(f"Session {live.id} has an empty cart; nothing to convert")
    if not bypass_credit_check:
        status = await credit_if_converted(db, live)
        if status.level is CreditLevel.EXCEEDED:
            raise PreconditionFailed(
                f"Credit limit exceeded: exposure {status.exposure} "
                f"over limit {status.credit_limit}",
                creditLevel=status.level.value,
            )
    order = await create_order(
        db,
        actor,
        client_id=live.client_id,
        session_id=live.id,
        payment_terms=payment_terms,
        lines=[
            LineRequest(
                batch_id=item.batch_id,
                quantity=item.quantity,
                unit_price=item.unit_price,
                is_sample=item.is_sample,
            )
            for item in items
        ],
    )
    previous_status = live.status
    change_status(live, SessionStatus.CONVERTED)
    sheet = (
        await generate_sales_sheet(db, actor, live, base_url=base_url) if with_sales_sheet else None
    )
    return Conversion(order=order, sales_sheet=sheet, previous_status=previous_status)
