"""Live sessions: creation, access rules, status changes and the views of them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
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
    if live is None:
        raise NotFound("Session", session_id)
    if for_change and actor.role is Role.STAFF and live.host_user_id != actor.user_id:
        raise Forbidden(f"Only the host of session {session_id} (or an ADMIN) may change it")
    return live


async def session_for_client(
    db: AsyncSession, actor: Actor, room_code: str, *, for_change: bool = False
) -> LiveSession:
    """The client's own session by room code; anything else is simply not found."""
    live = await _load(db, LiveSession.room_code == room_code, lock=for_change)
    if live is None or live.client_id != actor.client_id:
        raise NotFound("Session", room_code)
    return live


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


async def highlight_of(db: AsyncSession, live: LiveSession) -> Highlight | None:
    if live.highlighted_batch_id is None:
        return None
    row = (
        await db.execute(
            select(Batch, Product)
            .join(Product, Product.id == Batch.product_id)
            .where(Batch.id == live.highlighted_batch_id)
        )
    ).first()
    if row is None:
        return None
    batch, product = row
    return Highlight(
        batch_id=batch.id,
        batch_code=batch.code,
        product_id=product.id,
        product_name=product.name,
        list_price=product.list_price,
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a session has led to so far: its order and its latest sales sheet's link."""

    order_id: int | None
    share_url: str | None


async def outcome_of(db: AsyncSession, live: LiveSession) -> Outcome:
    # One round trip for both: a view is built for every event and every listed session.
    order_id = select(Order.id).where(Order.session_id == live.id).scalar_subquery()
    share_url = (
        select(SalesSheet.share_url)
        .where(SalesSheet.session_id == live.id)
        .order_by(SalesSheet.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    row = (await db.execute(select(order_id, share_url))).one()
    return Outcome(order_id=row[0], share_url=row[1])


async def staff_view(db: AsyncSession, live: LiveSession) -> SessionView:
    return await _staff_view(db, live, await highlight_of(db, live), await outcome_of(db, live))


async def client_view(db: AsyncSession, live: LiveSession) -> ClientSessionView:
    return _client_view(live, await highlight_of(db, live), await outcome_of(db, live))


async def both_views(db: AsyncSession, live: LiveSession) -> tuple[SessionView, ClientSessionView]:
    """The staff view and its client projection, reading the highlight and outcome once."""
    highlight, outcome = await highlight_of(db, live), await outcome_of(db, live)
    return await _staff_view(db, live, highlight, outcome), _client_view(live, highlight, outcome)


async def _staff_view(
    db: AsyncSession, live: LiveSession, highlight: Highlight | None, outcome: Outcome
) -> SessionView:
    client = await db.get(Client, live.client_id)
    return SessionView(
        id=live.id,
        status=live.status,
        room_code=live.room_code,
        client_id=live.client_id,
        client_name=client.name if client else "",
        host_user_id=live.host_user_id,
        title=live.title,
        internal_notes=live.internal_notes,
        scheduled_at=live.scheduled_at,
        started_at=live.started_at,
        ended_at=live.ended_at,
        checkout_requested_at=live.checkout_requested_at,
        last_activity_at=live.last_activity_at,
        created_at=live.created_at,
        highlight=highlight,
        order_id=outcome.order_id,
        share_url=outcome.share_url,
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


def _client_view(
    live: LiveSession, highlight: Highlight | None, outcome: Outcome
) -> ClientSessionView:
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
        highlight=highlight,
        order_id=outcome.order_id,
        share_url=outcome.share_url,
        holds_expire_at=holds_deadline(live),
        presence=presence_of(live),
        checkout=checkout_of(live),
    )
