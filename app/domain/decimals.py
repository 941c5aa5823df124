"""Exact decimal rules for money and quantities; money is never a float."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

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

    def problem(self, value: Decimal) -> str | None:
        """Describe why the value breaks this rule, or None when it is fine."""
        if not value.is_finite():
            return "Expected a finite decimal"
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)
        if exponent < -self.places and value != value.quantize(Decimal(1).scaleb(-self.places)):
            return f"Expected at most {self.places} decimal places"
        if self.gt is not None and not value > self.gt:
            return f"Expected decimal > {self.gt}"
        if self.ge is not None and not value >= self.ge:
            return f"Expected decimal >= {self.ge}"
        if self.le is not None and not value <= self.le:
            return f"Expected decimal <= {self.le}"
        if abs(value) >= Decimal(10) ** (self.digits - self.places):
            return f"Expected fewer than {self.digits - self.places} digits before the point"
        return None


QUANTITY = DecimalRule(places=4, gt=Decimal(0))
MONEY = DecimalRule(places=2, ge=Decimal(0))
PERCENT_ADJUSTMENT = DecimalRule(places=2, digits=5, ge=Decimal(-100), le=Decimal(100))


def to_cents(value: Decimal) -> Decimal:
    """Round half-up to cents, the one rounding rule for prices."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def to_quantity(value: Decimal) -> Decimal:
    return value.quantize(QUANTITY_STEP)
