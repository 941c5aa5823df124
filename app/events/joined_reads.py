"""Reads that the streams asking for the same thing at the same moment share.

A stream may join a read only while it has not begun: the stream asked after it started
listening, so a read that begins after the ask sees everything committed before it; a read
already under way may not have, and the stream waits for the next one. Reads of one lane (a
session) run one at a time, so a storm costs a connection, not one per stream.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class JoinedReads(Generic[_K, _V]):
    """One per kind of read and worker."""

    def __init__(self) -> None:
        self._queued: dict[_K, asyncio.Task[_V]] = {}  # joinable: not begun yet
        self._latest: dict[Hashable, asyncio.Task[_V]] = {}  # per lane: the next waits for it
        self._reads: set[asyncio.Task[_V]] = set()

    async def read(self, key: _K, lane: Hashable, read: Callable[[], Awaitable[_V]]) -> _V:
        """`read()`'s outcome, shared with every caller of the same key until it begins."""
        task = self._queued.get(key)
        if task is None:
            task = asyncio.create_task(self._run(key, self._latest.get(lane), read))
            self._queued[key] = task
            self._latest[lane] = task
            self._reads.add(task)
            task.add_done_callback(functools.partial(self._forget, key, lane))
        # Shielded: a stream that goes away must not cancel a read that others wait for.
        return await asyncio.shield(task)

    async def close(self) -> None:
        for task in list(self._reads):
            task.cancel()
        await asyncio.gather(*self._reads, return_exceptions=True)

    async def _run(
        self, key: _K, previous: asyncio.Task[_V] | None, read: Callable[[], Awaitable[_V]]
    ) -> _V:
        if previous is not None:
            await asyncio.wait([previous])  # its outcome belongs to its own waiters
            del previous  # and so does what it read: do not keep it alive here
        if self._queued.get(key) is asyncio.current_task():
            del self._queued[key]  # begun: later callers wait for the next read
        return await read()

    def _forget(self, key: _K, lane: Hashable, task: asyncio.Task[_V]) -> None:
        self._reads.discard(task)
        if self._queued.get(key) is task:
            del self._queued[key]
        if self._latest.get(lane) is task:
            del self._latest[lane]
        if not task.cancelled():
            # Every waiter has the error already; mark it retrieved so that a read whose
            # waiters all left is not reported as an unhandled error when it is collected.
            task.exception()
