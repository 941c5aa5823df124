"""The stream core, and the SSE endpoints: staff `/api/sse/live-shopping/{sessionId}`, client
`/api/sse/vip/live-shopping/{roomCode}`. tRPC's subscriptions (app/events/subscriptions.py) are
served by the same core in their own framing (app/events/framing.py): auth, access, redaction,
replay, reset, heartbeat, shutdown and stall drop are written here once.

A stream is refused (before any event) unless its bearer token or ticket and the session access
rules allow it. Then it sends its framing's head and either a SESSION_SNAPSHOT or, with
Last-Event-ID, every outbox event after that id; then live events from the bus. Its
Last-Event-ID never refuses a stream: an id the outbox cannot replay from (malformed, another
session's, from the future, pruned) gets a snapshot marked `reset`.
Sequence numbers make the seam exact: a live event already sent is skipped, a gap is
backfilled from the outbox, and a RESYNC (Redis came back, the worker's outbox watcher saw a
newer event, the mailbox overflowed) makes the stream read the outbox itself.
An idle stream never queries on its own: it only sends heartbeats. The stream ends after the
session's final event, or when its worker is told to stop (`OPEN_STREAMS`): then it ends its
response cleanly within the grace period and its client resumes on another worker.

No stream holds a database connection while it writes: it reads (the session, its access and
the opening, in one transaction; or a page of the outbox, app/events/replay.py), gives the
connection back, then writes. A client that does not take what is written is dropped once one
write has waited WRITE_STALL_S; it resumes later with Last-Event-ID and loses nothing.

These are raw ASGI handlers: a stream is long-lived and cheap, so it keeps no framework
request/response objects around.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from litestar import asgi
from litestar.enums import ScopeType
from litestar.exceptions import ClientException
from litestar.types import (
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)
from sqlalchemy.exc import SQLAlchemyError

from app.domain.actors import Actor
from app.domain.errors import Forbidden
from app.domain.status import FINAL_STATUSES
from app.events.frames import LiveEvent
from app.events.framing import SSE, STREAM_HEADERS, Framing, Whole
from app.events.hub import Listener, Signal
from app.events.streams import StreamSpec, client_stream, staff_stream
from app.events.wire import Wire, wire_of
from app.rpc.errors import ErrorCode, RpcError, error_from_exception
from app.runtime import Services
from app.scope_headers import first_header

log = logging.getLogger("app.events.sse")

# How long one write may wait for the client to take data before the stream is dropped. A write
# waits only once the socket's kernel buffer and the server's transport buffer (64 KiB) are
# full, i.e. the client has taken nothing for a while. Ten seconds rides out a congested mobile
# link or a handover (TCP's retransmissions back off over a few seconds), yet frees a dead or
# frozen client's stream, and the page it holds, well before the next heartbeat (30 s).
WRITE_STALL_S = 10.0

# Shutdown (DESIGN.md 5). uvicorn stops accepting, waits SHUTDOWN_GRACE_S for open connections
# to close, then cancels what is left (an ERROR with a traceback each) before the lifespan
# shutdown runs, so streams cannot wait for that: the stop signal reaches them (OPEN_STREAMS)
# and each ends at a random moment within DRAIN_SPREAD_S, so that its clients' reconnections
# (the retry hint later) spread over the other workers instead of arriving all at once. The final
# frame may wait DRAIN_WRITE_S for a client that is behind. Spread and write fit in the grace
# period with room for a busy event loop.
SHUTDOWN_GRACE_S = 5
DRAIN_SPREAD_S = 2.0
DRAIN_WRITE_S = 1.0


STREAMS_PREFIX = "/api/sse"


@asgi(STREAMS_PREFIX, is_mount=True, copy_scope=False)
async def streams(scope: Scope, receive: Receive, send: Send) -> None:
    """Routes the two stream paths (a mount: litestar's ASGI routes cannot take path params)."""
    if scope["type"] != ScopeType.HTTP:
        # A WebSocket handshake cannot be answered with http.* messages (uvicorn fails it with
        # a 500); this is how litestar refuses a WebSocket on an HTTP-only route.
        raise ClientException()
    # The mount has cut its prefix from the path.
    await open_stream(scope["app"].state.services, scope, receive, send, scope["path"])


def open_stream(
    services: Services, scope: Scope, receive: Receive, send: Send, path: str
) -> Awaitable[None]:
    """Answering a request for `path` under /api/sse: for the router above, or straight for
    the served app (app/server.py), which keeps long-lived streams out of the framework's
    layers. Not a coroutine itself, so that no frame of it lives as long as the stream."""
    request = _stream_request(services, scope, path)
    if isinstance(request, RpcError):
        return send_whole(send, SSE.refusal(request))
    spec, credentials, given = request
    return serve(services, receive, send, spec, SSE, credentials, given, wire_of(scope))


def _stream_request(
    services: Services, scope: Scope, path: str
) -> tuple[StreamSpec, Credentials, str | None] | RpcError:
    """What a stream request asks for (path, credentials, Last-Event-ID), or why it is refused.

    A function of its own, so that nothing it reads stays alive as long as the stream.
    """
    match path.strip("/").split("/"):
        case ["live-shopping", session_id] if _is_number(session_id):
            spec = staff_stream(int(session_id))
        case ["vip", "live-shopping", room_code] if room_code:
            spec = client_stream(room_code)
        case _:
            return RpcError(ErrorCode.NOT_FOUND, "No stream at this path")
    if scope.get("method") != "GET":
        return RpcError(ErrorCode.BAD_REQUEST, "Streams are opened with GET")
    if not services.settings.live_shopping_enabled:
        return RpcError(ErrorCode.METHOD_NOT_FOUND, "Live shopping is not enabled")
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    credentials = Credentials(
        authorization=_header(scope, b"authorization"),
        ticket=next(iter(query.get("ticket", [])), None),
    )
    given = _header(scope, b"last-event-id") or next(iter(query.get("lastEventId", [])), None)
    return spec, credentials, given or None


ROUTES = [streams]


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a stream request offers as proof of who it is: a bearer token or a stream ticket."""

    authorization: str | None = None  # "Bearer <JWT>"
    ticket: str | None = None


async def serve(
    services: Services,
    receive: Receive,
    send: Send,
    spec: StreamSpec,
    framing: Framing,
    credentials: Credentials,
    last_event_id: str | None,
    wire: Wire | None = None,
) -> None:
    """Serve one stream: admit it, read its opening, then write until it ends.

    `last_event_id` is the newest event the client has (None: a fresh stream); EventSource
    sends no id rather than an empty one, so an empty one is taken as none. `wire` is the
    request's connection when the server gives it (app/events/wire.py).
    """
    try:
        actor = admit(services, spec, credentials)
    except Exception as exc:
        await send_whole(send, framing.refusal(_as_rpc_error(exc)))
        return
    del credentials  # this frame lives as long as the stream; the token need not
    bus = services.bus
    # Listening starts before the read when the session is known: from the request (the staff
    # stream's id), or for a room code from an earlier stream of this worker (ROOM_SESSIONS).
    # Then nothing committed after the read can pass the stream by. Otherwise the stream listens
    # after its read and then reads the outbox after its opening (a replay does anyway; a
    # snapshot catches up, see _Stream._open).
    known = spec.session_id if spec.session_id is not None else ROOM_SESSIONS.get(spec.key)
    listener = None if known is None else await bus.listen(known, spec.audience)
    try:
        try:
            opening = await _read_opening(services, spec, framing, actor, last_event_id or None)
        except Exception as exc:
            await send_whole(send, framing.refusal(_as_rpc_error(exc)))
            return
        finally:
            del actor
        if opening.nothing_left:
            await send_whole(send, framing.nothing_left())
            return
        if spec.session_id is None:
            ROOM_SESSIONS.learn(spec.key, opening.session_id)
        listened_first = listener is not None and listener.session_id == opening.session_id
        if listener is None or not listened_first:
            if listener is not None:
                await bus.unlisten(listener)
            listener = await bus.listen(opening.session_id, spec.audience)
        stream = _Stream(services, spec, framing, listener, send, opening, listened_first, wire)
        # The stream holds the opening only until it is written: a snapshot is the whole cart
        # (tens of KB), and an idle stream lives for hours.
        del opening
        await stream.run(receive)
    finally:
        if listener is not None:
            await bus.unlisten(listener)


def admit(services: Services, spec: StreamSpec, credentials: Credentials) -> Actor:
    """Who is asking, if they may open this kind of stream (raises to refuse)."""
    if credentials.authorization:
        actor = services.tokens.authenticate(credentials.authorization)
    elif credentials.ticket:
        actor = services.tokens.authenticate_ticket(credentials.ticket, spec.key)
    else:
        actor = services.tokens.authenticate(None)
    if actor.role not in spec.roles:
        raise Forbidden(f"Role {actor.role} may not open this stream")
    return actor


def _is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '²', which int() refuses."""
    return text.isascii() and text.isdigit() and len(text) < 16


def replay_after(last_event_id: str, *, latest: int, oldest_kept: int) -> int | None:
    """The id to replay the outbox after, or None when replay cannot bring the client up to date.

    `last_event_id` is the newest event the client has, as it sent it; `latest` is the session's
    newest event and `oldest_kept` the first one its outbox still holds. Replay needs an id of
    this session's past whose next event is still kept. Anything else, malformed, another
    session's, from the future or older than what is kept, is answered with a reset snapshot.
    """
    if not _is_number(last_event_id):
        return None
    seq = int(last_event_id)
    return seq if oldest_kept - 1 <= seq <= latest else None


def _header(scope: Scope, name: bytes) -> str | None:
    """A header's first value, as POST /rpc reads them."""
    value = first_header(scope, name)
    return None if value is None else value.decode("latin-1")


def _as_rpc_error(exc: Exception) -> RpcError:
    error = error_from_exception(exc)
    if error is None:
        log.error("stream refused by an internal error", exc_info=exc)
        error = RpcError(ErrorCode.INTERNAL_SERVER_ERROR, "Internal error")
    return error


async def send_whole(send: Send, answer: Whole) -> None:
    await send(_response_start(answer.status, answer.headers))
    await send(_end_of_response(answer.body))


def _response_start(status: int, headers: Sequence[tuple[bytes, bytes]]) -> HTTPResponseStartEvent:
    # A list of its own: middleware adds to a response's headers in place (CORS does), which
    # must not leak into STREAM_HEADERS and from there into every later stream.
    return {"type": "http.response.start", "status": status, "headers": [*headers]}


def _end_of_response(body: bytes) -> HTTPResponseBodyEvent:
    return {"type": "http.response.body", "body": body, "more_body": False}


class _Order(enum.Enum):
    """A live event against the stream's last written id (see _Stream._order_of)."""

    WRITTEN = "written"
    NEXT = "next"
    AFTER_A_GAP = "after a gap"


class ClientStalled(Exception):
    """The client took nothing for WRITE_STALL_S while a write waited: the stream is dropped."""


@dataclass(frozen=True, slots=True)
class _Opening:
    """How a stream opens, read in one short transaction before anything is written."""

    session_id: int
    latest_seq: int  # the session's newest event id
    final: bool  # the session is converted or cancelled
    snapshot: bytes | None = None  # a SESSION_SNAPSHOT frame at latest_seq, or
    resume_after: int | None = None  # the id to replay the outbox after

    @property
    def nothing_left(self) -> bool:
        """The story is over and the client has all of it."""
        return self.final and self.resume_after == self.latest_seq


async def _read_opening(
    services: Services, spec: StreamSpec, framing: Framing, actor: Actor, last_event_id: str | None
) -> _Opening:
    """The session the actor may watch (raises otherwise) and how its stream opens, from a read
    shared with the streams of the session opening at the same moment (app/events/openings.py);
    the stream keeps no ORM object."""
    reads = services.openings
    if last_event_id is not None:
        found = await reads.read(spec, snapshot=False)
        live = spec.admit(actor, found.live)
        latest, final = live.last_event_seq, live.status in FINAL_STATUSES
        after = replay_after(last_event_id, latest=latest, oldest_kept=found.oldest_kept)
        if after is not None:
            return _Opening(live.id, latest, final, resume_after=after)
    # A fresh stream, or a resume that replay cannot serve (reset): the whole state, labelled
    # with the sequence number it includes, so a reconnect can resume right after it. Encoded
    # here, before the first byte is written.
    found = await reads.read(spec, snapshot=True)
    live = spec.admit(actor, found.live)
    latest, final = live.last_event_seq, live.status in FINAL_STATUSES
    body = framing.snapshot(latest, found.snapshot, reset=last_event_id is not None)
    return _Opening(live.id, latest, final, snapshot=body)


class OpenStreams:
    """This process's open streams, so that a worker told to stop ends each of them cleanly.

    One per process, like the signal that stops it (app/server.py hooks the two together).
    """

    def __init__(self) -> None:
        self._streams: set[_Stream] = set()
        self.closing = False

    def add(self, stream: _Stream) -> None:
        self._streams.add(stream)
        if self.closing:
            stream.end_by(asyncio.get_running_loop().time())

    def discard(self, stream: _Stream) -> None:
        self._streams.discard(stream)

    def close_all(self, spread_s: float = DRAIN_SPREAD_S) -> None:
        """End every stream at a random moment within `spread_s`; later ones end at once."""
        if self.closing:
            return
        self.closing = True
        now = asyncio.get_running_loop().time()
        for stream in self._streams:
            stream.end_by(now + random.uniform(0, spread_s))  # noqa: S311 - not a secret

    def __len__(self) -> int:
        return len(self._streams)


OPEN_STREAMS = OpenStreams()


class RoomSessions:
    """Room code -> session id, as this worker's earlier streams read them: a room code names
    one session for good, so a room stream that finds its session here listens before its read,
    as a staff stream does, and needs no outbox read after its snapshot. Bounded; a miss only
    costs that read."""

    def __init__(self, max_size: int = 10_000) -> None:
        self._ids: dict[str, int] = {}
        self._max_size = max_size

    def get(self, key: str) -> int | None:
        return self._ids.get(key)

    def learn(self, key: str, session_id: int) -> None:
        if key not in self._ids and len(self._ids) >= self._max_size:
            self._ids.clear()  # rare: a worker that has served this many rooms starts over
        self._ids[key] = session_id


ROOM_SESSIONS = RoomSessions()


class _Stream:
    # Slots: a worker holds one per open stream, for hours.
    __slots__ = (
        "_drain",
        "_end_at",
        "_listened_first",
        "_opening",
        "_send",
        "_started",
        "_stopped_by",
        "_task",
        "_wire",
        "final",
        "framing",
        "listener",
        "services",
        "session_id",
        "spec",
    )

    def __init__(
        self,
        services: Services,
        spec: StreamSpec,
        framing: Framing,
        listener: Listener,
        send: Send,
        opening: _Opening,
        listened_first: bool,
        wire: Wire | None = None,
    ) -> None:
        self.services = services
        self.spec = spec
        self.framing = framing
        self.session_id = opening.session_id
        self.listener = listener
        self._opening: _Opening | None = opening  # until it is written
        # Whether it listened before its opening was read (see serve).
        self._listened_first = listened_first
        self._send = send
        self._wire = wire
        self.final = False
        self._started = False  # the response head is sent
        # When the worker stops: the loop time to end by, and the deadline that enforces it
        # while the stream writes (entered once the opening is read, see _stream).
        self._end_at: float | None = None
        self._drain: asyncio.Timeout | None = None
        self._task: asyncio.Task[Any] | None = None  # the task serving it, once it runs
        self._stopped_by: str | None = None  # why it was stopped from outside, if it was

    @property
    def last_seq(self) -> int:
        """The newest event id written; kept on the listener for the outbox watcher."""
        return self.listener.last_seq

    @last_seq.setter
    def last_seq(self, seq: int) -> None:
        self.listener.last_seq = seq

    def end_by(self, when: float) -> None:
        """End the stream cleanly at loop time `when` (its worker is stopping)."""
        self._end_at = when
        if self._drain is not None and not self._drain.expired():
            self._drain.reschedule(when)

    def _stop(self, why: str) -> None:
        """End the stream from outside its task (its client left, or fell too far behind)."""
        if self._stopped_by is None and self._task is not None:
            self._stopped_by = why
            self._task.cancel()

    def _disconnected(self) -> None:
        self._stop("disconnect")

    def _overflowed(self) -> None:
        self._stop("overflow")

    async def run(self, receive: Receive) -> None:
        task = self._task = asyncio.current_task()
        assert task is not None
        # The wire tells of a disconnect itself; without one a task waits for ASGI's.
        watcher = None
        if self._wire is None:
            watcher = asyncio.create_task(_watch_disconnect(receive, self._disconnected))
        elif self._wire.lost:
            return
        else:
            self._wire.on_lost = self._disconnected
        self.listener.on_overflow = self._overflowed
        OPEN_STREAMS.add(self)
        try:
            await self._stream()
        except asyncio.CancelledError:
            if self._stopped_by is None:
                raise  # shutdown, not ours to swallow
            task.uncancel()
        except ClientStalled:
            # Returning without ending the response makes the server close the connection.
            log.info("dropped a stream of session %s: its client stopped reading", self.session_id)
        except OSError:
            pass  # the connection went away under a write
        except Exception as exc:  # a bug or an outage while opening: the client retries
            log.error("stream of session %s failed", self.session_id, exc_info=exc)
            await self._end_failed(RpcError(ErrorCode.INTERNAL_SERVER_ERROR, "Internal error"))
        finally:
            OPEN_STREAMS.discard(self)
            self.listener.direct = None
            if watcher is not None:
                watcher.cancel()
            if self._wire is not None:
                self._wire.on_lost = None

    async def _stream(self) -> None:
        """Write the opening, then live events, until the story ends or the worker stops.

        The deadline starts only now: the opening's read is done, and everything it may still
        interrupt (a wait for the mailbox, for a shared outbox read, for the client to take a
        write) is safe to cancel. A write cancelled while it waits has written nothing, so the
        client never sees half a frame.
        """
        try:
            async with asyncio.timeout_at(self._end_at) as self._drain:
                await self._open()
                # Live events, inline rather than a coroutine of their own: an idle stream is
                # one suspended frame less.
                listener = self.listener
                if self._wire is not None:
                    listener.direct = self._write_now
                while not self.final:
                    # The listener's future itself, not a coroutine around it, likewise.
                    item = listener.take()
                    if item is None:
                        await listener.wait()
                    elif item is Signal.HEARTBEAT:
                        await self._write(self.framing.heartbeat)
                    elif item is Signal.RESYNC:
                        await self._catch_up()
                    elif isinstance(item, LiveEvent):
                        await self._take(item)
                listener.direct = None
                # Events committed with the final one (a sales sheet with the conversion)
                # follow it.
                await self._catch_up()
        except TimeoutError:
            if self._drain is None or not self._drain.expired():
                raise
            await self._end_for_shutdown()
            return
        finally:
            self._drain = None
        await self._send_within(_end_of_response(self.framing.after_final()))

    async def _end_for_shutdown(self) -> None:
        """End the response (a stream that had not started yet: start and end it), with a
        comment saying why; the client reconnects after the retry hint, to another worker.

        A client that takes nothing for DRAIN_WRITE_S is dropped instead (ClientStalled).
        """
        last = self.framing.shutting_down()
        if not self._started:
            await self._send_within(_response_start(200, STREAM_HEADERS), DRAIN_WRITE_S)
            last = self.framing.head() + last
        await self._send_within(_end_of_response(last), DRAIN_WRITE_S)

    async def _end_failed(self, error: RpcError) -> None:
        """End a stream that broke: its framing's error frame, or a refusal before it began."""
        try:
            if self._started:
                await self._send_within(_end_of_response(self.framing.failed(error)))
            else:
                answer = self.framing.refusal(error)
                await self._send_within(_response_start(answer.status, answer.headers))
                await self._send_within(_end_of_response(answer.body))
        except (ClientStalled, OSError):
            pass  # nobody to tell

    async def _open(self) -> None:
        """Start the response with a snapshot or a replay."""
        opening, self._opening = self._opening, None
        assert opening is not None
        await self._send_within(_response_start(200, STREAM_HEADERS))
        self._started = True
        # The head goes out with what follows it, in one write.
        if opening.snapshot is not None:
            await self._write(self.framing.head() + opening.snapshot)
            self.last_seq = opening.latest_seq
            self.final = opening.final
            del opening  # written: nothing holds the snapshot now
            if not self._listened_first:
                # It listened only after its read (see serve): what was committed in between
                # is in the outbox. One shared read per session (app/events/replay.py).
                await self._catch_up()
        else:
            assert opening.resume_after is not None
            self.last_seq = opening.resume_after
            await self._backfill(self.framing.head())

    def _write_now(self, item: LiveEvent | Signal) -> bool:
        """Take `item` where it is delivered, while the stream waits with nothing pending
        (Listener.direct): write it onto the wire if it is the next event or a heartbeat and
        the connection takes it without waiting. What this declines wakes the stream, which
        deals with it as `_stream` always does (a gap, the final event, a client behind)."""
        assert self._wire is not None
        if item is Signal.HEARTBEAT:
            body = self.framing.heartbeat
        elif isinstance(item, LiveEvent):
            order = self._order_of(item)
            if order is _Order.WRITTEN:
                return True
            if order is _Order.AFTER_A_GAP or item.final:
                return False
            body = self.framing.event(item, self.spec.audience)
        else:
            return False
        if not self._wire.write(body):
            return False
        if isinstance(item, LiveEvent):
            self.last_seq = item.seq
        self.listener.last_write = time.monotonic()
        return True

    def _order_of(self, event: LiveEvent) -> _Order:
        """Where a live event stands against what the stream has written."""
        if event.seq <= self.last_seq:
            return _Order.WRITTEN  # already sent (replay, backfill or a duplicate)
        if event.seq > self.last_seq + 1:
            return _Order.AFTER_A_GAP  # what came before it is in the outbox
        return _Order.NEXT

    async def _take(self, event: LiveEvent) -> None:
        order = self._order_of(event)
        if order is _Order.WRITTEN:
            return
        if order is _Order.AFTER_A_GAP:
            await self._catch_up()
            return
        await self._write(self.framing.event(event, self.spec.audience))
        self.last_seq = event.seq
        self.final = event.final

    async def _catch_up(self) -> None:
        try:
            await self._backfill()
        except SQLAlchemyError as exc:
            # The database is away: keep the stream and its heartbeat; the next tick retries,
            # and last_seq only ever moves past events actually written.
            log.warning("stream catch-up failed, retrying later: %s", exc)

    async def _backfill(self, before: bytes = b"") -> None:
        """Write the outbox events after last_seq (after `before`, if given), a page at a time
        and one write a page, holding no connection: a reconnect storm of thousands of
        streams is one write each, not one per missed event."""
        outbox = self.services.outbox
        while True:
            page = await outbox.after(self.session_id, self.last_seq)
            if page or before:
                audience = self.spec.audience
                await self._write(before + b"".join(self.framing.event(e, audience) for e in page))
                before = b""
            if page:
                self.last_seq = page[-1].seq
                self.final = self.final or any(event.final for event in page)
            if len(page) < outbox.page_size:
                return

    async def _write(self, body: bytes) -> None:
        await self._send_within({"type": "http.response.body", "body": body, "more_body": True})
        self.listener.last_write = time.monotonic()

    async def _send_within(self, message: Message, within_s: float | None = None) -> None:
        """Send, or raise ClientStalled once the client has taken nothing for `within_s`
        (WRITE_STALL_S unless given)."""
        try:
            async with asyncio.timeout(WRITE_STALL_S if within_s is None else within_s):
                await self._send(message)
        except TimeoutError:
            raise ClientStalled from None


async def _watch_disconnect(receive: Receive, disconnected: Callable[[], None]) -> None:
    while True:
        message: dict[str, Any] = dict(await receive())
        if message["type"] == "http.disconnect":
            disconnected()
            return
