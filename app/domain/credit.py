"""Client credit: exposure from open unpaid orders plus the session cart while it is open."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LiveSession, Order, OrderStatus, PaymentStatus
from app.domain.cart import cart_total
from app.domain.clients import get_client
from app.domain.status import OPEN_STATUSES

WARNING_AT = Decimal("0.80")
ZERO = Decimal("0.00")


class CreditLevel(StrEnum):
    OK = "OK"
    WARNING = "WARNING"
    EXCEEDED = "EXCEEDED"


@dataclass(frozen=True, slots=True)
class CreditStatus:
    credit_limit: Decimal | None  # None: unlimited
    open_orders: Decimal
    cart_total: Decimal
    exposure: Decimal
    available: Decimal | None
    utilization: Decimal | None  # fraction, e.g. 0.8125
    level: CreditLevel


async def open_unpaid_total(db: AsyncSession, client_id: int) -> Decimal:
    total = await db.scalar(
        select(func.coalesce(func.sum(Order.total), 0)).where(
            Order.client_id == client_id,
            Order.status == OrderStatus.OPEN,
            Order.payment_status == PaymentStatus.UNPAID,
        )
    )
    return Decimal(total or 0).quantize(Decimal("0.01"))


def assess(limit: Decimal | None, open_orders: Decimal, cart: Decimal) -> CreditStatus:
    exposure = open_orders + cart
    if limit is None:
        return CreditStatus(None, open_orders, cart, exposure, None, None, CreditLevel.OK)
    if limit == 0:
        utilization = Decimal(0) if exposure == 0 else Decimal("Infinity")
    else:
        utilization = (exposure / limit).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    if exposure > limit:
        level = CreditLevel.EXCEEDED
    elif limit > 0 and exposure >= limit * WARNING_AT:
        level = CreditLevel.WARNING
    else:
        level = CreditLevel.OK
    finite = utilization if utilization.is_finite() else None
    return CreditStatus(limit, open_orders, cart, exposure, limit - exposure, finite, level)


async def credit_status(db: AsyncSession, live: LiveSession) -> CreditStatus:
    """The client's credit as it stands, this session's cart counted only while it is open.

    Once converted the cart is the order it became, already among the open orders, so it
    never counts twice. An ENDED draft holds no inventory and commits the client to nothing:
    it is no exposure until it converts (conversion weighs it, see credit_if_converted).
    CANCELLED carts count for nothing.
    """
    cart = await cart_total(db, live.id) if live.status in OPEN_STATUSES else ZERO
    return await _status_with_cart(db, live.client_id, cart)


async def credit_if_converted(db: AsyncSession, live: LiveSession) -> CreditStatus:
    """The client's credit if this cart became an order now (an ENDED draft's too)."""
    return await _status_with_cart(db, live.client_id, await cart_total(db, live.id))


async def _status_with_cart(db: AsyncSession, client_id: int, cart: Decimal) -> CreditStatus:
    client = await get_client(db, client_id)
    return assess(client.credit_limit, await open_unpaid_total(db, client.id), cart)
