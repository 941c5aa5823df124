"""Live sessions: creation, access rules, status changes and the views of them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    Batch,
    Client,
    LiveSession,
    Order,
    Product,
    SalesSheet,
    SessionStatus,
)
from app.db.prepared import Prepared
from app.domain.actors import Actor, Role
from app.domain.clients import get_client
from app.domain.errors import Forbidden, InvalidInput, NotFound, PreconditionFailed
from app.domain.status import OPEN_STATUSES, TIMEOUT_STATUSES, check_transition
from app.domain.views import (
    Change,
    CheckoutState,
    ClientSessionView,
    Highlight,
    Presence,
    SessionView,
)

# The session_config key of the idle timeout a session was made with (minutes).
TIMEOUT_KEY = "sessionTimeoutMins"
# For sessions made before the timeout was recorded with them.
DEFAULT_TIMEOUT_MINS = 120


def utcnow() -> datetime:
    return datetime.now(UTC)


def timeout_of(live: LiveSession) -> timedelta:
    """The idle timeout of this session: the one configured when it was made.

    Recorded with the session (its configuration snapshot), so every worker computes the same
    deadline, and a restart with another setting never moves deadlines already shown.
    """
    minutes = live.session_config.get(TIMEOUT_KEY, DEFAULT_TIMEOUT_MINS)
    return timedelta(minutes=minutes if isinstance(minutes, int) else DEFAULT_TIMEOUT_MINS)


def hold_through_activity(live: LiveSession) -> None:
    """Activity keeps the holds at least a whole timeout past it (never shortens a deadline)."""
    live.holds_expire_at = max(live.holds_expire_at, live.last_activity_at + timeout_of(live))


async def create_session(
    db: AsyncSession,
    actor: Actor,
    *,
    client_id: int,
    title: str | None,
    scheduled_at: datetime | None,
    internal_notes: str | None,
    config: dict[str, object],
) -> LiveSession:
    await get_client(db, client_id)
    now = utcnow()
    if scheduled_at is not None and scheduled_at.tzinfo is None:
        raise InvalidInput("scheduledAt must carry a timezone (RFC 3339)", path="$.scheduledAt")
    scheduled = scheduled_at is not None and scheduled_at > now
    live = LiveSession(
        host_user_id=actor.user_id,
        client_id=client_id,
        status=SessionStatus.SCHEDULED if scheduled else SessionStatus.ACTIVE,
        room_code=str(uuid.uuid4()),
        title=title,
        internal_notes=internal_notes,
        session_config=config,
        scheduled_at=scheduled_at,
        started_at=None if scheduled else now,
        last_activity_at=now,
        last_event_seq=0,
    )
    live.holds_expire_at = now + timeout_of(live)
    db.add(live)
    await db.flush()
    return live


async def _load(db: AsyncSession, stmt_filter: object, *, lock: bool) -> LiveSession | None:
    stmt = select(LiveSession).where(stmt_filter)  # type: ignore[arg-type]
    if lock:
        # Every change to a session takes its row lock first: edits, event sequence numbers
        # and conversion are serialised per session (lock order: session, then batches).
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await db.scalars(stmt)).one_or_none()


async def session_for_staff(
    db: AsyncSession, actor: Actor, session_id: int, *, for_change: bool = False
) -> LiveSession:
    """A session a staff member may read; with for_change, one they may change (locked)."""
    live = await _load(db, LiveSession.id == session_id, lock=for_change)
    return _staff_may(actor, session_id, live, for_change=for_change)


async def session_for_client(
    db: AsyncSession, actor: Actor, room_code: str, *, for_change: bool = False
) -> LiveSession:
    """The client's own session by room code; anything else is simply not found."""
    live = await _load(db, LiveSession.room_code == room_code, lock=for_change)
    return _client_may(actor, room_code, live)


async def session_to_watch(
    db: AsyncSession, *, session_id: int | None = None, room_code: str | None = None
) -> LiveSession | None:
    """The session a stream would follow (by id, or by room code), read for no one in
    particular: the streams of one session opening together share this read, and
    `staff_may_watch` / `client_may_watch` then decide for each of them."""
    if room_code is not None:
        return await _load(db, LiveSession.room_code == room_code, lock=False)
    return await _load(db, LiveSession.id == session_id, lock=False)


def staff_may_watch(actor: Actor, session_id: int, live: LiveSession | None) -> LiveSession:
    """As session_for_staff decides a read: any staff member may watch a session."""
    return _staff_may(actor, session_id, live, for_change=False)


def client_may_watch(actor: Actor, room_code: str, live: LiveSession | None) -> LiveSession:
    """As session_for_client decides: only the room's own client."""
    return _client_may(actor, room_code, live)


def _staff_may(
    actor: Actor, session_id: int, live: LiveSession | None, *, for_change: bool
) -> LiveSession:
    if live is None:
        raise NotFound("Session", session_id)
    if for_change and actor.role is Role.STAFF and live.host_user_id != actor.user_id:
        raise Forbidden(f"Only the host of session {session_id} (or an ADMIN) may change it")
    return live


def _client_may(actor: Actor, room_code: str, live: LiveSession | None) -> LiveSession:
    if live is None or live.client_id != actor.client_id:
        raise NotFound("Session", room_code)
    return live


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a session has led to so far: its order and its latest sales sheet's link."""

    order_id: int | None
    share_url: str | None


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """A session with what its views show from other rows, all read in one statement.

    The client's name and price adjustment, the highlighted batch, the order and the latest
    sales sheet: none of them changes in a cart edit, so the views of the event and of the
    answer are built from these without reading them again. Loaded by staff_session_facts or
    client_session_facts, `live` is a copy outside the ORM session: `write_activity` saves it.
    """

    live: LiveSession
    client_name: str
    price_adjustment: Decimal
    highlight: Highlight | None
    outcome: Outcome


def _scalar(column: Any, *where: Any) -> Any:
    return select(column).where(*where).scalar_subquery()


# Scalar subqueries, not joins: under FOR UPDATE only the session row is locked (InnoDB locks
# no row a subquery reads), so a cart edit never serialises on its client or highlight.
_FACT_COLUMNS = (
    _scalar(Client.name, Client.id == LiveSession.client_id),
    _scalar(Client.price_adjustment_percent, Client.id == LiveSession.client_id),
    _scalar(Order.id, Order.session_id == LiveSession.id),
    select(SalesSheet.share_url)
    .where(SalesSheet.session_id == LiveSession.id)
    .order_by(SalesSheet.id.desc())
    .limit(1)
    .scalar_subquery(),
    _scalar(Batch.code, Batch.id == LiveSession.highlighted_batch_id),
    _scalar(Batch.product_id, Batch.id == LiveSession.highlighted_batch_id),
    _scalar(
        Product.name,
        Product.id == Batch.product_id,
        Batch.id == LiveSession.highlighted_batch_id,
    ),
    _scalar(
        Product.list_price,
        Product.id == Batch.product_id,
        Batch.id == LiveSession.highlighted_batch_id,
    ),
)
# Built once (a prepared statement's cache key is computed once) and run as Core on the
# session's connection: the session comes back as a row, not through the ORM's identity map.
_SESSION_TABLE = LiveSession.__table__
_SESSION_KEYS = [column.key for column in _SESSION_TABLE.c]
_BY_ID = select(*_SESSION_TABLE.c, *_FACT_COLUMNS).where(_SESSION_TABLE.c.id == bindparam("key"))
_BY_ROOM = select(*_SESSION_TABLE.c, *_FACT_COLUMNS).where(
    _SESSION_TABLE.c.room_code == bindparam("key")
)
_FACTS_BY_ID = Prepared(_BY_ID)
_FACTS_BY_ROOM = Prepared(_BY_ROOM)
_FACTS_BY_ID_LOCKED = Prepared(_BY_ID.with_for_update())
_FACTS_BY_ROOM_LOCKED = Prepared(_BY_ROOM.with_for_update())
_FACTS_OF = Prepared(
    select(*_FACT_COLUMNS).select_from(LiveSession).where(LiveSession.id == bindparam("key"))
)
# What a change through SessionFacts may do to the session row, written in one UPDATE.
_WRITE_ACTIVITY = Prepared(
    update(LiveSession)
    .where(LiveSession.id == bindparam("session_id"))
    .values(
        last_activity_at=bindparam("last_activity_at"),
        holds_expire_at=bindparam("holds_expire_at"),
        last_event_seq=bindparam("last_event_seq"),
        highlighted_batch_id=bindparam("highlighted_batch_id"),
    )
)


def _facts(live: LiveSession, row: Sequence[Any]) -> SessionFacts:
    name, adjustment, order_id, share_url, code, product_id, product_name, list_price = row
    highlight = (
        None
        if code is None or live.highlighted_batch_id is None
        else Highlight(
            batch_id=live.highlighted_batch_id,
            batch_code=code,
            product_id=product_id,
            product_name=product_name,
            list_price=list_price,
        )
    )
    return SessionFacts(
        live=live,
        client_name=name or "",
        price_adjustment=adjustment if adjustment is not None else Decimal(0),
        highlight=highlight,
        outcome=Outcome(order_id=order_id, share_url=share_url),
    )


async def _load_facts(db: AsyncSession, stmt: Prepared, key: object) -> SessionFacts | None:
    rows = await stmt.rows(db, {"key": key})
    if not rows:
        return None
    row = rows[0]
    width = len(_SESSION_KEYS)
    # A plain copy, never added to the ORM session: write_activity saves what changes.
    live = LiveSession(**dict(zip(_SESSION_KEYS, row[:width], strict=True)))
    return _facts(live, row[width:])


async def write_activity(db: AsyncSession, live: LiveSession) -> None:
    """Save a session loaded with its facts after a change: one UPDATE of the fields a cart
    edit moves (activity, hold deadline, event sequence, highlight).
    """
    await _WRITE_ACTIVITY.write(
        db,
        {
            "session_id": live.id,
            "last_activity_at": live.last_activity_at,
            "holds_expire_at": live.holds_expire_at,
            "last_event_seq": live.last_event_seq,
            "highlighted_batch_id": live.highlighted_batch_id,
        },
    )


async def staff_session_facts(
    db: AsyncSession, actor: Actor, session_id: int, *, for_change: bool = False
) -> SessionFacts:
    """session_for_staff with the facts of its views, in one round trip."""
    stmt = _FACTS_BY_ID_LOCKED if for_change else _FACTS_BY_ID
    facts = await _load_facts(db, stmt, session_id)
    _staff_may(actor, session_id, None if facts is None else facts.live, for_change=for_change)
    assert facts is not None
    return facts


async def client_session_facts(
    db: AsyncSession, actor: Actor, room_code: str, *, for_change: bool = False
) -> SessionFacts:
    """session_for_client with the facts of its views, in one round trip."""
    stmt = _FACTS_BY_ROOM_LOCKED if for_change else _FACTS_BY_ROOM
    facts = await _load_facts(db, stmt, room_code)
    _client_may(actor, room_code, None if facts is None else facts.live)
    assert facts is not None
    return facts


async def facts_of(db: AsyncSession, live: LiveSession) -> SessionFacts:
    """The facts of a session already loaded (one round trip, after any pending change)."""
    await db.flush()
    (row,) = await _FACTS_OF.rows(db, {"key": live.id})
    return _facts(live, row)


def touch(live: LiveSession) -> None:
    live.last_activity_at = utcnow()


def change_status(live: LiveSession, target: SessionStatus) -> Change:
    """Apply a guarded transition and stamp its time."""
    check_transition(live.status, target)
    change = Change(before={"status": live.status.value}, after={"status": target.value})
    now = utcnow()
    if target is SessionStatus.ACTIVE and live.started_at is None:
        live.started_at = now
    if target in (SessionStatus.ENDED, SessionStatus.CANCELLED, SessionStatus.CONVERTED):
        live.ended_at = live.ended_at or now
    live.status = target
    touch(live)
    return change


def reschedule(live: LiveSession, scheduled_at: datetime | None) -> None:
    """Check a new scheduledAt: only a SCHEDULED session has one to move, into the future."""
    if live.status is not SessionStatus.SCHEDULED:
        raise PreconditionFailed(
            f"scheduledAt can be changed only while SCHEDULED, not {live.status}",
            status=live.status.value,
        )
    if scheduled_at is None or scheduled_at <= utcnow():
        raise InvalidInput(
            "scheduledAt must be a time in the future (start the session with "
            "updateSessionStatus instead)",
            path="$.scheduledAt",
        )


def require_open(live: LiveSession, actor: Actor) -> None:
    """Cart edits: the host while SCHEDULED/ACTIVE/PAUSED, the client only while ACTIVE."""
    allowed = {SessionStatus.ACTIVE} if actor.role is Role.CLIENT else OPEN_STATUSES
    if live.status not in allowed:
        raise PreconditionFailed(
            f"The cart cannot be changed while the session is {live.status}",
            status=live.status.value,
        )


@dataclass(frozen=True, slots=True)
class SessionFilter:
    status: SessionStatus | None = None
    client_id: int | None = None
    host_user_id: int | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


async def list_sessions(
    db: AsyncSession, filters: SessionFilter, *, limit: int, offset: int
) -> Sequence[LiveSession]:
    stmt = select(LiveSession).order_by(LiveSession.id.desc()).limit(limit).offset(offset)
    if filters.status is not None:
        stmt = stmt.where(LiveSession.status == filters.status)
    if filters.client_id is not None:
        stmt = stmt.where(LiveSession.client_id == filters.client_id)
    if filters.host_user_id is not None:
        stmt = stmt.where(LiveSession.host_user_id == filters.host_user_id)
    if filters.created_from is not None:
        stmt = stmt.where(LiveSession.created_at >= filters.created_from)
    if filters.created_to is not None:
        stmt = stmt.where(LiveSession.created_at < filters.created_to)
    return (await db.scalars(stmt)).all()


async def active_session_of_client(db: AsyncSession, client_id: int) -> LiveSession | None:
    stmt = (
        select(LiveSession)
        .where(LiveSession.client_id == client_id, LiveSession.status.in_(list(OPEN_STATUSES)))
        .order_by(LiveSession.id.desc())
        .limit(1)
    )
    return (await db.scalars(stmt)).first()


async def staff_view(db: AsyncSession, live: LiveSession) -> SessionView:
    return staff_view_of(await facts_of(db, live))


async def client_view(db: AsyncSession, live: LiveSession) -> ClientSessionView:
    return client_view_of(await facts_of(db, live))


async def both_views(db: AsyncSession, live: LiveSession) -> tuple[SessionView, ClientSessionView]:
    """The staff view and its client projection from one read of their facts."""
    facts = await facts_of(db, live)
    return staff_view_of(facts), client_view_of(facts)


def staff_view_of(facts: SessionFacts) -> SessionView:
    live = facts.live
    return SessionView(
        id=live.id,
        status=live.status,
        room_code=live.room_code,
        client_id=live.client_id,
        client_name=facts.client_name,
        host_user_id=live.host_user_id,
        title=live.title,
        internal_notes=live.internal_notes,
        scheduled_at=live.scheduled_at,
        started_at=live.started_at,
        ended_at=live.ended_at,
        checkout_requested_at=live.checkout_requested_at,
        last_activity_at=live.last_activity_at,
        created_at=live.created_at,
        highlight=facts.highlight,
        order_id=facts.outcome.order_id,
        share_url=facts.outcome.share_url,
        holds_expire_at=holds_deadline(live),
        presence=presence_of(live),
        checkout=checkout_of(live),
    )


def holds_deadline(live: LiveSession) -> datetime | None:
    """The deadline a view shows: only sessions the idle timeout can end have one (a
    SCHEDULED session waits for its start; a closed one holds nothing).
    """
    return live.holds_expire_at if live.status in TIMEOUT_STATUSES else None


def presence_of(live: LiveSession) -> Presence:
    return Presence(host=live.host_present, client=live.client_present)


def checkout_of(live: LiveSession) -> CheckoutState | None:
    if live.checkout_requested_at is None:
        return None
    return CheckoutState(
        requested_at=live.checkout_requested_at,
        answered_at=live.checkout_answered_at,
        accepted=live.checkout_accepted,
        message=live.checkout_message,
    )


def checkout_pending(live: LiveSession) -> bool:
    """A checkout request the host has not answered yet."""
    return live.checkout_requested_at is not None and live.checkout_answered_at is None


def client_view_of(facts: SessionFacts) -> ClientSessionView:
    live = facts.live
    return ClientSessionView(
        id=live.id,
        status=live.status,
        room_code=live.room_code,
        title=live.title,
        host_user_id=live.host_user_id,
        scheduled_at=live.scheduled_at,
        started_at=live.started_at,
        ended_at=live.ended_at,
        checkout_requested_at=live.checkout_requested_at,
        highlight=facts.highlight,
        order_id=facts.outcome.order_id,
        share_url=facts.outcome.share_url,
        holds_expire_at=holds_deadline(live),
        presence=presence_of(live),
        checkout=checkout_of(live),
    )
