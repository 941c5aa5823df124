"""tRPC wire adapter: /trpc/{path} answered as an @trpc/server v11 fetch handler answers it
(no transformer, `allowMethodOverride` on), so an `@trpc/client` frontend works unchanged.

Its links: httpLink (one call), httpBatchLink (`?batch=1`, comma-separated paths, inputs keyed
by index) and httpBatchStreamLink (a batch with `trpc-accept: application/jsonl`, answered as
JSON lines while the calls run). The rules follow @trpc/server's `resolveResponse` and
`getRequestInfo` (http/resolveResponse.ts, http/contentType.ts).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from app.rpc.dispatch import Caller, Dispatcher
from app.rpc.errors import ErrorCode, Issue, RpcError, TrpcCode
from app.rpc.registry import Kind

JSONL = "application/jsonl"
# Every answer: what a cache must key on, since the stream headers change the body.
VARY = {"vary": "trpc-accept, accept"}

_encoder = msgspec.json.Encoder()
_batch_inputs = msgspec.json.Decoder(dict[str, msgspec.Raw])


@dataclass(frozen=True, slots=True)
class Request:
    """What the adapter reads of an HTTP request to /trpc/{paths}."""

    paths: str
    http_method: str
    batch: bool
    raw_input: bytes | None
    streaming: bool = False  # the client asked for JSON lines (see `wants_jsonl`)
    # @trpc/server's option of that name: queries may come by POST too, as a client with
    # `methodOverride: 'POST'` sends them. The client sends no marker of it (the body and
    # headers are those of a mutation), so it can only be a property of the server.
    allow_method_override: bool = True


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes | AsyncIterator[bytes]  # an iterator: JSON lines, sent as they come
    headers: dict[str, str] = field(default_factory=lambda: dict(VARY))


@dataclass(frozen=True, slots=True)
class _Reply:
    """One call's answer: its data (raw JSON) or its error envelope."""

    status: int
    data: bytes | None = None
    error: bytes | None = None
    allow: str | None = None  # the methods its procedure accepts, when the verb was wrong

    @property
    def envelope(self) -> bytes:
        if self.data is not None:
            return b'{"result":{"data":' + self.data + b"}}"
        assert self.error is not None
        return self.error


def wants_jsonl(trpc_accept: str | None, accept: str | None) -> bool:
    """@trpc/server's getAcceptHeader: `trpc-accept` if sent, else `application/jsonl`
    among the types of `accept` (httpBatchStreamLink's `streamHeader: 'accept'`)."""
    if trpc_accept is not None:
        return trpc_accept == JSONL
    return accept is not None and JSONL in (part.strip() for part in accept.split(","))


def error_envelope(error: RpcError, path: str | None) -> bytes:
    return _error_envelope(TrpcCode.of(error.code), error.message, path, error.issues, error.extra)


def error_shape(error: RpcError, path: str | None) -> dict[str, Any]:
    """The error as tRPC shapes it (`err.shape` on the client): the envelope's `error`."""
    return _shape(TrpcCode.of(error.code), error.message, path, error.issues, error.extra)


def _error_envelope(
    code: TrpcCode,
    message: str,
    path: str | None,
    issues: list[Issue] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    return _encoder.encode({"error": _shape(code, message, path, issues, extra)})


def _shape(
    code: TrpcCode,
    message: str,
    path: str | None,
    issues: list[Issue] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"code": code.name, "httpStatus": code.http_status}
    if path is not None:
        data["path"] = path
    if issues:
        data["issues"] = issues
    for key, value in (extra or {}).items():
        data.setdefault(key, value)
    return {"message": message, "code": code.rpc_code, "data": data}


async def handle(dispatcher: Dispatcher, request: Request, caller: Caller) -> Answer:
    """Answer one tRPC HTTP request: a single call, a batch, or a streamed batch."""
    names = request.paths.split(",") if request.batch else [request.paths]
    try:
        inputs = _check_request(dispatcher, request, names)
    except RpcError as refused:  # the request as a whole: tRPC sends no path with it
        return Answer(TrpcCode.of(refused.code).http_status, error_envelope(refused, None))
    if request.streaming:
        return Answer(200, _jsonl(dispatcher, request, names, inputs, caller))

    replies = [
        await _call(dispatcher, request, name, inputs[i], caller) for i, name in enumerate(names)
    ]
    headers = dict(VARY)
    for reply in replies:
        if reply.allow is not None:
            headers["allow"] = reply.allow
    if not request.batch:
        return Answer(replies[0].status, replies[0].envelope, headers)
    # getHTTPStatusCode: the status every call shares, else 207 Multi-Status.
    statuses = {reply.status for reply in replies}
    status = statuses.pop() if len(statuses) == 1 else 207
    return Answer(status, b"[" + b",".join(r.envelope for r in replies) + b"]", headers)


def _check_request(
    dispatcher: Dispatcher, request: Request, names: list[str]
) -> list[bytes | None]:
    """Each call's raw input, once the request as a whole is found answerable (else RpcError)."""
    limit = dispatcher.services.settings.rpc_max_batch
    if len(names) > limit:
        # The same bound as a JSON-RPC batch: one request may not carry unbounded work.
        raise RpcError(ErrorCode.PAYLOAD_TOO_LARGE, f"A batch may hold at most {limit} calls")
    kinds = dict.fromkeys(p.kind for p in map(dispatcher.registry.get, names) if p is not None)
    if len(kinds) > 1:
        mixed = ", ".join(kinds)
        raise RpcError(ErrorCode.BAD_REQUEST, f"Cannot mix procedure types in call: {mixed}")
    if request.streaming and not request.batch:
        raise RpcError(
            ErrorCode.BAD_REQUEST, "Streaming requests must be batched (you can do a batch of 1)"
        )
    return _split_inputs(request.raw_input, len(names), request.batch)


def _accepted_methods(kind: Kind, allow_method_override: bool) -> tuple[str, ...]:
    # resolveResponse's TYPE_ACCEPTED_METHOD_MAP(_WITH_METHOD_OVERRIDE): never a GET mutation.
    if kind is Kind.MUTATION:
        return ("POST",)
    if kind is Kind.SUBSCRIPTION:
        return ("GET",)  # an EventSource only GETs; the stream is app/events/subscriptions.py
    return ("GET", "POST") if allow_method_override else ("GET",)


async def _call(
    dispatcher: Dispatcher, request: Request, name: str, params: bytes | None, caller: Caller
) -> _Reply:
    procedure = dispatcher.registry.get(name)
    if procedure is None:  # unknown, or its feature is off
        code = TrpcCode.NOT_FOUND
        message = f'No procedure found on path "{name}"'
        return _Reply(code.http_status, error=_error_envelope(code, message, name))
    if procedure.kind is Kind.SUBSCRIPTION and request.batch:
        code = TrpcCode.BAD_REQUEST
        message = "Cannot batch subscription calls"
        return _Reply(code.http_status, error=_error_envelope(code, message, name))
    accepted = _accepted_methods(procedure.kind, request.allow_method_override)
    if request.http_method not in accepted:
        code = TrpcCode.METHOD_NOT_SUPPORTED
        message = (
            f"Unsupported {request.http_method}-request to {procedure.kind} procedure "
            f'at path "{name}"'
        )
        return _Reply(
            code.http_status, error=_error_envelope(code, message, name), allow=", ".join(accepted)
        )
    outcome = await dispatcher.call(name, params, caller)
    if outcome.error is not None:
        error = outcome.error
        return _Reply(TrpcCode.of(error.code).http_status, error=error_envelope(error, name))
    return _Reply(200, data=outcome.result)


async def _jsonl(
    dispatcher: Dispatcher,
    request: Request,
    names: list[str],
    inputs: list[bytes | None],
    caller: Caller,
) -> AsyncIterator[bytes]:
    """A batch as @trpc/server's jsonlStreamProducer frames it (stream/jsonl.ts).

    The head line maps each call's index to a promise, `[[0], [null, 0, chunkId]]` (a
    placeholder and its chunk, CHUNK_VALUE_TYPE_PROMISE). Each chunk is a line
    `[chunkId, 0, encodedValue]` (PROMISE_STATUS_FULFILLED). A call's value is its error
    envelope, or `{"result": promise}` whose value is `{"data": promise}` whose value is the
    data: resolveResponse nests them so that data could itself stream. Errors are values
    here too, so the answer is 200 whatever the calls answer.
    """
    yield _encoder.encode({str(i): [[0], [None, 0, i]] for i in range(len(names))}) + b"\n"
    next_chunk = len(names)
    for index, name in enumerate(names):
        reply = await _call(dispatcher, request, name, inputs[index], caller)
        if reply.data is None:
            yield b"[%d,0,[[%s]]]\n" % (index, reply.envelope)
            continue
        result, data = next_chunk, next_chunk + 1
        next_chunk += 2
        yield (
            b'[%d,0,[[{"result":0}],["result",0,%d]]]\n' % (index, result)
            + b'[%d,0,[[{"data":0}],["data",0,%d]]]\n' % (result, data)
            + b"[%d,0,[[%s]]]\n" % (data, reply.data)
        )


def _split_inputs(raw: bytes | None, count: int, batch: bool) -> list[bytes | None]:
    if not batch:
        return [raw if raw and raw.strip() else None]
    if not raw or not raw.strip():
        return [None] * count
    try:
        by_index = _batch_inputs.decode(raw)
    except msgspec.ValidationError as exc:
        raise RpcError(
            ErrorCode.BAD_REQUEST, f"Batch input must be an object keyed by index: {exc}"
        ) from None
    except (msgspec.DecodeError, RecursionError) as exc:  # msgspec: "nested too deeply"
        raise RpcError(
            ErrorCode.PARSE_ERROR, f"Batch input must be an object keyed by index: {exc}"
        ) from None
    return [_raw_or_none(by_index.get(str(i))) for i in range(count)]


def _raw_or_none(value: msgspec.Raw | None) -> bytes | None:
    return None if value is None else bytes(value)
