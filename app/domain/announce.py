"""Builds each event's staff payload and its separate client projection, then records it."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LiveSession
from app.domain.actors import Actor
from app.domain.cart import (
    Line,
    both_carts,
    client_cart,
    client_cart_of,
    staff_cart,
    staff_cart_of,
)
from app.domain.outbox import EventType, record_event
from app.domain.sessions import (
    SessionFacts,
    both_views,
    client_view,
    client_view_of,
    hold_through_activity,
    staff_view,
    staff_view_of,
    utcnow,
    write_activity,
)
from app.domain.views import (
    Cart,
    Change,
    ClientCart,
    ClientSessionView,
    EventActor,
    SessionView,
    View,
)


class StaffEvent(View):
    """Full state after the change, so a listener never has to refetch."""

    session: SessionView
    cart: Cart
    order_id: int | None = None
    share_url: str | None = None
    # When the change was recorded (its transaction commits right after).
    occurred_at: datetime | None = None
    # Who made it (null: the system) and what it changed, for the timeline.
    actor: EventActor | None = None
    change: Change | None = None


class ClientEvent(View):
    session: ClientSessionView
    cart: ClientCart
    order_id: int | None = None
    share_url: str | None = None
    occurred_at: datetime | None = None
    actor: EventActor | None = None
    change: Change | None = None
    # A change only staff care about (internal notes): the client's timeline leaves it out.
    staff_only: bool = False


# A snapshot is no change: no actor and no `change`; its occurredAt is when the state was read.
async def staff_snapshot(db: AsyncSession, live: LiveSession) -> StaffEvent:
    session, cart = await staff_view(db, live), await staff_cart(db, live.id)
    return StaffEvent(session=session, cart=cart, occurred_at=utcnow())


async def client_snapshot(db: AsyncSession, live: LiveSession) -> ClientEvent:
    session, cart = await client_view(db, live), await client_cart(db, live.id)
    return ClientEvent(session=session, cart=cart, occurred_at=utcnow())


class Hidden(enum.Enum):
    HIDDEN = "HIDDEN"


HIDDEN = Hidden.HIDDEN


@dataclass(frozen=True, slots=True)
class InHand:
    """The state after a change, already read under the session lock: the session's facts
    and the cart's lines. An event built from it costs no read (a cart edit reads them once).
    """

    facts: SessionFacts
    lines: Sequence[Line]


@dataclass(frozen=True, slots=True)
class Announced:
    """What an announced change looks like to each side; callers answer with these too."""

    staff: StaffEvent
    client: ClientEvent


async def announce(
    db: AsyncSession,
    live: LiveSession,
    event_type: EventType,
    *,
    actor: Actor | None,
    change: Change | None = None,
    client_change: Change | Hidden | None = None,
    order_id: int | None = None,
    share_url: str | None = None,
    in_hand: InHand | None = None,
) -> Announced:
    """Record one change as an event: full state after it, for each side, with its actor.

    `client_change` is what the client may see of `change` (the same when not given);
    `HIDDEN` marks a change that concerns staff only. With `in_hand` (whose facts are of
    `live`) nothing is read again, and the session row is written here, in one UPDATE.
    """
    hold_through_activity(live)
    if in_hand is None:
        await db.flush()
        session, client_session = await both_views(db, live)
        cart, client_cart_ = await both_carts(db, live.id)
    else:
        assert in_hand.facts.live is live
        session, client_session = staff_view_of(in_hand.facts), client_view_of(in_hand.facts)
        cart, client_cart_ = staff_cart_of(in_hand.lines), client_cart_of(in_hand.lines)
    now = utcnow()
    by = None if actor is None else EventActor(user_id=actor.user_id, role=actor.role)
    staff = StaffEvent(
        session=session,
        cart=cart,
        order_id=order_id,
        share_url=share_url,
        occurred_at=now,
        actor=by,
        change=change,
    )
    client = ClientEvent(
        session=client_session,
        cart=client_cart_,
        order_id=order_id,
        share_url=share_url,
        occurred_at=now,
        actor=by,
        change=None if client_change is HIDDEN else client_change or change,
        staff_only=client_change is HIDDEN,
    )
    await record_event(db, live, event_type, staff=staff, client=client)
    if in_hand is not None:
        await write_activity(db, live)
    return Announced(staff, client)
