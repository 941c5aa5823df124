"""The reads a stream opens with, shared by the streams of one session opening at once.

A stream opens on one read of its session: whether it exists (and who may watch it, decided
per stream afterwards), its newest event, and either what its outbox still holds (for a
resume) or the audience's snapshot. None of that depends on who asks, so a reconnect storm of
thousands of clients of one session is a handful of reads per worker, not one per client.

A stream only joins a read that has not begun yet: every stream listens to its session before
it asks (app/events/sse.py), so a read that began after it asked has everything committed
before it listened; a read already under way may not, and the stream waits for the next one
(at most one per session, audience and kind under way, and one waiting behind it).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

from app.db.engine import Database
from app.db.models import LiveSession
from app.domain.retention import oldest_kept_seq
from app.events.streams import StreamSpec

_Key = tuple[str, bool]  # (the stream's key: audience and session, a snapshot is wanted)


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
        self.queries = 0  # reads made, for tests and benchmarks
        self._queued: dict[_Key, asyncio.Task[SessionRead]] = {}  # joinable: not begun yet
        self._latest: dict[_Key, asyncio.Task[SessionRead]] = {}  # the next waits for it
        self._reads: set[asyncio.Task[SessionRead]] = set()

    async def read(self, spec: StreamSpec, *, snapshot: bool) -> SessionRead:
        key = (spec.key, snapshot)
        read = self._queued.get(key)
        if read is None:
            read = asyncio.create_task(self._read(key, spec, self._latest.get(key)))
            self._queued[key] = read
            self._latest[key] = read
            self._reads.add(read)
            read.add_done_callback(functools.partial(self._forget, key))
        # Shielded: a stream that goes away must not cancel a read that others wait for.
        return await asyncio.shield(read)

    async def close(self) -> None:
        for read in list(self._reads):
            read.cancel()
        await asyncio.gather(*self._reads, return_exceptions=True)

    async def _read(
        self, key: _Key, spec: StreamSpec, previous: asyncio.Task[SessionRead] | None
    ) -> SessionRead:
        if previous is not None:
            await asyncio.wait([previous])  # its outcome belongs to its own waiters
            del previous
        if self._queued.get(key) is asyncio.current_task():
            del self._queued[key]  # begun: later streams wait for the next read
        self.queries += 1
        async with self._db.read_sessions() as db:
            live = await spec.read(db)
            if live is None:
                return SessionRead(None, 1)
            if key[1]:
                return SessionRead(live, 1, await spec.snapshot(db, live))
            return SessionRead(live, await oldest_kept_seq(db, live))

    def _forget(self, key: _Key, read: asyncio.Task[SessionRead]) -> None:
        self._reads.discard(read)
        if self._queued.get(key) is read:
            del self._queued[key]
        if self._latest.get(key) is read:
            del self._latest[key]
        if not read.cancelled():
            read.exception()  # every waiter has it; not "never retrieved" when collected
