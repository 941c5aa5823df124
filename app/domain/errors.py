"""Domain errors: named failures with messages written for the caller.

The RPC layer maps each family to one wire code in exactly one place (app/rpc/errors.py).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every expected failure of a use case."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(DomainError):
    """The request is well-formed but a value breaks a rule (BAD_REQUEST)."""

    def __init__(self, message: str, *, path: str | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.path = path


class NotFound(DomainError):
    """The entity does not exist, or the actor may not know that it does."""

    def __init__(self, entity: str, key: object) -> None:
        super().__init__(f"{entity} {key} not found", entity=entity)


class Unauthenticated(DomainError):
    """The caller's identity cannot be established or accepted."""


class Forbidden(DomainError):
    """The actor is known but may not do this."""


class Conflict(DomainError):
    """The change clashes with the current state (duplicate, already done)."""


class PreconditionFailed(DomainError):
    """The current state does not allow this (status, credit, inventory)."""


class Unprocessable(DomainError):
    """Understood but cannot be carried out as asked."""


class AmountTooLarge(Unprocessable):
    """A computed amount (a price, a line or order total) is beyond what can be recorded."""

    def __init__(self, what: str, amount: object, largest: object) -> None:
        super().__init__(
            f"{what} would be {amount}, more than the largest amount that can be recorded "
            f"({largest})",
            amount=str(amount),
            largest=str(largest),
        )


class LimitExceeded(PreconditionFailed):
    """A business limit would be exceeded (e.g. too many cart lines); `limit` names it.

    A rule of the domain, so PRECONDITION_FAILED: PAYLOAD_TOO_LARGE stays for request bodies
    and batches (DESIGN 4).
    """

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message, limit=limit)


class InsufficientInventory(PreconditionFailed):
    def __init__(self, batch_id: int, requested: object, available: object) -> None:
        super().__init__(
            f"Batch {batch_id} has {available} available; {requested} requested",
            batchId=batch_id,
            requested=str(requested),
            available=str(available),
        )
