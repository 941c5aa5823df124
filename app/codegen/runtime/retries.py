"""Retrying queries (read-only procedures) that met a passing failure, with stamina.

Only queries: repeating a mutation whose answer was lost could apply it twice, so mutations
take no `retry` at all. A failure is passing when no answer arrived (`TransportError`: the
server was unreachable, restarting or slow), or the answer says the server or a gateway in
front of it is unwell (HTTP 5xx, or TOO_MANY_REQUESTS): anything else would fail again.
"""

from __future__ import annotations

from dataclasses import dataclass

import stamina

from .errors import ProtocolError, RpcError, TransportError


@dataclass(frozen=True, slots=True)
class Retry:
    """How a query is retried: up to `attempts` tries in all, within `timeout` seconds (None: no
    limit), waiting `wait_initial` seconds at first, doubling up to `wait_max`, plus up to
    `wait_jitter` seconds at random (so that clients do not all come back at once)."""

    attempts: int = 3
    timeout: float | None = 30.0
    wait_initial: float = 0.1
    wait_max: float = 5.0
    wait_jitter: float = 1.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("Retry.attempts must be at least 1")


# A client's setting, or one call's: a policy, True for `Retry()`, False for none. A call's
# None keeps the client's.
RetrySetting = Retry | bool


def policy(setting: RetrySetting) -> Retry | None:
    """The policy a setting stands for (None: one attempt only)."""
    if isinstance(setting, Retry):
        return setting
    return Retry() if setting else None


def is_passing(exc: Exception) -> bool:
    """Whether a failed query may succeed when tried again."""
    if isinstance(exc, TransportError):
        return True
    if isinstance(exc, RpcError):
        return exc.http_status >= 500 or exc.code == "TOO_MANY_REQUESTS"
    if isinstance(exc, ProtocolError):
        return exc.http_status in (502, 503, 504)  # a gateway's page: the server is away
    return False


def sync_caller(retry: Retry) -> stamina.RetryingCaller:
    """A blocking caller that retries passing failures as `retry` says."""
    return stamina.RetryingCaller(
        attempts=retry.attempts,
        timeout=retry.timeout,
        wait_initial=retry.wait_initial,
        wait_max=retry.wait_max,
        wait_jitter=retry.wait_jitter,
    )


def async_caller(retry: Retry) -> stamina.AsyncRetryingCaller:
    """An asyncio caller that retries passing failures as `retry` says."""
    return stamina.AsyncRetryingCaller(
        attempts=retry.attempts,
        timeout=retry.timeout,
        wait_initial=retry.wait_initial,
        wait_max=retry.wait_max,
        wait_jitter=retry.wait_jitter,
    )
