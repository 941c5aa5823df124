"""Builds each event's staff payload and its separate client projection, then records it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LiveSession
from app.domain.cart import both_carts, client_cart, staff_cart
from app.domain.outbox import EventType, record_event
from app.domain.sessions import both_views, client_view, staff_view, utcnow
from app.domain.views import Cart, ClientCart, ClientSessionView, SessionView, View


class StaffEvent(View):
    """Full state after the change, so a listener never has to refetch."""

    session: SessionView
    cart: Cart
    order_id: int | None = None
    share_url: str | None = None
    # When the change was recorded (its transaction commits right after).
    occurred_at: datetime | None = None


class ClientEvent(View):
    session: ClientSessionView
    cart: ClientCart
    order_id: int | None = None
    share_url: str | None = None
    occurred_at: datetime | None = None


async def staff_snapshot(db: AsyncSession, live: LiveSession) -> StaffEvent:
    return StaffEvent(session=await staff_view(db, live), cart=await staff_cart(db, live.id))


async def client_snapshot(db: AsyncSession, live: LiveSession) -> ClientEvent:
    return ClientEvent(session=await client_view(db, live), cart=await client_cart(db, live.id))


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
    order_id: int | None = None,
    share_url: str | None = None,
) -> Announced:
    await db.flush()
    session, client_session = await both_views(db, live)
    cart, client_cart_ = await both_carts(db, live.id)
    now = utcnow()
    staff = StaffEvent(
        session=session, cart=cart, order_id=order_id, share_url=share_url, occurred_at=now
    )
    client = ClientEvent(
        session=client_session,
        cart=client_cart_,
        order_id=order_id,
        share_url=share_url,
        occurred_at=now,
    )
    record_event(db, live, event_type, staff=staff, client=client)
    return Announced(staff, client)
