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

import functools

from app.db.engine import Database
from app.domain.outbox import events_after
from app.events.frames import LiveEvent
from app.events.joined_reads import JoinedReads
from app.events.ring import FrameRing

# Events per read. Every event carries the whole cart (tens of KB for a big one), so this bounds
# the memory a replaying stream holds, while a short session still replays in one query.
REPLAY_PAGE = 100

_Page = list[LiveEvent]


class OutboxPages:
    """One per worker: the outbox reads of all its streams, serialized and shared per session."""

    def __init__(self, db: Database, ring: FrameRing, *, page_size: int = REPLAY_PAGE) -> None:
        self._db = db
        self.ring = ring
        self.page_size = page_size
        self.queries = 0  # outbox reads made, for tests and benchmarks
        # Per (session, after this seq); one query at a time per session.
        self._reads: JoinedReads[tuple[int, int], _Page] = JoinedReads()

    async def after(self, session_id: int, seq: int) -> _Page:
        """Up to `page_size` events of the session with ids above `seq`, oldest first."""
        held = self.ring.after(session_id, seq, self.page_size)
        if held is not None:
            return held
        read = functools.partial(self._read, session_id, seq)
        return await self._reads.read((session_id, seq), session_id, read)

    async def close(self) -> None:
        await self._reads.close()

    async def _read(self, session_id: int, seq: int) -> _Page:
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
