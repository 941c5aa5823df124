"""The transactional outbox: every session change appends an event row in its transaction.

Publishing happens after commit, outside the domain: the rows appended by a unit of work are
listed in `session.info[OUTBOX_KEY]` for the transport layer to pick up.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LiveSession, SessionEvent

OUTBOX_KEY = "outbox_appended"


class EventType(enum.StrEnum):
    SESSION_SNAPSHOT = "SESSION_SNAPSHOT"
    SESSION_STATUS = "SESSION_STATUS"
    CART_UPDATED = "CART_UPDATED"
    HIGHLIGHTED = "HIGHLIGHTED"
    PRICE_CHANGED = "PRICE_CHANGED"
    CHECKOUT_REQUESTED = "CHECKOUT_REQUESTED"
    SESSION_CONVERTED = "SESSION_CONVERTED"
    SALES_SHEET_READY = "SALES_SHEET_READY"
    SESSION_TIMEOUT = "SESSION_TIMEOUT"


def record_event(
    db: AsyncSession,
    live: LiveSession,
    event_type: EventType,
    *,
    staff: msgspec.Struct,
    client: msgspec.Struct,
) -> SessionEvent:
    """Append one event with its staff payload and its separate client projection.

    The caller holds the session row lock, so the per-session sequence cannot race; the
    unique (session_id, seq) constraint is the backstop.
    """
    live.last_event_seq += 1
    payload: dict[str, Any] = {
        "staff": msgspec.to_builtins(staff),
        "client": msgspec.to_builtins(client),
    }
    event = SessionEvent(
        session_id=live.id, seq=live.last_event_seq, type=event_type.value, payload=payload
    )
    db.add(event)
    appended: list[tuple[int, int]] = db.info.setdefault(OUTBOX_KEY, [])
    appended.append((live.id, live.last_event_seq))
    return event
