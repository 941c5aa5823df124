"""Following a live session's Server-Sent Events: typed `Event`s, each delivered once and in
order, across reconnections that resume from the last event delivered.

Each event's data decodes into the Struct of its type (the SSE `event:` field names it, as the
`type` tag does inside the data on the tRPC wire), so the same typed objects come out either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections.abc import AsyncGenerator, Generator
from typing import Any, Generic, Self, TypeVar, get_args

import httpx
import httpx_sse
import msgspec

from .errors import ProtocolError, RpcError, TransportError
from .transport import error_of, responses

# The longest a stream may stay silent before it is taken for dead and reopened. The server
# sends a heartbeat every LIVE_SHOPPING_HEARTBEAT_MS (30 s unless configured otherwise).
DEFAULT_STREAM_READ_TIMEOUT = 75.0

log = logging.getLogger("live_shopping_client")

_FINAL_STATUSES = frozenset({"CONVERTED", "CANCELLED"})
_SNAPSHOT = "SESSION_SNAPSHOT"
_DEFAULT_RETRY_S = 2.0  # until the server's `retry:` hint says otherwise
_MAX_RECONNECT_DELAY_S = 30.0
E = TypeVar("E")


class Event(msgspec.Struct, Generic[E], frozen=True):
    """One event of a live session's stream.

    `id` is the session's event sequence number (keep the last one to resume from it later),
    `type` the event type (`SESSION_SNAPSHOT`, `CART_UPDATED`, `SESSION_STATUS`, ...) and `data`
    the typed event, one Struct per type (`CartUpdatedEvent`, ...; `ClientCartUpdatedEvent`, ...
    on the client's stream): the session's whole state after the change (`session`, `cart`,
    ...), as staff or as the client see it, and what changed (`change`). Tell the types apart
    with `match event.data: case CartUpdatedEvent(cart=cart): ...`.
    """

    id: int
    type: str
    data: E

    @property
    def ends_session(self) -> bool:
        """Whether the session is over with this event (converted or cancelled)."""
        status = getattr(getattr(self.data, "session", None), "status", None)
        return self.type == "SESSION_CONVERTED" or status in _FINAL_STATUSES


class EventTypes(Generic[E]):
    """The decoders of one stream's events by event type (each Struct's tag), built once.

    `union` is the stream's union of tagged Structs (`SessionEvent`, `RoomEvent`).
    """

    def __init__(self, union: Any) -> None:
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {}
        for struct in get_args(union) or (union,):
            tag = struct.__struct_config__.tag
            self._decoders[str(tag)] = msgspec.json.Decoder(struct)

    def decode(self, event_type: str, data: str) -> E:
        """The event of that type; its data may also carry the type as its `type` member.

        KeyError for a type this client does not know, msgspec's errors for data that is not
        what the type carries.
        """
        decoded: E = self._decoders[event_type].decode(data)
        return decoded


class _Answer(enum.Enum):
    """What the server's answer to opening a stream means for the subscription."""

    STREAM = "stream"  # 200 with an event stream: read it
    FINISHED = "finished"  # 204: the session is over and every event was delivered
    RETRY = "retry"  # 5xx on a reconnect: the server is unwell for now; try again later
    REFUSED = "refused"  # anything else: raise what the body says


class _Resumption(Generic[E]):
    """Where a subscription stands, which decides how and when its next connection opens: the
    last event delivered (sent as Last-Event-ID), the server's `retry:` hint, and how many
    connections in a row delivered nothing (the backoff grows with them).

    Shared by the blocking and the asyncio subscription, which differ only in how they wait.
    """

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        last_event_id: int | None,
        events: EventTypes[E],
    ) -> None:
        self.url = url
        self.last_event_id = last_event_id
        self.opened = False  # some connection was answered with a stream or a 204
        self._headers = headers
        self._events = events
        self._last_event: Event[E] | None = None
        self._retry_s = _DEFAULT_RETRY_S
        self._barren = 0
        self._delivered = False  # by the current connection

    def request_headers(self) -> dict[str, str]:
        self._delivered = False
        headers = dict(self._headers)
        if self.last_event_id is not None:
            headers["last-event-id"] = str(self.last_event_id)
        return headers

    def answer(self, response: httpx.Response) -> _Answer:
        status = response.status_code
        content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if status == 200 and content_type == "text/event-stream":
            self.opened = True
            return _Answer.STREAM
        if status == 204:
            return _Answer.FINISHED
        if status >= 500 and self.opened:
            return _Answer.RETRY
        return _Answer.REFUSED

    def refusal(self, response: httpx.Response, body: bytes) -> RpcError | ProtocolError:
        """The error a refused stream carries (JSON-RPC error framing, as `/rpc` answers)."""
        status = response.status_code
        try:
            error = responses.decode(body).error
        except msgspec.DecodeError:
            error = None
        if error is not None:
            return error_of(error, status)
        return ProtocolError(
            f"GET {self.url}: HTTP {status} without an event stream",
            http_status=status,
            body=body[:2000],
        )

    def unreachable(self, exc: httpx.TransportError) -> TransportError:
        """The error of a first connection that got no answer (nothing to resume yet)."""
        timed_out = isinstance(exc, httpx.TimeoutException)
        return TransportError(f"GET {self.url} failed: {exc!r}", timed_out=timed_out)

    def take(self, sse: httpx_sse.ServerSentEvent) -> Event[E] | None:
        """The event `sse` carries; None for a retry hint, a heartbeat, or a repeat."""
        if sse.retry is not None:
            self._retry_s = min(max(sse.retry, 0) / 1000, _MAX_RECONNECT_DELAY_S)
        if not sse.data:
            # The SSE spec dispatches nothing for a block without data; httpx-sse still yields
            # one for a lone `retry:` line, and for a heartbeat comment once an id was seen.
            return None
        event = self._decode(sse)
        # A snapshot restates the whole session and restarts the count; any other event at or
        # below the last id was delivered already.
        seen = self.last_event_id
        if seen is not None and event.id <= seen and event.type != _SNAPSHOT:
            return None
        self.last_event_id = event.id
        self._last_event = event
        self._delivered = True
        return event

    def _decode(self, sse: httpx_sse.ServerSentEvent) -> Event[E]:
        def protocol_error(problem: str) -> ProtocolError:
            body = sse.data[:2000].encode()
            return ProtocolError(f"GET {self.url}: {problem}", http_status=200, body=body)

        if not (sse.id.isascii() and sse.id.isdigit()):
            raise protocol_error(f"event {sse.event!r} has no numeric id ({sse.id!r})")
        try:
            data = self._events.decode(sse.event, sse.data)
        except KeyError:
            raise protocol_error(
                f"event {sse.id} has a type this client does not know ({sse.event!r}); "
                "is the client out of date?"
            ) from None
        except msgspec.ValidationError as exc:
            raise protocol_error(
                f"event {sse.id} ({sse.event}) does not match this client's types ({exc}); "
                "is the client out of date?"
            ) from None
        except msgspec.DecodeError:
            raise protocol_error(f"event {sse.id} ({sse.event}) is not a JSON object") from None
        return Event(id=int(sse.id), type=sse.event, data=data)

    def reconnect_delay(self, why: str) -> float:
        """Seconds to wait before reopening a stream that ended for `why`."""
        if self._delivered:
            self._barren = 0
            if self._last_event is not None and self._last_event.ends_session:
                # The server closes a stream after the session's final event; reconnecting at
                # once either hears 204 (all delivered) or gets what was committed with it.
                return 0.0
        else:
            self._barren += 1
        backoff = min(self._retry_s * 2.0**self._barren, _MAX_RECONNECT_DELAY_S)
        # Jitter, so that the clients of a restarted server do not all come back at once.
        delay = backoff * random.uniform(1.0, 1.25)  # noqa: S311 - not for security
        log.info(
            "live stream %s %s; resuming after event %s in %.1f s",
            self.url,
            why,
            self.last_event_id,
            delay,
        )
        return delay


def _stream_timeout(base: httpx.Timeout, read_timeout: float | None) -> httpx.Timeout:
    return httpx.Timeout(connect=base.connect, read=read_timeout, write=base.write, pool=base.pool)


class Subscription(Generic[E]):
    """A live session's events, each delivered once and in order, across reconnections.

    Iterate it: it connects on the first `next()`. When the connection drops (a network error,
    no byte for `read_timeout` seconds though the server sends heartbeats, a 5xx, or the server
    closing the stream) it reconnects after the server's `retry:` hint, backing off while
    connections keep failing, with `Last-Event-ID` set to the last event delivered, so the
    server replays exactly what was missed. Iteration ends by itself once the session is
    converted or cancelled and every event was delivered.

    A refusal (bad token, a session one may not see) raises `RpcError` and is not retried, and
    so does a failure to open the very first connection (`TransportError` when the server
    cannot be reached). Close it (or use `with`) to stop early; `last_event_id` tells where to
    resume later.
    """

    def __init__(
        self,
        http: httpx.Client,
        url: str,
        headers: dict[str, str],
        *,
        last_event_id: int | None,
        read_timeout: float | None,
        events: EventTypes[E],
    ) -> None:
        self._http = http
        self._timeout = _stream_timeout(http.timeout, read_timeout)
        self._resumption = _Resumption(url, headers, last_event_id, events)
        self._events = self._follow()

    @property
    def last_event_id(self) -> int | None:
        """The id of the last event delivered (or the one given to start after)."""
        return self._resumption.last_event_id

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Event[E]:
        return next(self._events)

    def close(self) -> None:
        self._events.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _follow(self) -> Generator[Event[E], None, None]:
        resumption = self._resumption
        while True:
            headers = resumption.request_headers()
            try:
                with self._http.stream(
                    "GET", resumption.url, headers=headers, timeout=self._timeout
                ) as response:
                    answer = resumption.answer(response)
                    if answer is _Answer.FINISHED:
                        return
                    if answer is _Answer.REFUSED:
                        raise resumption.refusal(response, response.read())
                    if answer is _Answer.STREAM:
                        for sse in httpx_sse.EventSource(response).iter_sse():
                            event = resumption.take(sse)
                            if event is not None:
                                yield event
                        why = "was closed by the server"
                    else:
                        why = f"answered HTTP {response.status_code}"
            except httpx.TransportError as exc:
                if not resumption.opened:
                    raise resumption.unreachable(exc) from exc
                why = f"dropped ({exc!r})"
            time.sleep(resumption.reconnect_delay(why))


class AsyncSubscription(Generic[E]):
    """`Subscription` for asyncio: iterate it with `async for`, close it with `aclose()` (or
    `async with`)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        headers: dict[str, str],
        *,
        last_event_id: int | None,
        read_timeout: float | None,
        events: EventTypes[E],
    ) -> None:
        self._http = http
        self._timeout = _stream_timeout(http.timeout, read_timeout)
        self._resumption = _Resumption(url, headers, last_event_id, events)
        self._events = self._follow()

    @property
    def last_event_id(self) -> int | None:
        """The id of the last event delivered (or the one given to start after)."""
        return self._resumption.last_event_id

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event[E]:
        return await anext(self._events)

    async def aclose(self) -> None:
        await self._events.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _follow(self) -> AsyncGenerator[Event[E], None]:
        resumption = self._resumption
        while True:
            headers = resumption.request_headers()
            try:
                async with self._http.stream(
                    "GET", resumption.url, headers=headers, timeout=self._timeout
                ) as response:
                    answer = resumption.answer(response)
                    if answer is _Answer.FINISHED:
                        return
                    if answer is _Answer.REFUSED:
                        raise resumption.refusal(response, await response.aread())
                    if answer is _Answer.STREAM:
                        sses = httpx_sse.EventSource(response).aiter_sse()
                        async with contextlib.aclosing(sses):
                            async for sse in sses:
                                event = resumption.take(sse)
                                if event is not None:
                                    yield event
                        why = "was closed by the server"
                    else:
                        why = f"answered HTTP {response.status_code}"
            except httpx.TransportError as exc:
                if not resumption.opened:
                    raise resumption.unreachable(exc) from exc
                why = f"dropped ({exc!r})"
            await asyncio.sleep(resumption.reconnect_delay(why))
