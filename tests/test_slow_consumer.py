"""Streams under stress: a client that stops reading, a database that fails for a moment.

The stream runs for real (the SSE handler over a migrated SQLite database, the memory bus); only
the ASGI `send` is a client that accepts the opening frames and then never reads again, so the
handler blocks in `send` exactly as it does on a full socket.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from app.config import Settings
from app.domain.outbox import AppendedEvent
from app.events import sse
from app.events.bus import LISTENER_QUEUE_SIZE
from app.events.outbox_watch import watch_outbox
from app.events.sse import streams
from app.runtime import Services
from tests.conftest import Rpc, make_settings

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


def staff_scope(services: Services, rpc: Rpc, session_id: int) -> dict[str, Any]:
    """What uvicorn and the /api/sse mount hand the stream handler for the staff stream."""
    return {
        "type": "http",
        "method": "GET",
        "path": f"/live-shopping/{session_id}",
        "headers": [(b"authorization", f"Bearer {rpc.tokens.staff}".encode())],
        "query_string": b"",
        "app": SimpleNamespace(state=SimpleNamespace(services=services)),
    }


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
    scope = staff_scope(services, rpc, session_id)
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


class RecordingClient:
    """Reads everything; tells when a frame with a given id has arrived."""

    def __init__(self) -> None:
        self.body = b""
        self.grew = asyncio.Event()

    async def send(self, message: Any) -> None:
        self.body += message.get("body", b"")
        self.grew.set()

    async def receive(self) -> Any:
        await asyncio.Event().wait()

    async def wait_for(self, fragment: bytes) -> None:
        async with asyncio.timeout(5):
            while fragment not in self.body:
                self.grew.clear()
                await self.grew.wait()


async def test_a_database_hiccup_during_catch_up_keeps_the_stream_and_retries(
    rpc: Rpc, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await rpc.staff("clients.create", {"name": "Patient reader"})
    session = await rpc.staff("liveShopping.createSession", {"clientId": client["id"]})
    session_id = session["sessionId"]
    services = Services.create(
        make_settings(settings.database_url, LIVE_SHOPPING_HEARTBEAT_MS="100")
    )
    reader = RecordingClient()
    failures = {"left": 2}
    real_latest_seq = sse.latest_seq

    async def flaky_latest_seq(db: Any, sid: int) -> int:
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("SELECT", {}, Exception("database went away"))
        return await real_latest_seq(db, sid)

    monkeypatch.setattr(sse, "latest_seq", flaky_latest_seq)
    try:
        scope = staff_scope(services, rpc, session_id)
        stream = asyncio.create_task(streams.fn(scope, reader.receive, reader.send))
        watcher = asyncio.create_task(watch_outbox(services))
        await reader.wait_for(b"event: SESSION_SNAPSHOT")
        # A change whose publish never reached this worker (the test app has its own bus):
        # only the outbox watcher's RESYNC and the stream's catch-up can deliver it.
        await rpc.staff(
            "liveShopping.updateSessionStatus", {"sessionId": session_id, "status": "PAUSED"}
        )
        await reader.wait_for(b"id: 2\nevent: SESSION_STATUS")
        assert failures["left"] == 0  # the failed catch-ups happened and were survived
        assert not stream.done()
        stream.cancel()
        watcher.cancel()
    finally:
        await services.close()


async def test_a_repeated_authorization_header_is_read_as_its_first_value(
    rpc: Rpc, settings: Settings
) -> None:
    client = await rpc.staff("clients.create", {"name": "Two headers"})
    session_id = (await rpc.staff("liveShopping.createSession", {"clientId": client["id"]}))[
        "sessionId"
    ]
    services = Services.create(settings)
    scope = staff_scope(services, rpc, session_id)
    # First a valid staff token, then garbage: /rpc reads the first, so must the stream.
    scope["headers"] = [*scope["headers"], (b"authorization", b"Bearer garbage")]
    reader = RecordingClient()
    try:
        stream = asyncio.create_task(streams.fn(scope, reader.receive, reader.send))
        await reader.wait_for(b"event: SESSION_SNAPSHOT")
        stream.cancel()
    finally:
        await services.close()
