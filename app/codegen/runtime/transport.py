"""JSON-RPC 2.0 over HTTP: one call at a time to `{base_url}/rpc`, blocking or asyncio, each
answer decoded straight into the procedure's result type."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

import httpx
import msgspec

from .errors import ProtocolError, RpcError, TransportError, rpc_error
from .retries import Retry, RetrySetting, async_caller, is_passing, policy, sync_caller

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0


class Method(Generic[T]):
    """One procedure: its name on the wire, the decoder of its result (built once), and whether
    it is a query (read-only, so it may be retried)."""

    __slots__ = ("decoder", "name", "query")

    def __init__(self, name: str, result_type: Any, *, query: bool = False) -> None:
        self.name = name
        self.decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(result_type)
        self.query = query


class _Request(msgspec.Struct):
    jsonrpc: str
    id: int
    method: str
    params: msgspec.Struct


class ErrorObject(msgspec.Struct):
    code: int
    message: str
    data: dict[str, Any] = {}


class Response(msgspec.Struct):
    id: int | str | None = None
    result: msgspec.Raw = msgspec.Raw()
    error: ErrorObject | None = None


# Decimals go out as they were given (a Decimal or str as a string, an int as a number),
# datetimes as RFC 3339.
_encoder = msgspec.json.Encoder()
responses = msgspec.json.Decoder(Response)


def _encode(method: Method[Any], params: msgspec.Struct, request_id: int) -> bytes:
    return _encoder.encode(
        _Request(jsonrpc="2.0", id=request_id, method=method.name, params=params)
    )


def error_of(error: ErrorObject, status: int) -> RpcError:
    return rpc_error(
        rpc_code=error.code, message=error.message, data=error.data, http_status=status
    )


def _result(method: Method[T], request_id: int, status: int, body: bytes) -> T:
    def protocol_error(problem: str) -> ProtocolError:
        return ProtocolError(f"{method.name}: {problem}", http_status=status, body=body[:2000])

    try:
        response = responses.decode(body)
    except msgspec.DecodeError:
        raise protocol_error(f"HTTP {status} without a JSON-RPC response") from None
    if response.error is not None:
        raise error_of(response.error, status)
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


@contextlib.contextmanager
def wrapped_transport_errors(what: str) -> Iterator[None]:
    """httpx's failures to get an answer, as the one `TransportError`."""
    try:
        yield
    except httpx.TransportError as exc:
        timed_out = isinstance(exc, httpx.TimeoutException)
        problem = "timed out" if timed_out else "failed"
        raise TransportError(f"{what} {problem}: {exc!r}", timed_out=timed_out) from exc


def _headers(token: str | None) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return headers


def stream_headers(token: str | None) -> dict[str, str]:
    headers = {"accept": "text/event-stream", "cache-control": "no-store"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return headers


def _retry(method: Method[Any], default: Retry | None, given: RetrySetting | None) -> Retry | None:
    """How a call is retried: a query as the call says, else as the client does; never a
    mutation."""
    if not method.query:
        return None
    return default if given is None else policy(given)


def _timeout(http: httpx.Client | httpx.AsyncClient, timeout: float | None) -> httpx.Timeout:
    """The client's timeout, or `timeout` seconds for each step (connect, send, each read)."""
    return http.timeout if timeout is None else httpx.Timeout(timeout)


class SyncTransport:
    """Posts one call at a time to `{base_url}/rpc` with a blocking httpx client."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        timeout: float,
        http_client: httpx.Client | None,
        retry: RetrySetting = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = policy(retry)  # for queries whose call does not say
        self.token = token
        self._url = self.base_url + "/rpc"
        self._headers = _headers(token)
        self._owns_http = http_client is None
        self.http = http_client if http_client is not None else httpx.Client(timeout=timeout)
        self._ids = itertools.count(1)

    def call(
        self,
        method: Method[T],
        params: msgspec.Struct,
        *,
        timeout: float | None,
        retry: RetrySetting | None = None,
    ) -> T:
        """`method`'s result; `timeout` (seconds) replaces the client's for this call, and so
        does `retry` (a query's only) for the client's retry setting."""
        chosen = _retry(method, self.retry, retry)
        if chosen is None:
            return self._call(method, params, timeout)
        return sync_caller(chosen)(is_passing, self._call, method, params, timeout)

    def _call(self, method: Method[T], params: msgspec.Struct, timeout: float | None) -> T:
        request_id = next(self._ids)
        body = _encode(method, params, request_id)
        with wrapped_transport_errors(method.name):
            response = self.http.post(
                self._url, content=body, headers=self._headers, timeout=_timeout(self.http, timeout)
            )
        return _result(method, request_id, response.status_code, response.content)

    def close(self) -> None:
        if self._owns_http:
            self.http.close()


class AsyncTransport:
    """Posts one call at a time to `{base_url}/rpc` with an asyncio httpx client."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        timeout: float,
        http_client: httpx.AsyncClient | None,
        retry: RetrySetting = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = policy(retry)  # for queries whose call does not say
        self.token = token
        self._url = self.base_url + "/rpc"
        self._headers = _headers(token)
        self._owns_http = http_client is None
        self.http = http_client if http_client is not None else httpx.AsyncClient(timeout=timeout)
        self._ids = itertools.count(1)

    async def call(
        self,
        method: Method[T],
        params: msgspec.Struct,
        *,
        timeout: float | None,  # noqa: ASYNC109 - per call, as httpx has it
        retry: RetrySetting | None = None,
    ) -> T:
        """`method`'s result; `timeout` (seconds) replaces the client's for this call, and so
        does `retry` (a query's only) for the client's retry setting."""
        chosen = _retry(method, self.retry, retry)
        if chosen is None:
            return await self._call(method, params, timeout)
        return await async_caller(chosen)(is_passing, self._call, method, params, timeout)

    async def _call(
        self,
        method: Method[T],
        params: msgspec.Struct,
        timeout: float | None,  # noqa: ASYNC109 - per call, as httpx has it
    ) -> T:
        request_id = next(self._ids)
        body = _encode(method, params, request_id)
        with wrapped_transport_errors(method.name):
            response = await self.http.post(
                self._url, content=body, headers=self._headers, timeout=_timeout(self.http, timeout)
            )
        return _result(method, request_id, response.status_code, response.content)

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()
