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
from typing import Any

from live_shopping_client import (
    LiveShoppingClient,
    NotFound,
    PreconditionFailed,
    RpcError,
)
from live_shopping_client.models import Cart, SessionStatus, SessionStatusValue


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
    total: float = client.orders.get(order_id=1).total  # type: ignore[assignment]
    print(total)


if __name__ == "__main__":
    base_url, token, client_id, batch_id = sys.argv[1:]
    print(json.dumps(main(base_url, token, int(client_id), int(batch_id))))
