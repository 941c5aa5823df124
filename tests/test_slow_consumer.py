"""Streams under stress: a client that stops reading, a database that fails for a moment.

The stream runs for real (the SSE handler over a migrated SQLite database, the memory bus); only
the ASGI `send` is a client that accepts the first few messages and then never reads again, so
the handler blocks in `send` exactly as it does on a full socket. A stream stuck like that
holds no database connection, and is dropped once a write has been stuck for WRITE_STALL_S.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from app.config import Settings
from app.domain.outbox import AppendedEvent
from app.events import replay, sse
from app.events.bus import LISTENER_QUEUE_SIZE
from app.events.outbox_watch import watch_outbox
from app.events.sse import streams
from app.runtime import Services
from tests.conftest import Rpc, make_settings

OPENING_MESSAGES = 2  # response start, then the retry hint with the snapshot (one write)


class StuckClient:
    """Takes the first `accepts` messages, then blocks forever as a full socket would."""

    def __init__(self, accepts: int = OPENING_MESSAGES) -> None:
        self.accepts = accepts
        self.messages: list[dict[str, Any]] = []
        self.opened = asyncio.Event()
        self.stuck = asyncio.Event()

    async def send(self, message: Any) -> None:
        self.messages.append(message)
        if len(self.messages) == self.accepts:
            self.opened.set()
        if len(self.messages) > self.accepts:
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


def resuming_from(scope: dict[str, Any], last_event_id: int) -> dict[str, Any]:
    resume = (b"last-event-id", str(last_event_id).encode())
    return {**scope, "headers": [*scope["headers"], resume]}


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


@pytest.mark.parametrize(
    ("opening", "accepts"),
    [
        ("snapshot", 1),  # response start taken, stuck writing the retry hint and snapshot
        ("replay", 1),  # response start taken, stuck writing the hint and the replayed page
    ],
)
async def test_a_stream_stuck_writing_holds_no_database_connection_and_is_dropped(
    rpc: Rpc, settings: Settings, monkeypatch: pytest.MonkeyPatch, opening: str, accepts: int
) -> None:
    monkeypatch.setattr(sse, "WRITE_STALL_S", 0.5)
    client = await rpc.staff("clients.create", {"name": "Gone quiet"})
    session_id = (await rpc.staff("liveShopping.createSession", {"clientId": client["id"]}))[
        "sessionId"
    ]
    for status in ("PAUSED", "ACTIVE", "PAUSED", "ACTIVE"):  # events 2 to 5
        await rpc.staff(
            "liveShopping.updateSessionStatus", {"sessionId": session_id, "status": status}
        )
    services = Services.create(settings)
    stuck = StuckClient(accepts)
    scope = staff_scope(services, rpc, session_id)
    if opening == "replay":
        scope = resuming_from(scope, 0)
    try:
        stream = asyncio.create_task(streams.fn(scope, stuck.receive, stuck.send))
        await asyncio.wait_for(stuck.stuck.wait(), 5)

        # Stuck on the client's socket, and the database pool has every connection back.
        assert services.db.engine.pool.checkedout() == 0
        # The stuck write is given up after WRITE_STALL_S: the stream ends, its listener goes.
        await asyncio.wait_for(stream, 5)
        assert services.bus.hub.listener_count == 0
        assert stuck.messages[0]["status"] == 200
    finally:
        await services.close()


async def test_streams_resuming_one_session_at_once_share_its_reads_one_query_at_a_time(
    rpc: Rpc, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await rpc.staff("clients.create", {"name": "Storm"})
    session_id = (await rpc.staff("liveShopping.createSession", {"clientId": client["id"]}))[
        "sessionId"
    ]
    for status in ("PAUSED", "ACTIVE"):  # events 2 and 3
        await rpc.staff(
            "liveShopping.updateSessionStatus", {"sessionId": session_id, "status": status}
        )
    queries: list[int] = []
    running = {"now": 0, "most": 0}
    real_events_after = replay.events_after

    async def counted_events_after(db: Any, sid: int, after: int, *, limit: int) -> Any:
        queries.append(after)
        running["now"] += 1
        running["most"] = max(running["most"], running["now"])
        try:
            await asyncio.sleep(0.05)  # a query that takes a moment, as a big page does
            return await real_events_after(db, sid, after, limit=limit)
        finally:
            running["now"] -= 1

    monkeypatch.setattr(replay, "events_after", counted_events_after)
    services = Services.create(settings)
    try:
        # A reconnect storm: thirty streams resume from 0, a few from later ids.
        resumes = [0] * 30 + [1, 2, 1]
        pages = await asyncio.gather(*(services.outbox.after(session_id, s) for s in resumes))
    finally:
        await services.close()

    assert [[e.seq for e in page] for page in pages] == [
        list(range(after + 1, 4)) for after in resumes
    ]
    assert sorted(queries) == [0, 1, 2]  # one read per distinct page, shared by its askers
    assert running["most"] == 1  # and never two queries of one session at once


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
    real_events_after = replay.events_after

    async def flaky_events_after(db: Any, sid: int, after: int, *, limit: int) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("SELECT", {}, Exception("database went away"))
        return await real_events_after(db, sid, after, limit=limit)

    monkeypatch.setattr(replay, "events_after", flaky_events_after)
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
        # Awaited: their reads give their connections back before the engine is disposed.
        await asyncio.gather(stream, watcher, return_exceptions=True)
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
        await asyncio.gather(stream, return_exceptions=True)
    finally:
        await services.close()
