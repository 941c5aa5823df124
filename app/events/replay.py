"""Pages of a session's outbox for this worker's streams: replays after Last-Event-ID, catch-ups.

A page is read in a transaction of its own and handed over as ready frames, so a stream never
holds a database connection while it writes to its client, and holds at most one page of
frames however long the session. A session has at most one outbox query in flight on this
worker, and streams that ask for the same page while it waits its turn share that read and its
frames: a reconnect storm of many streams resuming one session costs one connection, not one
per stream (DESIGN.md 5). Before any of that, the worker's ring of recent frames
(app/events/ring.py) answers every read it holds the events for, without SQL; what the outbox
gives is added to the ring for the next stream.
"""

from __future__ import annotations

import asyncio
import functools

from app.db.engine import Database
from app.domain.outbox import events_after
from app.events.frames import LiveEvent
from app.events.ring import FrameRing

# Events per read. Every event carries the whole cart (tens of KB for a big one), so this bounds
# the memory a replaying stream holds, while a short session still replays in one query.
REPLAY_PAGE = 100

_Page = list[LiveEvent]
_Key = tuple[int, int]  # (session id, read the events after this seq)


class OutboxPages:
    """One per worker: the outbox reads of all its streams, serialized and shared per session."""

    def __init__(self, db: Database, ring: FrameRing, *, page_size: int = REPLAY_PAGE) -> None:
        self._db = db
        self.ring = ring
        self.page_size = page_size
        self.queries = 0  # outbox reads made, for tests and benchmarks
        # Reads queued behind their session's current query; a stream asking for the same page
        # joins one of these. A read that has started querying is no longer here: a stream that
        # asks now may be waiting for events committed after the query began.
        self._queued: dict[_Key, asyncio.Task[_Page]] = {}
        # The latest read of each session: the next one waits for it, one query at a time.
        self._latest: dict[int, asyncio.Task[_Page]] = {}
        self._reads: set[asyncio.Task[_Page]] = set()

    async def after(self, session_id: int, seq: int) -> _Page:
        """Up to `page_size` events of the session with ids above `seq`, oldest first."""
        held = self.ring.after(session_id, seq, self.page_size)
        if held is not None:
            return held
        key = (session_id, seq)
        read = self._queued.get(key)
        if read is None:
            read = asyncio.create_task(self._read(key, self._latest.get(session_id)))
            self._queued[key] = read
            self._latest[session_id] = read
            self._reads.add(read)
            read.add_done_callback(functools.partial(self._forget, key))
        # Shielded: a stream that goes away must not cancel a read that others wait for.
        return await asyncio.shield(read)

    async def close(self) -> None:
        for read in list(self._reads):
            read.cancel()
        await asyncio.gather(*self._reads, return_exceptions=True)

    async def _read(self, key: _Key, previous: asyncio.Task[_Page] | None) -> _Page:
        if previous is not None:
            await asyncio.wait([previous])  # its outcome belongs to its own waiters
            del previous  # and so does its page: do not keep it alive here
        if self._queued.get(key) is asyncio.current_task():
            del self._queued[key]
        session_id, seq = key
        # The queue may have let a newer read fill the ring meanwhile: a shared read then
        # costs nothing.
        held = self.ring.after(session_id, seq, self.page_size)
        if held is not None:
            return held
        self.queries += 1
        async with self._db.read_sessions() as db:
            events = await events_after(db, session_id, seq, limit=self.page_size)
        page = [LiveEvent.of(event) for event in events]
        self.ring.extend(session_id, page)
        return page

    def _forget(self, key: _Key, read: asyncio.Task[_Page]) -> None:
        self._reads.discard(read)
        if self._queued.get(key) is read:
            del self._queued[key]
        if self._latest.get(key[0]) is read:
            del self._latest[key[0]]
        if not read.cancelled():
            # Every waiter has the error already; mark it retrieved so that a read whose
            # waiters all left is not reported as an unhandled error when it is collected.
            read.exception()
