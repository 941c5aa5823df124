"""Opening a stream reads the session once (issue 15): its access, its newest event and its
snapshot or resume point come from one read transaction, in either framing. (A room's stream
then also reads the outbox once, shared per session, for what was committed before it listened.)

Counted on the engine: transactions begun and `live_sessions` rows selected while one stream
opens, in-process (the ASGI handlers called directly, as tests/test_graceful_shutdown.py does).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event

from app.config import Settings
from app.domain.actors import Role
from app.events import sse
from app.events.sse import streams
from app.events.subscriptions import SubscriptionRequest, serve_subscription
from app.rpc.registry import REGISTRY
from app.runtime import Services
from tests.conftest import Rpc

READ_S = 5.0
# A statement that reads live_shopping_sessions rows (its FROM, not a join of another read).
SESSION_ROW = re.compile(r"^\s*SELECT .*\sFROM live_shopping_sessions(\s|$)", re.DOTALL)


class Client:
    """An ASGI client that keeps what it is sent and never hangs up."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.body = asyncio.Event()

    async def send(self, message: Any) -> None:
        self.messages.append(message)
        if message["type"] == "http.response.body" and b"SESSION_SNAPSHOT" in message["body"]:
            self.body.set()

    async def receive(self) -> Any:
        await asyncio.Event().wait()


@dataclass
class Reads:
    transactions: int = 0
    session_selects: int = 0
    statements: list[str] = field(default_factory=list)


@dataclass
class World:
    services: Services
    session_id: int
    room_code: str
    staff_token: str
    client_token: str
    reads: Reads


@pytest.fixture
async def world(
    rpc: Rpc, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    monkeypatch.setattr(sse, "OPEN_STREAMS", sse.OpenStreams())
    monkeypatch.setattr(sse, "ROOM_SESSIONS", sse.RoomSessions())
    client = await rpc.staff("clients.create", {"name": "Reads once"})
    session = await rpc.staff("liveShopping.createSession", {"clientId": client["id"]})
    services = Services.create(settings)
    reads = Reads()
    engine = services.db.engine.sync_engine

    def on_begin(conn: Any) -> None:
        reads.transactions += 1

    def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        reads.statements.append(statement)
        if SESSION_ROW.search(statement):
            reads.session_selects += 1

    event.listen(engine, "begin", on_begin)
    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        yield World(
            services,
            session["sessionId"],
            session["roomCode"],
            rpc.tokens.staff,
            rpc.tokens.client(client["id"]),
            reads,
        )
    finally:
        await services.close()


Serve = Callable[[Client], Awaitable[None]]


async def opened_once(serve: Serve, reads: Reads, *, transactions: int | None = 1) -> None:
    client = Client()
    task = asyncio.create_task(serve(client))
    try:
        await asyncio.wait_for(client.body.wait(), READ_S)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert client.messages[0]["status"] == 200
    if transactions is not None:
        assert reads.transactions == transactions, reads.statements
    assert reads.session_selects == 1, reads.statements


async def test_an_sse_stream_opens_on_one_read_of_its_session(world: World) -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "path": f"/live-shopping/{world.session_id}",
        "headers": [(b"authorization", f"Bearer {world.staff_token}".encode())],
        "query_string": b"",
        "app": SimpleNamespace(state=SimpleNamespace(services=world.services)),
    }
    await opened_once(lambda c: streams.fn(scope, c.receive, c.send), world.reads)


def subscribing(world: World, name: str, input_: dict[str, Any], token: str) -> Serve:
    procedure = REGISTRY.get(name)
    assert procedure is not None
    request = SubscriptionRequest(
        raw_input=json.dumps(input_).encode(), authorization=f"Bearer {token}"
    )
    return lambda c: serve_subscription(world.services, procedure, request, c.receive, c.send)


async def test_a_trpc_subscription_opens_on_one_read_of_its_session(world: World) -> None:
    serve = subscribing(
        world, "liveShopping.onSessionEvent", {"sessionId": world.session_id}, world.staff_token
    )
    await opened_once(serve, world.reads)


async def test_a_room_subscription_reads_its_session_once(world: World) -> None:
    serve = subscribing(
        world,
        "vipPortalLiveShopping.onRoomEvent",
        {"roomCode": world.room_code},
        world.client_token,
    )
    # Not one transaction: it also reads the outbox after its listening began, while it settles.
    await opened_once(serve, world.reads, transactions=None)


async def test_a_room_stream_whose_session_this_worker_knows_listens_first_and_reads_once(
    world: World,
) -> None:
    serve = subscribing(
        world,
        "vipPortalLiveShopping.onRoomEvent",
        {"roomCode": world.room_code},
        world.client_token,
    )
    await opened_once(serve, world.reads, transactions=None)  # learns the room's session
    # Its catch-up read (shared, so it outlives the stream) finishes before counting starts.
    for _ in range(100):
        if world.reads.statements[-1:] and "session_events" in world.reads.statements[-1]:
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail(f"the first room stream made no catch-up read: {world.reads.statements}")
    await asyncio.sleep(0.05)
    world.reads.transactions, world.reads.session_selects = 0, 0
    world.reads.statements.clear()

    await opened_once(serve, world.reads, transactions=None)
    await asyncio.sleep(0.2)  # time for a catch-up read, were there one
    assert world.reads.transactions == 1, world.reads.statements  # no outbox read to settle
    assert not [s for s in world.reads.statements if "session_events" in s], world.reads.statements


async def test_streams_of_one_session_opening_at_once_share_their_read(world: World) -> None:
    """A storm of opens (fresh and resuming) is a read or two of the session, not one each;
    each stream still gets its whole, correct opening, and each is still checked on its own
    (a client who is not the room's gets NOT_FOUND from the same shared read)."""

    def scope(token: str, *, last_event_id: int | None = None, room: bool = False) -> Any:
        path = (
            f"/vip/live-shopping/{world.room_code}"
            if room
            else f"/live-shopping/{world.session_id}"
        )
        headers = [(b"authorization", f"Bearer {token}".encode())]
        if last_event_id is not None:
            headers.append((b"last-event-id", str(last_event_id).encode()))
        return {
            "type": "http",
            "method": "GET",
            "path": path,
            "headers": headers,
            "query_string": b"",
            "app": SimpleNamespace(state=SimpleNamespace(services=world.services)),
        }

    fresh = [Client() for _ in range(20)]
    resuming = [Client() for _ in range(20)]
    stranger = Client()
    other_client = world.services.tokens.issue(sub=999, role=Role.CLIENT, client_id=424242)
    tasks = [
        *(
            asyncio.create_task(streams.fn(scope(world.staff_token), c.receive, c.send))
            for c in fresh
        ),
        *(
            asyncio.create_task(
                streams.fn(scope(world.staff_token, last_event_id=0), c.receive, c.send)
            )
            for c in resuming
        ),
        asyncio.create_task(
            streams.fn(scope(other_client, room=True), stranger.receive, stranger.send)
        ),
    ]
    try:
        async with asyncio.timeout(READ_S):
            for client in fresh:
                await client.body.wait()
            while not all(len(c.messages) >= 2 for c in resuming) or not stranger.messages:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # One read for the fresh staff streams, one for the resuming ones, one for the room.
    assert world.reads.session_selects <= 3, world.reads.statements
    for client in fresh:
        assert b"event: SESSION_SNAPSHOT" in client.messages[1]["body"]
    for client in resuming:
        assert b"id: 1\nevent: " in client.messages[1]["body"]  # replayed from event 1
    assert stranger.messages[0]["status"] == 404
