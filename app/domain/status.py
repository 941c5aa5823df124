"""The session status machine: one table, one place."""

from __future__ import annotations

from app.db.models import SessionStatus as S
from app.domain.errors import PreconditionFailed

TRANSITIONS: dict[S, frozenset[S]] = {
    S.SCHEDULED: frozenset({S.ACTIVE, S.CANCELLED}),
    S.ACTIVE: frozenset({S.PAUSED, S.ENDED, S.CANCELLED, S.CONVERTED}),
    S.PAUSED: frozenset({S.ACTIVE, S.ENDED, S.CANCELLED, S.CONVERTED}),
    # A saved draft may still be converted later (inventory re-checked) or cancelled.
    S.ENDED: frozenset({S.CONVERTED, S.CANCELLED}),
    S.CONVERTED: frozenset(),
    S.CANCELLED: frozenset(),
}

# Sessions whose carts hold inventory (soft holds).
OPEN_STATUSES = frozenset({S.SCHEDULED, S.ACTIVE, S.PAUSED})
# Open sessions the idle timeout may end: those the machine lets reach ENDED. A SCHEDULED
# session has not started, so it cannot be idle.
TIMEOUT_STATUSES = frozenset(s for s in OPEN_STATUSES if S.ENDED in TRANSITIONS[s])
FINAL_STATUSES = frozenset(s for s, targets in TRANSITIONS.items() if not targets)


def check_transition(current: S, target: S) -> None:
    if target not in TRANSITIONS[current]:
        raise PreconditionFailed(
            f"Cannot move a session from {current} to {target}",
            fromStatus=current.value,
            toStatus=target.value,
        )
