"""The generated client follows live sessions (DESIGN.md 5): `subscribe_session` and
`subscribe_room` yield typed Events in order, each once, across dropped connections, and stop
by themselves when the session is over.

The server is a real `python -m app serve` process on one SQLite file with the in-memory bus
(the in-process ASGI transport buffers a response until it ends, so it cannot show a stream).
Every mutation goes through the generated client too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import httpx
import httpx_sse
import msgspec
import pytest

from app.auth import TokenService
from app.config import load_settings
from tests import live_server
from tests.conftest import Tokens
from tests.live_server import Server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients" / "python"))

from live_shopping_client import (
    AsyncLiveShoppingClient,
    AsyncSubscription,
    Event,
    Forbidden,
    LiveShoppingClient,
    NotFound,
    RpcError,
    Subscription,
    TransportError,
    Unauthorized,
)
from live_shopping_client import client as generated
from live_shopping_client.models import (
    CartUpdatedEvent,
    ClientCartUpdatedEvent,
    HighlightedEvent,
    SessionConvertedEvent,
    SessionSnapshotEvent,
)

E = TypeVar("E")
HEARTBEAT_MS = 500
READ_S = 5.0  # the longest any single expectation may wait (a reconnect waits `retry:` 2 s)
SECRET_NOTES = "Pays late; never below cost"
_skus = itertools.count(1)
# Cost, internal notes and credit: what the client projection leaves out.
STAFF_ONLY_KEY = re.compile(r"cost|cogs|internal|notes|credit|exposure|margin", re.IGNORECASE)


# --- one server for the module --------------------------------------------------------------


@pytest.fixture(scope="module")
def env(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A copy of the run's migrated SQLite file (app.db.migrate.upgrade), short heartbeats."""
    return live_server.sqlite_env(
        sqlite_template,
        tmp_path_factory.mktemp("client-subscribe"),
        LIVE_SHOPPING_HEARTBEAT_MS=str(HEARTBEAT_MS),
    )


@pytest.fixture(scope="module")
def server(env: dict[str, str]) -> Iterator[Server]:
    with live_server.running_servers(env, 1) as [running]:
        yield running


@pytest.fixture(scope="module")
def tokens(env: dict[str, str]) -> Tokens:
    return Tokens(TokenService(load_settings(env)))


@dataclass(frozen=True)
class Room:
    """An ACTIVE session with internal notes, for its own client, and two batches to sell."""

    base_url: str
    tokens: Tokens
    session_id: int
    room_code: str
    client_id: int
    scarf: int
    coat: int

    def staff(self) -> LiveShoppingClient:
        return LiveShoppingClient(self.base_url, token=self.tokens.staff)

    def async_staff(self) -> AsyncLiveShoppingClient:
        return AsyncLiveShoppingClient(self.base_url, token=self.tokens.staff)

    def async_vip(self) -> AsyncLiveShoppingClient:
        return AsyncLiveShoppingClient(self.base_url, token=self.tokens.client(self.client_id))


@pytest.fixture
def room(server: Server, tokens: Tokens) -> Room:
    with LiveShoppingClient(server.base_url, token=tokens.admin) as admin:
        batches = []
        for name in ("Scarf", "Coat"):
            sku = f"SUB-{next(_skus)}"
            product = admin.catalog.create_product(name=name, sku=sku, list_price=Decimal(100))
            batch = admin.catalog.create_batch(
                product_id=product.id,
                code=f"{sku}-A",
                on_hand_qty=Decimal(20),
                unit_cogs=Decimal(41),
            )
            batches.append(batch.id)
        client = admin.clients.create(name="Ada")
    with LiveShoppingClient(server.base_url, token=tokens.staff) as staff:
        session = staff.live_shopping.create_session(
            client_id=client.id, title="Autumn", internal_notes=SECRET_NOTES
        )
    return Room(server.base_url, tokens, session.session_id, session.room_code, client.id, *batches)


# --- reading with a deadline ------------------------------------------------------------------


class Overdue(AssertionError):
    """Not an OSError: it must not pass for a dropped connection inside the client."""


@contextlib.contextmanager
def deadline(seconds: float = READ_S) -> Iterator[None]:
    """Fail, rather than hang, when a blocking read takes longer than `seconds`."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise Overdue(f"no event within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# A stream opening or closing is announced (PRESENCE) a beat later, on the server's own
# schedule; tests about changes pass over those events and check ids for order, not adjacency.
WATCHING = frozenset({"PRESENCE"})


def take(events: Subscription[E], count: int) -> list[Event[E]]:
    """The next `count` events that are not PRESENCE."""
    taken: list[Event[E]] = []
    with deadline():
        while len(taken) < count:
            event = next(events)
            if event.type not in WATCHING:
                taken.append(event)
    return taken


async def atake(events: AsyncSubscription[E], count: int) -> list[Event[E]]:
    """The next `count` events that are not PRESENCE."""
    taken: list[Event[E]] = []
    async with asyncio.timeout(READ_S):
        while len(taken) < count:
            event = await anext(events)
            if event.type not in WATCHING:
                taken.append(event)
    return taken


async def adrain(events: AsyncSubscription[E]) -> list[Event[E]]:
    """Every event but PRESENCE until the subscription ends by itself."""
    async with asyncio.timeout(READ_S):
        return [event async for event in events if event.type not in WATCHING]


def increasing(ids: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(ids))


def staff_only_keys(value: Any) -> set[str]:
    """Keys anywhere in a JSON value that name what only staff may see (DESIGN.md 5)."""
    found: set[str] = set()
    if isinstance(value, dict):
        found |= {key for key in value if STAFF_ONLY_KEY.search(key)}
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            found |= staff_only_keys(item)
    return found


# --- a network that can fail --------------------------------------------------------------------


class Relay:
    """A TCP relay in front of the server whose open connections the test can cut, as a
    failing network would."""

    def __init__(self, target: str) -> None:
        self._host, port = target.removeprefix("http://").rsplit(":", 1)
        self._port = int(port)
        self._writers: list[asyncio.StreamWriter] = []
        self.connections = 0

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._relay, self._host, 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        self.cut()
        await self._server.wait_closed()

    @property
    def base_url(self) -> str:
        port = self._server.sockets[0].getsockname()[1]
        return f"http://{self._host}:{port}"

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        upstream_reader, upstream_writer = await asyncio.open_connection(self._host, self._port)
        self._writers += [writer, upstream_writer]
        await asyncio.gather(
            _pump(reader, upstream_writer), _pump(upstream_reader, writer), return_exceptions=True
        )
        for end in (writer, upstream_writer):
            end.transport.abort()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.transport.abort()


# --- following a session --------------------------------------------------------------------


def test_staff_see_every_change_as_a_typed_event_in_order(room: Room) -> None:
    with room.staff() as staff, staff.subscribe_session(room.session_id) as events:
        [snapshot] = take(events, 1)
        line = staff.live_shopping.add_to_cart(
            session_id=room.session_id, batch_id=room.scarf, quantity=Decimal(2)
        ).items[0]
        staff.live_shopping.highlight_product(session_id=room.session_id, batch_id=room.coat)
        staff.live_shopping.update_cart_quantity(
            session_id=room.session_id, cart_item_id=line.id, quantity=Decimal("3.5")
        )
        changes = take(events, 3)

    assert isinstance(snapshot, Event)
    assert snapshot.type == "SESSION_SNAPSHOT"
    assert isinstance(snapshot.data, SessionSnapshotEvent)
    assert snapshot.data.session.id == room.session_id
    assert snapshot.data.session.internal_notes == SECRET_NOTES
    assert [e.type for e in changes] == ["CART_UPDATED", "HIGHLIGHTED", "CART_UPDATED"]
    assert [type(e.data) for e in changes] == [CartUpdatedEvent, HighlightedEvent, CartUpdatedEvent]
    assert increasing([snapshot.id, *[e.id for e in changes]])
    highlighted = changes[1].data
    assert isinstance(highlighted, HighlightedEvent)
    assert highlighted.session.highlight is not None
    assert highlighted.session.highlight.batch_id == room.coat
    assert highlighted.change.after.batch_id == room.coat
    recounted = changes[2].data
    assert isinstance(recounted, CartUpdatedEvent)
    [item] = recounted.cart.items
    assert (item.quantity, item.unit_cogs) == (Decimal("3.5000"), Decimal("41.00"))
    assert recounted.change.before is not None and recounted.change.after is not None
    assert (recounted.change.before.quantity, recounted.change.after.quantity) == (
        Decimal(2),
        Decimal("3.5"),
    )
    assert events.last_event_id == changes[-1].id


async def test_a_client_follows_its_room_in_the_client_projection(room: Room) -> None:
    async with (
        room.async_staff() as staff,
        room.async_vip() as vip,
        staff.subscribe_session(room.session_id) as staff_events,
        vip.subscribe_room(room.room_code) as client_events,
    ):
        await atake(staff_events, 1)
        await atake(client_events, 1)
        await staff.live_shopping.add_to_cart(
            session_id=room.session_id, batch_id=room.scarf, quantity=Decimal(1)
        )
        await vip.vip_portal_live_shopping.add_to_cart(
            room_code=room.room_code, batch_id=room.coat, quantity=Decimal(1)
        )
        seen_by_staff = await atake(staff_events, 2)
        seen_by_client = await atake(client_events, 2)

    assert [(e.id, e.type) for e in seen_by_client] == [(e.id, e.type) for e in seen_by_staff]
    assert {"internalNotes", "unitCogs"} <= staff_only_keys(
        msgspec.to_builtins(seen_by_staff[-1].data)
    )
    # The client's events are the client's own Structs, which have no cost or notes to carry.
    assert {type(e.data) for e in seen_by_client} == {ClientCartUpdatedEvent}
    for event in seen_by_client:
        assert not staff_only_keys(msgspec.to_builtins(event.data)), event
    last = seen_by_client[-1].data
    assert isinstance(last, ClientCartUpdatedEvent)
    assert [i.batch_id for i in last.cart.items] == [room.scarf, room.coat]
    assert last.change.subject.added_by_role == "CLIENT"


async def test_resuming_from_an_event_id_replays_exactly_the_missed_events(room: Room) -> None:
    async with room.async_staff() as staff:
        async with staff.subscribe_session(room.session_id) as events:
            [snapshot] = await atake(events, 1)
        for batch in (room.scarf, room.coat):
            await staff.live_shopping.add_to_cart(
                session_id=room.session_id, batch_id=batch, quantity=Decimal(1)
            )
        await staff.live_shopping.highlight_product(session_id=room.session_id, batch_id=None)

        resumed = staff.subscribe_session(room.session_id, last_event_id=snapshot.id)
        async with resumed:
            missed = await atake(resumed, 3)
            await staff.live_shopping.highlight_product(
                session_id=room.session_id, batch_id=room.scarf
            )
            [live] = await atake(resumed, 1)

    assert [e.type for e in missed] == ["CART_UPDATED", "CART_UPDATED", "HIGHLIGHTED"]
    assert live.type == "HIGHLIGHTED"
    assert increasing([snapshot.id, *[e.id for e in missed], live.id])


async def test_a_dropped_connection_resumes_without_losing_or_repeating_events(
    room: Room,
) -> None:
    async with (
        Relay(room.base_url) as relay,
        room.async_staff() as staff,
        AsyncLiveShoppingClient(relay.base_url, token=room.tokens.staff) as through_relay,
    ):
        events = through_relay.subscribe_session(room.session_id)
        async with events:
            [snapshot] = await atake(events, 1)
            await staff.live_shopping.add_to_cart(
                session_id=room.session_id, batch_id=room.scarf, quantity=Decimal(1)
            )
            [before] = await atake(events, 1)
            relay.cut()
            await staff.live_shopping.add_to_cart(
                session_id=room.session_id, batch_id=room.coat, quantity=Decimal(1)
            )
            await staff.live_shopping.highlight_product(
                session_id=room.session_id, batch_id=room.coat
            )
            after = await atake(events, 2)

    # Resumed after `before` with Last-Event-ID: no second snapshot, nothing twice, no gap.
    seen = [snapshot, before, *after]
    assert [e.type for e in seen] == [
        "SESSION_SNAPSHOT",
        "CART_UPDATED",
        "CART_UPDATED",
        "HIGHLIGHTED",
    ]
    assert increasing([e.id for e in seen])
    assert relay.connections >= 2


async def test_the_subscription_ends_by_itself_once_the_session_is_converted(
    room: Room,
) -> None:
    async with (
        room.async_staff() as staff,
        room.async_vip() as vip,
        staff.subscribe_session(room.session_id) as staff_events,
        vip.subscribe_room(room.room_code) as client_events,
    ):
        [snapshot] = await atake(staff_events, 1)
        await atake(client_events, 1)
        await staff.live_shopping.add_to_cart(
            session_id=room.session_id, batch_id=room.scarf, quantity=Decimal(1)
        )
        ended = await staff.live_shopping.end_session(
            session_id=room.session_id, convert_to_order=True
        )
        to_staff = await adrain(staff_events)
        to_client = await adrain(client_events)

    assert increasing([snapshot.id, *[e.id for e in to_staff]])
    assert to_staff[0].type == "CART_UPDATED"
    assert to_staff[-1].ends_session
    assert "SESSION_CONVERTED" in [e.type for e in to_staff]
    final = to_staff[-1].data
    assert final.session.status == "CONVERTED"
    assert final.order_id == ended.order_id
    [converted] = [e.data for e in to_staff if isinstance(e.data, SessionConvertedEvent)]
    assert converted.change.subject.order_id == ended.order_id
    assert [(e.id, e.type) for e in to_client] == [(e.id, e.type) for e in to_staff]


def test_an_event_is_the_same_typed_object_from_sse_framing_and_from_trpc_framing(
    room: Room,
) -> None:
    # On /api/sse the type is the `event:` field; on the tRPC wire it is `type` in the data.
    with room.staff() as staff, staff.subscribe_session(room.session_id) as events:
        [snapshot] = take(events, 1)
        staff.live_shopping.add_to_cart(
            session_id=room.session_id, batch_id=room.scarf, quantity=Decimal(2)
        )
        [added] = take(events, 1)
    headers = {"authorization": f"Bearer {room.tokens.staff}", "last-event-id": str(snapshot.id)}
    url = f"{room.base_url}/api/sse/live-shopping/{room.session_id}"
    with (
        httpx.Client(timeout=READ_S) as http,
        httpx_sse.connect_sse(http, "GET", url, headers=headers) as sse,
    ):
        raw = next(e for e in sse.iter_sse() if e.id == str(added.id))
    assert raw.event == "CART_UPDATED" and '"type"' not in raw.data[:10]
    as_sse = generated._SESSION_EVENTS.decode(raw.event, raw.data)
    as_trpc = generated._SESSION_EVENTS.decode(raw.event, '{"type":"CART_UPDATED",' + raw.data[1:])
    assert as_sse == as_trpc == added.data
    assert isinstance(as_trpc, CartUpdatedEvent)
    mislabelled = '{"type":"PRICE_CHANGED",' + raw.data[1:]
    with pytest.raises(msgspec.ValidationError):
        generated._SESSION_EVENTS.decode(raw.event, mislabelled)


def test_a_converted_session_yields_its_snapshot_and_ends(room: Room) -> None:
    with room.staff() as staff:
        staff.live_shopping.add_to_cart(
            session_id=room.session_id, batch_id=room.coat, quantity=Decimal(1)
        )
        staff.live_shopping.end_session(session_id=room.session_id, convert_to_order=True)
        with deadline():
            events = list(staff.subscribe_session(room.session_id))
            resumed = list(staff.subscribe_session(room.session_id, last_event_id=events[-1].id))
    assert [e.type for e in events] == ["SESSION_SNAPSHOT"]
    assert events[0].data.session.status == "CONVERTED"
    assert resumed == []  # the server answers 204: everything was delivered


# --- refusals -----------------------------------------------------------------------------------


def test_a_client_cannot_follow_another_clients_room(room: Room, tokens: Tokens) -> None:
    with LiveShoppingClient(room.base_url, token=tokens.admin) as admin:
        stranger = admin.clients.create(name="Mallory")
    with LiveShoppingClient(room.base_url, token=tokens.client(stranger.id)) as mallory:
        events = mallory.subscribe_room(room.room_code)
        with deadline(), pytest.raises(NotFound) as refused:
            next(events)
        with pytest.raises(StopIteration):
            next(events)  # refused once and for all, not retried
    assert (refused.value.code, refused.value.http_status) == ("NOT_FOUND", 404)
    assert isinstance(refused.value, RpcError)


async def test_refusals_raise_rpc_errors_on_the_async_client_too(room: Room) -> None:
    async with room.async_vip() as vip, AsyncLiveShoppingClient(room.base_url) as anonymous:
        async with asyncio.timeout(READ_S):
            with pytest.raises(Forbidden) as wrong_stream:
                await anext(vip.subscribe_session(room.session_id))
            with pytest.raises(Unauthorized) as no_token:
                await anext(anonymous.subscribe_room(room.room_code))
    assert (wrong_stream.value.code, wrong_stream.value.http_status) == ("FORBIDDEN", 403)
    assert (no_token.value.code, no_token.value.http_status) == ("UNAUTHORIZED", 401)


def test_a_stream_that_never_opens_raises_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once the probe is closed
    with LiveShoppingClient(f"http://127.0.0.1:{port}") as client:
        events = client.subscribe_session(1)
        with deadline(), pytest.raises(TransportError) as unreachable:
            next(events)
    assert not unreachable.value.timed_out
    assert "/api/sse/live-shopping/1" in str(unreachable.value)
