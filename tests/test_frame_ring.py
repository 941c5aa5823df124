"""Replays from memory: a worker's ring of recent frames answers resumes without SQL (DESIGN.md 5).

The ring holds, per session watched on this worker, one run of consecutive events fed by the
bus as they are committed and by the outbox pages streams read. A read the run covers costs no
statement; a read it does not cover queries the outbox once per session, however many streams
ask at that moment, and what it reads then serves the next ones. The ring is bounded by bytes,
forgets a session whose last stream left, and never claims to know what is newest than it holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.events.frames import Audience, LiveEvent
from app.events.ring import AHEAD_MAX, FrameRing, event_bytes
from app.runtime import Services
from tests.conftest import Rpc
from tests.test_event_bus import appended


def live(session_id: int, seq: int) -> LiveEvent:
    return LiveEvent.of(appended(session_id, seq))


def run_of(session_id: int, first: int, last: int) -> list[LiveEvent]:
    return [live(session_id, seq) for seq in range(first, last + 1)]


def seqs(events: list[LiveEvent] | None) -> list[int] | None:
    return None if events is None else [e.seq for e in events]


@contextmanager
def outbox_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements that read or write the outbox while the block runs."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if "session_events" in statement:
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)


# --- the ring on its own ------------------------------------------------------------------------


def test_the_ring_answers_only_reads_its_run_covers_with_at_least_one_event() -> None:
    ring = FrameRing(lambda _session: True)
    ring.extend(7, run_of(7, 5, 9))

    assert seqs(ring.after(7, 4, limit=100)) == [5, 6, 7, 8, 9]
    assert seqs(ring.after(7, 6, limit=2)) == [7, 8]
    # Before the run: the outbox must say what came between.
    assert ring.after(7, 3, limit=100) is None
    # After its newest: the ring cannot know that nothing newer was committed.
    assert ring.after(7, 9, limit=100) is None
    assert ring.after(8, 4, limit=100) is None


def test_live_events_extend_the_run_and_one_that_overtook_another_waits_for_it() -> None:
    ring = FrameRing(lambda _session: True)
    ring.extend(7, run_of(7, 1, 3))
    ring.add(live(7, 4))
    ring.add(live(7, 4))  # a duplicate changes nothing
    assert ring.held(7) == (1, 4)

    # Committed here right after another worker's 5, which Redis brings a moment later.
    ring.add(live(7, 6))
    assert ring.held(7) == (1, 4)
    assert seqs(ring.after(7, 3, limit=100)) == [4]
    ring.add(live(7, 5))
    assert ring.held(7) == (1, 6)


def test_a_hole_wider_than_late_delivery_explains_starts_a_new_run() -> None:
    ring = FrameRing(lambda _session: True)
    ring.extend(7, run_of(7, 1, 3))
    ring.add(live(7, 4 + AHEAD_MAX + 1))
    assert ring.held(7) == (4 + AHEAD_MAX + 1,) * 2
    assert ring.after(7, 3, limit=100) is None


def test_an_outbox_page_joins_the_live_events_it_meets() -> None:
    ring = FrameRing(lambda _session: True)
    ring.add(live(7, 10))  # arrived live while the older page was being read
    ring.extend(7, run_of(7, 4, 9))
    assert ring.held(7) == (4, 10)
    ring.extend(7, run_of(7, 1, 2))  # disjoint and older: the newer run stays
    assert ring.held(7) == (4, 10)


def test_the_ring_keeps_only_sessions_watched_here() -> None:
    watched = {7}
    ring = FrameRing(watched.__contains__)
    ring.add(live(8, 1))
    assert ring.held(8) is None


def test_over_its_bytes_the_ring_drops_the_least_recently_fed_sessions_oldest_events() -> None:
    size = event_bytes(live(1, 1))
    ring = FrameRing(lambda _session: True, max_bytes=size * 6)
    ring.extend(1, run_of(1, 1, 3))
    ring.extend(2, run_of(2, 1, 3))
    ring.add(live(2, 4))  # seven events: session 1, fed least recently, loses its oldest

    assert ring.held(1) == (2, 3)
    assert ring.held(2) == (1, 4)
    assert ring.bytes <= ring.max_bytes
    ring.extend(3, run_of(3, 1, 4))
    assert ring.held(1) is None
    assert ring.bytes <= ring.max_bytes
    ring.forget(2)
    ring.forget(3)
    assert ring.bytes == 0


# --- the ring behind a worker's outbox reads ----------------------------------------------------


async def test_a_resume_within_the_ring_costs_no_sql_and_a_miss_reads_the_outbox_once(
    rpc: Rpc,
) -> None:
    services: Services = rpc.http.app.state.services  # type: ignore[attr-defined]
    client = await rpc.staff("clients.create", {"name": "Ring"})
    session = await rpc.staff("liveShopping.createSession", {"clientId": client["id"]})
    session_id = session["sessionId"]
    listener = await services.bus.listen(session_id, Audience.STAFF)
    try:
        for title in ("One", "Two", "Three"):
            await rpc.staff("liveShopping.updateSession", {"sessionId": session_id, "title": title})
        latest = services.bus.ring.held(session_id)
        assert latest is not None
        first, last = latest

        # The three updates arrived through the bus: every resume after one of them is memory.
        with outbox_statements(services.db.engine) as statements:
            pages = await asyncio.gather(
                *(services.outbox.after(session_id, seq) for seq in range(first - 1, last))
            )
        assert statements == []
        assert [seqs(page) for page in pages] == [
            list(range(seq + 1, last + 1)) for seq in range(first - 1, last)
        ]

        # From before the ring: one read of the outbox for all the streams asking at once,
        # and the ring then holds the whole history for the next ones.
        with outbox_statements(services.db.engine) as statements:
            pages = await asyncio.gather(*(services.outbox.after(session_id, 0) for _ in range(50)))
        assert len(statements) == 1
        assert all(seqs(page) == list(range(1, last + 1)) for page in pages)
        assert services.bus.ring.held(session_id) == (1, last)
        with outbox_statements(services.db.engine) as statements:
            assert seqs(await services.outbox.after(session_id, 1)) == list(range(2, last + 1))
        assert statements == []
    finally:
        await services.bus.unlisten(listener)
    assert services.bus.ring.held(session_id) is None  # nobody watches: its events stop coming
