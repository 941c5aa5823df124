"""Net availability of batches: the one query behind cart, conversion and orders.

net available = on hand - reserved by orders - quantities in carts of other open sessions.
Callers lock the batch rows first, so two writers can never both see the same free units.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from sqlalchemy import bindparam, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.db.models import Batch, LiveSession, SessionCartItem
from app.domain.errors import InsufficientInventory, NotFound
from app.domain.status import OPEN_STATUSES

ZERO = Decimal(0)


async def lock_batches(session: AsyncSession, batch_ids: Iterable[int]) -> dict[int, Batch]:
    """Lock batch rows in id order (a fixed order, so two lockers cannot deadlock).

    MariaDB takes row locks with FOR UPDATE; SQLite write transactions already hold the
    database write lock from BEGIN IMMEDIATE, which serialises them just the same.
    """
    ids = sorted(set(batch_ids))
    stmt = (
        select(Batch)
        .where(Batch.id.in_(ids))
        .order_by(Batch.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    batches = {b.id: b for b in (await session.scalars(stmt)).all()}
    for batch_id in ids:
        if batch_id not in batches:
            raise NotFound("Batch", batch_id)
    return batches


_HELD = (
    select(SessionCartItem.batch_id, func.sum(SessionCartItem.quantity))
    .join(LiveSession, LiveSession.id == SessionCartItem.session_id)
    .where(
        SessionCartItem.batch_id.in_(bindparam("batch_ids", expanding=True)),
        LiveSession.status.in_(list(OPEN_STATUSES)),
    )
    .group_by(SessionCartItem.batch_id)
)
_HELD_ELSEWHERE = _HELD.where(SessionCartItem.session_id != bindparam("session_id"))

_items, _sessions = aliased(SessionCartItem), aliased(LiveSession)
# The same sum for the one batch bound as `held_batch_id`, as a column another read can carry
# (uncorrelated: it never joins the enclosing query's rows). Read in a statement that starts
# after the batch row is locked, it counts every hold committed before the lock was granted.
HELD_OF_BATCH = (
    select(func.coalesce(func.sum(_items.quantity), 0))
    .join(_sessions, _sessions.id == _items.session_id)
    .where(
        _items.batch_id == bindparam("held_batch_id"),
        # Constants in the SQL text, not bound values: the statement is compiled once.
        _sessions.status.in_([literal_column(f"'{s.value}'") for s in sorted(OPEN_STATUSES)]),
    )
    .correlate(None)
    .scalar_subquery()
)


async def held_in_carts(
    session: AsyncSession, batch_ids: Iterable[int], *, exclude_session_id: int | None = None
) -> dict[int, Decimal]:
    """Quantities of each batch sitting in the carts of open sessions (samples included)."""
    await session.flush()  # what this transaction changed in carts counts too
    params: dict[str, object] = {"batch_ids": list(batch_ids)}
    if exclude_session_id is not None:
        params["session_id"] = exclude_session_id
    conn = await session.connection()
    stmt = _HELD if exclude_session_id is None else _HELD_ELSEWHERE
    rows = (await conn.execute(stmt, params)).all()
    return {batch_id: Decimal(total or 0) for batch_id, total in rows}


async def net_available(
    session: AsyncSession, batch_ids: Iterable[int], *, exclude_session_id: int | None = None
) -> dict[int, Decimal]:
    """Lock the batches and return what each still has free for the caller."""
    ids = sorted(set(batch_ids))
    batches = await lock_batches(session, ids)
    held = await held_in_carts(session, ids, exclude_session_id=exclude_session_id)
    return {
        batch_id: net_of(batch.on_hand_qty, batch.reserved_qty, held.get(batch_id, ZERO))
        for batch_id, batch in batches.items()
    }


def net_of(on_hand: Decimal, reserved: Decimal, held: Decimal) -> Decimal:
    """What a batch still has free: on hand, less what orders reserved and carts hold."""
    return on_hand - reserved - held


def require_available(wanted: dict[int, Decimal], available: dict[int, Decimal]) -> None:
    """Refuse the whole request if any batch would go below zero."""
    for batch_id in sorted(wanted):
        if wanted[batch_id] > available[batch_id]:
            raise InsufficientInventory(batch_id, wanted[batch_id], max(available[batch_id], ZERO))
