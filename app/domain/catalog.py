"""Products and inventory batches."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Batch, Product
from app.domain.errors import Conflict, NotFound, PreconditionFailed


async def get_product(session: AsyncSession, product_id: int) -> Product:
    product = await session.get(Product, product_id)
    if product is None:
        raise NotFound("Product", product_id)
    return product


async def create_product(
    session: AsyncSession, *, name: str, sku: str, category: str | None, list_price: Decimal
) -> Product:
    if await session.scalar(select(Product.id).where(Product.sku == sku)) is not None:
        raise Conflict(f"A product with SKU {sku!r} already exists", sku=sku)
    product = Product(name=name, sku=sku, category=category, list_price=list_price)
    session.add(product)
    await session.flush()
    return product


async def update_product(
    session: AsyncSession,
    product_id: int,
    *,
    name: str | None = None,
    category: str | None = None,
    list_price: Decimal | None = None,
) -> Product:
    product = await get_product(session, product_id)
    if name is not None:
        product.name = name
    if category is not None:
        product.category = category
    if list_price is not None:
        product.list_price = list_price
    await session.flush()
    return product


async def list_products(
    session: AsyncSession, *, query: str | None, limit: int, offset: int
) -> Sequence[Product]:
    stmt = select(Product).order_by(Product.id).limit(limit).offset(offset)
    if query:
        pattern = f"%{escape_like(query)}%"
        stmt = stmt.where(
            Product.name.ilike(pattern, escape="\\") | Product.sku.ilike(pattern, escape="\\")
        )
    return (await session.scalars(stmt)).all()


async def create_batch(
    session: AsyncSession, *, product_id: int, code: str, on_hand_qty: Decimal, unit_cogs: Decimal
) -> Batch:
    await get_product(session, product_id)
    if await session.scalar(select(Batch.id).where(Batch.code == code)) is not None:
        raise Conflict(f"A batch with code {code!r} already exists", code=code)
    batch = Batch(product_id=product_id, code=code, on_hand_qty=on_hand_qty, unit_cogs=unit_cogs)
    session.add(batch)
    await session.flush()
    return batch


async def update_batch(
    session: AsyncSession,
    batch_id: int,
    *,
    on_hand_qty: Decimal | None = None,
    unit_cogs: Decimal | None = None,
) -> Batch:
    batch = (
        await session.scalars(select(Batch).where(Batch.id == batch_id).with_for_update())
    ).one_or_none()
    if batch is None:
        raise NotFound("Batch", batch_id)
    if on_hand_qty is not None:
        if on_hand_qty < batch.reserved_qty:
            raise PreconditionFailed(
                f"Batch {batch_id} has {batch.reserved_qty} reserved by orders; "
                f"on hand cannot drop to {on_hand_qty}"
            )
        batch.on_hand_qty = on_hand_qty
    if unit_cogs is not None:
        batch.unit_cogs = unit_cogs
    await session.flush()
    return batch


async def list_batches(
    session: AsyncSession, *, product_id: int | None, limit: int, offset: int
) -> Sequence[Batch]:
    stmt = select(Batch).order_by(Batch.id).limit(limit).offset(offset)
    if product_id is not None:
        stmt = stmt.where(Batch.product_id == product_id)
    return (await session.scalars(stmt)).all()


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
