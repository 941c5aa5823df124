"""The shared session cart: lines, merges, limits, samples, highlight and session prices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    AddedByRole,
    Batch,
    LiveSession,
    Product,
    SessionCartItem,
    SessionPriceOverride,
    utcnow,
)
from app.db.prepared import Prepared
from app.domain.actors import Actor, Role
from app.domain.decimals import to_quantity
from app.domain.errors import Forbidden, LimitExceeded, NotFound
from app.domain.holds import HELD_OF_BATCH, held_in_carts, net_of, require_available
from app.domain.pricing import line_subtotal, unit_price
from app.domain.sessions import SessionFacts, require_open, touch
from app.domain.views import Cart, CartLine, Change, ClientCart, ClientCartLine, Highlight

ZERO = Decimal("0.00")


@dataclass(slots=True)
class Line:
    """One cart line with what the views show of its batch and product, as plain values.

    Quantities are kept as the database stores them (4 places), so a line changed in memory
    reads exactly as it will read back.
    """

    id: int
    batch_id: int
    batch_code: str
    product_id: int
    product_name: str
    quantity: Decimal
    unit_price: Decimal
    list_price: Decimal
    is_sample: bool
    is_highlighted: bool
    added_by: AddedByRole
    unit_cogs: Decimal

    @property
    def key(self) -> LineKey:
        return LineKey(self.batch_id, self.is_sample, self.added_by)

    @property
    def subtotal(self) -> Decimal:
        return line_subtotal(self.quantity, self.unit_price, is_sample=self.is_sample)


# Core statements built once (their cache keys are computed once), run on the session's
# connection: the cart is read as rows, never as ORM objects.
_LINES = (
    select(
        SessionCartItem.id,
        SessionCartItem.batch_id,
        Batch.code,
        SessionCartItem.product_id,
        Product.name,
        SessionCartItem.quantity,
        SessionCartItem.unit_price,
        Product.list_price,
        SessionCartItem.is_sample,
        SessionCartItem.is_highlighted,
        SessionCartItem.added_by_role,
        Batch.unit_cogs,
    )
    .join(Batch, Batch.id == SessionCartItem.batch_id)
    .join(Product, Product.id == SessionCartItem.product_id)
    .where(SessionCartItem.session_id == bindparam("session_id"))
    .order_by(SessionCartItem.id)
)
_READ_LINES = Prepared(_LINES)
_INSERT_LINE = Prepared(
    insert(SessionCartItem).values(
        {
            column: bindparam(column)
            for column in (
                "session_id",
                "batch_id",
                "product_id",
                "quantity",
                "unit_price",
                "added_by_role",
                "is_sample",
                "is_highlighted",
                "created_at",
                "updated_at",
            )
        }
    )
)
_UPDATE_LINE = Prepared(
    update(SessionCartItem)
    .where(SessionCartItem.id == bindparam("line_id"))
    .values(
        quantity=bindparam("quantity"),
        is_sample=bindparam("is_sample"),
        is_highlighted=bindparam("is_highlighted"),
        updated_at=bindparam("updated_at"),
    )
)
_DELETE_LINE = Prepared(delete(SessionCartItem).where(SessionCartItem.id == bindparam("line_id")))


# The cart and, on every row, what all open carts hold of one batch (see HELD_OF_BATCH).
_LINES_AND_HELD = Prepared(_LINES.add_columns(HELD_OF_BATCH))


async def read_lines(db: AsyncSession, session_id: int) -> list[Line]:
    """The session's cart lines in the order they were added (flush pending changes first)."""
    rows: Any = await _READ_LINES.rows(db, {"session_id": session_id})
    return [Line(*row) for row in rows]


async def _lines(db: AsyncSession, session_id: int) -> list[Line]:
    await db.flush()
    return await read_lines(db, session_id)


def _billable_subtotal(lines: Sequence[Line]) -> Decimal:
    return sum((x.subtotal for x in lines), ZERO)


async def cart_total(db: AsyncSession, session_id: int) -> Decimal:
    return _billable_subtotal(await _lines(db, session_id))


async def count_lines(db: AsyncSession, session_id: int) -> int:
    count = await db.scalar(select(func.count()).where(SessionCartItem.session_id == session_id))
    return count or 0


async def staff_cart(db: AsyncSession, session_id: int) -> Cart:
    return staff_cart_of(await _lines(db, session_id))


async def client_cart(db: AsyncSession, session_id: int) -> ClientCart:
    return client_cart_of(await _lines(db, session_id))


async def both_carts(db: AsyncSession, session_id: int) -> tuple[Cart, ClientCart]:
    """The staff cart and its client projection from one read (every change announces both)."""
    lines = await _lines(db, session_id)
    return staff_cart_of(lines), client_cart_of(lines)


def staff_cart_of(lines: Sequence[Line]) -> Cart:
    return Cart(
        items=[
            CartLine(
                id=x.id,
                batch_id=x.batch_id,
                batch_code=x.batch_code,
                product_id=x.product_id,
                product_name=x.product_name,
                quantity=x.quantity,
                unit_price=x.unit_price,
                list_price=x.list_price,
                subtotal=x.subtotal,
                is_sample=x.is_sample,
                is_highlighted=x.is_highlighted,
                added_by_role=x.added_by,
                unit_cogs=x.unit_cogs,
            )
            for x in lines
        ],
        subtotal=_billable_subtotal(lines),
        item_count=len(lines),
    )


def client_cart_of(lines: Sequence[Line]) -> ClientCart:
    return ClientCart(
        items=[
            ClientCartLine(
                id=x.id,
                batch_id=x.batch_id,
                batch_code=x.batch_code,
                product_id=x.product_id,
                product_name=x.product_name,
                quantity=x.quantity,
                unit_price=x.unit_price,
                list_price=x.list_price,
                subtotal=x.subtotal,
                is_sample=x.is_sample,
                is_highlighted=x.is_highlighted,
                added_by_role=x.added_by,
            )
            for x in lines
        ],
        subtotal=_billable_subtotal(lines),
        item_count=len(lines),
    )


@dataclass(frozen=True, slots=True)
class LineKey:
    """What identifies a cart line (DESIGN 4): its batch, whether it is a sample, and the side
    that added it. An add merges only into the line with the same key, so paid units never
    join a sample line and neither side's adds grow the other side's line.
    """

    batch_id: int
    is_sample: bool
    added_by: AddedByRole


def _side_of(actor: Actor) -> AddedByRole:
    return AddedByRole.CLIENT if actor.role is Role.CLIENT else AddedByRole.HOST


def _is_highlighted(live: LiveSession, batch_id: int) -> bool:
    return live.highlighted_batch_id == batch_id


@dataclass(slots=True)
class CartEdit:
    """What a cart edit changed, and the whole cart after it (the lines already in hand)."""

    change: Change
    lines: list[Line]


# The batch a line is about, locked, with what a new line needs: its product and the price
# of that product in this session. The session row is locked first (lock order: session,
# then batch); overrides change only under that session lock, so reading them is safe.
_BATCH_FOR_CART = Prepared(
    select(
        Batch.id,
        Batch.code,
        Batch.product_id,
        Batch.on_hand_qty,
        Batch.reserved_qty,
        Batch.unit_cogs,
        select(Product.name).where(Product.id == Batch.product_id).scalar_subquery(),
        select(Product.list_price).where(Product.id == Batch.product_id).scalar_subquery(),
        select(SessionPriceOverride.override_price)
        .where(
            SessionPriceOverride.session_id == bindparam("session_id"),
            SessionPriceOverride.product_id == Batch.product_id,
        )
        .scalar_subquery(),
    )
    .where(Batch.id == bindparam("batch_id"))
    .with_for_update()
)


@dataclass(frozen=True, slots=True)
class _LockedBatch:
    id: int
    code: str
    product_id: int
    on_hand_qty: Decimal
    reserved_qty: Decimal
    unit_cogs: Decimal
    product_name: str
    list_price: Decimal
    override_price: Decimal | None


async def _lock_batch(db: AsyncSession, session_id: int, batch_id: int) -> _LockedBatch:
    rows = await _BATCH_FOR_CART.rows(db, {"session_id": session_id, "batch_id": batch_id})
    if not rows:
        raise NotFound("Batch", batch_id)
    return _LockedBatch(*rows[0])


async def _hold_more(
    db: AsyncSession, batch: _LockedBatch, more: Decimal, *, held: Decimal | None = None
) -> None:
    """Refuse unless `more` units of the batch are still free (the batch row is locked).

    Counted against every open cart, this one included: a session may hold one batch on
    several lines (paid and sample, host's and client's), so what must fit is the increase,
    not the new quantity of one line. `held`, when the caller read it after the lock, saves
    reading it again.
    """
    if held is None:
        held = (await held_in_carts(db, [batch.id])).get(batch.id, ZERO)
    available = net_of(batch.on_hand_qty, batch.reserved_qty, held)
    require_available({batch.id: more}, {batch.id: available})


async def _lines_and_held(
    db: AsyncSession, session_id: int, batch_id: int
) -> tuple[list[Line], Decimal | None]:
    """The cart, and what open carts hold of the (locked) batch: None when the cart is empty
    (the sum rides on the cart's rows).
    """
    rows: Any = await _LINES_AND_HELD.rows(
        db, {"session_id": session_id, "held_batch_id": batch_id}
    )
    held = Decimal(rows[0][-1]) if rows else None
    return [Line(*row[:-1]) for row in rows], held


async def _write(db: AsyncSession, stmt: Any, params: dict[str, Any]) -> Any:
    conn = await db.connection()
    return await conn.execute(stmt, params)


async def _save(db: AsyncSession, line: Line) -> None:
    await _UPDATE_LINE.write(
        db,
        {
            "line_id": line.id,
            "quantity": line.quantity,
            "is_sample": line.is_sample,
            "is_highlighted": line.is_highlighted,
            "updated_at": utcnow(),
        },
    )


def _find(lines: Sequence[Line], key: LineKey) -> Line | None:
    return next((x for x in lines if x.key == key), None)


async def add_to_cart(
    db: AsyncSession,
    actor: Actor,
    facts: SessionFacts,
    *,
    batch_id: int,
    quantity: Decimal,
    is_sample: bool,
    max_items: int,
) -> CartEdit:
    """Add a batch to the cart, merging into the line of the same key when there is one."""
    live = facts.live
    require_open(live, actor)
    batch = await _lock_batch(db, live.id, batch_id)
    lines, held = await _lines_and_held(db, live.id, batch_id)
    key = LineKey(batch_id, is_sample, _side_of(actor))
    line = _find(lines, key)
    if line is None and len(lines) >= max_items:
        raise LimitExceeded(
            f"The cart already holds the maximum of {max_items} lines", limit=max_items
        )
    await _hold_more(db, batch, quantity, held=held)
    before = None if line is None else _quantity(line)
    if line is None:
        line = Line(
            id=0,
            batch_id=batch.id,
            batch_code=batch.code,
            product_id=batch.product_id,
            product_name=batch.product_name,
            quantity=to_quantity(quantity),
            unit_price=unit_price(batch.list_price, facts.price_adjustment, batch.override_price),
            list_price=batch.list_price,
            is_sample=key.is_sample,
            is_highlighted=_is_highlighted(live, batch_id),
            added_by=key.added_by,
            unit_cogs=batch.unit_cogs,
        )
        now = utcnow()
        line.id = await _INSERT_LINE.write(
            db,
            {
                "session_id": live.id,
                "batch_id": line.batch_id,
                "product_id": line.product_id,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "added_by_role": line.added_by,
                "is_sample": line.is_sample,
                "is_highlighted": line.is_highlighted,
                "created_at": now,
                "updated_at": now,
            },
        )
        lines.append(line)
    else:
        line.quantity = to_quantity(line.quantity + quantity)
        await _save(db, line)
    touch(live)
    return CartEdit(Change(subject=_subject(line), before=before, after=_quantity(line)), lines)


def _own_line(actor: Actor, lines: Sequence[Line], cart_item_id: int) -> Line:
    """A line of this cart the actor may change (the session is locked, so is its cart)."""
    line = next((x for x in lines if x.id == cart_item_id), None)
    if line is None:
        raise NotFound("Cart item", cart_item_id)
    if actor.role is Role.CLIENT and line.added_by is not AddedByRole.CLIENT:
        raise Forbidden("Clients may change only the cart lines they added")
    return line


def _subject(line: Line) -> dict[str, object]:
    """The line a change is about, as the timeline names it."""
    return {
        "cartItemId": line.id,
        "batchId": line.batch_id,
        "productId": line.product_id,
        "isSample": line.is_sample,
        "addedByRole": line.added_by.value,
    }


def _quantity(line: Line) -> dict[str, object]:
    # As the views show it (4 places), whether the line was just made or read back.
    return {"quantity": str(to_quantity(line.quantity))}


async def update_quantity(
    db: AsyncSession, actor: Actor, facts: SessionFacts, *, cart_item_id: int, quantity: Decimal
) -> CartEdit:
    live = facts.live
    require_open(live, actor)
    lines = await read_lines(db, live.id)
    line = _own_line(actor, lines, cart_item_id)
    before = _quantity(line)
    if quantity > line.quantity:
        batch = await _lock_batch(db, live.id, line.batch_id)
        await _hold_more(db, batch, quantity - line.quantity)
    line.quantity = to_quantity(quantity)
    await _save(db, line)
    touch(live)
    return CartEdit(Change(subject=_subject(line), before=before, after=_quantity(line)), lines)


async def remove_from_cart(
    db: AsyncSession, actor: Actor, facts: SessionFacts, *, cart_item_id: int
) -> CartEdit:
    live = facts.live
    require_open(live, actor)
    lines = await read_lines(db, live.id)
    line = _own_line(actor, lines, cart_item_id)
    change = Change(subject=_subject(line), before=_quantity(line), after=None)
    await _DELETE_LINE.write(db, {"line_id": line.id})
    lines.remove(line)
    touch(live)
    return CartEdit(change, lines)


async def set_sample(
    db: AsyncSession, actor: Actor, facts: SessionFacts, *, cart_item_id: int, is_sample: bool
) -> CartEdit:
    """Mark a line as a sample or as paid; into an existing line of that key it merges."""
    live = facts.live
    require_open(live, actor)
    lines = await read_lines(db, live.id)
    line = _own_line(actor, lines, cart_item_id)
    change = Change(
        subject=_subject(line),
        before={"isSample": line.is_sample},
        after={"isSample": is_sample},
    )
    if line.is_sample != is_sample:
        twin = _find(lines, replace(line.key, is_sample=is_sample))
        if twin is None:
            line.is_sample = is_sample
            await _save(db, line)
        else:
            # One batch, one side, one session price: only the units move to the twin, so
            # the session holds what it held (no stock check) and the line count only drops.
            twin.quantity = to_quantity(twin.quantity + line.quantity)
            twin.is_highlighted = _is_highlighted(live, twin.batch_id)
            await _save(db, twin)
            await _DELETE_LINE.write(db, {"line_id": line.id})
            lines.remove(line)
            change.after = {"isSample": is_sample, "mergedInto": twin.id}
    touch(live)
    return CartEdit(change, lines)


_SHOWN = (
    select(Batch.id, Batch.code, Batch.product_id, Product.name, Product.list_price)
    .join(Product, Product.id == Batch.product_id)
    .where(Batch.id == bindparam("batch_id"))
)
_FLIP_HIGHLIGHT = (
    update(SessionCartItem)
    .where(SessionCartItem.id.in_(bindparam("line_ids", expanding=True)))
    .values(is_highlighted=~SessionCartItem.is_highlighted)
)


async def highlight(
    db: AsyncSession, actor: Actor, facts: SessionFacts, batch_id: int | None
) -> tuple[CartEdit, SessionFacts]:
    """Showcase one batch to the client (it need not be in the cart); None clears.

    Returns the edit and the session's facts with the new highlight. The timeline names the
    product now shown, or when cleared the one taken down.
    """
    live = facts.live
    require_open(live, actor)
    shown = facts.highlight
    if batch_id is not None:
        conn = await db.connection()
        row = (await conn.execute(_SHOWN, {"batch_id": batch_id})).one_or_none()
        if row is None:
            raise NotFound("Batch", batch_id)
        shown = Highlight(
            batch_id=row[0],
            batch_code=row[1],
            product_id=row[2],
            product_name=row[3],
            list_price=row[4],
        )
    change = Change(before={"batchId": live.highlighted_batch_id}, after={"batchId": batch_id})
    if shown is not None:
        change.subject = {"batchId": shown.batch_id, "productId": shown.product_id}
    live.highlighted_batch_id = batch_id
    lines = await read_lines(db, live.id)
    flipped = [x for x in lines if x.is_highlighted != _is_highlighted(live, x.batch_id)]
    if flipped:
        await _write(db, _FLIP_HIGHLIGHT, {"line_ids": [x.id for x in flipped]})
        for line in flipped:
            line.is_highlighted = not line.is_highlighted
    touch(live)
    after = replace(facts, highlight=None if batch_id is None else shown)
    return CartEdit(change, lines), after


_PRODUCT_IN_SESSION = select(
    Product.id,
    Product.list_price,
    select(SessionPriceOverride.id)
    .where(
        SessionPriceOverride.session_id == bindparam("session_id"),
        SessionPriceOverride.product_id == Product.id,
    )
    .scalar_subquery(),
    select(SessionPriceOverride.override_price)
    .where(
        SessionPriceOverride.session_id == bindparam("session_id"),
        SessionPriceOverride.product_id == Product.id,
    )
    .scalar_subquery(),
).where(Product.id == bindparam("product_id"))
_CLEAR_OVERRIDE = delete(SessionPriceOverride).where(
    SessionPriceOverride.id == bindparam("override_id")
)
_SET_OVERRIDE = (
    update(SessionPriceOverride)
    .where(SessionPriceOverride.id == bindparam("override_id"))
    .values(override_price=bindparam("price"))
)
_ADD_OVERRIDE = insert(SessionPriceOverride)
_REPRICE = (
    update(SessionCartItem)
    .where(SessionCartItem.id.in_(bindparam("line_ids", expanding=True)))
    .values(unit_price=bindparam("price"))
)


async def set_override_price(
    db: AsyncSession,
    actor: Actor,
    facts: SessionFacts,
    *,
    product_id: int,
    price: Decimal | None,
) -> CartEdit:
    """Set (or clear, with None) a session price, re-pricing that product's lines."""
    live = facts.live
    require_open(live, actor)
    conn = await db.connection()
    row = (
        await conn.execute(_PRODUCT_IN_SESSION, {"session_id": live.id, "product_id": product_id})
    ).one_or_none()
    if row is None:
        raise NotFound("Product", product_id)
    _, list_price, override_id, override = row
    old_price = unit_price(list_price, facts.price_adjustment, override)
    if price is None:
        if override_id is not None:
            await _write(db, _CLEAR_OVERRIDE, {"override_id": override_id})
    elif override_id is None:
        params = {"session_id": live.id, "product_id": product_id, "override_price": price}
        await _write(db, _ADD_OVERRIDE, params)
    elif override != price:
        await _write(db, _SET_OVERRIDE, {"override_id": override_id, "price": price})
    new_price = unit_price(list_price, facts.price_adjustment, price)
    lines = await read_lines(db, live.id)
    repriced = [x for x in lines if x.product_id == product_id and x.unit_price != new_price]
    if repriced:
        await _write(db, _REPRICE, {"line_ids": [x.id for x in repriced], "price": new_price})
        for line in repriced:
            line.unit_price = new_price
    touch(live)
    change = Change(
        subject={"productId": product_id},
        before={"unitPrice": str(old_price)},
        after={"unitPrice": str(new_price), "overridePrice": None if price is None else str(price)},
    )
    return CartEdit(change, lines)
