"""The timeline of a session: who did what when, read back from the outbox.

No second history is kept: every event row already holds its actor, its time and what it
changed, once for staff and once for the client. The client's timeline reads the client side
and leaves out what concerns staff only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Product, SessionEvent
from app.domain.actors import Actor
from app.domain.sessions import session_for_client, session_for_staff
from app.domain.views import EventActor, View

# Outbox events that are not changes anyone made: a timeline starts after the snapshot.
_NOT_ENTRIES = frozenset({"SESSION_SNAPSHOT"})


class TimelineEntry(View):
    seq: int
    type: str
    actor: EventActor | None
    occurred_at: datetime | None
    subject: dict[str, Any] | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class Timeline(View):
    entries: list[TimelineEntry]
    # The seq to pass as `cursor` for the next page; null on the last page.
    next_cursor: int | None


@dataclass(frozen=True, slots=True)
class Page:
    cursor: int
    limit: int


async def staff_timeline(db: AsyncSession, actor: Actor, session_id: int, page: Page) -> Timeline:
    live = await session_for_staff(db, actor, session_id)
    return await _timeline(db, live.id, "staff", page)


async def client_timeline(db: AsyncSession, actor: Actor, room_code: str, page: Page) -> Timeline:
    live = await session_for_client(db, actor, room_code)
    return await _timeline(db, live.id, "client", page)


async def _timeline(db: AsyncSession, session_id: int, side: str, page: Page) -> Timeline:
    entries: list[TimelineEntry] = []
    cursor = page.cursor
    batch = page.limit + 1
    # Hidden events (staff-only ones, on the client's side) must not shorten a page: read on
    # until the page is full or the history ends.
    while True:
        rows = (
            await db.execute(
                select(SessionEvent.seq, SessionEvent.type, SessionEvent.payload)
                .where(SessionEvent.session_id == session_id, SessionEvent.seq > cursor)
                .order_by(SessionEvent.seq)
                .limit(batch)
            )
        ).all()
        for seq, type_, payload in rows:
            if len(entries) == page.limit:  # full, and this row is still to come
                await _name_products(db, entries)
                return Timeline(entries=entries, next_cursor=cursor)
            cursor = seq
            entry = _entry(seq, type_, payload.get(side) or {})
            if entry is not None:
                entries.append(entry)
        if len(rows) < batch:
            await _name_products(db, entries)
            return Timeline(entries=entries, next_cursor=None)


def _entry(seq: int, type_: str, event: dict[str, Any]) -> TimelineEntry | None:
    if type_ in _NOT_ENTRIES or event.get("staffOnly"):
        return None
    actor = event.get("actor")
    change = event.get("change") or {}
    occurred = event.get("occurredAt")
    return TimelineEntry(
        seq=seq,
        type=type_,
        actor=None if actor is None else EventActor(user_id=actor["userId"], role=actor["role"]),
        occurred_at=None if occurred is None else datetime.fromisoformat(occurred),
        subject=change.get("subject"),
        before=change.get("before"),
        after=change.get("after"),
    )


async def _name_products(db: AsyncSession, entries: list[TimelineEntry]) -> None:
    """Put product names on the subjects (one query per page), so entries read as a story."""
    ids = {e.subject["productId"] for e in entries if e.subject and "productId" in e.subject}
    if not ids:
        return
    names = dict(
        (await db.execute(select(Product.id, Product.name).where(Product.id.in_(ids)))).all()
    )
    for entry in entries:
        if entry.subject and entry.subject.get("productId") in names:
            entry.subject = {**entry.subject, "productName": names[entry.subject["productId"]]}
