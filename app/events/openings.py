"""The reads a stream opens with, shared by the streams of one session opening at once.

A stream opens on one read of its session: whether it exists (and who may watch it, decided
per stream afterwards), its newest event, and either what its outbox still holds (for a
resume) or the audience's snapshot. None of that depends on who asks, so a reconnect storm of
thousands of clients of one session is a handful of reads per worker, not one per client.

A stream only joins a read that has not begun yet (app/events/joined_reads.py): every stream
listens to its session before it asks (app/events/sse.py), so the read it gets has everything
committed before it listened.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from app.db.engine import Database
from app.db.models import LiveSession
from app.domain.retention import oldest_kept_seq
from app.events.joined_reads import JoinedReads
from app.events.streams import StreamSpec


@dataclass(frozen=True, slots=True)
class SessionRead:
    """What one read found, for every stream that shared it."""

    live: LiveSession | None  # None: no such session (each stream answers NOT_FOUND)
    oldest_kept: int  # the first event its outbox still holds (for a resume)
    snapshot: object | None = None  # the audience's snapshot, when one was wanted


class OpeningReads:
    """One per worker."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # Per (the stream's key: audience and session, whether a snapshot is wanted).
        self._reads: JoinedReads[tuple[str, bool], SessionRead] = JoinedReads()

    async def read(self, spec: StreamSpec, *, snapshot: bool) -> SessionRead:
        key = (spec.key, snapshot)
        return await self._reads.read(key, key, functools.partial(self._read, spec, snapshot))

    async def close(self) -> None:
        await self._reads.close()

    async def _read(self, spec: StreamSpec, snapshot: bool) -> SessionRead:
        async with self._db.read_sessions() as db:
            live = await spec.read(db)
            if live is None:
                return SessionRead(None, 1)
            if snapshot:
                return SessionRead(live, 1, await spec.snapshot(db, live))
            return SessionRead(live, await oldest_kept_seq(db, live))
