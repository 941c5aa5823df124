"""Ending idle sessions: exactly once across workers, by a conditional UPDATE."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LiveSession, SessionStatus
from app.domain.announce import announce
from app.domain.outbox import EventType
from app.domain.sessions import utcnow
from app.domain.status import OPEN_STATUSES


async def idle_session_ids(db: AsyncSession, *, idle_for: timedelta, now: datetime) -> list[int]:
    cutoff = now - idle_for
    stmt = (
        select(LiveSession.id)
        .where(
            LiveSession.status.in_(list(OPEN_STATUSES)),
            LiveSession.last_activity_at < cutoff,
        )
        .order_by(LiveSession.id)
        .limit(100)
    )
    return list((await db.scalars(stmt)).all())


async def end_if_idle(
    db: AsyncSession, session_id: int, *, idle_for: timedelta, now: datetime | None = None
) -> bool:
    """End one session if it is still open and idle; True only for the worker that did it.

    The UPDATE's WHERE re-checks both conditions, so when several workers race, the database
    lets exactly one of them change the row; the others see zero rows affected.
    """
    now = now or utcnow()
    result = await db.execute(
        update(LiveSession)
        .where(
            LiveSession.id == session_id,
            LiveSession.status.in_(list(OPEN_STATUSES)),
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
