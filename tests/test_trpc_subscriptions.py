"""tRPC subscriptions over real HTTP (DESIGN.md 2.2): `GET /trpc/liveShopping.onSessionEvent`
and `GET /trpc/vipPortalLiveShopping.onRoomEvent` carry the SSE routes' events in tRPC's framing.

A subscription opens with `event: connected`, then the snapshot (or the replay after
`lastEventId`) and every later event as unnamed messages `id: <seq>` / `data: {"type", ...}`,
pings while idle, and `event: return` after the session's final event. Its errors are tRPC's:
a `serialized-error` inside the stream for what the call finds wrong (credentials, access,
input), an HTTP error for what the request does (unknown path, batch, POST, unreadable
connectionParams). The official client's view of the same is tests/test_trpc_client_official.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.auth import TokenService
from app.config import load_settings
from tests import live_server
from tests.conftest import Rpc, Tokens
from tests.factories import Customer, Event, Room, Shop, Stock, outbox_events
from tests.sse_client import (
    WATCHING_EVENTS,
    EventStream,
    Frame,
    assert_consecutive,
    open_stream,
    staff_only_keys,
)

HEARTBEAT_MS = 500
READ_S = 5.0

STAFF = "liveShopping.onSessionEvent"
CLIENT = "vipPortalLiveShopping.onRoomEvent"


env, server, http = live_server.one_server_fixtures(
    "trpc-subscriptions", read_s=READ_S, heartbeat_ms=HEARTBEAT_MS
)


@dataclass
class Scene:
    shop: Shop
    database_url: str
    customer: Customer
    room: Room
    scarf: Stock

    @property
    def staff_token(self) -> str:
        return self.shop.rpc.tokens.staff

    def staff_input(self, **more: Any) -> dict[str, Any]:
        return {"sessionId": self.room.id, **more}

    def client_input(self, **more: Any) -> dict[str, Any]:
        return {"roomCode": self.room.code, **more}

    async def outbox(self) -> list[Event]:
        return await outbox_events(self.database_url, self.room.id)

    async def latest_seq(self) -> int:
        return (await self.outbox())[-1].seq


@pytest.fixture
async def scene(http: httpx.AsyncClient, env: dict[str, str]) -> Scene:
    shop = Shop(Rpc(http, Tokens(TokenService(load_settings(env)))))
    scarf = await shop.stock(name="Silk Scarf", unit_cogs="41.17", on_hand="50")
    customer = await shop.customer(credit_limit="50000.00")
    room = await shop.session(customer, title="Spring", internal_notes="Pays late")
    await shop.add(room, scarf, "1")
    return Scene(shop, env["DATABASE_URL"], customer, room, scarf)


def subscription(
    http: httpx.AsyncClient,
    path: str,
    input_: dict[str, Any] | None,
    *,
    token: str | None = None,
    last_event_id: int | str | None = None,
    query: dict[str, str] | None = None,
) -> Any:
    params = dict(query or {})
    if input_ is not None:
        params["input"] = json.dumps(input_)
    return open_stream(
        http, f"/trpc/{path}", token=token, last_event_id=last_event_id, params=params
    )


def tracked(frames: list[Frame]) -> list[Frame]:
    """The events among frames: unnamed messages (tRPC's tracked values)."""
    return [f for f in frames if f.event is None and f.data is not None]


async def next_tracked(stream: EventStream, count: int) -> list[Frame]:
    taken: list[Frame] = []
    while len(taken) < count:
        frame = await stream.frame_where(lambda f: f.data is not None, within=READ_S)
        assert frame.event in {None, "ping"}, frame
        if frame.event is None:
            taken.append(frame)
    return taken


async def next_changes(stream: EventStream, count: int) -> list[Frame]:
    """The next `count` events that are not who-is-watching announcements."""
    taken: list[Frame] = []
    while len(taken) < count:
        (frame,) = await next_tracked(stream, 1)
        if frame.json()["type"] not in WATCHING_EVENTS:
            taken.append(frame)
    return taken


async def opened(stream: EventStream) -> Frame:
    """The stream's `connected` event, after its retry hint; fails on anything else."""
    assert stream.response.status_code == 200
    assert stream.response.headers["content-type"].startswith("text/event-stream")
    first = await stream.next_frame()
    if first.retry is not None:
        first = await stream.next_frame()
    assert first.event == "connected", first
    return first


async def refusal(stream: EventStream) -> dict[str, Any]:
    """The serialized error a refused subscription sends after `connected`, then ends."""
    await opened(stream)
    rest = await stream.rest(within=READ_S)
    assert [f.event for f in rest] == ["serialized-error"], rest
    shape: dict[str, Any] = rest[0].json()
    return shape


# --- opening ----------------------------------------------------------------------------------


async def test_a_subscription_opens_with_connected_then_the_snapshot_as_a_tracked_value(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    latest = await scene.latest_seq()
    async with subscription(http, STAFF, scene.staff_input(), token=scene.staff_token) as stream:
        connected = await opened(stream)
        (snapshot,) = await next_tracked(stream, 1)

    assert stream.response.headers["cache-control"] == "no-cache"
    # @trpc/server's client options: how long the client waits in silence before reconnecting.
    assert connected.json() == {"reconnectAfterInactivityMs": 3 * HEARTBEAT_MS}
    state = snapshot.json()
    assert state["type"] == "SESSION_SNAPSHOT"
    assert "reset" not in state
    assert snapshot.seq >= latest
    assert state["session"]["id"] == scene.room.id
    assert state["session"]["internalNotes"] == "Pays late"  # staff see everything


async def test_events_follow_as_unnamed_messages_with_consecutive_ids_and_their_type(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    async with subscription(http, STAFF, scene.staff_input(), token=scene.staff_token) as stream:
        await opened(stream)
        (snapshot,) = await next_tracked(stream, 1)
        await scene.shop.add(scene.room, scene.scarf, "2")
        await scene.shop.rpc.staff(
            "liveShopping.highlightProduct",
            {"sessionId": scene.room.id, "batchId": scene.scarf.batch_id},
        )
        changes = await next_changes(stream, 2)
        everything = tracked(stream.frames)

    assert [f.json()["type"] for f in changes] == ["CART_UPDATED", "HIGHLIGHTED"]
    assert_consecutive(everything[1:], after=snapshot.seq)
    cart = changes[0].json()["cart"]
    assert Decimal(cart["items"][0]["quantity"]) == 3  # the state after it, as on /api/sse


async def test_an_idle_subscription_pings(http: httpx.AsyncClient, scene: Scene) -> None:
    async with subscription(http, STAFF, scene.staff_input(), token=scene.staff_token) as stream:
        await opened(stream)
        ping = await stream.frame_where(lambda f: f.event == "ping", within=HEARTBEAT_MS / 100)
    assert ping.id is None and ping.data == ""


async def test_the_client_subscription_carries_only_the_client_projection(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    client_input = scene.client_input()
    async with subscription(http, CLIENT, client_input, token=scene.customer.token) as stream:
        await opened(stream)
        (snapshot,) = await next_tracked(stream, 1)
        await scene.shop.add(scene.room, scene.scarf, "2")
        (change,) = await next_changes(stream, 1)

    for frame in (snapshot, change):
        assert staff_only_keys(frame.json()) == set(), frame
        assert "41.17" not in (frame.data or "")
    assert change.json()["type"] == "CART_UPDATED"


# --- credentials ------------------------------------------------------------------------------


async def ticket_for(scene: Scene, staff: bool) -> str:
    if staff:
        answer = await scene.shop.rpc.staff(
            "liveShopping.createStreamTicket", {"sessionId": scene.room.id}
        )
    else:
        answer = await scene.shop.rpc.call(
            "vipPortalLiveShopping.createStreamTicket",
            {"roomCode": scene.room.code},
            scene.customer.token,
        )
    ticket: str = answer["ticket"]
    return ticket


@pytest.mark.parametrize("staff", [True, False], ids=["onSessionEvent", "onRoomEvent"])
@pytest.mark.parametrize(
    "means", ["authorization header", "ticket", "connectionParams token", "connectionParams ticket"]
)
async def test_each_means_of_authentication_opens_either_subscription(
    http: httpx.AsyncClient, scene: Scene, staff: bool, means: str
) -> None:
    path, input_ = (STAFF, scene.staff_input()) if staff else (CLIENT, scene.client_input())
    token = scene.staff_token if staff else scene.customer.token
    header: str | None = None
    query: dict[str, str] = {}
    match means:
        case "authorization header":
            header = token
        case "ticket":
            query["ticket"] = await ticket_for(scene, staff)
        case "connectionParams token":
            query["connectionParams"] = json.dumps({"token": token})
        case "connectionParams ticket":
            query["connectionParams"] = json.dumps({"ticket": await ticket_for(scene, staff)})
    async with subscription(http, path, input_, token=header, query=query) as stream:
        await opened(stream)
        (snapshot,) = await next_tracked(stream, 1)
    assert snapshot.json()["type"] == "SESSION_SNAPSHOT"


async def test_a_subscription_without_credentials_is_an_unauthorized_serialized_error(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    async with subscription(http, STAFF, scene.staff_input()) as stream:
        shape = await refusal(stream)
    assert shape["code"] == -32001
    assert shape["data"]["code"] == "UNAUTHORIZED"
    assert shape["data"]["httpStatus"] == 401
    assert shape["data"]["path"] == STAFF


async def test_a_client_may_not_follow_the_staff_subscription(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    async with subscription(http, STAFF, scene.staff_input(), token=scene.customer.token) as stream:
        shape = await refusal(stream)
    assert shape["data"]["code"] == "FORBIDDEN"


async def test_a_client_following_another_clients_room_finds_nothing(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    other = await scene.shop.customer()
    async with subscription(http, CLIENT, scene.client_input(), token=other.token) as stream:
        shape = await refusal(stream)
    assert shape["data"]["code"] == "NOT_FOUND"


async def test_a_ticket_opens_only_the_stream_it_was_issued_for(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    client_ticket = await ticket_for(scene, staff=False)
    query = {"ticket": client_ticket}
    async with subscription(http, STAFF, scene.staff_input(), query=query) as stream:
        shape = await refusal(stream)
    assert shape["data"]["code"] == "UNAUTHORIZED"


async def test_invalid_input_is_a_bad_request_serialized_error_with_its_issue(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    input_ = {"sessionId": "one"}
    async with subscription(http, STAFF, input_, token=scene.staff_token) as stream:
        shape = await refusal(stream)
    assert shape["data"]["code"] == "BAD_REQUEST"
    assert shape["data"]["issues"][0]["path"] == "$.sessionId"


async def test_unreadable_connection_params_are_refused_before_the_stream(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    for params in ["{not json", json.dumps({"token": 7}), json.dumps(["token"])]:
        response = await http.get(
            f"/trpc/{STAFF}",
            params={"input": json.dumps(scene.staff_input()), "connectionParams": params},
        )
        assert response.status_code == 400, params
        assert response.json()["error"]["data"]["code"] == "PARSE_ERROR", params


async def test_null_connection_params_are_no_params_as_trpc_server_reads_them(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    query = {"connectionParams": "null"}
    async with subscription(
        http, STAFF, scene.staff_input(), token=scene.staff_token, query=query
    ) as stream:
        await opened(stream)
        (snapshot,) = await next_tracked(stream, 1)
    assert snapshot.json()["type"] == "SESSION_SNAPSHOT"


async def test_requests_a_subscription_cannot_be_are_http_errors(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    auth = {"authorization": f"Bearer {scene.staff_token}"}
    input_ = json.dumps(scene.staff_input())

    unknown = await http.get("/trpc/liveShopping.onNothing", params={"input": input_}, headers=auth)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["data"]["code"] == "NOT_FOUND"

    posted = await http.post(f"/trpc/{STAFF}", content=input_, headers=auth)
    assert posted.status_code == 405
    assert posted.json()["error"]["data"]["code"] == "METHOD_NOT_SUPPORTED"
    assert posted.headers["allow"] == "GET"

    batched = await http.get(
        f"/trpc/{STAFF}", params={"batch": "1", "input": json.dumps({"0": scene.staff_input()})}
    )
    assert batched.status_code == 400
    assert batched.json()[0]["error"]["message"] == "Cannot batch subscription calls"


async def test_rpc_refuses_a_subscription_with_a_hint_to_the_streams(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    answer = await http.post(
        "/rpc",
        json={"jsonrpc": "2.0", "id": 1, "method": STAFF, "params": scene.staff_input()},
        headers={"authorization": f"Bearer {scene.staff_token}"},
    )
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error["data"]["code"] == "METHOD_NOT_FOUND"
    assert "/trpc/" in error["message"] and "/api/sse" in error["message"]


async def test_discovery_lists_the_subscriptions_with_their_kind(
    http: httpx.AsyncClient,
) -> None:
    answer = await http.post("/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "rpc.discover"})
    kinds = {m["name"]: m["x-kind"] for m in answer.json()["result"]["methods"]}
    assert kinds[STAFF] == kinds[CLIENT] == "subscription"


# --- resume, reset, return --------------------------------------------------------------------


@pytest.mark.parametrize("where", ["input", "header", "query"])
async def test_a_subscription_resumes_after_the_last_event_id_without_a_snapshot(
    http: httpx.AsyncClient, scene: Scene, where: str
) -> None:
    seen = await scene.latest_seq()
    await scene.shop.add(scene.room, scene.scarf, "2")
    await scene.shop.add(scene.room, scene.scarf, "3")
    latest = await scene.latest_seq()
    input_ = scene.staff_input(lastEventId=seen) if where == "input" else scene.staff_input()
    header = seen if where == "header" else None
    query = {"lastEventId": str(seen)} if where == "query" else None
    async with subscription(
        http, STAFF, input_, token=scene.staff_token, last_event_id=header, query=query
    ) as stream:
        await opened(stream)
        replayed = await next_tracked(stream, latest - seen)

    assert_consecutive(replayed, after=seen)
    assert "SESSION_SNAPSHOT" not in [f.json()["type"] for f in replayed]


async def test_the_last_event_id_header_wins_over_the_input_as_eventsource_resends_the_url(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    older = await scene.latest_seq()
    await scene.shop.add(scene.room, scene.scarf, "2")
    newer = await scene.latest_seq()
    await scene.shop.add(scene.room, scene.scarf, "3")
    input_ = scene.staff_input(lastEventId=str(older))
    async with subscription(
        http, STAFF, input_, token=scene.staff_token, last_event_id=newer
    ) as stream:
        await opened(stream)
        (first,) = await next_tracked(stream, 1)
    assert first.seq == newer + 1


@pytest.mark.parametrize("given", ["abc", "-1", "5.0", "999999"])
async def test_an_id_replay_cannot_serve_gets_a_reset_snapshot(
    http: httpx.AsyncClient, scene: Scene, given: str
) -> None:
    latest = await scene.latest_seq()
    input_ = scene.client_input(lastEventId=given)
    async with subscription(http, CLIENT, input_, token=scene.customer.token) as stream:
        await opened(stream)
        (snapshot,) = await next_tracked(stream, 1)
    state = snapshot.json()
    assert state["type"] == "SESSION_SNAPSHOT"
    assert state["reset"] is True
    assert snapshot.seq >= latest


async def test_the_stream_returns_after_the_sessions_final_event(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    async with subscription(
        http, CLIENT, scene.client_input(), token=scene.customer.token
    ) as stream:
        await opened(stream)
        await next_tracked(stream, 1)
        await scene.shop.rpc.staff("liveShopping.cancelSession", {"sessionId": scene.room.id})
        rest = await stream.rest(within=READ_S)

    assert rest[-1].event == "return"
    final = tracked(rest)[-1]
    assert final.json()["session"]["status"] == "CANCELLED"
    assert final.seq == await scene.latest_seq()

    # Resuming from the final id: connected, then return at once (the client stops).
    input_ = scene.client_input(lastEventId=final.seq)
    async with subscription(http, CLIENT, input_, token=scene.customer.token) as again:
        await opened(again)
        assert [f.event for f in await again.rest(within=READ_S)] == ["return"]
