"""The SSE endpoints: staff `/api/sse/live-shopping/{sessionId}`, client
`/api/sse/vip/live-shopping/{roomCode}`.

A stream is refused (a JSON error, before any byte of the stream) unless its bearer token or
ticket and the session access rules allow it. Then it sends a `retry:` hint and either a
SESSION_SNAPSHOT or, with Last-Event-ID, every outbox event after that id; then live events
from the bus. Sequence numbers make the seam exact: a live event already sent is skipped, a gap
is backfilled from the outbox, and a RESYNC (Redis came back, the worker's outbox watcher saw
a newer event, the mailbox overflowed) makes the stream read the outbox itself.
An idle stream never queries on its own: it only sends heartbeats. The stream ends after the
session's final event.

No stream holds a database connection while it writes: it reads (the snapshot, or a page of
the outbox, app/events/replay.py), gives the connection back, then writes. A client that does
not take what is written is dropped once one write has waited WRITE_STALL_S; it resumes later
with Last-Event-ID and loses nothing.

These are raw ASGI handlers: a stream is long-lived and cheap, so it keeps no framework
request/response objects around.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from litestar import asgi
from litestar.enums import ScopeType
from litestar.exceptions import ClientException
from litestar.types import HTTPResponseStartEvent, Message, Receive, Scope, Send
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LiveSession
from app.domain.actors import STAFF_ROLES, Actor, Role
from app.domain.announce import client_snapshot, staff_snapshot
from app.domain.errors import Forbidden, InvalidInput
from app.domain.outbox import EventType
from app.domain.sessions import session_for_client, session_for_staff
from app.domain.status import FINAL_STATUSES
from app.events.frames import HEARTBEAT, Audience, LiveEvent, frame, retry_hint
from app.events.hub import Listener, Signal
from app.events.streams import client_stream_key, staff_stream_key
from app.rpc import jsonrpc
from app.rpc.errors import ErrorCode, RpcError, error_from_exception
from app.runtime import Services

log = logging.getLogger("app.events.sse")

RETRY_MS = 2000
# How long one write may wait for the client to take data before the stream is dropped. A write
# waits only once the socket's kernel buffer and the server's transport buffer (64 KiB) are
# full, i.e. the client has taken nothing for a while. Ten seconds rides out a congested mobile
# link or a handover (TCP's retransmissions back off over a few seconds), yet frees a dead or
# frozen client's stream, and the page it holds, well before the next heartbeat (30 s).
WRITE_STALL_S = 10.0
_MAX_EVENT_ID = 2**31 - 1

STREAM_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]

Loader = Callable[[AsyncSession, Actor], Awaitable[LiveSession]]


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """What differs between the two streams."""

    audience: Audience
    key: str
    roles: frozenset[Role]
    load: Loader

    async def snapshot(self, db: AsyncSession, live: LiveSession) -> object:
        if self.audience is Audience.STAFF:
            return await staff_snapshot(db, live)
        return await client_snapshot(db, live)


@asgi("/api/sse", is_mount=True, copy_scope=False)
async def streams(scope: Scope, receive: Receive, send: Send) -> None:
    """Routes the two stream paths (a mount: litestar's ASGI routes cannot take path params)."""
    if scope["type"] != ScopeType.HTTP:
        # A WebSocket handshake cannot be answered with http.* messages (uvicorn fails it with
        # a 500); this is how litestar refuses a WebSocket on an HTTP-only route.
        raise ClientException()
    parts = scope["path"].strip("/").split("/")
    match parts:
        case ["live-shopping", session_id] if _is_number(session_id):
            await _serve(scope, receive, send, _staff_spec(int(session_id)))
        case ["vip", "live-shopping", room_code] if room_code:
            await _serve(scope, receive, send, _client_spec(room_code))
        case _:
            await _refuse(send, RpcError(ErrorCode.NOT_FOUND, "No stream at this path"))


def _staff_spec(session_id: int) -> StreamSpec:
    async def load(db: AsyncSession, actor: Actor) -> LiveSession:
        return await session_for_staff(db, actor, session_id)

    return StreamSpec(Audience.STAFF, staff_stream_key(session_id), STAFF_ROLES, load)


def _client_spec(room_code: str) -> StreamSpec:
    async def load(db: AsyncSession, actor: Actor) -> LiveSession:
        return await session_for_client(db, actor, room_code)

    return StreamSpec(Audience.CLIENT, client_stream_key(room_code), frozenset({Role.CLIENT}), load)


ROUTES = [streams]


async def _serve(scope: Scope, receive: Receive, send: Send, spec: StreamSpec) -> None:
    if scope.get("method") != "GET":
        await _refuse(send, RpcError(ErrorCode.BAD_REQUEST, "Streams are opened with GET"))
        return
    state = scope["app"].state
    services: Services = state.services
    bus = services.bus
    try:
        actor, last_event_id = _admit(services, scope, spec)
        session_id = await _session_id(services, spec, actor)
    except Exception as exc:
        await _refuse(send, exc)
        return

    listener = await bus.listen(session_id, spec.audience)
    try:
        stream = _Stream(services, spec, actor, session_id, listener, send)
        await stream.run(receive, last_event_id)
    finally:
        await bus.unlisten(listener)


def _admit(services: Services, scope: Scope, spec: StreamSpec) -> tuple[Actor, int | None]:
    """Who is asking, whether they may, and from where to resume; raises to refuse."""
    if not services.settings.live_shopping_enabled:
        raise RpcError(ErrorCode.METHOD_NOT_FOUND, "Live shopping is not enabled")
    headers = _headers(scope)
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    authorization = headers.get("authorization")
    tickets = query.get("ticket")
    if authorization:
        actor = services.tokens.authenticate(authorization)
    elif tickets:
        actor = services.tokens.authenticate_ticket(tickets[0], spec.key)
    else:
        actor = services.tokens.authenticate(None)
    if actor.role not in spec.roles:
        raise Forbidden(f"Role {actor.role} may not open this stream")
    given = headers.get("last-event-id") or next(iter(query.get("lastEventId", [])), None)
    return actor, _event_id(given)


def _is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '²', which int() refuses."""
    return text.isascii() and text.isdigit() and len(text) < 16


async def _session_id(services: Services, spec: StreamSpec, actor: Actor) -> int:
    """The session the actor may watch (raises otherwise); a stream keeps no ORM objects."""
    async with services.db.read_sessions() as db:
        return (await spec.load(db, actor)).id


def _event_id(given: str | None) -> int | None:
    if given is None or given == "":
        return None
    if not _is_number(given) or int(given) > _MAX_EVENT_ID:
        raise InvalidInput("Last-Event-ID must be an event id of this stream", path="Last-Event-ID")
    return int(given)


def _headers(scope: Scope) -> dict[str, str]:
    """Header name -> the first value given, as POST /rpc reads them."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return headers


async def _refuse(send: Send, exc: Exception) -> None:
    error = error_from_exception(exc)
    if error is None:
        log.error("stream refused by an internal error", exc_info=exc)
        error = RpcError(ErrorCode.INTERNAL_SERVER_ERROR, "Internal error")
    body = jsonrpc.error_response(error)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send(_response_start(error.code.http_status, headers))
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _response_start(status: int, headers: list[tuple[bytes, bytes]]) -> HTTPResponseStartEvent:
    return {"type": "http.response.start", "status": status, "headers": headers}


class ClientStalled(Exception):
    """The client took nothing for WRITE_STALL_S while a write waited: the stream is dropped."""


@dataclass(frozen=True, slots=True)
class _Opening:
    """How a stream opens, read in one short transaction before anything is written."""

    latest_seq: int  # the session's newest event id
    final: bool  # the session is converted or cancelled
    snapshot: bytes | None = None  # a SESSION_SNAPSHOT frame at latest_seq, or
    resume_after: int | None = None  # the id to replay the outbox after

    @property
    def nothing_left(self) -> bool:
        """The story is over and the client has all of it."""
        return self.final and self.resume_after == self.latest_seq


class _Stream:
    def __init__(
        self,
        services: Services,
        spec: StreamSpec,
        actor: Actor,
        session_id: int,
        listener: Listener,
        send: Send,
    ) -> None:
        self.services = services
        self.spec = spec
        self.actor = actor
        self.session_id = session_id
        self.listener = listener
        self._send = send
        self.final = False
        self._last_write = time.monotonic()

    @property
    def last_seq(self) -> int:
        """The newest event id written; kept on the listener for the outbox watcher."""
        return self.listener.last_seq

    @last_seq.setter
    def last_seq(self, seq: int) -> None:
        self.listener.last_seq = seq

    async def run(self, receive: Receive, last_event_id: int | None) -> None:
        task = asyncio.current_task()
        assert task is not None
        reason: list[str] = []

        def stop(why: str) -> None:
            if not reason:
                reason.append(why)
                task.cancel()

        watcher = asyncio.create_task(_watch_disconnect(receive, stop))
        self.listener.on_overflow = lambda: stop("overflow")
        try:
            if await self._start(last_event_id):
                await self._live()
                await self._send_within(
                    {"type": "http.response.body", "body": b"", "more_body": False}
                )
        except asyncio.CancelledError:
            if not reason:
                raise  # shutdown, not ours to swallow
            task.uncancel()
        except ClientStalled:
            # Returning without ending the response makes the server close the connection.
            log.info("dropped a stream of session %s: its client stopped reading", self.session_id)
        except OSError:
            pass  # the connection went away under a write
        finally:
            watcher.cancel()

    async def _start(self, last_event_id: int | None) -> bool:
        """Open the stream with a snapshot or a replay; False when there is nothing to stream."""
        opening = await self._read_opening(last_event_id)
        if opening.nothing_left:
            # 204 stops EventSource from reconnecting.
            await self._send_within(_response_start(204, []))
            await self._send_within({"type": "http.response.body", "body": b"", "more_body": False})
            return False
        await self._send_within(_response_start(200, STREAM_HEADERS))
        await self._write(retry_hint(RETRY_MS))
        if opening.snapshot is not None:
            await self._write(opening.snapshot)
            self.last_seq = opening.latest_seq
            self.final = opening.final
        else:
            assert opening.resume_after is not None
            self.last_seq = opening.resume_after
            await self._backfill()
        return True

    async def _read_opening(self, last_event_id: int | None) -> _Opening:
        async with self.services.db.read_sessions() as db:
            live = await self.spec.load(db, self.actor)
            latest, final = live.last_event_seq, live.status in FINAL_STATUSES
            if last_event_id is not None and last_event_id <= latest:
                return _Opening(latest, final, resume_after=last_event_id)
            # A fresh stream (or an id from the future): the whole state, labelled with the
            # sequence number it includes, so a reconnect can resume right after it. Encoded
            # here, so that the connection goes back before the first byte is written.
            snapshot = await self.spec.snapshot(db, live)
            body = frame(latest, EventType.SESSION_SNAPSHOT.value, snapshot)
            return _Opening(latest, final, snapshot=body)

    async def _live(self) -> None:
        heartbeat_s = self.services.settings.heartbeat_ms / 1000
        while not self.final:
            item = await self.listener.next(heartbeat_s)
            if item is None:
                if time.monotonic() - self._last_write >= heartbeat_s * 0.9:
                    await self._write(HEARTBEAT)
            elif item is Signal.RESYNC:
                await self._catch_up()
            elif isinstance(item, LiveEvent):
                await self._take(item)
        # Events committed with the final one (a sales sheet with the conversion) follow it.
        await self._catch_up()

    async def _take(self, event: LiveEvent) -> None:
        if event.seq <= self.last_seq:
            return  # already sent (replay, backfill or a duplicate)
        if event.seq > self.last_seq + 1:
            await self._catch_up()  # a gap: what came before it is in the outbox
            return
        await self._write(event.frame_for(self.spec.audience))
        self.last_seq = event.seq
        self.final = event.final

    async def _catch_up(self) -> None:
        try:
            await self._backfill()
        except SQLAlchemyError as exc:
            # The database is away: keep the stream and its heartbeat; the next tick retries,
            # and last_seq only ever moves past events actually written.
            log.warning("stream catch-up failed, retrying later: %s", exc)

    async def _backfill(self) -> None:
        """Write the outbox events after last_seq, a page at a time, holding no connection."""
        outbox = self.services.outbox
        while True:
            page = await outbox.after(self.session_id, self.last_seq)
            for event in page:
                await self._write(event.frame_for(self.spec.audience))
                self.last_seq = event.seq
                self.final = self.final or event.final
            if len(page) < outbox.page_size:
                return

    async def _write(self, body: bytes) -> None:
        await self._send_within({"type": "http.response.body", "body": body, "more_body": True})
        self._last_write = time.monotonic()

    async def _send_within(self, message: Message) -> None:
        """Send, or raise ClientStalled once the client has taken nothing for WRITE_STALL_S."""
        try:
            async with asyncio.timeout(WRITE_STALL_S):
                await self._send(message)
        except TimeoutError:
            raise ClientStalled from None


async def _watch_disconnect(receive: Receive, stop: Callable[[str], None]) -> None:
    while True:
        message: dict[str, Any] = dict(await receive())
        if message["type"] == "http.disconnect":
            stop("disconnect")
            return
