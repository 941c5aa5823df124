"""The shared session cart: lines, merges, limits, samples, highlight and session prices."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    AddedByRole,
    Batch,
    Client,
    LiveSession,
    Product,
    SessionCartItem,
    SessionPriceOverride,
)
from app.domain.actors import Actor, Role
from app.domain.catalog import get_batch, get_product
from app.domain.decimals import to_quantity
from app.domain.errors import Forbidden, LimitExceeded, NotFound
from app.domain.holds import net_available, require_available
from app.domain.pricing import line_subtotal, unit_price
from app.domain.sessions import require_open, touch
from app.domain.views import Cart, CartLine, Change, ClientCart, ClientCartLine

ZERO = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class _Line:
    item: SessionCartItem
    batch: Batch
    product: Product

    @property
    def subtotal(self) -> Decimal:
        return line_subtotal(
            self.item.quantity, self.item.unit_price, is_sample=self.item.is_sample
        )


async def _lines(db: AsyncSession, session_id: int) -> list[_Line]:
    rows = await db.execute(
        select(SessionCartItem, Batch, Product)
        .join(Batch, Batch.id == SessionCartItem.batch_id)
        .join(Product, Product.id == SessionCartItem.product_id)
        .where(SessionCartItem.session_id == session_id)
        .order_by(SessionCartItem.id)
    )
    return [_Line(item, batch, product) for item, batch, product in rows.all()]


def _billable_subtotal(lines: list[_Line]) -> Decimal:
    return sum((x.subtotal for x in lines), ZERO)


async def cart_total(db: AsyncSession, session_id: int) -> Decimal:
    return _billable_subtotal(await _lines(db, session_id))


async def count_lines(db: AsyncSession, session_id: int) -> int:
    count = await db.scalar(select(func.count()).where(SessionCartItem.session_id == session_id))
    return count or 0


async def staff_cart(db: AsyncSession, session_id: int) -> Cart:
    return _staff_cart(await _lines(db, session_id))


async def client_cart(db: AsyncSession, session_id: int) -> ClientCart:
    return _client_cart(await _lines(db, session_id))


async def both_carts(db: AsyncSession, session_id: int) -> tuple[Cart, ClientCart]:
    """The staff cart and its client projection from one read (every change announces both)."""
    lines = await _lines(db, session_id)
    return _staff_cart(lines), _client_cart(lines)


def _staff_cart(lines: list[_Line]) -> Cart:
    return Cart(
        items=[
            CartLine(
                id=x.item.id,
                batch_id=x.batch.id,
                batch_code=x.batch.code,
                product_id=x.product.id,
                product_name=x.product.name,
                quantity=x.item.quantity,
                unit_price=x.item.unit_price,
                list_price=x.product.list_price,
                subtotal=x.subtotal,
                is_sample=x.item.is_sample,
                is_highlighted=x.item.is_highlighted,
                added_by_role=x.item.added_by_role,
                unit_cogs=x.batch.unit_cogs,
            )
            for x in lines
        ],
        subtotal=_billable_subtotal(lines),
        item_count=len(lines),
    )


def _client_cart(lines: list[_Line]) -> ClientCart:
    return ClientCart(
        items=[
            ClientCartLine(
                id=x.item.id,
                batch_id=x.batch.id,
                batch_code=x.batch.code,
                product_id=x.product.id,
                product_name=x.product.name,
                quantity=x.item.quantity,
                unit_price=x.item.unit_price,
                list_price=x.product.list_price,
                subtotal=x.subtotal,
                is_sample=x.item.is_sample,
                is_highlighted=x.item.is_highlighted,
                added_by_role=x.item.added_by_role,
            )
            for x in lines
        ],
        subtotal=_billable_subtotal(lines),
        item_count=len(lines),
    )


async def session_price(db: AsyncSession, live: LiveSession, product: Product) -> Decimal:
    override = await db.scalar(
        select(SessionPriceOverride.override_price).where(
            SessionPriceOverride.session_id == live.id,
            SessionPriceOverride.product_id == product.id,
        )
    )
    client = await db.get(Client, live.client_id)
    adjustment = client.price_adjustment_percent if client else ZERO
    return unit_price(product.list_price, adjustment, override)


@dataclass(frozen=True, slots=True)
class LineKey:
    """What identifies a cart line (DESIGN 4): its batch, whether it is a sample, and the side
    that added it. An add merges only into the line with the same key, so paid units never
    join a sample line and neither side's adds grow the other side's line.
    """

    batch_id: int
    is_sample: bool
    added_by: AddedByRole

    @classmethod
    def of(cls, item: SessionCartItem) -> LineKey:
        return cls(item.batch_id, item.is_sample, item.added_by_role)


def _side_of(actor: Actor) -> AddedByRole:
    return AddedByRole.CLIENT if actor.role is Role.CLIENT else AddedByRole.HOST


async def _line_with(db: AsyncSession, session_id: int, key: LineKey) -> SessionCartItem | None:
    return await db.scalar(
        select(SessionCartItem).where(
            SessionCartItem.session_id == session_id,
            SessionCartItem.batch_id == key.batch_id,
            SessionCartItem.is_sample == key.is_sample,
            SessionCartItem.added_by_role == key.added_by,
        )
    )


def _is_highlighted(live: LiveSession, batch_id: int) -> bool:
    return live.highlighted_batch_id == batch_id


async def _hold_more(db: AsyncSession, batch_id: int, more: Decimal) -> None:
    """Refuse unless `more` units of the batch are still free (the batch row is locked).

    Counted against every open cart, this one included: a session may hold one batch on
    several lines (paid and sample, host's and client's), so what must fit is the increase,
    not the new quantity of one line.
    """
    available = await net_available(db, [batch_id])
    require_available({batch_id: more}, available)


async def add_to_cart(
    db: AsyncSession,
    actor: Actor,
    live: LiveSession,
    *,
    batch_id: int,
    quantity: Decimal,
    is_sample: bool,
    max_items: int,
) -> Change:
    """Add a batch to the cart, merging into the line of the same key when there is one."""
    require_open(live, actor)
    batch = await get_batch(db, batch_id)
    key = LineKey(batch_id, is_sample, _side_of(actor))
    line = await _line_with(db, live.id, key)
    if line is None and await count_lines(db, live.id) >= max_items:
        raise LimitExceeded(
            f"The cart already holds the maximum of {max_items} lines", limit=max_items
        )
    await _hold_more(db, batch_id, quantity)
    before = None if line is None else _quantity(line)
    if line is None:
        product = await get_product(db, batch.product_id)
        line = SessionCartItem(
            session_id=live.id,
            batch_id=key.batch_id,
            product_id=product.id,
            quantity=quantity,
            unit_price=await session_price(db, live, product),
            added_by_role=key.added_by,
            is_sample=key.is_sample,
            is_highlighted=_is_highlighted(live, batch_id),
        )
        db.add(line)
    else:
        line.quantity += quantity
    touch(live)
    await db.flush()
    return Change(subject=_subject(line), before=before, after=_quantity(line))


async def _line_of(
    db: AsyncSession, actor: Actor, live: LiveSession, cart_item_id: int
) -> SessionCartItem:
    line = await db.get(SessionCartItem, cart_item_id, populate_existing=True)
    if line is None or line.session_id != live.id:
        raise NotFound("Cart item", cart_item_id)
    if actor.role is Role.CLIENT and line.added_by_role is not AddedByRole.CLIENT:
        raise Forbidden("Clients may change only the cart lines they added")
    return line


def _subject(line: SessionCartItem) -> dict[str, object]:
    """The line a change is about, as the timeline names it."""
    return {
        "cartItemId": line.id,
        "batchId": line.batch_id,
        "productId": line.product_id,
        "isSample": line.is_sample,
        "addedByRole": line.added_by_role.value,
    }


def _quantity(line: SessionCartItem) -> dict[str, object]:
    # As the views show it (4 places), whether the line was just made or read back.
    return {"quantity": str(to_quantity(line.quantity))}


async def update_quantity(
    db: AsyncSession, actor: Actor, live: LiveSession, *, cart_item_id: int, quantity: Decimal
) -> Change:
    require_open(live, actor)
    line = await _line_of(db, actor, live, cart_item_id)
    before = _quantity(line)
    if quantity > line.quantity:
        await _hold_more(db, line.batch_id, quantity - line.quantity)
    line.quantity = quantity
    touch(live)
    await db.flush()
    return Change(subject=_subject(line), before=before, after=_quantity(line))


async def remove_from_cart(
    db: AsyncSession, actor: Actor, live: LiveSession, *, cart_item_id: int
) -> Change:
    require_open(live, actor)
    line = await _line_of(db, actor, live, cart_item_id)
    change = Change(subject=_subject(line), before=_quantity(line), after=None)
    await db.delete(line)
    touch(live)
    await db.flush()
    return change


async def set_sample(
    db: AsyncSession, actor: Actor, live: LiveSession, *, cart_item_id: int, is_sample: bool
) -> Change:
    """Mark a line as a sample or as paid; into an existing line of that key it merges."""
    require_open(live, actor)
    line = await _line_of(db, actor, live, cart_item_id)
    change = Change(
        subject=_subject(line),
        before={"isSample": line.is_sample},
        after={"isSample": is_sample},
    )
    if line.is_sample != is_sample:
        twin = await _line_with(db, live.id, replace(LineKey.of(line), is_sample=is_sample))
        if twin is None:
            line.is_sample = is_sample
        else:
            # One batch, one side, one session price: only the units move to the twin, so
            # the session holds what it held (no stock check) and the line count only drops.
            twin.quantity += line.quantity
            twin.is_highlighted = _is_highlighted(live, twin.batch_id)
            await db.delete(line)
            change.after = {"isSample": is_sample, "mergedInto": twin.id}
    touch(live)
    await db.flush()
    return change


async def highlight(
    db: AsyncSession, actor: Actor, live: LiveSession, batch_id: int | None
) -> Change:
    """Showcase one batch to the client (it need not be in the cart); None clears."""
    require_open(live, actor)
    if batch_id is not None:
        await get_batch(db, batch_id)
    change = Change(before={"batchId": live.highlighted_batch_id}, after={"batchId": batch_id})
    live.highlighted_batch_id = batch_id
    for line in (
        await db.scalars(select(SessionCartItem).where(SessionCartItem.session_id == live.id))
    ).all():
        line.is_highlighted = _is_highlighted(live, line.batch_id)
    touch(live)
    await db.flush()
    return change


async def set_override_price(
    db: AsyncSession,
    actor: Actor,
    live: LiveSession,
    *,
    product_id: int,
    price: Decimal | None,
) -> Change:
    """Set (or clear, with None) a session price, re-pricing that product's lines."""
    require_open(live, actor)
    product = await get_product(db, product_id)
    old_price = await session_price(db, live, product)
    if price is None:
        await db.execute(
            delete(SessionPriceOverride).where(
                SessionPriceOverride.session_id == live.id,
                SessionPriceOverride.product_id == product_id,
            )
        )
    else:
        override = await db.scalar(
            select(SessionPriceOverride).where(
                SessionPriceOverride.session_id == live.id,
                SessionPriceOverride.product_id == product_id,
            )
        )
        if override is None:
            db.add(
                SessionPriceOverride(
                    session_id=live.id, product_id=product_id, override_price=price
                )
            )
        else:
            override.override_price = price
    await db.flush()
    new_price = await session_price(db, live, product)
    for line in (
        await db.scalars(
            select(SessionCartItem).where(
                SessionCartItem.session_id == live.id, SessionCartItem.product_id == product_id
            )
        )
    ).all():
        line.unit_price = new_price
    touch(live)
    await db.flush()
    return Change(
        subject={"productId": product_id},
        before={"unitPrice": str(old_price)},
        after={"unitPrice": str(new_price), "overridePrice": None if price is None else str(price)},
    )
