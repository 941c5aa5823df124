"""tRPC wire adapter, so an `@trpc/client` frontend (no transformer) works unchanged."""

from __future__ import annotations

from typing import Any

import msgspec

from app.rpc.dispatch import Caller, Dispatcher, Outcome
from app.rpc.errors import ErrorCode, RpcError
from app.rpc.registry import Kind

_encoder = msgspec.json.Encoder()
_batch_inputs = msgspec.json.Decoder(dict[str, msgspec.Raw])


def error_envelope(error: RpcError, path: str) -> bytes:
    data: dict[str, Any] = dict(error.extra)
    data.update(code=error.code.wire_name, httpStatus=error.code.http_status, path=path)
    if error.issues:
        data["issues"] = error.issues
    body = {"error": {"message": error.message, "code": error.code.rpc_code, "data": data}}
    return _encoder.encode(body)


def _envelope(outcome: Outcome, path: str) -> tuple[int, bytes]:
    if outcome.result is not None:
        return 200, b'{"result":{"data":' + outcome.result + b"}}"
    assert outcome.error is not None
    return outcome.error.code.http_status, error_envelope(outcome.error, path)


async def handle(
    dispatcher: Dispatcher,
    paths: str,
    *,
    http_method: str,
    batch: bool,
    raw_input: bytes | None,
    caller: Caller,
) -> tuple[int, bytes]:
    """Answer one tRPC HTTP request (single or batched) as (status, body)."""
    names = paths.split(",") if batch else [paths]
    limit = dispatcher.services.settings.rpc_max_batch
    try:
        if len(names) > limit:
            # The same bound as a JSON-RPC batch: one request may not carry unbounded work.
            raise RpcError(ErrorCode.PAYLOAD_TOO_LARGE, f"A batch may hold at most {limit} calls")
        inputs = _split_inputs(raw_input, len(names), batch)
    except RpcError as error:
        return error.code.http_status, error_envelope(error, paths)

    answers = [
        await _call(dispatcher, name, http_method, inputs[i], caller)
        for i, name in enumerate(names)
    ]
    if not batch:
        return answers[0]
    status = 200 if all(code == 200 for code, _ in answers) else 207
    return status, b"[" + b",".join(body for _, body in answers) + b"]"


async def _call(
    dispatcher: Dispatcher, name: str, http_method: str, params: bytes | None, caller: Caller
) -> tuple[int, bytes]:
    expected = Kind.QUERY if http_method == "GET" else Kind.MUTATION
    procedure = dispatcher.registry.get(name)
    if procedure is not None and procedure.kind is not expected:
        verb = "GET" if procedure.kind is Kind.QUERY else "POST"
        error = RpcError(
            ErrorCode.BAD_REQUEST, f"{name} is a {procedure.kind}; call it with {verb}"
        )
        return _envelope(Outcome(error=error), name)
    return _envelope(await dispatcher.call(name, params, caller), name)


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
