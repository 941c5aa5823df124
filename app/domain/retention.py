"""How long the outbox keeps a session's events, and pruning what it no longer keeps.

DESIGN.md 5: every event of an open session is kept; the events of a session final (converted
or cancelled) for more than LIVE_SHOPPING_EVENT_RETENTION_DAYS are deleted. A session's
"final since" is its last activity: the final transition touches it, and so does anything that
happens to the session afterwards, which only postpones pruning. A session loses its events
oldest first, so what is left of its history is always one run up to its newest event, and a
resume from before that run gets a reset snapshot instead of a replay.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from app.db.models import LiveSession, SessionEvent
from app.domain.status import FINAL_STATUSES

PRUNE_BATCH = 500  # events deleted per transaction: short locks, bounded undo log


def retention_cutoff(now: datetime, retention_days: int) -> datetime:
    """Sessions final (last active) before this have their events pruned."""
    return now - timedelta(days=retention_days)


async def oldest_kept_seq(db: AsyncSession, live: LiveSession) -> int:
    """The first event of the session its outbox still holds (its newest + 1 when none is).

    An open session is never pruned, so it costs no query; a final one costs one indexed read.
    """
    if live.status not in FINAL_STATUSES:
        return 1
    first = await db.scalar(
        select(func.min(SessionEvent.seq)).where(SessionEvent.session_id == live.id)
    )
    return live.last_event_seq + 1 if first is None else int(first)


async def prunable_session_ids(
    db: AsyncSession, *, cutoff: datetime, after_id: int = 0, limit: int = 100
) -> list[int]:
    """Up to `limit` ids above `after_id` of sessions final before `cutoff` with events left."""
    has_events = exists().where(SessionEvent.session_id == LiveSession.id)
    stmt = (
        select(LiveSession.id)
        .where(LiveSession.id > after_id, *_prunable(cutoff), has_events)
        .order_by(LiveSession.id)
        .limit(limit)
    )
    return list((await db.scalars(stmt)).all())


async def prune_session_events(
    db: AsyncSession, session_id: int, *, cutoff: datetime, batch: int = PRUNE_BATCH
) -> int:
    """Delete up to `batch` of the oldest events of one session, if it is still prunable.

    The condition is checked again in the same statement's transaction: a session that came
    back to life (a later activity) since it was listed keeps its events.
    """
    still_prunable = await db.scalar(
        select(LiveSession.id).where(LiveSession.id == session_id, *_prunable(cutoff))
    )
    if still_prunable is None:
        return 0
    # Oldest first (a run is left), by primary key: MariaDB cannot DELETE ... IN a LIMITed
    # subquery of the same table, so the ids are read first.
    ids = list(
        (
            await db.scalars(
                select(SessionEvent.id)
                .where(SessionEvent.session_id == session_id)
                .order_by(SessionEvent.seq)
                .limit(batch)
            )
        ).all()
    )
    if not ids:
        return 0
    await db.execute(
        delete(SessionEvent)
        .where(SessionEvent.id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    return len(ids)


def _prunable(cutoff: datetime) -> tuple[ColumnElement[bool], ...]:
    """A session whose events may go: final, with no activity since `cutoff`."""
    return (
        LiveSession.status.in_(list(FINAL_STATUSES)),
        LiveSession.last_activity_at < cutoff,
    )
