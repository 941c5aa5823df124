"""Hold deadlines: the warning before one passes, and ending sessions idle past it.

Exactly once across workers, by conditional UPDATEs: when several workers race, the database
lets one of them change the row and the others see zero rows affected. A session someone is
watching (presence) is never warned nor ended: watching is activity.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LiveSession, SessionStatus
from app.domain.announce import announce
from app.domain.outbox import EventType
from app.domain.status import TIMEOUT_STATUSES
from app.domain.views import Change

SWEEP_BATCH = 100


def _unwatched() -> ColumnElement[bool]:
    return and_(
        LiveSession.status.in_(list(TIMEOUT_STATUSES)),
        LiveSession.host_present.is_(False),
        LiveSession.client_present.is_(False),
    )


def _expired(now: datetime) -> ColumnElement[bool]:
    return and_(_unwatched(), LiveSession.holds_expire_at <= now)


def _expiring(now: datetime, warning: timedelta) -> ColumnElement[bool]:
    """Within the warning window of a deadline not yet warned about."""
    return and_(
        _unwatched(),
        LiveSession.holds_expire_at > now,
        LiveSession.holds_expire_at <= now + warning,
        or_(
            LiveSession.holds_warned_for.is_(None),
            LiveSession.holds_warned_for != LiveSession.holds_expire_at,
        ),
    )


async def _ids(
    db: AsyncSession, condition: ColumnElement[bool], *, after_id: int, limit: int
) -> list[int]:
    # Paging by id (not offset) walks every match even while this or another worker changes
    # some of them, and always finishes.
    stmt = (
        select(LiveSession.id)
        .where(LiveSession.id > after_id, condition)
        .order_by(LiveSession.id)
        .limit(limit)
    )
    return list((await db.scalars(stmt)).all())


async def idle_session_ids(
    db: AsyncSession, *, now: datetime, after_id: int = 0, limit: int = SWEEP_BATCH
) -> list[int]:
    """Up to `limit` ids above `after_id` of open sessions past their hold deadline."""
    return await _ids(db, _expired(now), after_id=after_id, limit=limit)


async def expiring_session_ids(
    db: AsyncSession,
    *,
    now: datetime,
    warning: timedelta,
    after_id: int = 0,
    limit: int = SWEEP_BATCH,
) -> list[int]:
    """Up to `limit` ids above `after_id` of sessions due a HOLDS_EXPIRING warning."""
    return await _ids(db, _expiring(now, warning), after_id=after_id, limit=limit)


async def _claim(
    db: AsyncSession, session_id: int, condition: ColumnElement[bool], values: dict[str, Any]
) -> LiveSession | None:
    """Apply `values` if the row still meets `condition`; the locked row for the winner only."""
    result = await db.execute(
        update(LiveSession)
        .where(LiveSession.id == session_id, condition)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return None
    return (
        await db.scalars(
            select(LiveSession)
            .where(LiveSession.id == session_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()


async def end_if_idle(db: AsyncSession, session_id: int, *, now: datetime) -> bool:
    """End one open session past its deadline with nobody watching; True for the one worker
    that did it. Its holds vanish with it.
    """
    before = await db.scalar(select(LiveSession.status).where(LiveSession.id == session_id))
    live = await _claim(
        db, session_id, _expired(now), {"status": SessionStatus.ENDED, "ended_at": now}
    )
    if live is None or before is None:
        return False
    change = Change(
        before={"status": before.value},
        after={"status": live.status.value, "holdsExpireAt": live.holds_expire_at},
    )
    await announce(db, live, EventType.SESSION_TIMEOUT, actor=None, change=change)
    return True


async def warn_if_expiring(
    db: AsyncSession, session_id: int, *, now: datetime, warning: timedelta
) -> bool:
    """Send HOLDS_EXPIRING once for the session's current deadline; True for the sender."""
    live = await _claim(
        db,
        session_id,
        _expiring(now, warning),
        {"holds_warned_for": LiveSession.holds_expire_at},
    )
    if live is None:
        return False
    change = Change(after={"holdsExpireAt": live.holds_expire_at})
    await announce(db, live, EventType.HOLDS_EXPIRING, actor=None, change=change)
    return True
