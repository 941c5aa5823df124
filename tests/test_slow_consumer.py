"""A stream whose client stops reading is cut loose, and never holds up the publisher.

The stream runs for real (the SSE handler over a migrated SQLite database, the memory bus); only
the ASGI `send` is a client that accepts the opening frames and then never reads again, so the
handler blocks in `send` exactly as it does on a full socket.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from app.config import Settings
from app.domain.outbox import AppendedEvent
from app.events.bus import LISTENER_QUEUE_SIZE
from app.events.sse import streams
from app.runtime import Services
from tests.conftest import Rpc

OPENING_MESSAGES = 3  # response start, retry hint, snapshot


class StuckClient:
    """Takes the first messages, then blocks forever as a full socket would."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.opened = asyncio.Event()
        self.stuck = asyncio.Event()

    async def send(self, message: Any) -> None:
        self.messages.append(message)
        if len(self.messages) == OPENING_MESSAGES:
            self.opened.set()
        if len(self.messages) > OPENING_MESSAGES:
            self.stuck.set()
            await asyncio.Event().wait()

    async def receive(self) -> Any:
        await asyncio.Event().wait()  # the client never hangs up


def payload(status: str) -> dict[str, Any]:
    view = {"session": {"status": status}, "cart": {"items": []}}
    return {"staff": view, "client": view}


async def test_a_client_that_stops_reading_is_disconnected_without_blocking_publishers(
    rpc: Rpc, settings: Settings
) -> None:
    client = await rpc.staff("clients.create", {"name": "Slow reader"})
    session = await rpc.staff("liveShopping.createSession", {"clientId": client["id"]})
    session_id = session["sessionId"]

    services = Services.create(settings)
    stuck = StuckClient()
    scope = {
        "type": "http",
        "method": "GET",
        "path": f"/live-shopping/{session_id}",
        "headers": [(b"authorization", f"Bearer {rpc.tokens.staff}".encode())],
        "query_string": b"",
        "app": SimpleNamespace(state=SimpleNamespace(services=services)),
    }
    try:
        stream = asyncio.create_task(streams.fn(scope, stuck.receive, stuck.send))
        await asyncio.wait_for(stuck.opened.wait(), 5)
        assert services.bus.hub.listener_count == 1
        # One live event gets the handler stuck writing to the client.
        await services.bus.publish(
            [AppendedEvent(session_id, 2, "CART_UPDATED", payload("ACTIVE"))]
        )
        await asyncio.wait_for(stuck.stuck.wait(), 5)

        # Publishing never waits for the stuck stream, however far behind it falls.
        behind = [
            AppendedEvent(session_id, seq, "CART_UPDATED", payload("ACTIVE"))
            for seq in range(3, 3 + LISTENER_QUEUE_SIZE + 10)
        ]
        await asyncio.wait_for(services.bus.publish(behind), 1)

        # Overflow ends the stream (the client resumes later with Last-Event-ID) and frees it.
        await asyncio.wait_for(stream, 5)
        assert services.bus.hub.listener_count == 0
        assert stuck.messages[0]["status"] == 200
    finally:
        await services.close()
