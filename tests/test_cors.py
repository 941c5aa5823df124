"""Browsers on other origins (DESIGN.md 2.3): CORS_ALLOWED_ORIGINS opens /rpc, /trpc and the
streams to the origins it names, preflight included, and nothing else to anyone.

Against a real `python -m app serve` process, with the requests a browser sends: a preflight
(OPTIONS with Origin and Access-Control-Request-Method/-Headers), then the cross-origin call or
stream itself. An allowed origin gets Access-Control-Allow-Origin naming it; any other origin,
and any other route, gets no Access-Control-Allow-Origin, which is what makes a browser refuse
to hand the answer to the page. Without the setting nobody gets CORS headers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.auth import TokenService
from app.config import load_settings
from tests import live_server
from tests.conftest import Rpc, Tokens
from tests.factories import Room, Shop
from tests.live_server import Server

CONSOLE = "https://console.example.com"
DEV_PAGE = "http://localhost:5173"
OTHER_ORIGINS = [
    "https://evil.example",
    "https://console.example.com.evil.example",  # the allowed name as a prefix
    "http://console.example.com",  # the allowed host on another scheme
    "https://console.example.com:8443",  # and on another port
    "null",  # a sandboxed frame or a file: page
]
READ_S = 5.0


@pytest.fixture(scope="module")
def env(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return live_server.sqlite_env(
        sqlite_template,
        tmp_path_factory.mktemp("cors"),
        # As an operator writes it: spaces, a trailing comma, a capital letter.
        CORS_ALLOWED_ORIGINS=f" {CONSOLE.replace('console', 'Console')}, {DEV_PAGE},",
    )


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


@pytest.fixture
def tokens(env: dict[str, str]) -> Tokens:
    return Tokens(TokenService(load_settings(env)))


@pytest.fixture
async def room(http: httpx.AsyncClient, tokens: Tokens) -> Room:
    shop = Shop(Rpc(http, tokens))
    return await shop.session(await shop.customer())


def preflight(origin: str, method: str, headers: str) -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": method,
        "access-control-request-headers": headers,
    }


# Each route DESIGN.md 2.3 opens, with the method and headers a page sends to it.
OPENED = [
    ("/rpc", "POST", "authorization, content-type"),
    ("/rpc/rpc.discover", "GET", "authorization"),
    ("/trpc/liveShopping.getSession", "GET", "authorization"),
    ("/trpc/liveShopping.addToCart", "POST", "authorization, content-type, trpc-accept"),
    ("/api/sse/live-shopping/1", "GET", "authorization, last-event-id"),
    ("/api/sse/vip/live-shopping/ROOM-CODE", "GET", "last-event-id"),
]


# --- preflight ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "method", "headers"), OPENED)
@pytest.mark.parametrize("origin", [CONSOLE, DEV_PAGE])
async def test_a_preflight_from_an_allowed_origin_allows_the_call(
    http: httpx.AsyncClient, origin: str, path: str, method: str, headers: str
) -> None:
    answer = await http.options(path, headers=preflight(origin, method, headers))

    assert answer.status_code in (200, 204), answer.text
    assert answer.headers["access-control-allow-origin"] == origin
    assert "Origin" in answer.headers["vary"]
    assert method in answer.headers["access-control-allow-methods"].split(", ")
    allowed = {h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert {h.strip() for h in headers.split(",")} <= allowed
    assert int(answer.headers["access-control-max-age"]) > 0
    assert "access-control-allow-credentials" not in answer.headers


@pytest.mark.parametrize(("path", "method", "headers"), OPENED)
@pytest.mark.parametrize("origin", OTHER_ORIGINS)
async def test_a_preflight_from_another_origin_is_not_allowed(
    http: httpx.AsyncClient, origin: str, path: str, method: str, headers: str
) -> None:
    answer = await http.options(path, headers=preflight(origin, method, headers))
    assert "access-control-allow-origin" not in answer.headers


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/sales-sheets/some-token"])
async def test_routes_outside_the_api_and_the_streams_are_not_opened_even_to_allowed_origins(
    http: httpx.AsyncClient, path: str
) -> None:
    asked = await http.options(path, headers=preflight(CONSOLE, "GET", "authorization"))
    fetched = await http.get(path, headers={"origin": CONSOLE})

    for answer in (asked, fetched):
        assert not [h for h in answer.headers if h.startswith("access-control-")], answer.headers


# --- the calls themselves ------------------------------------------------------------------------


async def test_a_cross_origin_rpc_call_from_an_allowed_origin_can_be_read_by_the_page(
    http: httpx.AsyncClient, tokens: Tokens
) -> None:
    answer = await http.post(
        "/rpc",
        json={"jsonrpc": "2.0", "id": 1, "method": "clients.create", "params": {"name": "CORS"}},
        headers={"origin": CONSOLE, "authorization": f"Bearer {tokens.staff}"},
    )

    assert answer.status_code == 200
    assert answer.json()["result"]["id"] > 0
    assert answer.headers["access-control-allow-origin"] == CONSOLE
    assert "Origin" in answer.headers["vary"]
    # So that the page can report the request id of a failed call.
    assert "x-request-id" in answer.headers["access-control-expose-headers"]


@pytest.mark.parametrize("origin", OTHER_ORIGINS)
async def test_a_cross_origin_rpc_call_from_another_origin_is_not_readable_by_its_page(
    http: httpx.AsyncClient, origin: str
) -> None:
    answer = await http.post(
        "/rpc",
        json={"jsonrpc": "2.0", "id": 1, "method": "rpc.discover"},
        headers={"origin": origin},
    )
    assert "access-control-allow-origin" not in answer.headers


async def test_a_same_origin_call_gets_no_cors_headers(http: httpx.AsyncClient) -> None:
    answer = await http.post("/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "rpc.discover"})
    assert answer.status_code == 200
    assert not [h for h in answer.headers if h.startswith("access-control-")]


async def test_a_trpc_query_from_an_allowed_origin_can_be_read_by_the_page(
    http: httpx.AsyncClient, tokens: Tokens, room: Room
) -> None:
    answer = await http.get(
        "/trpc/liveShopping.getSession",
        params={"input": f'{{"sessionId":{room.id}}}'},
        headers={"origin": DEV_PAGE, "authorization": f"Bearer {tokens.staff}"},
    )
    assert answer.status_code == 200
    assert answer.json()["result"]["data"]["session"]["id"] == room.id
    assert answer.headers["access-control-allow-origin"] == DEV_PAGE


@pytest.mark.parametrize(("origin", "allowed"), [(CONSOLE, True), (OTHER_ORIGINS[0], False)])
async def test_a_stream_is_readable_cross_origin_only_from_an_allowed_origin(
    http: httpx.AsyncClient, tokens: Tokens, room: Room, origin: str, allowed: bool
) -> None:
    headers = {"origin": origin, "authorization": f"Bearer {tokens.staff}"}
    async with http.stream("GET", f"/api/sse/live-shopping/{room.id}", headers=headers) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        if allowed:
            assert answer.headers["access-control-allow-origin"] == origin
        else:
            assert "access-control-allow-origin" not in answer.headers


async def test_the_cors_headers_of_one_stream_never_reach_the_next(
    http: httpx.AsyncClient, tokens: Tokens, room: Room
) -> None:
    path = f"/api/sse/live-shopping/{room.id}"
    bearer = {"authorization": f"Bearer {tokens.staff}"}
    seen: list[httpx.Headers] = []
    for origin in [CONSOLE, None, OTHER_ORIGINS[0]]:
        headers = bearer if origin is None else {**bearer, "origin": origin}
        async with http.stream("GET", path, headers=headers) as answer:
            seen.append(answer.headers)

    assert seen[0]["access-control-allow-origin"] == CONSOLE
    assert [h.get("access-control-allow-origin") for h in seen[1:]] == [None, None]
    assert not [h for h in seen[1] if h.startswith("access-control-")]


# --- the default ---------------------------------------------------------------------------------


async def test_without_the_setting_no_origin_gets_cors_headers(rpc: Rpc) -> None:
    asked = await rpc.http.options(
        "/rpc", headers=preflight(CONSOLE, "POST", "authorization, content-type")
    )
    called = await rpc.http.post(
        "/rpc",
        json={"jsonrpc": "2.0", "id": 1, "method": "rpc.discover"},
        headers={"origin": CONSOLE},
    )

    assert called.status_code == 200
    for answer in (asked, called):
        assert not [h for h in answer.headers if h.startswith("access-control-")], answer.headers


# --- the streams ---------------------------------------------------------------------------------


async def first_bytes(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> Any:
    """The head of a stream's answer and its first event, then hang up."""
    async with http.stream("GET", path, headers=headers) as answer:
        body = b""
        async for chunk in answer.aiter_bytes():
            body += chunk
            if b"SESSION_SNAPSHOT" in body:
                break
        return answer.status_code, answer.headers, body


@pytest.mark.parametrize("kind", ["sse", "trpc"])
async def test_a_stream_from_an_allowed_origin_can_be_read_by_the_page_and_one_without_gets_no_cors(
    http: httpx.AsyncClient, tokens: Tokens, room: Room, kind: str
) -> None:
    """Served streams skip the router (app/server.py), except those with an Origin while CORS
    is configured: those go through its CORS layer, and both kinds still stream."""
    if kind == "sse":
        path = f"/api/sse/live-shopping/{room.id}"
    else:
        path = f"/trpc/liveShopping.onSessionEvent?input=%7B%22sessionId%22%3A{room.id}%7D"
    auth = {"authorization": f"Bearer {tokens.staff}"}

    status, headers, body = await first_bytes(http, path, {**auth, "origin": CONSOLE})
    assert status == 200 and b"SESSION_SNAPSHOT" in body
    assert headers["access-control-allow-origin"] == CONSOLE

    status, headers, body = await first_bytes(http, path, auth)
    assert status == 200 and b"SESSION_SNAPSHOT" in body
    assert not [h for h in headers if h.startswith("access-control-")]
