"""`catalog.*`: products and inventory batches (ADMIN writes, staff reads)."""

from __future__ import annotations

from decimal import Decimal

from app.db.models import Batch, Product
from app.domain import catalog
from app.domain.actors import STAFF_ROLES, Role
from app.rpc.context import CallContext
from app.rpc.paging import Limit, Offset
from app.rpc.registry import Input, Namespace, Output
from app.rpc.types import Code, Id, IdResult, MoneyIn, Name, QuantityIn

ns = Namespace("catalog")
ADMIN = [Role.ADMIN]


class ProductView(Output):
    id: int
    name: str
    sku: str
    category: str | None
    list_price: Decimal

    @classmethod
    def of(cls, p: Product) -> ProductView:
        return cls(id=p.id, name=p.name, sku=p.sku, category=p.category, list_price=p.list_price)


class BatchView(Output):
    id: int
    product_id: int
    code: str
    on_hand_qty: Decimal
    reserved_qty: Decimal
    unit_cogs: Decimal

    @classmethod
    def of(cls, b: Batch) -> BatchView:
        return cls(
            id=b.id,
            product_id=b.product_id,
            code=b.code,
            on_hand_qty=b.on_hand_qty,
            reserved_qty=b.reserved_qty,
            unit_cogs=b.unit_cogs,
        )


class CreateProduct(Input):
    name: Name
    sku: Code
    list_price: MoneyIn
    category: Name | None = None


class UpdateProduct(Input):
    product_id: Id
    name: Name | None = None
    category: Name | None = None
    list_price: MoneyIn | None = None


class ListProducts(Input):
    query: Name | None = None
    limit: Limit = 50
    offset: Offset = 0


class CreateBatch(Input):
    product_id: Id
    code: Code
    on_hand_qty: QuantityIn
    unit_cogs: MoneyIn


class UpdateBatch(Input):
    batch_id: Id
    on_hand_qty: QuantityIn | None = None
    unit_cogs: MoneyIn | None = None


class ListBatches(Input):
    product_id: Id | None = None
    limit: Limit = 50
    offset: Offset = 0


@ns.mutation("createProduct", roles=ADMIN)
async def create_product(ctx: CallContext, params: CreateProduct) -> IdResult:
    """Add a product to the catalogue."""
    product = await catalog.create_product(
        ctx.db,
        name=params.name,
        sku=params.sku,
        category=params.category,
        list_price=params.list_price,
    )
    return IdResult(id=product.id)


@ns.mutation("updateProduct", roles=ADMIN)
async def update_product(ctx: CallContext, params: UpdateProduct) -> ProductView:
    """Change a product's name, category or list price."""
    product = await catalog.update_product(
        ctx.db,
        params.product_id,
        name=params.name,
        category=params.category,
        list_price=params.list_price,
    )
    return ProductView.of(product)


@ns.query("listProducts", roles=STAFF_ROLES)
async def list_products(ctx: CallContext, params: ListProducts) -> list[ProductView]:
    """Products by id, optionally filtered by name or SKU."""
    rows = await catalog.list_products(
        ctx.db, query=params.query, limit=params.limit, offset=params.offset
    )
    return [ProductView.of(p) for p in rows]


@ns.mutation("createBatch", roles=ADMIN)
async def create_batch(ctx: CallContext, params: CreateBatch) -> IdResult:
    """Receive an inventory batch of a product."""
    batch = await catalog.create_batch(
        ctx.db,
        product_id=params.product_id,
        code=params.code,
        on_hand_qty=params.on_hand_qty,
        unit_cogs=params.unit_cogs,
    )
    return IdResult(id=batch.id)


@ns.mutation("updateBatch", roles=ADMIN)
async def update_batch(ctx: CallContext, params: UpdateBatch) -> BatchView:
    """Correct a batch's quantity on hand or its unit cost."""
    batch = await catalog.update_batch(
        ctx.db, params.batch_id, on_hand_qty=params.on_hand_qty, unit_cogs=params.unit_cogs
    )
    return BatchView.of(batch)


@ns.query("listBatches", roles=ADMIN)
async def list_batches(ctx: CallContext, params: ListBatches) -> list[BatchView]:
    """Batches with cost and reservations (ADMIN only: carries COGS)."""
    rows = await catalog.list_batches(
        ctx.db, product_id=params.product_id, limit=params.limit, offset=params.offset
    )
    return [BatchView.of(b) for b in rows]
