"""An integrator's program on the generated Python client (clients/python).

tests/test_typed_clients.py checks it with `mypy --strict`, whose warn_unused_ignores makes each
`# type: ignore[code]` below a claim: that line really is an error of that code. It then runs
`main` against a real server and reads the JSON it prints.

Usage: python python_program.py BASE_URL STAFF_TOKEN CLIENT_ID BATCH_ID
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from typing import Any, assert_never

from live_shopping_client import (
    Event,
    LiveShoppingClient,
    NotFound,
    PreconditionFailed,
    Retry,
    RpcError,
)
from live_shopping_client.models import (
    Cart,
    CartUpdatedEvent,
    CheckoutAnsweredEvent,
    CheckoutRequestedEvent,
    ClientCartUpdatedEvent,
    HighlightedEvent,
    HoldsExpiringEvent,
    HoldsExtendedEvent,
    PresenceEvent,
    PriceChangedEvent,
    RoomEvent,
    SalesSheetReadyEvent,
    SessionConvertedEvent,
    SessionEvent,
    SessionSnapshotEvent,
    SessionStatus,
    SessionStatusEvent,
    SessionStatusValue,
    SessionTimeoutEvent,
    SessionUpdatedEvent,
)


def describe(event: SessionEvent) -> str:
    """What a staff console shows of an event: one case per type, each narrowed to its own
    Struct; `assert_never` proves no type of the staff stream is left out."""
    match event:
        case SessionSnapshotEvent(session=session):
            return f"snapshot {session.status}"
        case SessionStatusEvent(change=change):
            before = "new" if change.before is None else change.before.status.value
            return f"status {before} -> {change.after.status.value}"
        case CartUpdatedEvent(change=change, cart=cart):
            after = "removed" if change.after is None else str(change.after.quantity)
            return f"line {change.subject.batch_id} {after}, subtotal {cart.subtotal}"
        case HighlightedEvent(change=change):
            return f"showing {change.after.batch_id}"
        case PriceChangedEvent(change=change):
            return f"price {change.before.unit_price} -> {change.after.unit_price}"
        case CheckoutRequestedEvent(change=change):
            return f"checkout asked {change.after.requested_at:%H:%M}"
        case CheckoutAnsweredEvent(change=change):
            return "accepted" if change.after.accepted else "declined"
        case SessionConvertedEvent(change=change):
            return f"order {change.subject.order_id} of {change.after.total}"
        case SalesSheetReadyEvent(change=change):
            return change.after.share_url
        case SessionTimeoutEvent(change=change):
            return f"timed out at {change.after.holds_expire_at}"
        case SessionUpdatedEvent(session=session):
            return f"retitled {session.title}"
        case HoldsExtendedEvent(change=change) | HoldsExpiringEvent(change=change):
            return f"holds until {change.after.holds_expire_at}"
        case PresenceEvent(change=change):
            return "client here" if change.after.client else "client away"
        case _:
            assert_never(event)


def cart_subtotal(event: Event[RoomEvent]) -> Decimal | None:
    """The client's side: its own event Structs, which have no cost to show."""
    if isinstance(event.data, ClientCartUpdatedEvent):
        return event.data.cart.subtotal
    return None


def main(base_url: str, staff_token: str, client_id: int, batch_id: int) -> dict[str, Any]:
    outcome: dict[str, Any] = {}
    with LiveShoppingClient(base_url, token=staff_token) as staff:
        created = staff.live_shopping.create_session(client_id=client_id, title="Typed")
        session_id = created.session_id

        # Decimal params take what the wire takes: an int, a str or a Decimal.
        staff.live_shopping.add_to_cart(session_id=session_id, batch_id=batch_id, quantity=2)
        cart: Cart = staff.live_shopping.add_to_cart(
            session_id=session_id, batch_id=batch_id, quantity="0.5", is_sample=True
        )
        outcome["quantities"] = [str(line.quantity) for line in cart.items]
        outcome["subtotalIsDecimal"] = isinstance(cart.subtotal, Decimal)

        # An enum param takes the enum or its plain value; a result carries the enum.
        pause: SessionStatusValue = "PAUSED"
        paused = staff.live_shopping.update_session_status(
            session_id=session_id, status=pause, timeout=5.0
        )
        status: SessionStatus = paused.session.status
        resumed = staff.live_shopping.update_session_status(
            session_id=session_id, status=SessionStatus.ACTIVE
        )
        outcome["statuses"] = [status.value, resumed.session.status.value]

        # The session's story so far, replayed from its first event as typed events.
        outcome["events"] = []
        with staff.subscribe_session(session_id, last_event_id=0) as events:
            for event in events:
                if not isinstance(event.data, PresenceEvent):
                    outcome["events"].append(describe(event.data))
                back_to_active = (
                    isinstance(event.data, SessionStatusEvent)
                    and event.data.change.before is not None
                    and event.data.change.after.status is SessionStatus.ACTIVE
                )
                if back_to_active:
                    break  # the resume above: everything this program did

        try:
            staff.live_shopping.get_session(session_id=987654321)
        except NotFound as missing:
            outcome["notFound"] = {
                "class": type(missing).__name__,
                "code": missing.code,
                "httpStatus": missing.http_status,
                "path": missing.data.get("path"),
            }

        try:
            staff.live_shopping.add_to_cart(
                session_id=session_id, batch_id=batch_id, quantity=Decimal("100000")
            )
        except PreconditionFailed as refused:
            outcome["preconditionFailed"] = refused.message

        try:  # the one class of before still catches every code
            staff.clients.get(client_id=987654321)
        except RpcError as error:
            outcome["rpcError"] = {"class": type(error).__name__, "code": error.code}
    return outcome


def refused_by_the_types(client: LiveShoppingClient) -> None:
    """Never called: each line is a mistake mypy refuses."""
    client.live_shopping.add_to_cart(session_id=1, batch_id=2, quantity=1.5)  # type: ignore[arg-type]
    client.live_shopping.update_session_status(session_id=1, status="LIVE")  # type: ignore[arg-type]
    client.live_shopping.get_session(session_id=1, colour="red")  # type: ignore[call-arg]
    client.live_shopping.delete_everything(session_id=1)  # type: ignore[attr-defined]
    client.live_shopping.get_session(session_id=1, timeout="soon")  # type: ignore[arg-type]
    client.live_shopping.get_session(session_id=1, retry=Retry(attempts=2))  # a query: fine
    client.live_shopping.add_to_cart(session_id=1, batch_id=2, quantity=1, retry=True)  # type: ignore[call-arg]
    total: float = client.orders.get(order_id=1).total  # type: ignore[assignment]
    print(total)
    for event in client.subscribe_session(1):
        match event.data:
            case HighlightedEvent(change=change):
                print(change.after.unit_price)  # type: ignore[attr-defined]
            case CartUpdatedEvent(cart=cart):
                print(cart.items[0].colour)  # type: ignore[attr-defined]
    for room_event in client.subscribe_room("ABC123"):
        if isinstance(room_event.data, ClientCartUpdatedEvent):
            print(room_event.data.cart.items[0].unit_cogs)  # type: ignore[attr-defined]
        print(room_event.data.session.internal_notes)  # type: ignore[attr-defined]
    room_events = client.subscribe_room("ABC123")
    staff_event: Event[SessionEvent] = next(room_events)  # type: ignore[arg-type]
    print(staff_event)


if __name__ == "__main__":
    base_url, token, client_id, batch_id = sys.argv[1:]
    print(json.dumps(main(base_url, token, int(client_id), int(batch_id))))
