"""The transactional outbox: every session change appends an event row in its transaction.

Publishing happens after commit, outside the domain: the events appended by a unit of work are
listed in `session.info[OUTBOX_KEY]` for the transport layer to pick up (`appended_events`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LiveSession, SessionEvent, utcnow
from app.db.prepared import Prepared

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
    SESSION_UPDATED = "SESSION_UPDATED"
    CHECKOUT_ANSWERED = "CHECKOUT_ANSWERED"
    HOLDS_EXTENDED = "HOLDS_EXTENDED"
    HOLDS_EXPIRING = "HOLDS_EXPIRING"
    PRESENCE = "PRESENCE"


@dataclass(frozen=True, slots=True)
class AppendedEvent:
    """A plain copy of one outbox row, safe to use after its transaction has ended."""

    session_id: int
    seq: int
    type: str
    payload: dict[str, Any]


def appended_events(db: AsyncSession) -> list[AppendedEvent]:
    """Take the events this session appended (call after commit; clears the list)."""
    events: list[AppendedEvent] = db.info.pop(OUTBOX_KEY, [])
    return events


_INSERT_EVENT = Prepared(
    insert(SessionEvent).values(
        {
            column: bindparam(column)
            for column in ("session_id", "seq", "type", "payload", "created_at")
        }
    )
)


async def record_event(
    db: AsyncSession,
    live: LiveSession,
    event_type: EventType,
    *,
    staff: msgspec.Struct,
    client: msgspec.Struct,
) -> None:
    """Append one event with its staff payload and its separate client projection.

    The caller holds the session row lock, so the per-session sequence cannot race; the
    unique (session_id, seq) constraint is the backstop. The row goes in at once by a Core
    INSERT; the bumped `last_event_seq` goes with the session's other changes at flush.
    """
    live.last_event_seq += 1
    payload: dict[str, Any] = {
        "staff": msgspec.to_builtins(staff),
        "client": msgspec.to_builtins(client),
    }
    await _INSERT_EVENT.write(
        db,
        {
            "session_id": live.id,
            "seq": live.last_event_seq,
            "type": event_type.value,
            "payload": payload,
            "created_at": utcnow(),
        },
    )
    appended: list[AppendedEvent] = db.info.setdefault(OUTBOX_KEY, [])
    appended.append(AppendedEvent(live.id, live.last_event_seq, event_type.value, payload))


async def events_after(
    db: AsyncSession, session_id: int, after_seq: int, *, limit: int = 500
) -> list[AppendedEvent]:
    """Outbox events of one session with seq > after_seq, oldest first (replay and backfill)."""
    rows = await db.execute(
        select(SessionEvent.seq, SessionEvent.type, SessionEvent.payload)
        .where(SessionEvent.session_id == session_id, SessionEvent.seq > after_seq)
        .order_by(SessionEvent.seq)
        .limit(limit)
    )
    return [AppendedEvent(session_id, seq, type_, payload) for seq, type_, payload in rows]


async def latest_seq(db: AsyncSession, session_id: int) -> int:
    """The sequence number of the session's newest event (0 when it has none)."""
    seq = await db.scalar(select(LiveSession.last_event_seq).where(LiveSession.id == session_id))
    return seq or 0


async def latest_seqs(
    db: AsyncSession, session_ids: list[int], *, chunk: int = 500
) -> dict[int, int]:
    """latest_seq for many sessions in a few queries (one per `chunk` ids)."""
    latest: dict[int, int] = {}
    for start in range(0, len(session_ids), chunk):
        rows = await db.execute(
            select(LiveSession.id, LiveSession.last_event_seq).where(
                LiveSession.id.in_(session_ids[start : start + chunk])
            )
        )
        latest.update({session_id: seq or 0 for session_id, seq in rows})
    return latest
