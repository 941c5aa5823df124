"""JSON-RPC 2.0 over HTTP for the generated client: framing, errors, sync and async transports,
and subscriptions to a live session's Server-Sent Events that resume where they dropped.

Written by hand as `app/codegen/client_runtime.py` in the service repository, where ruff and
mypy check it, and copied verbatim into the client as `_runtime.py` by `gen-client`. It imports
nothing but the standard library, msgspec, httpx and httpx-sse: the client is used outside that
repository.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import random
import time
from collections.abc import AsyncGenerator, Generator
from typing import Any, Generic, Self, TypeVar
from urllib.parse import quote

import httpx
import httpx_sse
import msgspec

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
# The longest a stream may stay silent before it is taken for dead and reopened. The server
# sends a heartbeat every LIVE_SHOPPING_HEARTBEAT_MS (30 s unless configured otherwise).
DEFAULT_STREAM_READ_TIMEOUT = 75.0

log = logging.getLogger("live_shopping_client")


class RpcError(Exception):
    """The service answered with an error.

    `code` is its name (`NOT_FOUND`, `UNAUTHORIZED`, ...), `rpc_code` the JSON-RPC number,
    `http_status` the HTTP status it maps to, and `data` the whole error data object
    (`issues` lists validation problems when there are any).
    """

    def __init__(
        self, *, code: str, rpc_code: int, http_status: int, message: str, data: dict[str, Any]
    ) -> None:
        super().__init__(f"{code} ({rpc_code}, HTTP {http_status}): {message}")
        self.code = code
        self.rpc_code = rpc_code
        self.http_status = http_status
        self.message = message
        self.data = data

    @property
    def issues(self) -> list[dict[str, Any]]:
        """Validation problems, each `{"path": "$.quantity", "message": ...}`."""
        issues = self.data.get("issues")
        return list(issues) if isinstance(issues, list) else []


class ProtocolError(Exception):
    """The answer was not the JSON-RPC response this client expects (a proxy error page, a
    result that no longer matches the client's types, ...)."""

    def __init__(self, message: str, *, http_status: int, body: bytes) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.body = body


class Method(Generic[T]):
    """One procedure: its name on the wire and the decoder of its result, built once."""

    __slots__ = ("decoder", "name")

    def __init__(self, name: str, result_type: Any) -> None:
        self.name = name
        self.decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(result_type)


class _Request(msgspec.Struct):
    jsonrpc: str
    id: int
    method: str
    params: msgspec.Struct


class _ErrorObject(msgspec.Struct):
    code: int
    message: str
    data: dict[str, Any] = {}


class _Response(msgspec.Struct):
    id: int | str | None = None
    result: msgspec.Raw = msgspec.Raw()
    error: _ErrorObject | None = None


_encoder = msgspec.json.Encoder()  # decimals go out as strings, datetimes as RFC 3339
_responses = msgspec.json.Decoder(_Response)


def _encode(method: Method[Any], params: msgspec.Struct, request_id: int) -> bytes:
    return _encoder.encode(
        _Request(jsonrpc="2.0", id=request_id, method=method.name, params=params)
    )


def _result(method: Method[T], request_id: int, status: int, body: bytes) -> T:
    def protocol_error(problem: str) -> ProtocolError:
        return ProtocolError(f"{method.name}: {problem}", http_status=status, body=body[:2000])

    try:
        response = _responses.decode(body)
    except msgspec.DecodeError:
        raise protocol_error(f"HTTP {status} without a JSON-RPC response") from None
    if response.error is not None:
        raise _rpc_error(response.error, status)
    if response.id != request_id:
        raise protocol_error(f"response id {response.id!r} does not match request {request_id}")
    if not len(response.result):
        raise protocol_error("response has neither result nor error")
    try:
        return method.decoder.decode(response.result)
    except msgspec.ValidationError as exc:
        raise protocol_error(
            f"result does not match this client's types ({exc}); is the client out of date?"
        ) from None


def _rpc_error(error: _ErrorObject, status: int) -> RpcError:
    code = error.data.get("code")
    http_status = error.data.get("httpStatus")
    return RpcError(
        code=code if isinstance(code, str) else f"JSON-RPC {error.code}",
        rpc_code=error.code,
        http_status=http_status if isinstance(http_status, int) else status,
        message=error.message,
        data=error.data,
    )


def _headers(token: str | None) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return headers


def _stream_headers(token: str | None) -> dict[str, str]:
    headers = {"accept": "text/event-stream", "cache-control": "no-store"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return headers


class SyncTransport:
    """Posts one call at a time to `{base_url}/rpc`, and opens event streams, with a blocking
    httpx client."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        timeout: float,
        http_client: httpx.Client | None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._url = self._base_url + "/rpc"
        self._token = token
        self._headers = _headers(token)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client(timeout=timeout)
        self._ids = itertools.count(1)

    def call(self, method: Method[T], params: msgspec.Struct) -> T:
        request_id = next(self._ids)
        response = self._http.post(
            self._url, content=_encode(method, params, request_id), headers=self._headers
        )
        return _result(method, request_id, response.status_code, response.content)

    def subscribe(
        self, path: str, *, last_event_id: int | None, read_timeout: float | None
    ) -> Subscription:
        return Subscription(
            self._http,
            self._base_url + path,
            _stream_headers(self._token),
            last_event_id=last_event_id,
            read_timeout=read_timeout,
        )

    def close(self) -> None:
        if self._owns_http:
            self._http.close()


class AsyncTransport:
    """Posts one call at a time to `{base_url}/rpc`, and opens event streams, with an asyncio
    httpx client."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        timeout: float,
        http_client: httpx.AsyncClient | None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._url = self._base_url + "/rpc"
        self._token = token
        self._headers = _headers(token)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient(timeout=timeout)
        self._ids = itertools.count(1)

    async def call(self, method: Method[T], params: msgspec.Struct) -> T:
        request_id = next(self._ids)
        response = await self._http.post(
            self._url, content=_encode(method, params, request_id), headers=self._headers
        )
        return _result(method, request_id, response.status_code, response.content)

    def subscribe(
        self, path: str, *, last_event_id: int | None, read_timeout: float | None
    ) -> AsyncSubscription:
        return AsyncSubscription(
            self._http,
            self._base_url + path,
            _stream_headers(self._token),
            last_event_id=last_event_id,
            read_timeout=read_timeout,
        )

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()


# --- live-session streams (Server-Sent Events) ---------------------------------------------------

_FINAL_STATUSES = frozenset({"CONVERTED", "CANCELLED"})
_SNAPSHOT = "SESSION_SNAPSHOT"
_DEFAULT_RETRY_S = 2.0  # until the server's `retry:` hint says otherwise
_MAX_RECONNECT_DELAY_S = 30.0
_event_data = msgspec.json.Decoder(dict[str, Any])


class Event(msgspec.Struct, frozen=True):
    """One event of a live session's stream.

    `id` is the session's event sequence number (keep the last one to resume from it later),
    `type` the event type (`SESSION_SNAPSHOT`, `CART_UPDATED`, `SESSION_STATUS`, ...) and `data`
    its JSON payload: the session's whole state after the change (`session`, `cart`, ...), as
    staff or as the client see it, by stream.
    """

    id: int
    type: str
    data: dict[str, Any]

    @property
    def ends_session(self) -> bool:
        """Whether the session is over with this event (converted or cancelled)."""
        session = self.data.get("session")
        status = session.get("status") if isinstance(session, dict) else None
        return self.type == "SESSION_CONVERTED" or status in _FINAL_STATUSES


class _Answer(enum.Enum):
    """What the server's answer to opening a stream means for the subscription."""

    STREAM = "stream"  # 200 with an event stream: read it
    FINISHED = "finished"  # 204: the session is over and every event was delivered
    RETRY = "retry"  # 5xx on a reconnect: the server is unwell for now; try again later
    REFUSED = "refused"  # anything else: raise what the body says


class _Resumption:
    """Where a subscription stands, which decides how and when its next connection opens: the
    last event delivered (sent as Last-Event-ID), the server's `retry:` hint, and how many
    connections in a row delivered nothing (the backoff grows with them).

    Shared by the blocking and the asyncio subscription, which differ only in how they wait.
    """

    def __init__(self, url: str, headers: dict[str, str], last_event_id: int | None) -> None:
        self.url = url
        self.last_event_id = last_event_id
        self.opened = False  # some connection was answered with a stream or a 204
        self._headers = headers
        self._last_event: Event | None = None
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
            error = _responses.decode(body).error
        except msgspec.DecodeError:
            error = None
        if error is not None:
            return _rpc_error(error, status)
        return ProtocolError(
            f"GET {self.url}: HTTP {status} without an event stream",
            http_status=status,
            body=body[:2000],
        )

    def take(self, sse: httpx_sse.ServerSentEvent) -> Event | None:
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

    def _decode(self, sse: httpx_sse.ServerSentEvent) -> Event:
        def protocol_error(problem: str) -> ProtocolError:
            body = sse.data[:2000].encode()
            return ProtocolError(f"GET {self.url}: {problem}", http_status=200, body=body)

        if not (sse.id.isascii() and sse.id.isdigit()):
            raise protocol_error(f"event {sse.event!r} has no numeric id ({sse.id!r})")
        try:
            data = _event_data.decode(sse.data)
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


class Subscription:
    """A live session's events, each delivered once and in order, across reconnections.

    Iterate it: it connects on the first `next()`. When the connection drops (a network error,
    no byte for `read_timeout` seconds though the server sends heartbeats, a 5xx, or the server
    closing the stream) it reconnects after the server's `retry:` hint, backing off while
    connections keep failing, with `Last-Event-ID` set to the last event delivered, so the
    server replays exactly what was missed. Iteration ends by itself once the session is
    converted or cancelled and every event was delivered.

    A refusal (bad token, a session one may not see) raises `RpcError` and is not retried, and
    so does a failure to open the very first connection (`httpx.TransportError` when the server
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
    ) -> None:
        self._http = http
        self._timeout = _stream_timeout(http.timeout, read_timeout)
        self._resumption = _Resumption(url, headers, last_event_id)
        self._events = self._follow()

    @property
    def last_event_id(self) -> int | None:
        """The id of the last event delivered (or the one given to start after)."""
        return self._resumption.last_event_id

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Event:
        return next(self._events)

    def close(self) -> None:
        self._events.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _follow(self) -> Generator[Event, None, None]:
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
                    raise
                why = f"dropped ({exc!r})"
            time.sleep(resumption.reconnect_delay(why))


class AsyncSubscription:
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
    ) -> None:
        self._http = http
        self._timeout = _stream_timeout(http.timeout, read_timeout)
        self._resumption = _Resumption(url, headers, last_event_id)
        self._events = self._follow()

    @property
    def last_event_id(self) -> int | None:
        """The id of the last event delivered (or the one given to start after)."""
        return self._resumption.last_event_id

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        return await anext(self._events)

    async def aclose(self) -> None:
        await self._events.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _follow(self) -> AsyncGenerator[Event, None]:
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
                    raise
                why = f"dropped ({exc!r})"
            await asyncio.sleep(resumption.reconnect_delay(why))


# --- the generated clients' bases -----------------------------------------------------------------


class SyncClientBase:
    """Owns the transport; closes it (unless the httpx client was passed in) on `close()`."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._transport = SyncTransport(
            base_url, token=token, timeout=timeout, http_client=http_client
        )

    def close(self) -> None:
        self._transport.close()

    def subscribe_session(
        self,
        session_id: int,
        *,
        last_event_id: int | None = None,
        read_timeout: float | None = DEFAULT_STREAM_READ_TIMEOUT,
    ) -> Subscription:
        """Follow a live session as staff see it (`GET /api/sse/live-shopping/{sessionId}`).

        Iterate the result (`for event in ...`). It starts with a SESSION_SNAPSHOT of the
        whole state or, given `last_event_id`, with every event after that one. See
        `Subscription` for reconnection, the end of the stream and errors.
        """
        return self._transport.subscribe(
            f"/api/sse/live-shopping/{session_id}",
            last_event_id=last_event_id,
            read_timeout=read_timeout,
        )

    def subscribe_room(
        self,
        room_code: str,
        *,
        last_event_id: int | None = None,
        read_timeout: float | None = DEFAULT_STREAM_READ_TIMEOUT,
    ) -> Subscription:
        """Follow one's own live session as a client (`GET /api/sse/vip/live-shopping/{roomCode}`):
        the client projection of every event, without cost, internal notes or credit.

        Iterate the result (`for event in ...`), as with `subscribe_session`.
        """
        return self._transport.subscribe(
            f"/api/sse/vip/live-shopping/{quote(room_code, safe='')}",
            last_event_id=last_event_id,
            read_timeout=read_timeout,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClientBase:
    """Owns the transport; closes it (unless the httpx client was passed in) on `aclose()`."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._transport = AsyncTransport(
            base_url, token=token, timeout=timeout, http_client=http_client
        )

    async def aclose(self) -> None:
        await self._transport.aclose()

    def subscribe_session(
        self,
        session_id: int,
        *,
        last_event_id: int | None = None,
        read_timeout: float | None = DEFAULT_STREAM_READ_TIMEOUT,
    ) -> AsyncSubscription:
        """Follow a live session as staff see it (`GET /api/sse/live-shopping/{sessionId}`).

        Iterate the result (`async for event in ...`). It starts with a SESSION_SNAPSHOT of the
        whole state or, given `last_event_id`, with every event after that one. See
        `AsyncSubscription` for reconnection, the end of the stream and errors.
        """
        return self._transport.subscribe(
            f"/api/sse/live-shopping/{session_id}",
            last_event_id=last_event_id,
            read_timeout=read_timeout,
        )

    def subscribe_room(
        self,
        room_code: str,
        *,
        last_event_id: int | None = None,
        read_timeout: float | None = DEFAULT_STREAM_READ_TIMEOUT,
    ) -> AsyncSubscription:
        """Follow one's own live session as a client (`GET /api/sse/vip/live-shopping/{roomCode}`):
        the client projection of every event, without cost, internal notes or credit.

        Iterate the result (`async for event in ...`), as with `subscribe_session`.
        """
        return self._transport.subscribe(
            f"/api/sse/vip/live-shopping/{quote(room_code, safe='')}",
            last_event_id=last_event_id,
            read_timeout=read_timeout,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
