"""Limit/offset paging shared by list procedures."""

from __future__ import annotations

from typing import Annotated

import msgspec

MAX_PAGE_SIZE = 100

Limit = Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE_SIZE, description="Page size, at most 100")]
Offset = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
