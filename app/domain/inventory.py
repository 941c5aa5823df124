"""Inventory search with net availability (what is free after orders and open carts)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Batch, Product
from app.domain.catalog import escape_like
from app.domain.holds import held_in_carts


@dataclass(frozen=True, slots=True)
class StockLine:
    batch: Batch
    product: Product
    available: Decimal


async def search_inventory(db: AsyncSession, *, query: str | None, limit: int) -> list[StockLine]:
    stmt = (
        select(Batch, Product)
        .join(Product, Product.id == Batch.product_id)
        .order_by(Product.name, Batch.id)
        .limit(limit)
    )
    if query:
        pattern = f"%{escape_like(query)}%"
        stmt = stmt.where(
            Product.name.ilike(pattern, escape="\\")
            | Product.sku.ilike(pattern, escape="\\")
            | Batch.code.ilike(pattern, escape="\\")
        )
    rows = (await db.execute(stmt)).all()
    held = await held_in_carts(db, [batch.id for batch, _ in rows])
    return [
        StockLine(
            batch=batch,
            product=product,
            available=batch.on_hand_qty - batch.reserved_qty - held.get(batch.id, Decimal(0)),
        )
        for batch, product in rows
    ]
