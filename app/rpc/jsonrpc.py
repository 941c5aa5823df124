"""JSON-RPC 2.0 framing: single calls, batches and notifications over the dispatcher."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from app.rpc.dispatch import Caller, Dispatcher, Outcome
from app.rpc.errors import ErrorCode, RpcError

RequestId = int | str | None


class Envelope(msgspec.Struct, forbid_unknown_fields=True):
    jsonrpc: Literal["2.0"]
    method: str
    params: msgspec.Raw | UnsetType = UNSET
    id: RequestId | UnsetType = UNSET


class _IdOnly(msgspec.Struct):
    """Salvages the id of an invalid request so the error can still be matched."""

    id: RequestId = None


_envelope = msgspec.json.Decoder(Envelope)
_batch = msgspec.json.Decoder(list[msgspec.Raw])
_id_only = msgspec.json.Decoder(_IdOnly)
_encoder = msgspec.json.Encoder()


def error_object(error: RpcError, method: str | None) -> dict[str, Any]:
    data: dict[str, Any] = dict(error.extra)
    data.update(code=error.code.wire_name, httpStatus=error.code.http_status, path=method)
    if error.issues:
        data["issues"] = error.issues
    return {"code": error.code.rpc_code, "message": error.message, "data": data}


def _response(request_id: RequestId, outcome: Outcome, method: str | None) -> bytes:
    head = b'{"jsonrpc":"2.0","id":' + _encoder.encode(request_id)
    if outcome.result is not None:
        return head + b',"result":' + outcome.result + b"}"
    assert outcome.error is not None
    return head + b',"error":' + _encoder.encode(error_object(outcome.error, method)) + b"}"


def error_response(
    error: RpcError, request_id: RequestId = None, method: str | None = None
) -> bytes:
    return _response(request_id, Outcome(error=error), method)


async def handle(dispatcher: Dispatcher, body: bytes, caller: Caller) -> tuple[int, bytes | None]:
    """Answer a JSON-RPC body: (HTTP status, response body or None for no content)."""
    stripped = body.lstrip()
    if stripped.startswith(b"["):
        return await _handle_batch(dispatcher, body, caller)
    answer = await _handle_one(dispatcher, body, caller)
    if answer is None:
        return 204, None
    status, payload = answer
    return status, payload


async def _handle_batch(
    dispatcher: Dispatcher, body: bytes, caller: Caller
) -> tuple[int, bytes | None]:
    try:
        items = _batch.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:  # msgspec: "nested too deeply"
        error = RpcError(ErrorCode.PARSE_ERROR, f"Parse error: {exc}")
        return error.code.http_status, error_response(error)
    if not items:
        error = RpcError(ErrorCode.BAD_REQUEST, "Invalid request: empty batch")
        return error.code.http_status, error_response(error)
    limit = dispatcher.services.settings.rpc_max_batch
    if len(items) > limit:
        error = RpcError(ErrorCode.PAYLOAD_TOO_LARGE, f"A batch may hold at most {limit} calls")
        return error.code.http_status, error_response(error)
    answers: list[bytes] = []
    all_ok = True
    for item in items:
        answer = await _handle_one(dispatcher, bytes(item), caller)
        if answer is None:
            continue
        status, payload = answer
        all_ok = all_ok and status == 200
        answers.append(payload)
    if not answers:
        return 204, None
    return (200 if all_ok else 207), b"[" + b",".join(answers) + b"]"


async def _handle_one(
    dispatcher: Dispatcher, raw: bytes, caller: Caller
) -> tuple[int, bytes] | None:
    try:
        envelope = _envelope.decode(raw)
    except msgspec.ValidationError as exc:
        return _invalid_request(raw, exc)
    except (msgspec.DecodeError, RecursionError) as exc:
        error = RpcError(ErrorCode.PARSE_ERROR, f"Parse error: {exc}")
        return error.code.http_status, error_response(error)

    params = _params_bytes(envelope.params)
    if isinstance(params, RpcError):
        outcome = Outcome(error=params)
    else:
        outcome = await dispatcher.call(envelope.method, params, caller)
    if isinstance(envelope.id, UnsetType):
        return None  # a notification: run it, reply nothing
    status = 200 if outcome.error is None else outcome.error.code.http_status
    return status, _response(envelope.id, outcome, envelope.method)


def _params_bytes(params: msgspec.Raw | UnsetType) -> bytes | RpcError | None:
    if isinstance(params, UnsetType):
        return None
    raw = bytes(params)
    first = raw[:1]
    if first == b"{":
        return raw
    if raw == b"null":
        return None
    if first == b"[":
        return RpcError(
            ErrorCode.INVALID_PARAMS, "params must be an object (by-name), not an array"
        )
    return RpcError(ErrorCode.BAD_REQUEST, "Invalid request: params must be an object")


def _invalid_request(raw: bytes, exc: msgspec.ValidationError) -> tuple[int, bytes]:
    try:
        generic = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError) as parse_exc:
        error = RpcError(ErrorCode.PARSE_ERROR, f"Parse error: {parse_exc}")
        return error.code.http_status, error_response(error)
    request_id: RequestId = None
    if isinstance(generic, dict):
        try:
            request_id = _id_only.decode(raw).id
        except (msgspec.DecodeError, RecursionError):
            request_id = None
    error = RpcError(ErrorCode.BAD_REQUEST, f"Invalid request: {exc}")
    return error.code.http_status, error_response(error, request_id)
