"""HTTP routes of the RPC surface: /rpc (JSON-RPC 2.0) and /trpc (tRPC wire)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from litestar import Request, Response, get, post, route
from litestar.exceptions import ClientException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from app.rpc import jsonrpc, trpc
from app.rpc.dispatch import Caller, Dispatcher
from app.rpc.errors import ErrorCode, RpcError

AnyRequest = Request[Any, Any, Any]
JSON = "application/json"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def dispatcher_of(request: AnyRequest) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


def caller_of(request: AnyRequest) -> Caller:
    given = request.headers.get("x-request-id", "")
    request_id = given if _SAFE_REQUEST_ID.match(given) else uuid.uuid4().hex
    return Caller(
        authorization=request.headers.get("authorization"),
        request_id=request_id,
        base_url=str(request.base_url).rstrip("/"),
    )


def _answer(status: int, body: bytes | None, caller: Caller) -> Response[bytes]:
    headers = {"x-request-id": caller.request_id}
    if body is None:
        return Response(b"", status_code=204, headers=headers)
    return Response(body, status_code=status, media_type=JSON, headers=headers)


async def _read_body(request: AnyRequest) -> bytes | RpcError:
    try:
        return await request.body()
    except RequestEntityTooLarge:
        limit = dispatcher_of(request).services.settings.rpc_max_body_bytes
        return RpcError(ErrorCode.PAYLOAD_TOO_LARGE, f"Request body exceeds {limit} bytes")
    except ClientException as exc:
        return RpcError(ErrorCode.BAD_REQUEST, f"Unreadable request body: {exc.detail}")


@post("/rpc", status_code=200)
async def rpc_post(request: AnyRequest) -> Response[bytes]:
    caller = caller_of(request)
    body = await _read_body(request)
    if isinstance(body, RpcError):
        return _answer(body.code.http_status, jsonrpc.error_response(body), caller)
    status, payload = await jsonrpc.handle(dispatcher_of(request), body, caller)
    return _answer(status, payload, caller)


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


@route("/trpc/{paths:str}", http_method=["GET", "POST"])
async def trpc_route(request: AnyRequest) -> Response[bytes]:
    paths: str = request.path_params["paths"]
    caller = caller_of(request)
    if request.method == "GET":
        raw = request.query_params.get("input")
        raw_input = raw.encode() if raw is not None else None
    else:
        body = await _read_body(request)
        if isinstance(body, RpcError):
            return _answer(body.code.http_status, trpc.error_envelope(body, paths), caller)
        raw_input = body
    status, payload = await trpc.handle(
        dispatcher_of(request),
        paths,
        http_method=request.method,
        batch=request.query_params.get("batch") in {"1", "true"},
        raw_input=raw_input,
        caller=caller,
    )
    return _answer(status, payload, caller)


ROUTES = [rpc_post, rpc_get, trpc_route]
