"""A small Server-Sent Events reader for tests: every frame, comments and `retry:` included.

Not a test module. httpx-sse drops comment lines, and the tests need to see the heartbeat
comment and the `retry:` hint, so this parses the stream itself (the format is a few lines,
https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).
Every read has a deadline: a stream that stays silent fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

# Keys that only staff may see (DESIGN.md 3): cost, internal notes, credit.
STAFF_ONLY_KEY = re.compile(r"cost|cogs|internal|notes|credit|exposure|margin", re.IGNORECASE)

# Announced on the system's own schedule, not by any call a test makes: who is watching changes
# a beat after a stream opens (and a grace period after it leaves), so these events may fall
# anywhere among a test's own. Tests about changes look past them (`changes`).
WATCHING_EVENTS = frozenset({"PRESENCE"})


@dataclass(frozen=True, slots=True)
class Frame:
    """One SSE message block as sent (the lines up to a blank line)."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    retry: int | None = None
    comments: tuple[str, ...] = ()

    @property
    def is_event(self) -> bool:
        return self.data is not None

    @property
    def seq(self) -> int:
        assert self.id is not None, f"frame without id: {self}"
        return int(self.id)

    def json(self) -> Any:
        assert self.data is not None, f"frame without data: {self}"
        return json.loads(self.data)


@dataclass(slots=True)
class _Block:
    fields: dict[str, str] = field(default_factory=dict)
    data: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    def frame(self) -> Frame:
        retry = self.fields.get("retry")
        return Frame(
            id=self.fields.get("id"),
            event=self.fields.get("event"),
            data="\n".join(self.data) if self.data else None,
            retry=int(retry) if retry is not None and retry.isdigit() else None,
            comments=tuple(self.comments),
        )

    @property
    def empty(self) -> bool:
        return not (self.fields or self.data or self.comments)


class StreamClosed(AssertionError):
    """The server ended the stream while the test still expected frames."""


class EventStream:
    """An open SSE response, read frame by frame; `frames` keeps everything read so far."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.frames: list[Frame] = []
        self._lines = response.aiter_lines()
        self.closed = False

    @property
    def events(self) -> list[Frame]:
        return [f for f in self.frames if f.is_event]

    async def next_frame(self) -> Frame:
        """The next frame; StreamClosed if the response ends first."""
        block = _Block()
        async for line in self._lines:
            if line == "":
                if block.empty:
                    continue
                frame = block.frame()
                self.frames.append(frame)
                return frame
            name, colon, value = line.partition(":")
            value = value.removeprefix(" ") if colon else ""
            if name == "":
                block.comments.append(value)
            elif name == "data":
                block.data.append(value)
            else:
                block.fields[name] = value
        self.closed = True
        raise StreamClosed(f"the stream ended; frames so far: {self.frames}")

    async def frame_where(self, predicate: Callable[[Frame], bool], within: float) -> Frame:
        """Read until a frame satisfies `predicate`, at most `within` seconds."""
        try:
            async with asyncio.timeout(within):
                while True:
                    frame = await self.next_frame()
                    if predicate(frame):
                        return frame
        except TimeoutError:
            raise AssertionError(
                f"no matching frame within {within} s; frames so far: {self.frames}"
            ) from None

    async def next_events(self, count: int, within: float) -> list[Frame]:
        """The next `count` event frames (comments and retry hints skipped)."""
        taken: list[Frame] = []
        try:
            async with asyncio.timeout(within):
                while len(taken) < count:
                    frame = await self.next_frame()
                    if frame.is_event:
                        taken.append(frame)
        except TimeoutError:
            raise AssertionError(
                f"only {len(taken)} of {count} events within {within} s: {taken}"
            ) from None
        return taken

    async def next_changes(self, count: int, within: float) -> list[Frame]:
        """The next `count` event frames that announce changes (see WATCHING_EVENTS)."""
        taken: list[Frame] = []
        try:
            async with asyncio.timeout(within):
                while len(taken) < count:
                    frame = await self.next_frame()
                    if frame.is_event and frame.event not in WATCHING_EVENTS:
                        taken.append(frame)
        except TimeoutError:
            raise AssertionError(
                f"only {len(taken)} of {count} changes within {within} s: {taken}"
            ) from None
        return taken

    async def events_until(self, last_seq: int, within: float) -> list[Frame]:
        """Event frames up to and including the one with id `last_seq`."""
        taken: list[Frame] = []
        try:
            async with asyncio.timeout(within):
                while not taken or taken[-1].seq < last_seq:
                    frame = await self.next_frame()
                    if frame.is_event:
                        taken.append(frame)
        except TimeoutError:
            seqs = [f.id for f in taken]
            raise AssertionError(
                f"event {last_seq} did not arrive within {within} s; got ids {seqs}"
            ) from None
        return taken

    async def rest(self, within: float) -> list[Frame]:
        """Every frame until the server ends the stream, which must happen within `within` s."""
        start = len(self.frames)
        try:
            async with asyncio.timeout(within):
                while True:
                    await self.next_frame()
        except StreamClosed:
            return self.frames[start:]
        except TimeoutError:
            raise AssertionError(
                f"the stream did not end within {within} s; frames: {self.frames[start:]}"
            ) from None


@asynccontextmanager
async def open_stream(
    http: httpx.AsyncClient,
    url: str,
    *,
    token: str | None = None,
    last_event_id: int | str | None = None,
    params: Mapping[str, str] | None = None,
    within: float = 5.0,
) -> AsyncIterator[EventStream]:
    """GET a stream; the response head must arrive within `within` seconds."""
    headers = {"accept": "text/event-stream"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    if last_event_id is not None:
        headers["last-event-id"] = str(last_event_id)
    request = http.build_request("GET", url, headers=headers, params=params)
    async with asyncio.timeout(within):
        response = await http.send(request, stream=True)
    try:
        yield EventStream(response)
    finally:
        await response.aclose()


def changes(frames: list[Frame]) -> list[Frame]:
    """The event frames among `frames` that announce changes, without WATCHING_EVENTS."""
    return [f for f in frames if f.is_event and f.event not in WATCHING_EVENTS]


def keys_in(value: Any) -> Iterator[str]:
    """Every object key anywhere inside a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from keys_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys_in(item)


def values_in(value: Any) -> Iterator[Any]:
    """Every scalar anywhere inside a JSON value."""
    if isinstance(value, dict):
        for item in value.values():
            yield from values_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from values_in(item)
    else:
        yield value


def staff_only_keys(value: Any) -> set[str]:
    """The cost, internal-notes and credit keys anywhere in a JSON value."""
    return {key for key in keys_in(value) if STAFF_ONLY_KEY.search(key)}


def assert_consecutive(events: list[Frame], after: int) -> None:
    """Ids after+1, after+2, ... with nothing missing or repeated."""
    seqs = [e.seq for e in events]
    assert seqs == list(range(after + 1, after + 1 + len(events))), seqs
