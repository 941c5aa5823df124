"""Ending idle sessions: exactly once across workers, by a conditional UPDATE."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LiveSession, SessionStatus
from app.domain.announce import announce
from app.domain.outbox import EventType
from app.domain.sessions import utcnow
from app.domain.status import TIMEOUT_STATUSES

SWEEP_BATCH = 100


async def idle_session_ids(
    db: AsyncSession,
    *,
    idle_for: timedelta,
    now: datetime,
    after_id: int = 0,
    limit: int = SWEEP_BATCH,
) -> list[int]:
    """Up to `limit` ids, ascending and above `after_id`, of sessions idle past the timeout.

    Paging by id (not offset) lets a sweep walk every idle session even while it, or another
    worker, ends some of them, and always finishes.
    """
    cutoff = now - idle_for
    stmt = (
        select(LiveSession.id)
        .where(
            LiveSession.id > after_id,
            LiveSession.status.in_(list(TIMEOUT_STATUSES)),
            LiveSession.last_activity_at < cutoff,
        )
        .order_by(LiveSession.id)
        .limit(limit)
    )
    return list((await db.scalars(stmt)).all())


async def end_if_idle(
    db: AsyncSession, session_id: int, *, idle_for: timedelta, now: datetime | None = None
) -> bool:
    """End one ACTIVE or PAUSED session if still idle; True only for the worker that did it.

    The UPDATE's WHERE re-checks both conditions, so when several workers race, the database
    lets exactly one of them change the row; the others see zero rows affected.
    """
    now = now or utcnow()
    result = await db.execute(
        update(LiveSession)
        .where(
            LiveSession.id == session_id,
            LiveSession.status.in_(list(TIMEOUT_STATUSES)),
            LiveSession.last_activity_at < now - idle_for,
        )
        .values(status=SessionStatus.ENDED, ended_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    live = (
        await db.scalars(
            select(LiveSession)
            .where(LiveSession.id == session_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()
    await announce(db, live, EventType.SESSION_TIMEOUT)
    return True
