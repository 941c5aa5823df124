"""Who may open which stream (DESIGN.md 2.3, 3 and 5), on a real server over real HTTP.

A stream opens with a bearer token or with a 60-second ticket from createStreamTicket that is
bound to that one stream. Everything else is refused before any byte of the stream: the answer
is a JSON-RPC error document with the status its code names, never `text/event-stream`. The
access rules are those of the procedures: any staff member may watch any session, a client only
its own room (another room is simply not found), and neither may use the other's stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.auth import TokenService
from app.config import load_settings
from app.domain.actors import Actor, Role
from app.events.streams import client_stream_key, staff_stream_key
from tests import live_server
from tests.conftest import Rpc, Tokens
from tests.factories import Customer, Room, Shop
from tests.factories import refusal as rpc_refusal
from tests.live_server import Server
from tests.sse_client import open_stream

READ_S = 5.0


# --- servers: the module's, and one with the feature off ---------------------------------------


def _env(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory, **settings: str
) -> dict[str, str]:
    return live_server.sqlite_env(
        sqlite_template,
        tmp_path_factory.mktemp("sse-auth"),
        LIVE_SHOPPING_HEARTBEAT_MS="500",
        **settings,
    )


@pytest.fixture(scope="module")
def env(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _env(sqlite_template, tmp_path_factory)


@pytest.fixture(scope="module")
def server(env: dict[str, str]) -> Iterator[Server]:
    with live_server.running_servers(env, 1) as [running]:
        yield running


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=READ_S, limits=live_server.http_limits(4)
    ) as client:
        yield client


@dataclass
class Scene:
    """Two ACTIVE sessions of two clients, hosted by staff 2."""

    shop: Shop
    tokens: TokenService
    ada: Customer
    grace: Customer
    room: Room  # Ada's
    other_room: Room  # Grace's

    @property
    def staff(self) -> str:
        return self.shop.rpc.tokens.staff

    async def staff_ticket(self, room: Room, token: str | None = None) -> dict[str, Any]:
        ticket: dict[str, Any] = await self.shop.rpc.call(
            "liveShopping.createStreamTicket", {"sessionId": room.id}, token or self.staff
        )
        return ticket

    async def client_ticket(self, customer: Customer, room: Room) -> dict[str, Any]:
        ticket: dict[str, Any] = await self.shop.rpc.call(
            "vipPortalLiveShopping.createStreamTicket", {"roomCode": room.code}, customer.token
        )
        return ticket


@pytest.fixture
async def scene(http: httpx.AsyncClient, env: dict[str, str]) -> Scene:
    tokens = TokenService(load_settings(env))
    shop = Shop(Rpc(http, Tokens(tokens)))
    ada, grace = await shop.customer(), await shop.customer()
    room, other_room = await shop.session(ada), await shop.session(grace)
    return Scene(shop, tokens, ada, grace, room, other_room)


def staff_path(room: Room | int) -> str:
    return f"/api/sse/live-shopping/{room.id if isinstance(room, Room) else room}"


def client_path(room: Room | str) -> str:
    return f"/api/sse/vip/live-shopping/{room.code if isinstance(room, Room) else room}"


async def refused_with(
    http: httpx.AsyncClient,
    path: str,
    *,
    token: str | None = None,
    ticket: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Open a stream that must be refused with a JSON-RPC error: (HTTP status, the error)."""
    params = {"ticket": ticket} if ticket is not None else None
    async with open_stream(http, path, token=token, params=params, within=READ_S) as stream:
        response = stream.response
        body = await response.aread()
    assert response.headers["content-type"].startswith("application/json"), body[:200]
    document = json.loads(body)
    assert document["jsonrpc"] == "2.0"
    error: dict[str, Any] = document["error"]
    assert isinstance(error["code"], int) and error["message"]
    assert error["data"]["httpStatus"] == response.status_code
    return response.status_code, error


async def refusal(
    http: httpx.AsyncClient,
    path: str,
    *,
    token: str | None = None,
    ticket: str | None = None,
) -> tuple[int, str]:
    """Open a stream that must be refused: (HTTP status, error code name)."""
    status, error = await refused_with(http, path, token=token, ticket=ticket)
    return status, str(error["data"]["code"])


async def opens(
    http: httpx.AsyncClient, path: str, *, token: str | None = None, ticket: str | None = None
) -> dict[str, Any]:
    """Open a stream that must be accepted; returns its snapshot's data."""
    params = {"ticket": ticket} if ticket is not None else None
    async with open_stream(http, path, token=token, params=params) as stream:
        assert stream.response.status_code == 200, await stream.response.aread()
        snapshot = await stream.frame_where(lambda f: f.is_event, within=READ_S)
    assert snapshot.event == "SESSION_SNAPSHOT"
    data: dict[str, Any] = snapshot.json()
    return data


UNAUTHORIZED = (401, "UNAUTHORIZED")
FORBIDDEN = (403, "FORBIDDEN")
NOT_FOUND = (404, "NOT_FOUND")


# --- what opens a stream ----------------------------------------------------------------------


async def test_a_staff_ticket_opens_its_sessions_stream_from_the_url_it_comes_with(
    http: httpx.AsyncClient, scene: Scene, server: Server
) -> None:
    before = int(time.time())
    ticket = await scene.staff_ticket(scene.room)

    assert ticket["streamUrl"] == (
        f"{server.base_url}{staff_path(scene.room)}?ticket={ticket['ticket']}"
    )
    assert before + 55 <= ticket["expiresAt"] <= int(time.time()) + 61
    snapshot = await opens(http, ticket["streamUrl"])
    assert snapshot["session"]["id"] == scene.room.id


async def test_a_client_ticket_opens_its_rooms_stream(
    http: httpx.AsyncClient, scene: Scene, server: Server
) -> None:
    ticket = await scene.client_ticket(scene.ada, scene.room)

    assert ticket["streamUrl"].startswith(f"{server.base_url}{client_path(scene.room)}?ticket=")
    snapshot = await opens(http, client_path(scene.room), ticket=ticket["ticket"])
    assert snapshot["session"]["roomCode"] == scene.room.code
    assert "internalNotes" not in snapshot["session"]


async def test_any_staff_member_and_an_admin_may_watch_any_session(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    tokens = scene.shop.rpc.tokens
    for token in (tokens.staff, tokens.other_staff, tokens.admin):
        await opens(http, staff_path(scene.room), token=token)
    ticket = await scene.staff_ticket(scene.room, tokens.other_staff)
    await opens(http, staff_path(scene.room), ticket=ticket["ticket"])


# --- no valid credential: 401 -----------------------------------------------------------------


async def test_a_stream_without_credentials_is_unauthorized(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    assert await refusal(http, staff_path(scene.room)) == UNAUTHORIZED
    assert await refusal(http, client_path(scene.room)) == UNAUTHORIZED


@pytest.mark.parametrize("garbage", ["not-a-jwt", "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"])
async def test_a_garbage_token_or_ticket_is_unauthorized(
    http: httpx.AsyncClient, scene: Scene, garbage: str
) -> None:
    assert await refusal(http, staff_path(scene.room), token=garbage) == UNAUTHORIZED
    assert await refusal(http, client_path(scene.room), token=garbage) == UNAUTHORIZED
    assert await refusal(http, staff_path(scene.room), ticket=garbage) == UNAUTHORIZED
    assert await refusal(http, client_path(scene.room), ticket=garbage) == UNAUTHORIZED


async def test_a_token_signed_with_another_secret_is_unauthorized(
    http: httpx.AsyncClient, scene: Scene, env: dict[str, str]
) -> None:
    forger = TokenService(load_settings({**env, "JWT_SECRET": "x" * 48}))
    forged = forger.issue(sub=2, role=Role.STAFF)
    ticket, _ = forger.issue_stream_ticket(
        Actor(user_id=2, role=Role.STAFF), staff_stream_key(scene.room.id)
    )
    assert await refusal(http, staff_path(scene.room), token=forged) == UNAUTHORIZED
    assert await refusal(http, staff_path(scene.room), ticket=ticket) == UNAUTHORIZED


async def test_an_expired_ticket_is_unauthorized(
    http: httpx.AsyncClient, scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Minted by the real ticket function as if two minutes ago: its `exp` is a minute past.
    two_minutes_ago = time.time() - 120
    monkeypatch.setattr(time, "time", lambda: two_minutes_ago)
    staff_ticket, expires_at = scene.tokens.issue_stream_ticket(
        Actor(user_id=2, role=Role.STAFF), staff_stream_key(scene.room.id)
    )
    client_ticket, _ = scene.tokens.issue_stream_ticket(
        Actor(user_id=1000 + scene.ada.id, role=Role.CLIENT, client_id=scene.ada.id),
        client_stream_key(scene.room.code),
    )
    monkeypatch.undo()
    assert expires_at < time.time()

    for path, ticket in [
        (staff_path(scene.room), staff_ticket),
        (client_path(scene.room), client_ticket),
    ]:
        status, error = await refused_with(http, path, ticket=ticket)
        assert (status, error["data"]["code"]) == UNAUTHORIZED
        assert "expired" in error["message"]


async def test_a_ticket_opens_only_the_stream_it_was_issued_for(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    staff_ticket = (await scene.staff_ticket(scene.room))["ticket"]
    client_ticket = (await scene.client_ticket(scene.ada, scene.room))["ticket"]

    # Staff ticket for session A on session B, and on the client stream of A's own room.
    assert await refusal(http, staff_path(scene.other_room), ticket=staff_ticket) == UNAUTHORIZED
    assert await refusal(http, client_path(scene.room), ticket=staff_ticket) == UNAUTHORIZED
    # The client's ticket on the staff stream of its own session.
    assert await refusal(http, staff_path(scene.room), ticket=client_ticket) == UNAUTHORIZED


async def test_a_bearer_token_is_not_a_ticket(http: httpx.AsyncClient, scene: Scene) -> None:
    # Long-lived tokens must never travel in URLs, so `?ticket=` takes tickets only.
    assert await refusal(http, staff_path(scene.room), ticket=scene.staff) == UNAUTHORIZED
    assert await refusal(http, client_path(scene.room), ticket=scene.ada.token) == UNAUTHORIZED


async def test_a_ticket_is_not_a_bearer_token(http: httpx.AsyncClient, scene: Scene) -> None:
    ticket = (await scene.staff_ticket(scene.room))["ticket"]

    response = await http.post(
        "/rpc",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "liveShopping.getSession",
            "params": {"sessionId": scene.room.id},
        },
        headers={"authorization": f"Bearer {ticket}"},
    )
    assert response.status_code == 401
    assert response.json()["error"]["data"]["code"] == "UNAUTHORIZED"
    # Nor does it open its own stream from the Authorization header.
    assert await refusal(http, staff_path(scene.room), token=ticket) == UNAUTHORIZED


# --- the wrong kind of caller: 403 -----------------------------------------------------------


async def test_a_client_may_not_open_a_staff_stream(http: httpx.AsyncClient, scene: Scene) -> None:
    assert await refusal(http, staff_path(scene.room), token=scene.ada.token) == FORBIDDEN


async def test_staff_and_admins_may_not_open_a_client_stream(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    tokens = scene.shop.rpc.tokens
    for token in (tokens.staff, tokens.other_staff, tokens.admin):
        assert await refusal(http, client_path(scene.room), token=token) == FORBIDDEN


# --- nothing there (for this caller): 404 -----------------------------------------------------


async def test_a_client_cannot_tell_another_clients_room_from_no_room(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    foreign = await refusal(http, client_path(scene.other_room), token=scene.ada.token)
    unknown = await refusal(
        http, client_path("00000000-0000-0000-0000-000000000000"), token=scene.ada.token
    )
    assert foreign == unknown == NOT_FOUND


async def test_a_client_cannot_get_a_ticket_for_another_clients_room(scene: Scene) -> None:
    failure = await rpc_refusal(scene.client_ticket(scene.ada, scene.other_room))
    assert (failure.status, failure.code) == NOT_FOUND


async def test_an_unknown_session_is_not_found_on_the_staff_stream(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    assert await refusal(http, staff_path(987_654_321), token=scene.staff) == NOT_FOUND
    failure = await rpc_refusal(scene.staff_ticket(Room(987_654_321, "none")))
    assert (failure.status, failure.code) == NOT_FOUND


@pytest.mark.parametrize(
    "path", ["/api/sse/live-shopping/abc", "/api/sse/live-shopping", "/api/sse/other/1"]
)
async def test_a_path_that_names_no_stream_is_not_found(
    http: httpx.AsyncClient, scene: Scene, path: str
) -> None:
    assert await refusal(http, path, token=scene.staff) == NOT_FOUND


async def test_a_session_id_of_non_ascii_digits_is_not_found_not_an_internal_error(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    # '\u00b2' (superscript two) passes str.isdigit() but not int().
    assert await refusal(http, "/api/sse/live-shopping/%C2%B2", token=scene.staff) == NOT_FOUND


# --- feature flag -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def disabled_server(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, TokenService]]:
    env = _env(sqlite_template, tmp_path_factory, FEATURE_LIVE_SHOPPING_ENABLED="false")
    with live_server.running_servers(env, 1) as [running]:
        yield running, TokenService(load_settings(env))


async def test_with_the_feature_off_both_streams_are_not_found(
    disabled_server: tuple[Server, TokenService],
) -> None:
    server, tokens = disabled_server
    staff = tokens.issue(sub=2, role=Role.STAFF)
    client = tokens.issue(sub=1001, role=Role.CLIENT, client_id=1)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=READ_S) as http:
        assert await refusal(http, staff_path(1), token=staff) == (404, "METHOD_NOT_FOUND")
        assert await refusal(http, client_path("any-room"), token=client) == (
            404,
            "METHOD_NOT_FOUND",
        )
        ticket, _ = tokens.issue_stream_ticket(
            Actor(user_id=2, role=Role.STAFF), staff_stream_key(1)
        )
        assert await refusal(http, staff_path(1), ticket=ticket) == (404, "METHOD_NOT_FOUND")
