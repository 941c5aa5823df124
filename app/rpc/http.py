"""HTTP routes of the RPC surface: /rpc (JSON-RPC 2.0) and /trpc (tRPC wire)."""

from __future__ import annotations

import asyncio
import math
import re
import uuid
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlunsplit

from litestar import Litestar, Request, Response, asgi, get, route
from litestar.enums import ScopeType
from litestar.exceptions import ClientException, MethodNotAllowedException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.response import Stream
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp, Receive, Scope, Send

from app.events.subscriptions import SubscriptionRequest, connection_params, serve_subscription
from app.events.wire import wire_of
from app.rpc import jsonrpc, trpc
from app.rpc.dispatch import Caller, Dispatcher
from app.rpc.errors import ErrorCode, RpcError
from app.rpc.registry import Kind, Procedure

AnyRequest = Request[Any, Any, Any]
JSON = "application/json"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# The headers this module reads; ASGI servers give header names in lower case.
_READ_HEADERS = frozenset(
    {b"authorization", b"x-request-id", b"host", b"content-length", b"last-event-id"}
)
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_T = TypeVar("_T")


def _read_headers(scope: Scope) -> dict[bytes, bytes]:
    """The first value of each header in _READ_HEADERS that the request carries."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in _READ_HEADERS and name not in found:
            found[name] = value
    return found


def _base_url(scope: Mapping[str, Any], host: str) -> str:
    """`str(request.base_url).rstrip("/")` computed as litestar does, without a Request.

    Procedures build share links (sales sheets) on it, so scheme, host and root path count.
    """
    server = scope.get("server")
    scheme = scope.get("scheme", "http") if server else ""
    if server and not host:
        name, port = server
        host = name if port == _DEFAULT_PORTS.get(scheme) else f"{name}:{port}"
    root_path = scope.get("app_root_path") or scope.get("root_path", "")
    return str(urlunsplit((scheme, host, root_path + "/", "", ""))).rstrip("/")


def _caller(scope: Scope, headers: Mapping[bytes, bytes]) -> Caller:
    given = headers.get(b"x-request-id", b"").decode("latin-1")
    authorization = headers.get(b"authorization")
    return Caller(
        authorization=None if authorization is None else authorization.decode("latin-1"),
        # A caller's id is echoed only when it is safe to put in logs and headers.
        request_id=given if _SAFE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex,
        base_url=_base_url(scope, headers.get(b"host", b"").decode("latin-1")),
    )


def _dispatcher(app: Litestar) -> Dispatcher:
    dispatcher: Dispatcher = app.state.dispatcher
    return dispatcher


def dispatcher_of(request: AnyRequest) -> Dispatcher:
    return _dispatcher(request.app)


def caller_of(request: AnyRequest) -> Caller:
    return _caller(request.scope, _read_headers(request.scope))


def _too_large(limit: int) -> RpcError:
    return RpcError(ErrorCode.PAYLOAD_TOO_LARGE, f"Request body exceeds {limit} bytes")


class BodyDeadlines:
    """Ends the reading of a request body that is not in full `timeout_s` after it began.

    Nothing else bounds a client that sends its body a byte at a time (the ASGI server does
    not), and each such client would hold a connection and a task for as long as it liked.
    asyncio.timeout() would arm and disarm a timer per call, about a quarter of what a small
    call costs POST /rpc in-process; almost every body is in before its handler starts, so the
    reads due in the same eighth of the timeout share one timer (a read may so get up to an
    eighth longer).
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._slice_s = timeout_s / 8
        self._due: dict[int, set[asyncio.Task[Any]]] = {}  # slice number -> reads due then
        self._expired: set[asyncio.Task[Any]] = set()

    async def read(self, read_body: Awaitable[_T]) -> _T | RpcError:
        """What `read_body` reads, or a TIMEOUT error when the body is late."""
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        slice_number = math.ceil((loop.time() + self.timeout_s) / self._slice_s)
        due = self._due.get(slice_number)
        if due is None:
            due = self._due[slice_number] = set()
            loop.call_at(slice_number * self._slice_s, self._expire, slice_number)
        due.add(task)
        try:
            return await read_body
        except asyncio.CancelledError:
            # Only this class's cancellation becomes an answer; one from elsewhere (the
            # server shutting down) still ends the task, as asyncio.timeout() would have it.
            if task not in self._expired or task.uncancel() > 0:
                raise
            return RpcError(
                ErrorCode.TIMEOUT,
                f"The request body did not arrive in full within {self.timeout_s:g} s",
            )
        finally:
            due.discard(task)
            self._expired.discard(task)

    def _expire(self, slice_number: int) -> None:
        for task in self._due.pop(slice_number, ()):
            self._expired.add(task)
            task.cancel()


def _body_deadlines(app: Litestar) -> BodyDeadlines:
    """The app's BodyDeadlines, made on first use: one per app, like its dispatcher."""
    deadlines: BodyDeadlines | None = app.state.get("body_deadlines")
    if deadlines is None:
        timeout_s = _dispatcher(app).services.settings.rpc_body_timeout_s
        deadlines = app.state.body_deadlines = BodyDeadlines(timeout_s)
    return deadlines


def _is_unread(body: object) -> bool:
    """Whether a body was refused before it arrived in full. Then the answer closes the
    connection: the rest of the body may still come, and so slow a client is not worth keeping.
    """
    return isinstance(body, RpcError) and body.code is ErrorCode.TIMEOUT


# --- POST /rpc: a raw ASGI handler ------------------------------------------------------------
# litestar's Request and Response objects and its response pipeline cost several times what the
# JSON-RPC layer itself costs per call (tests/bench/rpc_overhead.py), so the busiest route reads
# the scope and the body and sends its answer itself.


@asgi("/rpc", is_mount=False, copy_scope=False)
async def rpc_post(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != ScopeType.HTTP:
        raise ClientException()  # what litestar's router answers a websocket on an HTTP route
    if scope["method"] != "POST":
        await _refuse_method(scope["method"], send)
        return
    headers = _read_headers(scope)
    caller = _caller(scope, headers)
    app = Litestar.from_scope(scope)
    dispatcher = _dispatcher(app)
    limit = dispatcher.services.settings.rpc_max_body_bytes
    body = await _body_deadlines(app).read(
        _receive_body(receive, headers.get(b"content-length"), limit)
    )
    if body is None:
        return  # the client went away; there is nobody to answer
    payload: bytes | None
    if isinstance(body, RpcError):
        status, payload = body.code.http_status, jsonrpc.error_response(body)
    else:
        status, payload = await jsonrpc.handle(dispatcher, body, caller)
    await _send_answer(send, status, payload, caller.request_id, close=_is_unread(body))


async def _refuse_method(method: str, send: Send) -> None:
    """Answer other methods on /rpc as litestar answers them on a POST-only route."""
    if method != "OPTIONS":
        raise MethodNotAllowedException(headers={"allow": "POST, OPTIONS"})
    await send(
        {"type": "http.response.start", "status": 204, "headers": [(b"allow", b"OPTIONS, POST")]}
    )
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _receive_body(
    receive: Receive, content_length: bytes | None, limit: int
) -> bytes | RpcError | None:
    """The whole body, refused as soon as it is known to exceed `limit`; None on disconnect."""
    if content_length is not None:
        try:
            announced = int(content_length)
        except ValueError:
            shown = content_length.decode("latin-1")
            reason = f"Unreadable request body: Invalid content-length: {shown!r}"
            return RpcError(ErrorCode.BAD_REQUEST, reason)
        if announced > limit:
            return _too_large(limit)
    chunks: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        if message["type"] != "http.request":
            continue
        chunk = message.get("body", b"")
        # Counted as it arrives: a chunked body announces no length, and a length can lie.
        received += len(chunk)
        if received > limit:
            return _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send_answer(
    send: Send, status: int, body: bytes | None, request_id: str, *, close: bool = False
) -> None:
    """JSON with its length, or 204 and no body when every call was a notification."""
    # The request id is ASCII: either it matched _SAFE_REQUEST_ID or it is hex.
    headers = [(b"x-request-id", request_id.encode())]
    if close:
        headers.append((b"connection", b"close"))
    if body is None:
        status, body = 204, b""
    else:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


# --- GET /rpc/{method} and /trpc: ordinary litestar handlers -------------------------------------


def _answer(
    status: int, body: bytes | None, caller: Caller, *, close: bool = False
) -> Response[bytes]:
    headers = {"x-request-id": caller.request_id}
    if close:
        headers["connection"] = "close"
    if body is None:
        return Response(b"", status_code=204, headers=headers)
    return Response(body, status_code=status, media_type=JSON, headers=headers)


async def _read_body(request: AnyRequest) -> bytes | RpcError:
    try:
        return await _body_deadlines(request.app).read(request.body())
    except RequestEntityTooLarge:
        return _too_large(dispatcher_of(request).services.settings.rpc_max_body_bytes)
    except ClientException as exc:
        return RpcError(ErrorCode.BAD_REQUEST, f"Unreadable request body: {exc.detail}")


@get("/rpc/{method:str}")
async def rpc_get(request: AnyRequest) -> Response[bytes]:
    """Queries over GET: /rpc/{method}?input=<json>."""
    method: str = request.path_params["method"]
    caller = caller_of(request)
    raw = request.query_params.get("input")
    outcome = await dispatcher_of(request).call(
        method, raw.encode() if raw else None, caller, require_query=True
    )
    request_id = caller.request_id
    if outcome.error is not None:
        body = jsonrpc.error_response(outcome.error, request_id, method)
        return _answer(outcome.error.code.http_status, body, caller)
    assert outcome.result is not None
    body = b'{"jsonrpc":"2.0","id":"' + request_id.encode() + b'","result":' + outcome.result + b"}"
    return _answer(200, body, caller)


# Every verb a client may send: @trpc/server answers one its procedure does not take with its
# own METHOD_NOT_SUPPORTED error (and the methods it does take), not the router's bare 405.
@route("/trpc/{paths:str}", http_method=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def trpc_route(request: AnyRequest) -> Response[Any]:
    paths: str = request.path_params["paths"]
    caller = caller_of(request)
    batch = _is_batch(request.query_params.get("batch"))
    if request.method == "GET":
        raw = request.query_params.get("input")
        raw_input = raw.encode() if raw is not None else None
        procedure = dispatcher_of(request).registry.get(paths)
        if procedure is not None and procedure.kind is Kind.SUBSCRIPTION and not batch:
            return _subscription(request, procedure, caller)
    else:
        body = await _read_body(request)
        if isinstance(body, RpcError):
            envelope = trpc.error_envelope(body, paths)
            return _answer(body.code.http_status, envelope, caller, close=_is_unread(body))
        raw_input = body
    answer = await trpc.handle(
        dispatcher_of(request),
        trpc.Request(
            paths=paths,
            http_method=request.method,
            batch=batch,
            raw_input=raw_input,
            streaming=trpc.wants_jsonl(
                request.headers.get("trpc-accept"), request.headers.get("accept")
            ),
        ),
        caller,
    )
    headers = {**answer.headers, "x-request-id": caller.request_id}
    if isinstance(answer.body, bytes):
        return Response(answer.body, status_code=answer.status, media_type=JSON, headers=headers)
    return Stream(answer.body, status_code=answer.status, media_type=JSON, headers=headers)


def _subscription(request: AnyRequest, procedure: Procedure, caller: Caller) -> Response[Any]:
    """A tRPC subscription: an event stream (app/events/subscriptions.py), or the error
    @trpc/server answers before a stream starts (connectionParams it cannot read)."""
    subscription = _subscription_request(request.scope, _query(request.scope))
    if isinstance(subscription, RpcError):
        envelope = trpc.error_envelope(subscription, None)
        return _answer(subscription.code.http_status, envelope, caller)
    services = dispatcher_of(request).services

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await serve_subscription(services, procedure, subscription, receive, send, wire_of(scope))

    return _Served(stream)


def served_subscription(
    dispatcher: Dispatcher, scope: Scope, receive: Receive, send: Send
) -> Awaitable[None] | None:
    """A tRPC subscription request (GET /trpc/<subscription>, not batched) answered from its
    scope alone, for the served app (app/server.py), which keeps long-lived streams out of the
    router's layers; None for any other request, and for one the router must refuse, which
    then goes to the router as before. Not a coroutine, so no frame of it outlives the call."""
    path = scope["path"]
    if scope.get("method") != "GET" or not path.startswith(TRPC_PREFIX):
        return None
    procedure = dispatcher.registry.get(path[len(TRPC_PREFIX) :])
    if procedure is None or procedure.kind is not Kind.SUBSCRIPTION:
        return None
    query = _query(scope)
    if _is_batch(query.get("batch")):
        return None
    subscription = _subscription_request(scope, query)
    if isinstance(subscription, RpcError):
        return None
    return serve_subscription(
        dispatcher.services, procedure, subscription, receive, send, wire_of(scope)
    )


TRPC_PREFIX = "/trpc/"


def _is_batch(param: str | None) -> bool:
    """Whether `?batch=` asks for tRPC's batch format (a subscription is never batched)."""
    return param in {"1", "true"}


def _query(scope: Scope) -> dict[str, str]:
    """Each query parameter's first value, blank ones kept, as litestar reads them."""
    query: dict[str, str] = {}
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), True):
        query.setdefault(name, value)
    return query


def _subscription_request(scope: Scope, query: dict[str, str]) -> SubscriptionRequest | RpcError:
    try:
        params = connection_params(query.get("connectionParams"))
    except RpcError as error:
        return error
    headers = _read_headers(scope)
    raw = query.get("input")
    return SubscriptionRequest(
        raw_input=raw.encode() if raw is not None else None,
        authorization=_text(headers.get(b"authorization")),
        ticket=query.get("ticket"),
        last_event_id=_text(headers.get(b"last-event-id")) or query.get("lastEventId"),
        connection_params=params,
    )


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


class _Served(Response[bytes]):
    """A response that writes itself: an event stream, sent by the stream core as it goes."""

    def __init__(self, serve: ASGIApp) -> None:
        super().__init__(b"")
        self._serve = serve

    def to_asgi_response(self, app: Litestar | None, request: AnyRequest, **_: Any) -> ASGIResponse:
        return _ServedASGI(self._serve)


class _ServedASGI(ASGIResponse):
    def __init__(self, serve: ASGIApp) -> None:
        self._serve = serve

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._serve(scope, receive, send)


ROUTES = [rpc_post, rpc_get, trpc_route]
