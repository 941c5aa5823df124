"""The one pricing rule: session override, else list price adjusted for the client."""

from __future__ import annotations

from decimal import Decimal

from app.domain.decimals import to_cents

HUNDRED = Decimal(100)


def client_price(list_price: Decimal, adjustment_percent: Decimal) -> Decimal:
    """List price adjusted by the client's percentage, rounded half-up to cents."""
    return to_cents(list_price * (HUNDRED + adjustment_percent) / HUNDRED)


def unit_price(
    list_price: Decimal, adjustment_percent: Decimal, override: Decimal | None
) -> Decimal:
    if override is not None:
        return to_cents(override)
    return client_price(list_price, adjustment_percent)
