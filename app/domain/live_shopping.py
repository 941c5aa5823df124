"""Use cases of a live session, one function each: access check, change, event, view.

Handlers in procedures/ call exactly one of these. Each runs inside the caller's unit of
work; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LiveSession, SalesSheet, SessionStatus
from app.domain import cart as carts
from app.domain.actors import Actor
from app.domain.announce import announce
from app.domain.conversion import convert_session_to_order
from app.domain.credit import CreditStatus, credit_status
from app.domain.errors import PreconditionFailed
from app.domain.outbox import EventType
from app.domain.sales_sheets import generate_sales_sheet
from app.domain.sessions import (
    active_session_of_client,
    change_status,
    client_view,
    create_session,
    session_for_client,
    session_for_staff,
    staff_view,
    touch,
    utcnow,
)
from app.domain.views import Cart, ClientCart, ClientSessionView, SessionView


@dataclass(frozen=True, slots=True)
class Limits:
    max_cart_items: int


# --- staff -----------------------------------------------------------------------------------


async def open_session(
    db: AsyncSession,
    actor: Actor,
    *,
    client_id: int,
    title: str | None,
    scheduled_at: datetime | None,
    internal_notes: str | None,
    limits: Limits,
) -> LiveSession:
    live = await create_session(
        db,
        actor,
        client_id=client_id,
        title=title,
        scheduled_at=scheduled_at,
        internal_notes=internal_notes,
        config={"maxCartItems": limits.max_cart_items},
    )
    await announce(db, live, EventType.SESSION_STATUS)
    return live


async def get_for_staff(
    db: AsyncSession, actor: Actor, session_id: int
) -> tuple[SessionView, Cart]:
    live = await session_for_staff(db, actor, session_id)
    return await staff_view(db, live), await carts.staff_cart(db, live.id)


async def set_status(
    db: AsyncSession, actor: Actor, session_id: int, target: SessionStatus
) -> SessionView:
    if target is SessionStatus.CONVERTED:
        raise PreconditionFailed("Use endSession with convertToOrder to convert a session")
    live = await session_for_staff(db, actor, session_id, for_change=True)
    change_status(live, target)
    return (await announce(db, live, EventType.SESSION_STATUS)).staff.session


async def staff_add_to_cart(
    db: AsyncSession,
    actor: Actor,
    session_id: int,
    *,
    batch_id: int,
    quantity: Decimal,
    is_sample: bool,
    limits: Limits,
) -> Cart:
    live = await session_for_staff(db, actor, session_id, for_change=True)
    await carts.add_to_cart(
        db,
        actor,
        live,
        batch_id=batch_id,
        quantity=quantity,
        is_sample=is_sample,
        max_items=limits.max_cart_items,
    )
    return (await announce(db, live, EventType.CART_UPDATED)).staff.cart


async def staff_update_quantity(
    db: AsyncSession, actor: Actor, session_id: int, *, cart_item_id: int, quantity: Decimal
) -> Cart:
    live = await session_for_staff(db, actor, session_id, for_change=True)
    await carts.update_quantity(db, actor, live, cart_item_id=cart_item_id, quantity=quantity)
    return (await announce(db, live, EventType.CART_UPDATED)).staff.cart


async def staff_remove_from_cart(
    db: AsyncSession, actor: Actor, session_id: int, *, cart_item_id: int
) -> Cart:
    live = await session_for_staff(db, actor, session_id, for_change=True)
    await carts.remove_from_cart(db, actor, live, cart_item_id=cart_item_id)
    return (await announce(db, live, EventType.CART_UPDATED)).staff.cart


async def toggle_sample(
    db: AsyncSession, actor: Actor, session_id: int, *, cart_item_id: int, is_sample: bool
) -> Cart:
    live = await session_for_staff(db, actor, session_id, for_change=True)
    await carts.set_sample(db, actor, live, cart_item_id=cart_item_id, is_sample=is_sample)
    return (await announce(db, live, EventType.CART_UPDATED)).staff.cart


async def set_override_price(
    db: AsyncSession, actor: Actor, session_id: int, *, product_id: int, price: Decimal | None
) -> Cart:
    live = await session_for_staff(db, actor, session_id, for_change=True)
    await carts.set_override_price(db, actor, live, product_id=product_id, price=price)
    return (await announce(db, live, EventType.PRICE_CHANGED)).staff.cart


async def highlight_product(
    db: AsyncSession, actor: Actor, session_id: int, *, batch_id: int | None
) -> Cart:
    live = await session_for_staff(db, actor, session_id, for_change=True)
    await carts.highlight(db, actor, live, batch_id)
    return (await announce(db, live, EventType.HIGHLIGHTED)).staff.cart


async def check_credit(db: AsyncSession, actor: Actor, session_id: int) -> CreditStatus:
    live = await session_for_staff(db, actor, session_id)
    return await credit_status(db, live)


@dataclass(frozen=True, slots=True)
class SheetRef:
    id: int
    share_url: str  # absolute


async def make_sales_sheet(
    db: AsyncSession, actor: Actor, session_id: int, *, base_url: str
) -> SheetRef:
    """A sales sheet of the cart; base_url (e.g. "https://shop.example") makes its link."""
    live = await session_for_staff(db, actor, session_id, for_change=True)
    sheet = await generate_sales_sheet(db, actor, live, base_url=base_url)
    return await _announce_sheet(db, live, sheet)


async def _announce_sheet(db: AsyncSession, live: LiveSession, sheet: SalesSheet) -> SheetRef:
    assert sheet.share_url is not None  # every sheet made here keeps its link
    ref = SheetRef(sheet.id, sheet.share_url)
    await announce(db, live, EventType.SALES_SHEET_READY, share_url=ref.share_url)
    return ref


@dataclass(frozen=True, slots=True)
class EndResult:
    status: SessionStatus
    order_id: int | None
    sales_sheet: SheetRef | None


async def end_session(
    db: AsyncSession,
    actor: Actor,
    session_id: int,
    *,
    convert_to_order: bool,
    bypass_credit_check: bool,
    payment_terms: str | None,
    with_sales_sheet: bool,
    base_url: str,
) -> EndResult:
    live = await session_for_staff(db, actor, session_id, for_change=True)
    if not convert_to_order:
        # The cart stays as a draft; its holds vanish because the session is no longer open.
        change_status(live, SessionStatus.ENDED)
        sheet = (
            await generate_sales_sheet(db, actor, live, base_url=base_url)
            if with_sales_sheet
            else None
        )
        await announce(db, live, EventType.SESSION_STATUS)
        ref = await _announce_sheet(db, live, sheet) if sheet else None
        return EndResult(live.status, None, ref)
    done = await convert_session_to_order(
        db,
        actor,
        live,
        bypass_credit_check=bypass_credit_check,
        payment_terms=payment_terms,
        with_sales_sheet=with_sales_sheet,
        base_url=base_url,
    )
    await announce(db, live, EventType.SESSION_CONVERTED, order_id=done.order.id)
    ref = await _announce_sheet(db, live, done.sales_sheet) if done.sales_sheet else None
    return EndResult(live.status, done.order.id, ref)


async def cancel_session(db: AsyncSession, actor: Actor, session_id: int) -> SessionView:
    return await set_status(db, actor, session_id, SessionStatus.CANCELLED)


# --- client ----------------------------------------------------------------------------------


async def client_active_session(db: AsyncSession, actor: Actor) -> ClientSessionView | None:
    assert actor.client_id is not None
    live = await active_session_of_client(db, actor.client_id)
    return None if live is None else await client_view(db, live)


async def client_join(
    db: AsyncSession, actor: Actor, room_code: str
) -> tuple[ClientSessionView, ClientCart]:
    live = await session_for_client(db, actor, room_code)
    return await client_view(db, live), await carts.client_cart(db, live.id)


async def client_add_to_cart(
    db: AsyncSession,
    actor: Actor,
    room_code: str,
    *,
    batch_id: int,
    quantity: Decimal,
    limits: Limits,
) -> ClientCart:
    live = await session_for_client(db, actor, room_code, for_change=True)
    await carts.add_to_cart(
        db,
        actor,
        live,
        batch_id=batch_id,
        quantity=quantity,
        is_sample=False,
        max_items=limits.max_cart_items,
    )
    return (await announce(db, live, EventType.CART_UPDATED)).client.cart


async def client_update_quantity(
    db: AsyncSession, actor: Actor, room_code: str, *, cart_item_id: int, quantity: Decimal
) -> ClientCart:
    live = await session_for_client(db, actor, room_code, for_change=True)
    await carts.update_quantity(db, actor, live, cart_item_id=cart_item_id, quantity=quantity)
    return (await announce(db, live, EventType.CART_UPDATED)).client.cart


async def client_remove_from_cart(
    db: AsyncSession, actor: Actor, room_code: str, *, cart_item_id: int
) -> ClientCart:
    live = await session_for_client(db, actor, room_code, for_change=True)
    await carts.remove_from_cart(db, actor, live, cart_item_id=cart_item_id)
    return (await announce(db, live, EventType.CART_UPDATED)).client.cart


async def request_checkout(db: AsyncSession, actor: Actor, room_code: str) -> datetime:
    """Ask the host to check out; asking again while the request is pending changes nothing.

    Pending means requested and not yet answered; with no answer procedure yet, a request
    stays pending. The session row lock makes two concurrent asks one request.
    """
    live = await session_for_client(db, actor, room_code, for_change=True)
    if live.status is not SessionStatus.ACTIVE:
        raise PreconditionFailed(f"Checkout can be requested only while ACTIVE, not {live.status}")
    if live.checkout_requested_at is not None:
        return live.checkout_requested_at
    if await carts.count_lines(db, live.id) == 0:
        raise PreconditionFailed("The cart is empty: add something before asking to check out")
    live.checkout_requested_at = utcnow()
    touch(live)
    await announce(db, live, EventType.CHECKOUT_REQUESTED)
    return live.checkout_requested_at


async def sessions_page(db: AsyncSession, rows: Sequence[LiveSession]) -> list[SessionView]:
    return [await staff_view(db, live) for live in rows]
