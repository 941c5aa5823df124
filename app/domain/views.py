"""What the outside sees of sessions and carts: staff views and separate client views.

Client views are their own types built from the domain objects, so a cost or internal field
can never reach a client by being added to a shared struct.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from app.db.models import AddedByRole, Role, SessionStatus


class View(msgspec.Struct, rename="camel", kw_only=True):
    """Base of domain views: camelCase on the wire."""


class CartLine(View):
    id: int
    batch_id: int
    batch_code: str
    product_id: int
    product_name: str
    quantity: Decimal
    unit_price: Decimal
    list_price: Decimal
    subtotal: Decimal
    is_sample: bool
    is_highlighted: bool
    added_by_role: AddedByRole
    unit_cogs: Decimal


class Cart(View):
    items: list[CartLine]
    subtotal: Decimal
    item_count: int


class ClientCartLine(View):
    id: int
    batch_id: int
    batch_code: str
    product_id: int
    product_name: str
    quantity: Decimal
    unit_price: Decimal
    list_price: Decimal
    subtotal: Decimal
    is_sample: bool
    is_highlighted: bool
    added_by_role: AddedByRole


class ClientCart(View):
    items: list[ClientCartLine]
    subtotal: Decimal
    item_count: int


class Highlight(View):
    batch_id: int
    batch_code: str
    product_id: int
    product_name: str
    list_price: Decimal


class Presence(View):
    """Who is watching the session now (an open stream of the host's side or the client's)."""

    host: bool
    client: bool


class CheckoutState(View):
    """The client's latest checkout request and the host's answer (null fields: pending)."""

    requested_at: datetime
    answered_at: datetime | None = None
    accepted: bool | None = None
    message: str | None = None


class EventActor(View):
    """Who made a change; events of the system (timeout, warnings, presence) have none."""

    user_id: int
    role: Role


class Change(View):
    """What one event changed, as the timeline tells it: the thing changed (`subject`) and its
    values before and after (quantities, prices, deadlines...). Decimals are strings.
    """

    subject: dict[str, Any] | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class SessionView(View):
    id: int
    status: SessionStatus
    room_code: str
    client_id: int
    client_name: str
    host_user_id: int
    title: str | None
    internal_notes: str | None
    scheduled_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    checkout_requested_at: datetime | None
    last_activity_at: datetime
    created_at: datetime
    highlight: Highlight | None
    order_id: int | None
    # The latest sales sheet's absolute link; null until one is made.
    share_url: str | None = None
    # Until when the cart's holds last unless something happens (DESIGN 4).
    holds_expire_at: datetime | None = None
    presence: Presence | None = None
    checkout: CheckoutState | None = None


class ClientSessionView(View):
    id: int
    status: SessionStatus
    room_code: str
    title: str | None
    host_user_id: int
    scheduled_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    checkout_requested_at: datetime | None
    highlight: Highlight | None
    # The order the session became and the latest sales sheet's absolute link, once they exist.
    order_id: int | None = None
    share_url: str | None = None
    holds_expire_at: datetime | None = None
    presence: Presence | None = None
    checkout: CheckoutState | None = None
