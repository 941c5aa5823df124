"""Exact decimal rules for money and quantities; money is never a float."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from app.domain.errors import AmountTooLarge

CENT = Decimal("0.01")
QUANTITY_STEP = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class DecimalRule:
    """Bounds and precision a decimal value must meet (fits DECIMAL(digits, places))."""

    places: int
    digits: int = 15
    gt: Decimal | None = None
    ge: Decimal | None = None
    le: Decimal | None = None

    @property
    def capacity(self) -> Decimal:
        """The largest value DECIMAL(digits, places) can hold, e.g. 9999999999999.99."""
        return Decimal(10) ** (self.digits - self.places) - Decimal(1).scaleb(-self.places)

    def problem(self, value: Decimal) -> str | None:
        """Describe why the value breaks this rule, or None when it is fine.

        Reads the value's digits and exponent rather than doing arithmetic on it: a decimal
        wider than the 28-digit context (or with an exponent like 1E+999999999) would make
        quantize() or abs() raise, and a bad input must be reported, never crash the call.
        """
        if not value.is_finite():
            return "Expected a finite decimal"
        _, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)
        dropped = -self.places - exponent  # digits past the allowed places
        if dropped > 0 and any(digits[-dropped:]):
            return f"Expected at most {self.places} decimal places"
        if self.gt is not None and not value > self.gt:
            return f"Expected decimal > {self.gt}"
        if self.ge is not None and not value >= self.ge:
            return f"Expected decimal >= {self.ge}"
        if self.le is not None and not value <= self.le:
            return f"Expected decimal <= {self.le}"
        if value and value.adjusted() >= self.digits - self.places:
            return f"Expected fewer than {self.digits - self.places} digits before the point"
        return None


QUANTITY = DecimalRule(places=4, gt=Decimal(0))
MONEY = DecimalRule(places=2, ge=Decimal(0))
PERCENT_ADJUSTMENT = DecimalRule(places=2, digits=5, ge=Decimal(-100), le=Decimal(100))


def to_cents(value: Decimal) -> Decimal:
    """Round half-up to cents, the one rounding rule for prices."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def recordable_money(amount: Decimal, what: str) -> Decimal:
    """The amount, when a money column can store it; refused before the database overflows.

    Inputs are bounded, but products of them (a price after a client's markup, quantity times
    price, the sum of lines) can still exceed DECIMAL(15,2).
    """
    if amount > MONEY.capacity:
        raise AmountTooLarge(what, amount, MONEY.capacity)
    return amount


def to_quantity(value: Decimal) -> Decimal:
    return value.quantize(QUANTITY_STEP)
