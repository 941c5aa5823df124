"""The two ways a stream writes the same events: the SSE routes' own framing and tRPC's.

Everything else about a stream (who may open it, replay, reset, heartbeat timing, shutdown,
dropping a stalled client) is app/events/sse.py's and the same for both; a framing only says
which bytes go on the wire at each of those moments.

- SSE (`/api/sse/...`, DESIGN.md 5): `retry:` hint; `id: <seq>` / `event: <TYPE>` /
  `data: <state>`; a heartbeat comment; a refusal is a JSON error with its HTTP status; a
  stream whose story is over and read answers 204 (which stops EventSource for good).
- tRPC (`GET /trpc/<subscription>`, DESIGN.md 2.2), as @trpc/server's sseStreamProducer writes
  it (stream/sse.ts): `event: connected` with the client options first; each event an unnamed
  message `id: <seq>` / `data: {"type": TYPE, ...state}`, which is what `tracked(id, data)`
  puts on the wire, so httpSubscriptionLink resumes from it; `event: ping` as keep-alive;
  `event: return` after the session's final event (the client then stops); errors as
  `event: serialized-error` with the error's shape, inside a 200 stream, as @trpc/server sends
  a subscription's errors (the client turns them into a TRPCClientError with its code).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from app.domain.outbox import EventType
from app.events.frames import (
    HEARTBEAT,
    SHUTTING_DOWN,
    Audience,
    LiveEvent,
    retry_hint,
    snapshot_data,
    snapshot_frame,
)
from app.rpc import jsonrpc, trpc
from app.rpc.errors import RpcError

RETRY_MS = 2000

Headers = Sequence[tuple[bytes, bytes]]

STREAM_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)
_JSON_ERROR_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
)

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Whole:
    """A complete answer: status, headers and body, sent at once."""

    status: int
    headers: Headers
    body: bytes


class Framing(Protocol):
    """The bytes of a stream at each of its moments."""

    @property
    def heartbeat(self) -> bytes: ...

    def head(self) -> bytes:
        """The first bytes of a stream, before its snapshot or replay."""

    def snapshot(self, seq: int, snapshot: object, *, reset: bool) -> bytes: ...

    def event(self, event: LiveEvent, audience: Audience) -> bytes: ...

    def after_final(self) -> bytes:
        """What follows the session's final event, just before the stream ends."""

    def shutting_down(self) -> bytes:
        """The last bytes of a stream whose worker stops (its client reconnects elsewhere)."""

    def failed(self, error: RpcError) -> bytes:
        """The last bytes of a stream that broke after it started."""

    def refusal(self, error: RpcError) -> Whole:
        """The answer to a stream that may not open."""

    def nothing_left(self) -> Whole:
        """The answer to a stream whose session is over and whose client has all of it."""


class SseFraming:
    """The SSE routes' framing (DESIGN.md 5)."""

    heartbeat = HEARTBEAT

    def head(self) -> bytes:
        return retry_hint(RETRY_MS)

    def snapshot(self, seq: int, snapshot: object, *, reset: bool) -> bytes:
        return snapshot_frame(seq, snapshot, reset=reset)

    def event(self, event: LiveEvent, audience: Audience) -> bytes:
        return event.frame_for(audience)

    def after_final(self) -> bytes:
        return b""  # the response ends; EventSource's reconnect then gets a 204

    def shutting_down(self) -> bytes:
        return SHUTTING_DOWN

    def failed(self, error: RpcError) -> bytes:
        # EventSource has no error frame; the comment is for people reading the wire, and
        # the client reconnects and resumes from its last id.
        return b": stream failed: %s\n\n" % error.code.wire_name.encode()

    def refusal(self, error: RpcError) -> Whole:
        body = jsonrpc.error_response(error)
        headers = (*_JSON_ERROR_HEADERS, (b"content-length", b"%d" % len(body)))
        return Whole(error.code.http_status, headers, body)

    def nothing_left(self) -> Whole:
        return Whole(204, (), b"")  # 204 stops EventSource from reconnecting


class TrpcFraming:
    """tRPC's SSE framing, for `httpSubscriptionLink` (DESIGN.md 2.2).

    `path` is the subscription's, for error shapes; `inactivity_ms` is sent to the client as
    `reconnectAfterInactivityMs` in the `connected` event: with pings due every heartbeat, a
    client that hears nothing for that long reconnects (a connection silently gone).
    """

    name = "trpc"
    heartbeat = b"event: ping\ndata: \n\n"

    def __init__(self, path: str, *, inactivity_ms: int) -> None:
        self.path = path
        self._connected = b"event: connected\ndata: %s\n\n" % _encoder.encode(
            {"reconnectAfterInactivityMs": inactivity_ms}
        )

    def head(self) -> bytes:
        return retry_hint(RETRY_MS) + self._connected

    def snapshot(self, seq: int, snapshot: object, *, reset: bool) -> bytes:
        data = snapshot_data(snapshot, reset=reset)
        return tracked_frame(seq, EventType.SESSION_SNAPSHOT.value, data)

    def event(self, event: LiveEvent, audience: Audience) -> bytes:
        return event.framed(audience, self.name, tracked_frame)

    def after_final(self) -> bytes:
        return b"event: return\ndata: \n\n"

    def shutting_down(self) -> bytes:
        return SHUTTING_DOWN  # no `return`: the client reconnects and resumes

    def failed(self, error: RpcError) -> bytes:
        shape = _encoder.encode(trpc.error_shape(error, self.path))
        return b"event: serialized-error\ndata: %s\n\n" % shape

    def refusal(self, error: RpcError) -> Whole:
        # As @trpc/server: the procedure's error inside a started stream, so the client gets
        # its code (a non-2xx answer only tells EventSource that it failed).
        return Whole(200, STREAM_HEADERS, self.head() + self.failed(error))

    def nothing_left(self) -> Whole:
        return Whole(200, STREAM_HEADERS, self.head() + self.after_final())


def tracked_frame(seq: int, event_type: str, data: bytes) -> bytes:
    """An unnamed message `id: <seq>` whose data is the event's state with its `type` first."""
    if data.startswith(b"{") and data != b"{}":
        body = b'{"type":"%s",%s' % (event_type.encode(), data[1:])
    else:  # no state to merge into (never sent today): the type alone
        body = b'{"type":"%s"}' % event_type.encode()
    return b"id: %d\ndata: %s\n\n" % (seq, body)


SSE = SseFraming()
