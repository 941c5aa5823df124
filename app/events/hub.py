"""The local half of fan-out: which streams of this worker listen to which session."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Iterator

from app.events.frames import Audience, LiveEvent

log = logging.getLogger("app.events.hub")


class Signal(enum.Enum):
    """Not an event: tells a stream to look at the outbox itself."""

    RESYNC = "resync"  # the bus may have dropped messages (e.g. Redis reconnected)
    HEARTBEAT = "heartbeat"  # nothing written for a heartbeat interval (app/events/heartbeat.py)


class Listener:
    """One stream's mailbox: bounded, never blocks the publisher.

    A listener that falls `maxsize` items behind is marked overflowed and stops receiving;
    its stream then closes, and the client resumes with Last-Event-ID from the outbox.
    Deliberately lighter than asyncio.Queue (a list and at most one future): a worker holds
    one per open stream, and most streams sit idle.

    While its stream waits with nothing pending, an item may be taken at once by `direct` (set
    by the stream): it writes the item onto the connection itself and says whether it did, so a
    fan-out to thousands of idle streams is a write each, with no task woken. What it declines
    (a gap, the final event, a connection that is behind) goes to the mailbox as before.
    """

    __slots__ = (
        "_items",
        "_maxsize",
        "_waiter",
        "audience",
        "direct",
        "last_seq",
        "last_write",
        "on_overflow",
        "overflowed",
        "session_id",
    )

    def __init__(self, session_id: int, audience: Audience, maxsize: int) -> None:
        self.session_id = session_id
        self.audience = audience
        self._maxsize = maxsize
        self._items: list[LiveEvent | Signal] = []
        self._waiter: asyncio.Future[None] | None = None
        self.overflowed = False
        # The newest event id its stream has written; the outbox watcher compares it.
        self.last_seq = 0
        # When its stream last wrote (time.monotonic()); the heartbeat is due a while after.
        self.last_write = time.monotonic()
        # Set by the stream: ends it even while it is stuck writing to a slow client.
        self.on_overflow: Callable[[], None] | None = None
        self.direct: Callable[[LiveEvent | Signal], bool] | None = None

    def offer(self, item: LiveEvent | Signal) -> None:
        if self.overflowed:
            return
        waiter = self._waiter
        if (
            self.direct is not None
            and waiter is not None
            and not waiter.done()
            and not self._items
            and self._wrote_directly(item)
        ):
            return  # written already, in order: its stream is waiting with nothing pending
        if item is Signal.RESYNC and self._items and self._items[-1] is Signal.RESYNC:
            return  # one pending resync reads everything
        if item is Signal.HEARTBEAT and self._items:
            return  # its stream is about to write anyway
        if len(self._items) >= self._maxsize:
            # What it missed stays in the outbox; RESYNC wakes a stream that still reads.
            self.overflowed = True
            self._items = [Signal.RESYNC]
            if self.on_overflow is not None:
                self.on_overflow()
        else:
            self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _wrote_directly(self, item: LiveEvent | Signal) -> bool:
        # Runs inside the publisher (a mutation's commit, the bus reader): whatever goes wrong
        # with one stream's connection must not reach it, nor the other streams after this one.
        assert self.direct is not None
        try:
            return self.direct(item)
        except Exception:
            log.exception("a direct write failed; the stream writes it itself")
            self.direct = None
            return False

    def take(self) -> LiveEvent | Signal | None:
        """The oldest pending item, if any."""
        return self._items.pop(0) if self._items else None

    def wait(self) -> asyncio.Future[None]:
        """Done once an item is pending (await it, then `take`). A stream waits without a
        timer of its own: its heartbeats come as items."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            if self._items:
                waiter.set_result(None)
        return waiter

    async def next(self, within_s: float) -> LiveEvent | Signal | None:
        """The next item, or None after `within_s` seconds of silence."""
        if not self._items:
            try:
                async with asyncio.timeout(within_s):
                    await self.wait()
            except TimeoutError:
                return None
        return self.take()


class Hub:
    def __init__(self) -> None:
        self._listeners: dict[int, set[Listener]] = {}

    def add(self, listener: Listener) -> None:
        self._listeners.setdefault(listener.session_id, set()).add(listener)

    def remove(self, listener: Listener) -> None:
        listeners = self._listeners.get(listener.session_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._listeners[listener.session_id]

    def listens_to(self, session_id: int) -> bool:
        return session_id in self._listeners

    def session_ids(self) -> list[int]:
        return list(self._listeners)

    def audiences(self) -> dict[int, frozenset[Audience]]:
        """Per session with open streams here, which sides (staff, client) they are."""
        return {
            session_id: frozenset(listener.audience for listener in listeners)
            for session_id, listeners in self._listeners.items()
        }

    def deliver(self, event: LiveEvent) -> None:
        for listener in self._listeners.get(event.session_id, ()):
            listener.offer(event)

    def resync_behind(self, latest: dict[int, int]) -> None:
        """Tell each stream that has not written its session's latest event to read the outbox."""
        for session_id, seq in latest.items():
            for listener in self._listeners.get(session_id, ()):
                if listener.last_seq < seq:
                    listener.offer(Signal.RESYNC)

    def beat(self, due_before: float) -> None:
        """A heartbeat to every stream that has written nothing since `due_before`."""
        for listener in self._all():
            if listener.last_write <= due_before:
                listener.offer(Signal.HEARTBEAT)

    def resync_all(self) -> None:
        for listener in self._all():
            listener.offer(Signal.RESYNC)

    def _all(self) -> Iterator[Listener]:
        for listeners in self._listeners.values():
            yield from listeners

    @property
    def listener_count(self) -> int:
        return sum(len(listeners) for listeners in self._listeners.values())
