"""The one pricing rule: session override, else list price adjusted for the client."""

from __future__ import annotations

from decimal import Decimal

from app.domain.decimals import recordable_money, to_cents

HUNDRED = Decimal(100)


def client_price(list_price: Decimal, adjustment_percent: Decimal) -> Decimal:
    """List price adjusted by the client's percentage, rounded half-up to cents."""
    adjusted = to_cents(list_price * (HUNDRED + adjustment_percent) / HUNDRED)
    # A markup can lift a list price near the maximum past what a price column holds.
    return recordable_money(adjusted, "The price after the client's adjustment")


def line_subtotal(quantity: Decimal, price: Decimal, *, is_sample: bool) -> Decimal:
    """What a line bills: quantity x price in cents, and nothing for a sample.

    Samples hold inventory but are never billed, so line subtotals add up to the cart
    subtotal, the order total and the sales sheet total everywhere.
    """
    return Decimal("0.00") if is_sample else to_cents(quantity * price)


def unit_price(
    list_price: Decimal, adjustment_percent: Decimal, override: Decimal | None
) -> Decimal:
    if override is not None:
        return to_cents(override)
    return client_price(list_price, adjustment_percent)
