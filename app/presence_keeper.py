"""Background task in every worker: records its open streams as presence, announces who is
here and who left (debounced), and keeps watched sessions' holds from running out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from app.db.models import PresenceSide
from app.domain.presence import (
    Sides,
    forget_worker,
    keep_watched_alive,
    near_their_deadline,
    reconcile,
    record_worker_streams,
    sessions_to_reconcile,
)
from app.domain.sessions import utcnow
from app.events.frames import Audience
from app.idle_sweeper import hold_warning
from app.runtime import Services

log = logging.getLogger("app.presence")

# How often the worker compares its streams with what it recorded.
BEAT_S = 1.0
# A side that left stays "here" this long, so a reconnect (EventSource retries in 2 s) or a
# page reload is no leave-and-join.
LEAVE_GRACE_S = 5.0
# How often a worker refreshes its rows; rows older than STALE_AFTER belong to a dead worker.
REFRESH_S = 10.0
STALE_AFTER = timedelta(seconds=REFRESH_S * 3)

_SIDE = {Audience.STAFF: PresenceSide.HOST, Audience.CLIENT: PresenceSide.CLIENT}


def worker_id() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class PresenceKeeper:
    services: Services
    worker: str = field(default_factory=worker_id)
    # What this worker last wrote, and since when each departed side has been gone.
    _written: dict[int, Sides] = field(default_factory=dict)
    _gone_since: dict[tuple[int, PresenceSide], float] = field(default_factory=dict)
    _last_refresh: float = 0.0

    def _streams_now(self) -> dict[int, Sides]:
        """Open streams by session and side; a side that left stays through its grace."""
        now = time.monotonic()
        here = {
            session_id: {_SIDE[audience] for audience in audiences}
            for session_id, audiences in self.services.bus.hub.audiences().items()
        }
        gone_since: dict[tuple[int, PresenceSide], float] = {}
        for session_id, sides in self._written.items():
            for side in sides - here.get(session_id, set()):
                since = self._gone_since.get((session_id, side), now)
                if now - since < LEAVE_GRACE_S:
                    here.setdefault(session_id, set()).add(side)
                    gone_since[session_id, side] = since
        self._gone_since = gone_since
        return {session_id: frozenset(sides) for session_id, sides in here.items() if sides}

    async def beat(self) -> None:
        """Record what changed here, then announce any difference in who is watching."""
        streams = self._streams_now()
        changed = {
            session_id
            for session_id in streams.keys() | self._written.keys()
            if streams.get(session_id) != self._written.get(session_id)
        }
        refresh = time.monotonic() - self._last_refresh >= REFRESH_S
        if not changed and not refresh:
            return
        now = utcnow()
        db = self.services.db
        async with db.write_sessions() as session:
            await record_worker_streams(session, self.worker, streams, changed=changed, now=now)
            await session.commit()
        self._written = streams
        to_check = set(changed)
        if refresh:
            self._last_refresh = time.monotonic()
            async with db.read_sessions() as session:
                to_check |= set(
                    await sessions_to_reconcile(session, stale_before=now - STALE_AFTER)
                )
        for session_id in sorted(to_check):
            async with db.write_sessions() as session:
                if await reconcile(session, session_id, stale_before=now - STALE_AFTER):
                    await self.services.bus.commit(session)
        if refresh:
            await self._keep_alive(streams)

    async def _keep_alive(self, streams: Mapping[int, Sides]) -> None:
        margin = hold_warning(self.services) + timedelta(seconds=REFRESH_S * 2)
        async with self.services.db.read_sessions() as session:
            # Most watched sessions are far from their deadline: find the few that are not
            # with one read, and lock only those.
            due = await near_their_deadline(session, streams, before=utcnow() + margin)
        for session_id in due:
            async with self.services.db.write_sessions() as session:
                if await keep_watched_alive(session, session_id, now=utcnow(), margin=margin):
                    await self.services.bus.commit(session)

    async def run_forever(self) -> None:
        try:
            while True:
                await asyncio.sleep(BEAT_S)
                try:
                    await self.beat()
                except Exception:
                    # A database hiccup must not end presence; the next beat retries.
                    log.exception("presence beat failed")
        finally:
            await self._forget()

    async def _forget(self) -> None:
        try:
            async with self.services.db.write_sessions() as session:
                await forget_worker(session, self.worker)
                await session.commit()
        except Exception:
            log.warning("could not clear this worker's presence rows; they expire on their own")
