"""This worker's recent frames per session, so that a resume or a catch-up costs no SQL.

Every event this worker delivers to its streams, and every page it reads from the outbox for
them, lands here as the ready LiveEvent (both audiences' frames). A session's entry is one run
of consecutive sequence numbers; it is only kept while the session has streams on this worker:
while it has, the bus delivers every event of the session here, so the run is the session's
recent history without holes (an event that overtakes another, as events of one session
committed on two workers at once do, waits for it). When the last stream leaves (the bus
unsubscribes, so later events would not arrive) or the bus reconnects (it may have missed
messages), the entry is forgotten. The whole ring is bounded by bytes; over the bound the
least recently fed sessions lose their oldest events first.

A run never says what is newest: an event dropped between commit and publish is not in it. So
it only answers a read that its run covers and that it can give at least one event for; "after
the newest I hold" always goes to the outbox (app/events/replay.py).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

from app.events.frames import LiveEvent

# About a thousand cart events of an average session, or a few hundred of a 100-line cart,
# across all sessions of the worker.
RING_BYTES = 32 * 1024 * 1024
# What a LiveEvent costs besides its frames (the object, its ints, the deque slot).
_EVENT_OVERHEAD = 200
# Events of one session held past a hole, waiting for the events before them. Two workers that
# commit events of one session close together deliver them out of order: each has its own at
# once and the other's a Redis round trip later. A hole wider than this is a real loss (a
# dropped publish): the run restarts after it.
AHEAD_MAX = 32


def event_bytes(event: LiveEvent) -> int:
    return len(event.staff_frame) + len(event.client_frame) + _EVENT_OVERHEAD


class _Run:
    """Consecutive events of one session, oldest first, and a few that arrived ahead of a hole."""

    __slots__ = ("ahead", "bytes", "events")

    def __init__(self) -> None:
        self.events: deque[LiveEvent] = deque()
        self.ahead: dict[int, LiveEvent] = {}
        self.bytes = 0

    @property
    def first(self) -> int:
        return self.events[0].seq

    @property
    def last(self) -> int:
        return self.events[-1].seq


class FrameRing:
    """One per worker: recent LiveEvents of the sessions its streams watch, within `max_bytes`."""

    def __init__(self, watched: Callable[[int], bool], *, max_bytes: int = RING_BYTES) -> None:
        # Whether the session has streams here: only then does the bus bring all its events.
        self._watched = watched
        self.max_bytes = max_bytes
        self.bytes = 0
        # Least recently fed first: eviction takes from the front.
        self._runs: OrderedDict[int, _Run] = OrderedDict()

    def add(self, event: LiveEvent) -> None:
        """A live event: extends its session's run, or starts a new one after a hole."""
        self.extend(event.session_id, (event,))

    def extend(self, session_id: int, events: Sequence[LiveEvent]) -> None:
        """Consecutive events of one session, oldest first (a live event or an outbox page)."""
        if not events or not self._watched(session_id):
            return
        if events[-1].seq - events[0].seq != len(events) - 1:
            return  # not one run (cannot happen with the outbox's numbering): hold nothing
        run = self._runs.get(session_id)
        if run is not None and 1 < events[0].seq - run.last <= AHEAD_MAX:
            # Ahead of a hole that the next delivery probably fills.
            for event in events:
                if event.seq not in run.ahead and len(run.ahead) < AHEAD_MAX:
                    run.ahead[event.seq] = event
                    run.bytes += event_bytes(event)
                    self.bytes += event_bytes(event)
            self._runs.move_to_end(session_id)
            self._evict()
            return
        if run is None or events[-1].seq < run.first - 1 or events[0].seq > run.last + 1:
            # Disjoint from what is held: keep the newer of the two runs.
            if run is not None and events[-1].seq < run.first:
                return
            self.forget(session_id)
            run = self._runs[session_id] = _Run()
            for event in events:
                self._push(run, event)
        else:
            # Overlapping or adjoining: add what is older in front, what is newer behind.
            for event in reversed(events):
                if event.seq < run.first:
                    self._push(run, event, front=True)
            for event in events:
                if event.seq > run.last:
                    self._push(run, event)
            # The hole may be filled now.
            while run.ahead and (following := run.ahead.pop(run.last + 1, None)) is not None:
                size = event_bytes(following)
                run.bytes -= size
                self.bytes -= size
                self._push(run, following)
            for seq in [seq for seq in run.ahead if seq <= run.last]:
                size = event_bytes(run.ahead.pop(seq))
                run.bytes -= size
                self.bytes -= size
        self._runs.move_to_end(session_id)
        self._evict()

    def after(self, session_id: int, seq: int, limit: int) -> list[LiveEvent] | None:
        """Up to `limit` events after `seq`, or None when the run does not hold the next one."""
        run = self._runs.get(session_id)
        if run is None or not run.first <= seq + 1 <= run.last:
            return None
        start = seq + 1 - run.first
        stop = min(len(run.events), start + limit)
        events = run.events
        return [events[i] for i in range(start, stop)]

    def forget(self, session_id: int) -> None:
        run = self._runs.pop(session_id, None)
        if run is not None:
            self.bytes -= run.bytes

    def clear(self) -> None:
        self._runs.clear()
        self.bytes = 0

    def held(self, session_id: int) -> tuple[int, int] | None:
        """The first and last seq held for the session (for tests and diagnostics)."""
        run = self._runs.get(session_id)
        return None if run is None else (run.first, run.last)

    def _push(self, run: _Run, event: LiveEvent, *, front: bool = False) -> None:
        size = event_bytes(event)
        if front:
            run.events.appendleft(event)
        else:
            run.events.append(event)
        run.bytes += size
        self.bytes += size

    def _evict(self) -> None:
        while self.bytes > self.max_bytes and self._runs:
            session_id, run = next(iter(self._runs.items()))
            size = event_bytes(run.events.popleft())
            run.bytes -= size
            self.bytes -= size
            if not run.events:
                self.forget(session_id)
