"""What the client raises: `RpcError` (one subclass per error code) when the service answers with
an error, `TransportError` when no answer arrives, `ProtocolError` when the answer is not one.

All three derive from `LiveShoppingError`, so one `except` can catch whatever a call raises.
"""

from __future__ import annotations

from typing import Any


class LiveShoppingError(Exception):
    """Anything the Live Shopping client raises."""


class RpcError(LiveShoppingError):
    """The service answered with an error. Catch a subclass (`NotFound`, `Forbidden`, ...) for one
    kind of error, or `RpcError` for all of them.

    `code` is the error's name (`NOT_FOUND`, `UNAUTHORIZED`, ...), `rpc_code` the JSON-RPC number,
    `http_status` the HTTP status it maps to, and `data` the whole error data object (`issues`
    lists validation problems when there are any).
    """

    def __init_subclass__(cls, *, code: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if code is not None:
            ERROR_CLASSES[code] = cls

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


# The RpcError subclass of each error name (DESIGN.md 2.1); filled in as each is defined below.
ERROR_CLASSES: dict[str, type[RpcError]] = {}


class ParseError(RpcError, code="PARSE_ERROR"):
    """The request was not valid JSON (HTTP 400)."""


class BadRequest(RpcError, code="BAD_REQUEST"):
    """The request or its params were invalid; `issues` says where (HTTP 400)."""


class MethodNotFound(RpcError, code="METHOD_NOT_FOUND"):
    """No such procedure, or one switched off on this server (HTTP 404)."""


class Unauthorized(RpcError, code="UNAUTHORIZED"):
    """No valid token: missing, expired or badly signed (HTTP 401)."""


class Forbidden(RpcError, code="FORBIDDEN"):
    """The token's role may not call this procedure, or change this session (HTTP 403)."""


class NotFound(RpcError, code="NOT_FOUND"):
    """The entity does not exist, or is not one the caller may see (HTTP 404)."""


class RequestTimeout(RpcError, code="TIMEOUT"):
    """The server gave up waiting for the request body (HTTP 408)."""


class Conflict(RpcError, code="CONFLICT"):
    """The change conflicts with the current state, e.g. a session already converted (HTTP 409)."""


class PreconditionFailed(RpcError, code="PRECONDITION_FAILED"):
    """A business rule refused the change: session status, credit, inventory (HTTP 412)."""


class PayloadTooLarge(RpcError, code="PAYLOAD_TOO_LARGE"):
    """The request body is larger than the server accepts (HTTP 413)."""


class UnprocessableContent(RpcError, code="UNPROCESSABLE_CONTENT"):
    """Well-formed params that cannot be acted on (HTTP 422)."""


class TooManyRequests(RpcError, code="TOO_MANY_REQUESTS"):
    """Rate limited: try again later (HTTP 429)."""


class InternalServerError(RpcError, code="INTERNAL_SERVER_ERROR"):
    """The server failed; `data` carries the request id its log shows (HTTP 500)."""


def rpc_error(*, rpc_code: int, message: str, data: dict[str, Any], http_status: int) -> RpcError:
    """The error an answer carries, as the class of its name (RpcError for a name unknown here,
    such as one a newer server added)."""
    name = data.get("code")
    status = data.get("httpStatus")
    code = name if isinstance(name, str) else f"JSON-RPC {rpc_code}"
    return ERROR_CLASSES.get(code, RpcError)(
        code=code,
        rpc_code=rpc_code,
        http_status=status if isinstance(status, int) else http_status,
        message=message,
        data=data,
    )


class TransportError(LiveShoppingError):
    """No answer arrived: the server could not be reached, the connection broke, or the call
    took longer than its timeout (`timed_out`). The httpx exception is the `__cause__`.

    A call that timed out or broke may still have been carried out by the server.
    """

    def __init__(self, message: str, *, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class ProtocolError(LiveShoppingError):
    """The answer was not the JSON-RPC response this client expects (a proxy error page, a
    result that no longer matches the client's types, ...)."""

    def __init__(self, message: str, *, http_status: int, body: bytes) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.body = body
