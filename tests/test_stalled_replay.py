"""Replays to clients that stop reading cost the database nothing (DESIGN.md 5).

A reconnect storm of streams resuming a long session from `Last-Event-ID: 0` whose sockets are
never read must not take the service down with them: a replay reads a page of the outbox,
gives its database connection back, and only then writes, so mutations, /readyz and new streams
keep answering while every replay is stuck on a full socket.

The server is a real `python -m app serve` process on MariaDB (pools of 20 write and 10 read
connections), the stalled clients real TCP sockets with a small receive buffer that nobody reads.
"""

from __future__ import annotations

import asyncio
import fcntl
import math
import socket
import struct
import termios
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.auth import TokenService
from app.config import load_settings
from tests import live_server, services
from tests.conftest import Rpc, Tokens
from tests.factories import Room, Shop, Stock
from tests.live_server import Server
from tests.sse_client import open_stream

pytestmark = [pytest.mark.mariadb]

CART_LINES = 100  # every event carries the whole cart: ~50 KB per event on each side
HIGHLIGHTS = 150  # with the adds, ~250 events: several MB per replay, far beyond any buffer
STALLED_STREAMS = 32  # more than the 30 connections of the worker's two database pools
LIVELY_S = 2.0  # generous: each of these answers in milliseconds on an idle worker


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    services.require("mariadb")
    with live_server.fresh_database("ls_stall") as url:
        yield url


@pytest.fixture(scope="module")
def env(database: str) -> dict[str, str]:
    return live_server.server_env(database)


@pytest.fixture(scope="module")
def server(env: dict[str, str]) -> Iterator[Server]:
    with live_server.running_servers(env, 1) as [running]:
        yield running


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=30.0, limits=live_server.http_limits(8)
    ) as client:
        yield client


@pytest.fixture
def shop(http: httpx.AsyncClient, env: dict[str, str]) -> Shop:
    return Shop(Rpc(http, Tokens(TokenService(load_settings(env)))))


async def long_session(shop: Shop) -> tuple[Room, list[Stock]]:
    """A session with a CART_LINES-line cart and about 250 events, every one of them big."""
    stocks = [await shop.stock(name=f"Cashmere wrap no. {i:03d}") for i in range(CART_LINES)]
    room = await shop.session(await shop.customer(), internal_notes="Replays the whole evening")
    for stock in stocks:
        await shop.add(room, stock, "1")
    for i in range(HIGHLIGHTS):
        await highlight(shop, room, stocks[i % CART_LINES])
    return room, stocks


async def highlight(shop: Shop, room: Room, stock: Stock) -> Any:
    return await shop.rpc.staff(
        "liveShopping.highlightProduct", {"sessionId": room.id, "batchId": stock.batch_id}
    )


def stalled_stream(server: Server, path: str, token: str) -> socket.socket:
    """Open a stream resuming from event 0 on a socket that will never be read."""
    address = urlsplit(server.base_url)
    assert address.hostname is not None and address.port is not None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Before connecting, so the advertised window stays small and the server's sends block soon.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((address.hostname, address.port))
    request = (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {address.netloc}\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n"
        "Last-Event-ID: 0\r\n"
        "\r\n"
    )
    sock.sendall(request.encode())
    return sock


def unread_bytes(sock: socket.socket) -> int:
    queued = fcntl.ioctl(sock.fileno(), termios.FIONREAD, struct.pack("i", 0))
    count: int = struct.unpack("i", queued)[0]
    return count


async def until_stalled(socks: list[socket.socket], within: float = 20.0) -> None:
    """Wait until the server has filled every socket it is going to fill and writes no more."""
    deadline = time.monotonic() + within
    last: list[int] = []
    steady_since = time.monotonic()
    while time.monotonic() < deadline:
        now = [unread_bytes(sock) for sock in socks]
        if now != last:
            last, steady_since = now, time.monotonic()
        elif time.monotonic() - steady_since >= 1.0:
            return
        await asyncio.sleep(0.1)


async def seconds_to_answer(call: Awaitable[None]) -> float:
    """How long `call` took; infinity once it has taken LIVELY_S without answering."""
    started = time.monotonic()
    try:
        await asyncio.wait_for(call, LIVELY_S)
    except TimeoutError:
        return math.inf
    return time.monotonic() - started


async def a_mutation(shop: Shop, room: Room, stock: Stock) -> None:
    cart = await highlight(shop, room, stock)
    assert [x["batchId"] for x in cart["items"] if x["isHighlighted"]] == [stock.batch_id]


async def readiness(http: httpx.AsyncClient) -> None:
    response = await http.get("/readyz")
    assert (response.status_code, response.json()["database"]) == (200, "ok")


async def a_new_stream(http: httpx.AsyncClient, path: str, token: str) -> None:
    # Generous inner deadlines: the caller's LIVELY_S decides what counts as slow.
    async with open_stream(http, path, token=token, within=30.0) as stream:
        frame = await stream.frame_where(lambda f: f.is_event, within=30.0)
    assert frame.event == "SESSION_SNAPSHOT"


async def test_replays_stuck_on_sockets_nobody_reads_leave_the_database_to_everyone_else(
    server: Server, http: httpx.AsyncClient, shop: Shop
) -> None:
    room, stocks = await long_session(shop)
    path = f"/api/sse/live-shopping/{room.id}"
    token = shop.rpc.tokens.staff
    socks = [stalled_stream(server, path, token) for _ in range(STALLED_STREAMS)]
    try:
        await until_stalled(socks)
        assert any(unread_bytes(sock) > 0 for sock in socks), "no replay ever started"

        answers = {
            "a mutation": await seconds_to_answer(a_mutation(shop, room, stocks[0])),
            "GET /readyz": await seconds_to_answer(readiness(http)),
            "a new stream": await seconds_to_answer(a_new_stream(http, path, token)),
        }
    finally:
        for sock in socks:
            sock.close()

    slow = {what: seconds for what, seconds in answers.items() if seconds >= LIVELY_S}
    assert slow == {}, f"not answered within {LIVELY_S} s while replays were stuck: {answers}"
