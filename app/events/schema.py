"""The data of every live-session event, typed per event type and per audience (DESIGN.md 5).

Each event carries the session's whole state after the change, as its audience sees it (staff:
`SessionView` and `Cart`; the client: `ClientSessionView` and `ClientCart`), who made it and
when, and what it changed. What differs by type is the change: its `subject` (the thing
changed) and its values `before` and `after`. `app/domain/announce.py` builds the events; these
Structs say what each type carries, so that clients can be generated from them and a test
(tests/test_event_schema.py) decodes real emitted events of every type into them strictly, so
the two cannot drift apart.

The event type is each Struct's tag: on the tRPC wire it travels inside the data
(`{"type": "CART_UPDATED", ...}`), on `/api/sse` as the SSE `event:` field. `SessionEvent` is
the staff stream's union (`liveShopping.onSessionEvent`), `RoomEvent` the client's
(`vipPortalLiveShopping.onRoomEvent`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal, TypeAlias

import msgspec
from msgspec import UNSET, UnsetType

from app.db.models import AddedByRole, SessionStatus
from app.domain.outbox import EventType
from app.domain.views import (
    Cart,
    ClientCart,
    ClientSessionView,
    EventActor,
    Presence,
    SessionView,
)


class _Part(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    """A piece of a change: camelCase on the wire, nothing unknown."""


# --- what changes refer to and the values they hold ---------------------------------------------


class StatusValue(_Part):
    status: SessionStatus


class CartLineRef(_Part):
    """The cart line a change is about."""

    cart_item_id: int
    batch_id: int
    product_id: int
    is_sample: bool
    added_by_role: AddedByRole


class CartLineValues(_Part):
    """A line's quantity, or its sample flag (and the line it merged into, if it did)."""

    quantity: Decimal | UnsetType = UNSET
    is_sample: bool | UnsetType = UNSET
    merged_into: int | UnsetType = UNSET


class ProductRef(_Part):
    product_id: int


class HighlightRef(_Part):
    """The product shown, or when the highlight is cleared the one taken down."""

    batch_id: int
    product_id: int


class HighlightValue(_Part):
    batch_id: int | None


class PriceBefore(_Part):
    unit_price: Decimal


class PriceAfter(_Part):
    unit_price: Decimal
    # The session's override of the product's price; null when it was cleared.
    override_price: Decimal | None


class CheckoutRequestValue(_Part):
    requested_at: datetime


class CheckoutAnswerValue(_Part):
    accepted: bool
    message: str | None


class OrderRef(_Part):
    order_id: int


class ConvertedValue(_Part):
    status: SessionStatus
    total: Decimal


class SalesSheetRef(_Part):
    sales_sheet_id: int


class SalesSheetValue(_Part):
    share_url: str


class TimedOutValue(_Part):
    status: SessionStatus
    holds_expire_at: datetime


class SessionEditValues(_Part):
    """The edited fields of a session, each present only when it changed."""

    title: str | UnsetType | None = UNSET
    scheduled_at: datetime | UnsetType | None = UNSET
    internal_notes: str | UnsetType | None = UNSET


class ClientSessionEditValues(_Part):
    """The edited fields the client may see (never the internal notes)."""

    title: str | UnsetType | None = UNSET
    scheduled_at: datetime | UnsetType | None = UNSET


class HoldsReason(_Part):
    """Why the system moved the deadline: someone is watching the session."""

    reason: Literal["presence"]


class HoldsDeadline(_Part):
    holds_expire_at: datetime


class HoldsExtension(_Part):
    holds_expire_at: datetime
    # By how much the host extended them; absent when the system did (presence).
    minutes: int | UnsetType = UNSET


# --- the change of each event type -------------------------------------------------------------


class StatusChange(_Part):
    """SESSION_STATUS: created (`before` null), or moved from one status to another."""

    subject: None
    before: StatusValue | None
    after: StatusValue


class CartChange(_Part):
    """CART_UPDATED: a line added (`before` null when new), re-counted, removed (`after` null),
    or marked as a sample or paid."""

    subject: CartLineRef
    before: CartLineValues | None
    after: CartLineValues | None


class HighlightChange(_Part):
    subject: HighlightRef | None
    before: HighlightValue
    after: HighlightValue


class PriceChange(_Part):
    subject: ProductRef
    before: PriceBefore
    after: PriceAfter


class CheckoutRequestChange(_Part):
    subject: None
    before: None
    after: CheckoutRequestValue


class CheckoutAnswerChange(_Part):
    subject: None
    before: None
    after: CheckoutAnswerValue


class ConversionChange(_Part):
    subject: OrderRef
    before: StatusValue
    after: ConvertedValue


class SalesSheetChange(_Part):
    subject: SalesSheetRef
    before: None
    after: SalesSheetValue


class TimeoutChange(_Part):
    subject: None
    before: StatusValue
    after: TimedOutValue


class SessionEditChange(_Part):
    subject: None
    before: SessionEditValues
    after: SessionEditValues


class ClientSessionEditChange(_Part):
    subject: None
    before: ClientSessionEditValues
    after: ClientSessionEditValues


class HoldsExtendedChange(_Part):
    subject: HoldsReason | None
    before: HoldsDeadline
    after: HoldsExtension


class HoldsExpiringChange(_Part):
    subject: None
    before: None
    after: HoldsDeadline


class PresenceChange(_Part):
    """Who of host and client was watching before, and who is now."""

    subject: None
    before: Presence
    after: Presence


# --- staff events ------------------------------------------------------------------------------


class _StaffState(
    msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True, tag_field="type"
):
    session: SessionView
    cart: Cart
    order_id: int | None
    share_url: str | None


class _StaffChange(_StaffState):
    occurred_at: datetime
    actor: EventActor | None  # null: the system (timeouts, warnings, presence)


class SessionSnapshotEvent(_StaffState, tag=EventType.SESSION_SNAPSHOT.value):
    """The whole state: first on a fresh stream, or instead of a replay the outbox cannot give
    (then `reset` is true: replace what you hold)."""

    occurred_at: datetime  # when the state was read
    actor: None
    change: None
    reset: bool | UnsetType = UNSET


class SessionStatusEvent(_StaffChange, tag=EventType.SESSION_STATUS.value):
    change: StatusChange


class CartUpdatedEvent(_StaffChange, tag=EventType.CART_UPDATED.value):
    change: CartChange


class HighlightedEvent(_StaffChange, tag=EventType.HIGHLIGHTED.value):
    change: HighlightChange


class PriceChangedEvent(_StaffChange, tag=EventType.PRICE_CHANGED.value):
    change: PriceChange


class CheckoutRequestedEvent(_StaffChange, tag=EventType.CHECKOUT_REQUESTED.value):
    change: CheckoutRequestChange


class CheckoutAnsweredEvent(_StaffChange, tag=EventType.CHECKOUT_ANSWERED.value):
    change: CheckoutAnswerChange


class SessionConvertedEvent(_StaffChange, tag=EventType.SESSION_CONVERTED.value):
    change: ConversionChange


class SalesSheetReadyEvent(_StaffChange, tag=EventType.SALES_SHEET_READY.value):
    change: SalesSheetChange


class SessionTimeoutEvent(_StaffChange, tag=EventType.SESSION_TIMEOUT.value):
    change: TimeoutChange


class SessionUpdatedEvent(_StaffChange, tag=EventType.SESSION_UPDATED.value):
    change: SessionEditChange


class HoldsExtendedEvent(_StaffChange, tag=EventType.HOLDS_EXTENDED.value):
    change: HoldsExtendedChange


class HoldsExpiringEvent(_StaffChange, tag=EventType.HOLDS_EXPIRING.value):
    change: HoldsExpiringChange


class PresenceEvent(_StaffChange, tag=EventType.PRESENCE.value):
    change: PresenceChange


SessionEvent: TypeAlias = (
    SessionSnapshotEvent
    | SessionStatusEvent
    | CartUpdatedEvent
    | HighlightedEvent
    | PriceChangedEvent
    | CheckoutRequestedEvent
    | CheckoutAnsweredEvent
    | SessionConvertedEvent
    | SalesSheetReadyEvent
    | SessionTimeoutEvent
    | SessionUpdatedEvent
    | HoldsExtendedEvent
    | HoldsExpiringEvent
    | PresenceEvent
)


# --- client events -----------------------------------------------------------------------------


class _ClientState(
    msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True, tag_field="type"
):
    session: ClientSessionView
    cart: ClientCart
    order_id: int | None
    share_url: str | None
    # A change only staff care about (internal notes): the client's timeline leaves it out.
    staff_only: bool


class _ClientChange(_ClientState):
    occurred_at: datetime
    actor: EventActor | None  # null: the system (timeouts, warnings, presence)


class ClientSessionSnapshotEvent(_ClientState, tag=EventType.SESSION_SNAPSHOT.value):
    """The whole room: first on a fresh stream, or instead of a replay the outbox cannot give
    (then `reset` is true: replace what you hold)."""

    occurred_at: datetime  # when the state was read
    actor: None
    change: None
    reset: bool | UnsetType = UNSET


class ClientSessionStatusEvent(_ClientChange, tag=EventType.SESSION_STATUS.value):
    change: StatusChange


class ClientCartUpdatedEvent(_ClientChange, tag=EventType.CART_UPDATED.value):
    change: CartChange


class ClientHighlightedEvent(_ClientChange, tag=EventType.HIGHLIGHTED.value):
    change: HighlightChange


class ClientPriceChangedEvent(_ClientChange, tag=EventType.PRICE_CHANGED.value):
    change: PriceChange


class ClientCheckoutRequestedEvent(_ClientChange, tag=EventType.CHECKOUT_REQUESTED.value):
    change: CheckoutRequestChange


class ClientCheckoutAnsweredEvent(_ClientChange, tag=EventType.CHECKOUT_ANSWERED.value):
    change: CheckoutAnswerChange


class ClientSessionConvertedEvent(_ClientChange, tag=EventType.SESSION_CONVERTED.value):
    change: ConversionChange


class ClientSalesSheetReadyEvent(_ClientChange, tag=EventType.SALES_SHEET_READY.value):
    change: SalesSheetChange


class ClientSessionTimeoutEvent(_ClientChange, tag=EventType.SESSION_TIMEOUT.value):
    change: TimeoutChange


class ClientSessionUpdatedEvent(_ClientChange, tag=EventType.SESSION_UPDATED.value):
    # Null when only the internal notes changed (then `staffOnly` is true).
    change: ClientSessionEditChange | None


class ClientHoldsExtendedEvent(_ClientChange, tag=EventType.HOLDS_EXTENDED.value):
    change: HoldsExtendedChange


class ClientHoldsExpiringEvent(_ClientChange, tag=EventType.HOLDS_EXPIRING.value):
    change: HoldsExpiringChange


class ClientPresenceEvent(_ClientChange, tag=EventType.PRESENCE.value):
    change: PresenceChange


RoomEvent: TypeAlias = (
    ClientSessionSnapshotEvent
    | ClientSessionStatusEvent
    | ClientCartUpdatedEvent
    | ClientHighlightedEvent
    | ClientPriceChangedEvent
    | ClientCheckoutRequestedEvent
    | ClientCheckoutAnsweredEvent
    | ClientSessionConvertedEvent
    | ClientSalesSheetReadyEvent
    | ClientSessionTimeoutEvent
    | ClientSessionUpdatedEvent
    | ClientHoldsExtendedEvent
    | ClientHoldsExpiringEvent
    | ClientPresenceEvent
)

# The event unions by the name the generated clients give them, each with what it is.
EVENT_UNIONS: dict[str, tuple[object, str]] = {
    "SessionEvent": (
        SessionEvent,
        "The staff stream's events (`liveShopping.onSessionEvent`, "
        "`/api/sse/live-shopping/{sessionId}`): the whole session after each change, in full.",
    ),
    "RoomEvent": (
        RoomEvent,
        "The client stream's events (`vipPortalLiveShopping.onRoomEvent`, "
        "`/api/sse/vip/live-shopping/{roomCode}`): the room as its client sees it, without "
        "cost, internal notes or credit.",
    ),
}
