"""The live streams as a browser sees them (DESIGN.md 5), on one real server over real HTTP.

A stream opens with a `retry:` hint and a SESSION_SNAPSHOT labelled with the session's latest
event id, then carries every later event in order with consecutive ids; with Last-Event-ID it
replays exactly what came after that id instead (or, when it cannot, sends a snapshot marked
`reset`: tests/test_resume_edges.py). The client stream carries only the client
projection. An idle stream sends heartbeat comments, and a stream ends once the session is
converted or cancelled, after which resuming from its last id answers 204. Opening a stream
also makes the server announce who is watching (PRESENCE) a beat later, on its own schedule:
tests about changes look past those events, never past a gap in the ids.

The server is a real `python -m app serve` process (the in-process ASGI transport buffers a
response until it ends, so it cannot show a stream); one SQLite file, the in-memory bus.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.auth import TokenService
from app.config import load_settings
from tests import live_server
from tests.conftest import Rpc, Tokens
from tests.factories import Customer, Event, Room, Shop, Stock, line_of, outbox_events
from tests.sse_client import (
    WATCHING_EVENTS,
    EventStream,
    assert_consecutive,
    changes,
    open_stream,
    staff_only_keys,
    values_in,
)

HEARTBEAT_MS = 500
READ_S = 5.0  # the longest any single expectation may wait

INTERNAL_NOTES = "Pays late; never below cost plus 5%"
# Looked for as a value, never as a substring of the frame: "41.17" is also what the clock
# writes into every timestamp taken at hh:mm:41.17xxxx.
UNIT_COGS = "41.17"


# --- one server for the module --------------------------------------------------------------


env, server, http = live_server.one_server_fixtures(
    "sse-streams", read_s=READ_S, heartbeat_ms=HEARTBEAT_MS
)


@pytest.fixture
def shop(http: httpx.AsyncClient, env: dict[str, str]) -> Shop:
    return Shop(Rpc(http, Tokens(TokenService(load_settings(env)))))


@dataclass
class Scene:
    """An ACTIVE session with internal notes, for a client, with two batches to sell."""

    shop: Shop
    database_url: str
    customer: Customer
    room: Room
    scarf: Stock
    coat: Stock

    @property
    def staff_path(self) -> str:
        return f"/api/sse/live-shopping/{self.room.id}"

    @property
    def client_path(self) -> str:
        return f"/api/sse/vip/live-shopping/{self.room.code}"

    async def outbox(self) -> list[Event]:
        return await outbox_events(self.database_url, self.room.id)

    async def latest_seq(self) -> int:
        return (await self.outbox())[-1].seq

    async def assert_only_watching_between(self, after: int, upto: int) -> None:
        """Nothing but who-is-watching events (a stream opened meanwhile) in (after, upto]."""
        between = [e.type for e in await self.outbox() if after < e.seq <= upto]
        assert set(between) <= WATCHING_EVENTS, between

    async def varied_mutations(self) -> list[str]:
        """One change of each kind the host makes; returns the event types they announce."""
        shop, room = self.shop, self.room
        call = shop.rpc.staff
        line = line_of(await shop.add(room, self.scarf, "2"), self.scarf)["id"]
        await shop.add(room, self.coat, "1")
        await call(
            "liveShopping.updateCartQuantity",
            {"sessionId": room.id, "cartItemId": line, "quantity": "3.5"},
        )
        await call(
            "liveShopping.setOverridePrice",
            {"sessionId": room.id, "productId": self.scarf.product_id, "overridePrice": "80.00"},
        )
        await call("liveShopping.highlightProduct", {"sessionId": room.id, "batchId": None})
        await call(
            "liveShopping.toggleCartItemSample",
            {"sessionId": room.id, "cartItemId": line, "isSample": True},
        )
        await shop.client_add(self.customer, room, self.coat, "1")
        return [
            "CART_UPDATED",
            "CART_UPDATED",
            "CART_UPDATED",
            "PRICE_CHANGED",
            "HIGHLIGHTED",
            "CART_UPDATED",
            "CART_UPDATED",
        ]


@pytest.fixture
async def scene(shop: Shop, env: dict[str, str]) -> Scene:
    scarf = await shop.stock(name="Silk Scarf", unit_cogs=UNIT_COGS, on_hand="50")
    coat = await shop.stock(name="Wool Coat", list_price="400.00", unit_cogs=UNIT_COGS)
    customer = await shop.customer(credit_limit="50000.00")
    room = await shop.session(customer, title="Autumn preview", internal_notes=INTERNAL_NOTES)
    await shop.rpc.staff(
        "liveShopping.highlightProduct", {"sessionId": room.id, "batchId": coat.batch_id}
    )
    return Scene(shop, env["DATABASE_URL"], customer, room, scarf, coat)


def staff_token(scene: Scene) -> str:
    return scene.shop.rpc.tokens.staff


async def opening(stream: EventStream) -> tuple[Any, Any]:
    """The retry hint and the snapshot that open a fresh stream."""
    hint = await stream.next_frame()
    snapshot = await stream.next_frame()
    return hint, snapshot


# --- opening a stream -------------------------------------------------------------------------


async def test_a_stream_answers_with_the_event_stream_headers(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    for path, token in [
        (scene.staff_path, staff_token(scene)),
        (scene.client_path, scene.customer.token),
    ]:
        async with open_stream(http, path, token=token) as stream:
            headers = stream.response.headers
            assert stream.response.status_code == 200, path
            assert headers["content-type"].startswith("text/event-stream"), path
            assert headers["cache-control"] == "no-cache", path
            assert headers["x-accel-buffering"] == "no", path


async def test_a_stream_opens_with_a_retry_hint_then_the_snapshot_at_the_latest_event_id(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    await scene.shop.add(scene.room, scene.scarf, "2")
    latest = await scene.latest_seq()

    async with open_stream(http, scene.staff_path, token=staff_token(scene)) as stream:
        hint, snapshot = await opening(stream)

    assert hint.retry is not None and hint.retry > 0
    assert hint.data is None and hint.id is None
    assert snapshot.event == "SESSION_SNAPSHOT"
    await scene.assert_only_watching_between(latest, snapshot.seq)
    assert snapshot.seq <= await scene.latest_seq()
    state = snapshot.json()
    assert state["session"]["id"] == scene.room.id
    assert state["session"]["status"] == "ACTIVE"
    assert state["session"]["highlight"]["batchId"] == scene.coat.batch_id
    assert [line["batchId"] for line in state["cart"]["items"]] == [scene.scarf.batch_id]
    assert state["cart"]["subtotal"] == "200.00"


async def test_the_client_snapshot_is_the_client_projection_of_the_same_state(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    await scene.shop.add(scene.room, scene.scarf, "2")
    async with open_stream(http, scene.staff_path, token=staff_token(scene)) as stream:
        _, staff = await opening(stream)
    async with open_stream(http, scene.client_path, token=scene.customer.token) as stream:
        _, client = await opening(stream)

    assert client.event == "SESSION_SNAPSHOT"
    await scene.assert_only_watching_between(staff.seq, client.seq)
    assert staff_only_keys(client.json()) == set()
    assert {"unitCogs", "internalNotes"} <= staff_only_keys(staff.json())
    assert client.json()["cart"]["items"][0]["subtotal"] == "200.00"
    assert client.json()["session"]["roomCode"] == scene.room.code


# --- live events --------------------------------------------------------------------------


async def test_events_arrive_in_order_with_consecutive_ids_and_the_outbox_payloads(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    async with open_stream(http, scene.staff_path, token=staff_token(scene)) as stream:
        _, snapshot = await opening(stream)
        types = await scene.varied_mutations()
        events = await stream.events_until(await scene.latest_seq(), within=READ_S)

    assert_consecutive(events, after=snapshot.seq)
    assert [e.event for e in changes(events)] == types
    outbox = {e.seq: e for e in await scene.outbox()}
    for event in events:
        assert event.json() == outbox[event.seq].payload["staff"], event.seq
        assert outbox[event.seq].type == event.event


async def test_the_client_stream_never_carries_cost_notes_or_credit_but_the_staff_stream_does(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    async with (
        open_stream(http, scene.staff_path, token=staff_token(scene)) as staff,
        open_stream(http, scene.client_path, token=scene.customer.token) as client,
    ):
        await opening(staff)
        await opening(client)
        types = await scene.varied_mutations()
        checkout = {"roomCode": scene.room.code}
        token = scene.customer.token
        await scene.shop.rpc.call("vipPortalLiveShopping.requestCheckout", checkout, token)
        await scene.shop.end(scene.room, convert=True, generateSalesSheet=True)
        client_frames = await client.rest(within=READ_S)
        staff_frames = await staff.rest(within=READ_S)

    client_events, staff_events = client.events, staff.events
    assert [e.id for e in client_events] == [e.id for e in staff_events]
    assert [e.event for e in changes(client_events)][1:] == [
        *types,
        "CHECKOUT_REQUESTED",
        "SESSION_CONVERTED",
        "SALES_SHEET_READY",
    ]
    assert client_frames and staff_frames
    outbox = {e.seq: e for e in await scene.outbox()}
    for event in client_events:
        assert staff_only_keys(event.json()) == set(), (event.seq, event.event)
        assert INTERNAL_NOTES not in (event.data or "")
        assert UNIT_COGS not in set(values_in(event.json())), (event.seq, event.event)
        if event.event != "SESSION_SNAPSHOT":
            assert event.json() == outbox[event.seq].payload["client"], event.seq
    # The staff stream of the same events does carry them, so the search above is not vacuous.
    for event in staff_events:
        assert "internalNotes" in staff_only_keys(event.json()), event.seq
        assert INTERNAL_NOTES in (event.data or ""), event.seq
    # Every change after the snapshot has a line in the cart (PRESENCE may come before any).
    assert all("unitCogs" in staff_only_keys(e.json()) for e in changes(staff_events)[1:])
    assert all(UNIT_COGS in set(values_in(e.json())) for e in changes(staff_events)[1:])


async def test_an_idle_stream_sends_heartbeat_comments(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    async with open_stream(http, scene.client_path, token=scene.customer.token) as stream:
        await opening(stream)
        started = time.monotonic()
        first = await stream.frame_where(lambda f: bool(f.comments), within=HEARTBEAT_MS / 250)
        second = await stream.frame_where(lambda f: bool(f.comments), within=HEARTBEAT_MS / 250)
        elapsed = time.monotonic() - started

    assert first.comments == second.comments == ("heartbeat",)
    assert first.data is None and first.id is None
    # Two heartbeats at the configured cadence, not one per poll or one per minute.
    assert HEARTBEAT_MS / 1000 < elapsed < 6 * HEARTBEAT_MS / 1000
    assert [f.event for f in changes(stream.frames)] == ["SESSION_SNAPSHOT"]


# --- resuming -------------------------------------------------------------------------------


async def test_last_event_id_replays_exactly_the_events_after_it_then_goes_live(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    await scene.varied_mutations()
    outbox = await scene.outbox()
    resume_from = outbox[2].seq
    missed = [e for e in outbox if e.seq > resume_from]

    async with open_stream(
        http, scene.client_path, token=scene.customer.token, last_event_id=resume_from
    ) as stream:
        hint = await stream.next_frame()
        replayed = await stream.next_events(len(missed), within=READ_S)
        await scene.shop.rpc.staff(
            "liveShopping.highlightProduct",
            {"sessionId": scene.room.id, "batchId": scene.scarf.batch_id},
        )
        [live] = await stream.next_changes(1, within=READ_S)

    assert hint.retry is not None
    assert "SESSION_SNAPSHOT" not in [e.event for e in replayed]
    assert [(e.seq, e.event) for e in replayed] == [(e.seq, e.type) for e in missed]
    assert [e.json() for e in replayed] == [e.payload["client"] for e in missed]
    assert live.event == "HIGHLIGHTED"
    assert_consecutive(stream.events, after=resume_from)


async def test_the_last_event_id_may_be_given_in_the_query_string(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    await scene.varied_mutations()
    latest = await scene.latest_seq()

    async with open_stream(
        http, scene.staff_path, token=staff_token(scene), params={"lastEventId": str(latest - 2)}
    ) as stream:
        replayed = await stream.next_events(2, within=READ_S)

    assert [e.seq for e in replayed] == [latest - 1, latest]


async def test_resuming_from_the_latest_id_sends_nothing_until_the_next_change(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    latest = await scene.latest_seq()
    async with open_stream(
        http, scene.staff_path, token=staff_token(scene), last_event_id=latest
    ) as stream:
        await stream.frame_where(lambda f: bool(f.comments), within=HEARTBEAT_MS / 250)
        await scene.shop.add(scene.room, scene.scarf, "1")
        await stream.next_changes(1, within=READ_S)

    assert [f.event for f in changes(stream.frames)] == ["CART_UPDATED"]
    assert_consecutive(stream.events, after=latest)


async def test_an_id_from_the_future_gets_a_reset_snapshot(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    latest = await scene.latest_seq()
    async with open_stream(
        http, scene.staff_path, token=staff_token(scene), last_event_id=latest + 100
    ) as stream:
        _, snapshot = await opening(stream)
    assert snapshot.event == "SESSION_SNAPSHOT"
    assert snapshot.json()["reset"] is True
    await scene.assert_only_watching_between(latest, snapshot.seq)


# Malformed ids, other sessions' ids and id 0: tests/test_resume_edges.py.


# --- the end of the story -------------------------------------------------------------------


async def test_the_stream_ends_after_conversion_and_resuming_from_its_last_id_answers_204(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    await scene.shop.add(scene.room, scene.scarf, "1")
    async with open_stream(http, scene.client_path, token=scene.customer.token) as stream:
        await opening(stream)
        ended = await scene.shop.end(scene.room, convert=True, generateSalesSheet=True)
        tail = changes(await stream.rest(within=READ_S))

    assert [f.event for f in tail] == ["SESSION_CONVERTED", "SALES_SHEET_READY"]
    converted, sheet = tail
    assert converted.json()["orderId"] == ended["orderId"]
    assert converted.json()["session"]["status"] == "CONVERTED"
    assert sheet.json()["shareUrl"]
    assert sheet.seq == converted.seq + 1 == await scene.latest_seq()

    async with open_stream(
        http, scene.client_path, token=scene.customer.token, last_event_id=sheet.seq
    ) as again:
        assert again.response.status_code == 204
        assert await again.response.aread() == b""


async def test_resuming_before_the_end_replays_the_rest_and_ends(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    await scene.shop.add(scene.room, scene.scarf, "1")
    before_end = await scene.latest_seq()
    await scene.shop.end(scene.room, convert=True, generateSalesSheet=True)

    async with open_stream(
        http, scene.staff_path, token=staff_token(scene), last_event_id=before_end
    ) as stream:
        rest = await stream.rest(within=READ_S)

    assert [f.event for f in changes(rest)] == ["SESSION_CONVERTED", "SALES_SHEET_READY"]
    assert rest[0].retry is not None


async def test_the_stream_ends_after_cancellation(http: httpx.AsyncClient, scene: Scene) -> None:
    async with open_stream(http, scene.staff_path, token=staff_token(scene)) as stream:
        await opening(stream)
        await scene.shop.set_status(scene.room, "CANCELLED")
        tail = await stream.rest(within=READ_S)

    [cancelled] = changes(tail)
    assert cancelled.event == "SESSION_STATUS"
    assert cancelled.json()["session"]["status"] == "CANCELLED"

    async with open_stream(
        http, scene.staff_path, token=staff_token(scene), last_event_id=cancelled.seq
    ) as again:
        assert again.response.status_code == 204


async def test_a_fresh_stream_on_a_finished_session_sends_the_snapshot_and_ends(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    await scene.shop.set_status(scene.room, "CANCELLED")
    async with open_stream(http, scene.client_path, token=scene.customer.token) as stream:
        frames = await stream.rest(within=READ_S)

    [snapshot] = [f for f in frames if f.is_event]
    assert snapshot.event == "SESSION_SNAPSHOT"
    assert snapshot.json()["session"]["status"] == "CANCELLED"
    assert snapshot.seq == await scene.latest_seq()
