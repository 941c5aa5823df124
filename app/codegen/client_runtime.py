"""JSON-RPC 2.0 over HTTP for the generated client: framing, errors, sync and async transports.

Written by hand as `app/codegen/client_runtime.py` in the service repository, where ruff and
mypy check it, and copied verbatim into the client as `_runtime.py` by `gen-client`. It imports
nothing but the standard library, msgspec and httpx: the client is used outside that repository.
"""

from __future__ import annotations

import itertools
from typing import Any, Generic, Self, TypeVar

import httpx
import msgspec

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0


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
        error = response.error
        code = error.data.get("code")
        http_status = error.data.get("httpStatus")
        raise RpcError(
            code=code if isinstance(code, str) else f"JSON-RPC {error.code}",
            rpc_code=error.code,
            http_status=http_status if isinstance(http_status, int) else status,
            message=error.message,
            data=error.data,
        )
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


def _headers(token: str | None) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return headers


class SyncTransport:
    """Posts one call at a time to `{base_url}/rpc` with a blocking httpx client."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        timeout: float,
        http_client: httpx.Client | None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/rpc"
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

    def close(self) -> None:
        if self._owns_http:
            self._http.close()


class AsyncTransport:
    """Posts one call at a time to `{base_url}/rpc` with an asyncio httpx client."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        timeout: float,
        http_client: httpx.AsyncClient | None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/rpc"
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

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()


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

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
