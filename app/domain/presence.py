"""Presence: who of host and client has a stream open on a session, across workers.

Each worker records its own open streams per session and side in `session_presence` and
refreshes them with a heartbeat; a row not refreshed for a while belongs to a worker that
died and no longer counts. What the rows say is compared with what the session last
announced (its host_present / client_present): a difference is announced as PRESENCE, once,
under the session's row lock. Watching is activity: it keeps the holds from expiring.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LiveSession, PresenceSide, SessionPresence
from app.domain.announce import announce
from app.domain.outbox import EventType
from app.domain.sessions import timeout_of, touch
from app.domain.status import OPEN_STATUSES
from app.domain.views import Change

Sides = frozenset[PresenceSide]


async def record_worker_streams(
    db: AsyncSession,
    worker: str,
    streams: Mapping[int, Sides],
    *,
    changed: Iterable[int],
    now: datetime,
) -> None:
    """Write this worker's open streams for the `changed` sessions and refresh all its rows."""
    changed = list(changed)
    if changed:
        await db.execute(
            delete(SessionPresence).where(
                SessionPresence.worker == worker, SessionPresence.session_id.in_(changed)
            )
        )
        db.add_all(
            SessionPresence(session_id=session_id, side=side, worker=worker, seen_at=now)
            for session_id in changed
            for side in streams.get(session_id, ())
        )
        await db.flush()
    await db.execute(
        update(SessionPresence).where(SessionPresence.worker == worker).values(seen_at=now)
    )


async def forget_worker(db: AsyncSession, worker: str) -> None:
    """A worker shutting down takes its streams with it."""
    await db.execute(delete(SessionPresence).where(SessionPresence.worker == worker))


async def sessions_to_reconcile(db: AsyncSession, *, stale_before: datetime) -> list[int]:
    """Sessions whose announced presence disagrees with the rows (a missed announcement, or a
    worker that died and stopped refreshing its rows), read without locks: only these need a
    reconcile.
    """
    announced = {
        session_id: (host, client)
        for session_id, host, client in await db.execute(
            select(LiveSession.id, LiveSession.host_present, LiveSession.client_present).where(
                or_(LiveSession.host_present.is_(True), LiveSession.client_present.is_(True))
            )
        )
    }
    observed: dict[int, set[PresenceSide]] = {}
    stale: set[int] = set()
    for session_id, side, seen_at in await db.execute(
        select(SessionPresence.session_id, SessionPresence.side, SessionPresence.seen_at)
    ):
        if seen_at < stale_before:
            stale.add(session_id)
        else:
            observed.setdefault(session_id, set()).add(side)
    differ = {
        session_id
        for session_id in announced.keys() | observed.keys()
        if announced.get(session_id, (False, False))
        != (
            PresenceSide.HOST in observed.get(session_id, ()),
            PresenceSide.CLIENT in observed.get(session_id, ()),
        )
    }
    return sorted(differ | stale)


async def reconcile(db: AsyncSession, session_id: int, *, stale_before: datetime) -> bool:
    """Announce PRESENCE if who is watching differs from what the session last said.

    True when an event was recorded (the caller commits and publishes it).
    """
    await db.execute(
        delete(SessionPresence).where(
            SessionPresence.session_id == session_id, SessionPresence.seen_at < stale_before
        )
    )
    live = (
        await db.scalars(
            select(LiveSession)
            .where(LiveSession.id == session_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if live is None:
        return False
    sides = set(
        (
            await db.scalars(
                select(SessionPresence.side).where(SessionPresence.session_id == session_id)
            )
        ).all()
    )
    if live.status not in OPEN_STATUSES:
        sides = set()  # a closed session holds nothing to keep alive; just stop saying "here"
    host, client = PresenceSide.HOST in sides, PresenceSide.CLIENT in sides
    if (host, client) == (live.host_present, live.client_present):
        return False
    change = Change(
        before={"host": live.host_present, "client": live.client_present},
        after={"host": host, "client": client},
    )
    live.host_present, live.client_present = host, client
    if live.status not in OPEN_STATUSES:
        await db.flush()  # no event: nobody waits on presence in a closed session
        return False
    touch(live)  # arriving and leaving are activity: the deadline runs from now
    await announce(db, live, EventType.PRESENCE, actor=None, change=change)
    return True


async def near_their_deadline(
    db: AsyncSession, session_ids: Iterable[int], *, before: datetime, chunk: int = 500
) -> list[int]:
    """Those of the sessions whose holds expire before `before` (a plain read, no locks)."""
    ids = sorted(set(session_ids))
    due: list[int] = []
    for start in range(0, len(ids), chunk):
        due += (
            await db.scalars(
                select(LiveSession.id).where(
                    LiveSession.id.in_(ids[start : start + chunk]),
                    LiveSession.status.in_(list(OPEN_STATUSES)),
                    LiveSession.holds_expire_at < before,
                )
            )
        ).all()
    return due


async def keep_watched_alive(
    db: AsyncSession, session_id: int, *, now: datetime, margin: timedelta
) -> bool:
    """While someone watches, keep the deadline at least `margin` away: move it to a whole
    timeout from now and say so (HOLDS_EXTENDED by the system). True when it did.
    """
    live = (
        await db.scalars(
            select(LiveSession)
            .where(LiveSession.id == session_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if (
        live is None
        or live.status not in OPEN_STATUSES
        or not (live.host_present or live.client_present)
        or live.holds_expire_at - now > margin
        or timeout_of(live) <= margin  # it could never get further away than that
    ):
        return False
    before = live.holds_expire_at
    touch(live)
    live.holds_expire_at = max(before, live.last_activity_at + timeout_of(live))
    change = Change(
        subject={"reason": "presence"},
        before={"holdsExpireAt": before.isoformat()},
        after={"holdsExpireAt": live.holds_expire_at.isoformat()},
    )
    await announce(db, live, EventType.HOLDS_EXTENDED, actor=None, change=change)
    return True
