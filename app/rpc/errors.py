"""Wire error codes (tRPC's names and numbers) and the one place errors become codes."""

from __future__ import annotations

import enum
from typing import Any

import msgspec
from sqlalchemy.exc import IntegrityError

from app.domain import errors as domain


class ErrorCode(enum.Enum):
    """name -> (JSON-RPC code, HTTP status), per DESIGN.md 2.1."""

    PARSE_ERROR = (-32700, 400)
    BAD_REQUEST = (-32600, 400)
    INVALID_PARAMS = (-32602, 400)
    METHOD_NOT_FOUND = (-32601, 404)
    UNAUTHORIZED = (-32001, 401)
    FORBIDDEN = (-32003, 403)
    NOT_FOUND = (-32004, 404)
    TIMEOUT = (-32008, 408)  # a request body that did not arrive in time (RPC_BODY_TIMEOUT_S)
    CONFLICT = (-32009, 409)
    PRECONDITION_FAILED = (-32012, 412)
    PAYLOAD_TOO_LARGE = (-32013, 413)
    UNPROCESSABLE_CONTENT = (-32022, 422)
    TOO_MANY_REQUESTS = (-32029, 429)
    INTERNAL_SERVER_ERROR = (-32603, 500)

    @property
    def rpc_code(self) -> int:
        return self.value[0]

    @property
    def http_status(self) -> int:
        return self.value[1]

    @property
    def wire_name(self) -> str:
        # Invalid params is BAD_REQUEST on the wire, with its own JSON-RPC number.
        return "BAD_REQUEST" if self is ErrorCode.INVALID_PARAMS else self.name


class TrpcCode(enum.Enum):
    """What /trpc answers: tRPC's name -> (number, HTTP status), as @trpc/server v11 has them
    (TRPC_ERROR_CODES_BY_KEY, JSONRPC2_TO_HTTP_CODE). /rpc keeps its own codes (ErrorCode)."""

    PARSE_ERROR = (-32700, 400)
    BAD_REQUEST = (-32600, 400)
    UNAUTHORIZED = (-32001, 401)
    FORBIDDEN = (-32003, 403)
    NOT_FOUND = (-32004, 404)
    METHOD_NOT_SUPPORTED = (-32005, 405)  # only the tRPC adapter refuses a verb per procedure
    TIMEOUT = (-32008, 408)
    CONFLICT = (-32009, 409)
    PRECONDITION_FAILED = (-32012, 412)
    PAYLOAD_TOO_LARGE = (-32013, 413)
    UNPROCESSABLE_CONTENT = (-32022, 422)
    TOO_MANY_REQUESTS = (-32029, 429)
    INTERNAL_SERVER_ERROR = (-32603, 500)

    @property
    def rpc_code(self) -> int:
        return self.value[0]

    @property
    def http_status(self) -> int:
        return self.value[1]

    @classmethod
    def of(cls, code: ErrorCode) -> TrpcCode:
        """tRPC's code for one of /rpc's: the same name, except where JSON-RPC has its own."""
        return _TRPC_NAMES.get(code) or cls[code.name]


# A tRPC server answers an unknown path NOT_FOUND and invalid input BAD_REQUEST (-32600).
_TRPC_NAMES = {
    ErrorCode.METHOD_NOT_FOUND: TrpcCode.NOT_FOUND,
    ErrorCode.INVALID_PARAMS: TrpcCode.BAD_REQUEST,
}


class Issue(msgspec.Struct, frozen=True):
    path: str
    message: str


class RpcError(Exception):
    """An error answer for one call."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        issues: list[Issue] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.issues = issues
        self.extra = extra or {}


_DOMAIN_CODES: list[tuple[type[domain.DomainError], ErrorCode]] = [
    (domain.InvalidInput, ErrorCode.INVALID_PARAMS),
    (domain.Unauthenticated, ErrorCode.UNAUTHORIZED),
    (domain.NotFound, ErrorCode.NOT_FOUND),
    (domain.Forbidden, ErrorCode.FORBIDDEN),
    (domain.Conflict, ErrorCode.CONFLICT),
    # LimitExceeded (too many cart lines) is one of these: a business rule, not a big body.
    (domain.PreconditionFailed, ErrorCode.PRECONDITION_FAILED),
    (domain.Unprocessable, ErrorCode.UNPROCESSABLE_CONTENT),
]


def error_from_exception(exc: BaseException) -> RpcError | None:
    """Map an expected failure to its wire error; None means it is a bug (internal error)."""
    if isinstance(exc, RpcError):
        return exc
    if isinstance(exc, domain.DomainError):
        for family, code in _DOMAIN_CODES:
            if isinstance(exc, family):
                issues = None
                if isinstance(exc, domain.InvalidInput) and exc.path:
                    issues = [Issue(path=exc.path, message=exc.message)]
                return RpcError(code, exc.message, issues=issues, extra=exc.details)
        return RpcError(ErrorCode.BAD_REQUEST, exc.message, extra=exc.details)
    if isinstance(exc, IntegrityError):
        # A unique or foreign-key constraint caught what a check did not (e.g. a race).
        return RpcError(ErrorCode.CONFLICT, "The change conflicts with existing data")
    return None
