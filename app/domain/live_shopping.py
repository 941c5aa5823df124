"""Use cases of a live session, one function each: access check, change, event, view.

Handlers in procedures/ call exactly one of these. Each runs inside the caller's unit of
work; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from msgspec import UNSET, UnsetType
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LiveSession, SalesSheet, SessionStatus
from app.domain import cart as carts
from app.domain.actors import Actor
from app.domain.announce import HIDDEN, Announced, Hidden, InHand, announce
from app.domain.conversion import convert_session_to_order
from app.domain.credit import CreditStatus, credit_status
from app.domain.errors import InvalidInput, PreconditionFailed
from app.domain.outbox import EventType
from app.domain.sales_sheets import generate_sales_sheet
from app.domain.sessions import (
    DEFAULT_TIMEOUT_MINS,
    TIMEOUT_KEY,
    SessionFacts,
    active_session_of_client,
    change_status,
    checkout_pending,
    client_session_facts,
    client_view,
    client_view_of,
    create_session,
    reschedule,
    session_for_client,
    session_for_staff,
    staff_session_facts,
    staff_view,
    staff_view_of,
    timeout_of,
    touch,
    utcnow,
)
from app.domain.status import FINAL_STATUSES, TIMEOUT_STATUSES
from app.domain.views import Cart, Change, ClientCart, ClientSessionView, SessionView


@dataclass(frozen=True, slots=True)
class Limits:
    max_cart_items: int
    session_timeout_mins: int = DEFAULT_TIMEOUT_MINS


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
        config={"maxCartItems": limits.max_cart_items, TIMEOUT_KEY: limits.session_timeout_mins},
    )
    await announce(
        db,
        live,
        EventType.SESSION_STATUS,
        actor=actor,
        change=Change(before=None, after={"status": live.status.value}),
    )
    return live


async def get_for_staff(
    db: AsyncSession, actor: Actor, session_id: int
) -> tuple[SessionView, Cart]:
    facts = await staff_session_facts(db, actor, session_id)
    return staff_view_of(facts), carts.staff_cart_of(await carts.read_lines(db, facts.live.id))


async def set_status(
    db: AsyncSession, actor: Actor, session_id: int, target: SessionStatus
) -> SessionView:
    if target is SessionStatus.CONVERTED:
        raise PreconditionFailed("Use endSession with convertToOrder to convert a session")
    live = await session_for_staff(db, actor, session_id, for_change=True)
    change = change_status(live, target)
    return (
        await announce(db, live, EventType.SESSION_STATUS, actor=actor, change=change)
    ).staff.session


async def _announce_edit(
    db: AsyncSession,
    actor: Actor,
    facts: SessionFacts,
    edit: carts.CartEdit,
    event_type: EventType = EventType.CART_UPDATED,
) -> Announced:
    """A cart edit's event from what the edit already holds: no read after the change."""
    return await announce(
        db,
        facts.live,
        event_type,
        actor=actor,
        change=edit.change,
        in_hand=InHand(facts, edit.lines),
    )


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
    facts = await staff_session_facts(db, actor, session_id, for_change=True)
    edit = await carts.add_to_cart(
        db,
        actor,
        facts,
        batch_id=batch_id,
        quantity=quantity,
        is_sample=is_sample,
        max_items=limits.max_cart_items,
    )
    return (await _announce_edit(db, actor, facts, edit)).staff.cart


async def staff_update_quantity(
    db: AsyncSession, actor: Actor, session_id: int, *, cart_item_id: int, quantity: Decimal
) -> Cart:
    facts = await staff_session_facts(db, actor, session_id, for_change=True)
    edit = await carts.update_quantity(
        db, actor, facts, cart_item_id=cart_item_id, quantity=quantity
    )
    return (await _announce_edit(db, actor, facts, edit)).staff.cart


async def staff_remove_from_cart(
    db: AsyncSession, actor: Actor, session_id: int, *, cart_item_id: int
) -> Cart:
    facts = await staff_session_facts(db, actor, session_id, for_change=True)
    edit = await carts.remove_from_cart(db, actor, facts, cart_item_id=cart_item_id)
    return (await _announce_edit(db, actor, facts, edit)).staff.cart


async def toggle_sample(
    db: AsyncSession, actor: Actor, session_id: int, *, cart_item_id: int, is_sample: bool
) -> Cart:
    facts = await staff_session_facts(db, actor, session_id, for_change=True)
    edit = await carts.set_sample(db, actor, facts, cart_item_id=cart_item_id, is_sample=is_sample)
    return (await _announce_edit(db, actor, facts, edit)).staff.cart


async def set_override_price(
    db: AsyncSession, actor: Actor, session_id: int, *, product_id: int, price: Decimal | None
) -> Cart:
    facts = await staff_session_facts(db, actor, session_id, for_change=True)
    edit = await carts.set_override_price(db, actor, facts, product_id=product_id, price=price)
    return (await _announce_edit(db, actor, facts, edit, EventType.PRICE_CHANGED)).staff.cart


async def highlight_product(
    db: AsyncSession, actor: Actor, session_id: int, *, batch_id: int | None
) -> Cart:
    facts = await staff_session_facts(db, actor, session_id, for_change=True)
    edit, facts = await carts.highlight(db, actor, facts, batch_id)
    return (await _announce_edit(db, actor, facts, edit, EventType.HIGHLIGHTED)).staff.cart


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
    return await _announce_sheet(db, actor, live, sheet)


async def _announce_sheet(
    db: AsyncSession, actor: Actor, live: LiveSession, sheet: SalesSheet
) -> SheetRef:
    assert sheet.share_url is not None  # every sheet made here keeps its link
    ref = SheetRef(sheet.id, sheet.share_url)
    change = Change(subject={"salesSheetId": sheet.id}, after={"shareUrl": ref.share_url})
    await announce(
        db, live, EventType.SALES_SHEET_READY, actor=actor, change=change, share_url=ref.share_url
    )
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
        change = change_status(live, SessionStatus.ENDED)
        sheet = (
            await generate_sales_sheet(db, actor, live, base_url=base_url)
            if with_sales_sheet
            else None
        )
        await announce(db, live, EventType.SESSION_STATUS, actor=actor, change=change)
        ref = await _announce_sheet(db, actor, live, sheet) if sheet else None
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
    change = Change(
        subject={"orderId": done.order.id},
        before={"status": done.previous_status.value},
        after={"status": live.status.value, "total": str(done.order.total)},
    )
    await announce(
        db, live, EventType.SESSION_CONVERTED, actor=actor, change=change, order_id=done.order.id
    )
    ref = await _announce_sheet(db, actor, live, done.sales_sheet) if done.sales_sheet else None
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
    facts = await client_session_facts(db, actor, room_code)
    return client_view_of(facts), carts.client_cart_of(await carts.read_lines(db, facts.live.id))


async def client_add_to_cart(
    db: AsyncSession,
    actor: Actor,
    room_code: str,
    *,
    batch_id: int,
    quantity: Decimal,
    limits: Limits,
) -> ClientCart:
    facts = await client_session_facts(db, actor, room_code, for_change=True)
    edit = await carts.add_to_cart(
        db,
        actor,
        facts,
        batch_id=batch_id,
        quantity=quantity,
        is_sample=False,
        max_items=limits.max_cart_items,
    )
    return (await _announce_edit(db, actor, facts, edit)).client.cart


async def client_update_quantity(
    db: AsyncSession, actor: Actor, room_code: str, *, cart_item_id: int, quantity: Decimal
) -> ClientCart:
    facts = await client_session_facts(db, actor, room_code, for_change=True)
    edit = await carts.update_quantity(
        db, actor, facts, cart_item_id=cart_item_id, quantity=quantity
    )
    return (await _announce_edit(db, actor, facts, edit)).client.cart


async def client_remove_from_cart(
    db: AsyncSession, actor: Actor, room_code: str, *, cart_item_id: int
) -> ClientCart:
    facts = await client_session_facts(db, actor, room_code, for_change=True)
    edit = await carts.remove_from_cart(db, actor, facts, cart_item_id=cart_item_id)
    return (await _announce_edit(db, actor, facts, edit)).client.cart


async def request_checkout(db: AsyncSession, actor: Actor, room_code: str) -> datetime:
    """Ask the host to check out; asking again while the request is pending changes nothing.

    Pending means requested and not yet answered (respondToCheckout); after an answer the
    client may ask again. The session row lock makes two concurrent asks one request.
    """
    live = await session_for_client(db, actor, room_code, for_change=True)
    if live.status is not SessionStatus.ACTIVE:
        raise PreconditionFailed(f"Checkout can be requested only while ACTIVE, not {live.status}")
    if checkout_pending(live):
        assert live.checkout_requested_at is not None
        return live.checkout_requested_at
    if await carts.count_lines(db, live.id) == 0:
        raise PreconditionFailed("The cart is empty: add something before asking to check out")
    live.checkout_requested_at = utcnow()
    live.checkout_answered_at = live.checkout_accepted = live.checkout_message = None
    touch(live)
    change = Change(after={"requestedAt": live.checkout_requested_at})
    await announce(db, live, EventType.CHECKOUT_REQUESTED, actor=actor, change=change)
    return live.checkout_requested_at


async def respond_to_checkout(
    db: AsyncSession, actor: Actor, session_id: int, *, accept: bool, message: str | None
) -> SessionView:
    """The host's one answer to the client's pending checkout request."""
    live = await session_for_staff(db, actor, session_id, for_change=True)
    if live.status in FINAL_STATUSES:
        # Its stream has ended with its final event: an answer now would reach nobody.
        raise PreconditionFailed(
            f"A {live.status} session takes no answer to a checkout request",
            status=live.status.value,
        )
    if not checkout_pending(live):
        raise PreconditionFailed(
            "There is no checkout request waiting for an answer"
            if live.checkout_requested_at is None
            else "This checkout request was already answered"
        )
    live.checkout_answered_at = utcnow()
    live.checkout_accepted = accept
    live.checkout_message = message
    touch(live)
    change = Change(after={"accepted": accept, "message": message})
    announced = await announce(db, live, EventType.CHECKOUT_ANSWERED, actor=actor, change=change)
    return announced.staff.session


@dataclass(frozen=True, slots=True)
class SessionEdit:
    """The fields updateSession may change; UNSET leaves one as it is, None clears it.

    msgspec's UNSET, the same marker the procedure's input carries: "not given" is a value
    of the edit, not something of the wire.
    """

    title: str | UnsetType | None = UNSET
    scheduled_at: datetime | UnsetType | None = UNSET
    internal_notes: str | UnsetType | None = UNSET


async def update_session(
    db: AsyncSession, actor: Actor, session_id: int, edit: SessionEdit
) -> SessionView:
    """Change a session's title, schedule or internal notes (the host or an ADMIN).

    The client's side of the event never carries the notes; a change of notes alone is left
    out of the client's timeline.
    """
    live = await session_for_staff(db, actor, session_id, for_change=True)
    if live.status in FINAL_STATUSES:
        raise PreconditionFailed(f"A {live.status} session can no longer be edited")
    before: dict[str, object] = {}
    after: dict[str, object] = {}
    if edit.title is not UNSET and edit.title != live.title:
        before["title"], after["title"] = live.title, edit.title
        live.title = edit.title
    if edit.scheduled_at is not UNSET and edit.scheduled_at != live.scheduled_at:
        reschedule(live, edit.scheduled_at)
        before["scheduledAt"], after["scheduledAt"] = live.scheduled_at, edit.scheduled_at
        live.scheduled_at = edit.scheduled_at
    notes_changed = edit.internal_notes is not UNSET and edit.internal_notes != live.internal_notes
    if notes_changed:
        before["internalNotes"], after["internalNotes"] = live.internal_notes, edit.internal_notes
        live.internal_notes = edit.internal_notes  # type: ignore[assignment]
    if not after:
        # Nothing differs from what the session already says: no change, no event.
        return await staff_view(db, live)
    touch(live)
    change = Change(before=before, after=after)
    public = {k: v for k, v in after.items() if k != "internalNotes"}
    client_change: Change | Hidden = (
        Change(
            before={k: v for k, v in before.items() if k != "internalNotes"},
            after=public,
        )
        if public
        else HIDDEN
    )
    announced = await announce(
        db, live, EventType.SESSION_UPDATED, actor=actor, change=change, client_change=client_change
    )
    return announced.staff.session


async def extend_holds(
    db: AsyncSession, actor: Actor, session_id: int, *, minutes: int
) -> SessionView:
    """Push the hold deadline: max(deadline, now) + minutes, 1 to the session's timeout.

    Only ACTIVE and PAUSED sessions have a deadline: a SCHEDULED one keeps its holds until it
    starts, and a closed one has released them.
    """
    live = await session_for_staff(db, actor, session_id, for_change=True)
    if live.status not in TIMEOUT_STATUSES:
        raise PreconditionFailed(
            f"A {live.status} session has no hold deadline to extend", status=live.status.value
        )
    most = int(timeout_of(live).total_seconds() // 60)
    if not 1 <= minutes <= most:
        raise InvalidInput(
            f"Holds can be extended by 1 to {most} minutes at a time", path="$.minutes", limit=most
        )
    before = live.holds_expire_at
    live.holds_expire_at = max(before, utcnow()) + timedelta(minutes=minutes)
    change = Change(
        before={"holdsExpireAt": before},
        after={"holdsExpireAt": live.holds_expire_at, "minutes": minutes},
    )
    announced = await announce(db, live, EventType.HOLDS_EXTENDED, actor=actor, change=change)
    return announced.staff.session


async def sessions_page(db: AsyncSession, rows: Sequence[LiveSession]) -> list[SessionView]:
    return [await staff_view(db, live) for live in rows]
