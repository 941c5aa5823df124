"""Wire types shared by procedure inputs: decimals with their rules, bounded strings."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated

import msgspec

from app.domain.decimals import MONEY, PERCENT_ADJUSTMENT, QUANTITY
from app.rpc.registry import Output

# DESIGN.md 4: the one way to write a decimal in a JSON string (ASCII digits, an optional leading
# minus, at most one dot). msgspec reads such strings with Python's Decimal(), which also takes
# "1_0", " 2 ", "+2", "1e3" and other scripts' digits; app/rpc/validation.py refuses those.
DECIMAL_STRING = re.compile(r"-?[0-9]+(\.[0-9]+)?")
# The same grammar for JSON Schema (`pattern` constrains only the string form of a decimal).
_DECIMAL_SCHEMA = {"pattern": f"^{DECIMAL_STRING.pattern}$"}

# Decimals accept a JSON string or number and go out as strings (msgspec's default).
QuantityIn = Annotated[
    Decimal,
    QUANTITY,
    msgspec.Meta(
        description="Decimal > 0 with at most 4 places",
        examples=["1.5"],
        extra_json_schema=_DECIMAL_SCHEMA,
    ),
]
MoneyIn = Annotated[
    Decimal,
    MONEY,
    msgspec.Meta(
        description="Decimal >= 0 with at most 2 places",
        examples=["19.99"],
        extra_json_schema=_DECIMAL_SCHEMA,
    ),
]
PercentIn = Annotated[
    Decimal,
    PERCENT_ADJUSTMENT,
    msgspec.Meta(
        description="Percent from -100 to 100, 2 places",
        examples=["-10"],
        extra_json_schema=_DECIMAL_SCHEMA,
    ),
]
# Stored times are UTC; a time without an offset is ambiguous, so it is refused at the edge
# (it would otherwise reach the database layer, which rejects naive datetimes).
AwareDateTime = Annotated[datetime, msgspec.Meta(tz=True)]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**53)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class IdResult(Output):
    id: int
