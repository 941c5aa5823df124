"""Soft holds and conversion under real concurrency: two server processes, one MariaDB.

The claims are about row locks across processes, so nothing here runs in-process: each server
is its own `python -m app serve`, requests are fired together over HTTP, and the verdict is read
from the database directly.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.auth import TokenService
from app.config import load_settings
from app.domain.actors import Role
from tests import live_server, services
from tests.live_server import Server

pytestmark = pytest.mark.mariadb

ON_HAND = 10
RACERS = 40
ROUNDS = 3
# A stuck lock fails the test as a client timeout before innodb_lock_wait_timeout (50 s) would
# turn it into an internal error.
REQUEST_TIMEOUT_S = 30.0


# --- the world: two servers on one fresh database ----------------------------------------------


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    services.require("mariadb")
    with live_server.fresh_database("ls_conc") as url:
        yield url


@pytest.fixture(scope="module")
def env(database: str) -> dict[str, str]:
    return live_server.server_env(database)


@pytest.fixture(scope="module")
def servers(env: dict[str, str]) -> Iterator[list[Server]]:
    with live_server.running_servers(env, 2) as running:
        yield running


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer to one JSON-RPC call."""

    status: int
    result: Any = None
    error: dict[str, Any] | None = None

    @property
    def outcome(self) -> str:
        """The answer in one word: ok, the error's wire code, or "http <status>" if not JSON-RPC."""
        if self.error is not None:
            return str(self.error.get("data", {}).get("code", f"http {self.status}"))
        return "ok" if self.status == 200 else f"http {self.status}"

    @property
    def data(self) -> dict[str, Any]:
        return dict((self.error or {}).get("data", {}))


@dataclass(frozen=True, slots=True)
class Seat:
    """A live session of its own client: the host drives it by id, the client by room code."""

    session_id: int
    room_code: str
    client_id: int


class Shop:
    """JSON-RPC over real HTTP to the two servers, with tokens signed by their secret."""

    def __init__(self, http: httpx.AsyncClient, servers: list[Server], env: dict[str, str]):
        self.http = http
        self.servers = servers
        self.tokens = TokenService(load_settings(env))
        self.admin = self.tokens.issue(sub=1, role=Role.ADMIN)
        self.staff = self.tokens.issue(sub=2, role=Role.STAFF)
        self._ids = itertools.count(1)

    def client_token(self, client_id: int) -> str:
        return self.tokens.issue(sub=100_000 + client_id, role=Role.CLIENT, client_id=client_id)

    async def call(self, server: int, method: str, params: dict[str, Any], token: str) -> Answer:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        url = f"{self.servers[server].base_url}/rpc"
        try:
            response = await self.http.post(
                url, json=body, headers={"authorization": f"Bearer {token}"}
            )
        except httpx.TimeoutException:
            return Answer(status=0, error={"data": {"code": "client timeout"}})
        try:
            payload = response.json()
        except ValueError:
            return Answer(status=response.status_code)
        return Answer(response.status_code, payload.get("result"), payload.get("error"))

    async def ok(self, method: str, params: dict[str, Any], token: str, server: int = 0) -> Any:
        answer = await self.call(server, method, params, token)
        assert answer.outcome == "ok", f"{method} failed: {answer}"
        return answer.result

    async def new_batch(self, on_hand: int) -> int:
        sku = f"SKU-{uuid.uuid4().hex[:10]}"
        product = await self.ok(
            "catalog.createProduct",
            {"name": "Silk Scarf", "sku": sku, "listPrice": "100.00"},
            self.admin,
        )
        batch = await self.ok(
            "catalog.createBatch",
            {
                "productId": product["id"],
                "code": f"{sku}-A",
                "onHandQty": str(on_hand),
                "unitCogs": "20.00",
            },
            self.admin,
        )
        return int(batch["id"])

    async def new_seat(self) -> Seat:
        client = await self.ok("clients.create", {"name": "Racer"}, self.staff)
        created = await self.ok(
            "liveShopping.createSession", {"clientId": client["id"]}, self.staff
        )
        return Seat(created["sessionId"], created["roomCode"], client["id"])

    async def add_one_unit(
        self, server: int, seat: Seat, batch_id: int, *, as_client: bool
    ) -> Answer:
        if as_client:
            params = {"roomCode": seat.room_code, "batchId": batch_id, "quantity": "1"}
            return await self.call(
                server, "vipPortalLiveShopping.addToCart", params, self.client_token(seat.client_id)
            )
        params = {"sessionId": seat.session_id, "batchId": batch_id, "quantity": "1"}
        return await self.call(server, "liveShopping.addToCart", params, self.staff)

    async def open_connections(self, per_server: int) -> None:
        """Open keep-alive connections first, so the race is not a race to connect."""
        await asyncio.gather(
            *(
                self.http.get(f"{server.base_url}/healthz")
                for server in self.servers
                for _ in range(per_server)
            )
        )


@pytest.fixture
async def shop(servers: list[Server], env: dict[str, str]) -> AsyncIterator[Shop]:
    limits = live_server.http_limits(2 * RACERS)
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits) as http:
        yield Shop(http, servers, env)


# --- what the database says ---------------------------------------------------------------------


def held_in_open_carts(database: str, batch_id: int) -> tuple[Decimal, int]:
    """(sum of quantities, number of lines) of a batch over the carts of open sessions."""
    [(total, lines)] = live_server.query(
        database,
        "SELECT COALESCE(SUM(i.quantity), 0), COUNT(*) FROM session_cart_items i "
        "JOIN live_shopping_sessions s ON s.id = i.session_id "
        "WHERE i.batch_id = %s AND s.status IN ('SCHEDULED', 'ACTIVE', 'PAUSED')",
        (batch_id,),
    )
    return Decimal(total), int(lines)


def server_errors(servers: list[Server]) -> str:
    """The servers' logged errors (internal errors log a traceback with the request id)."""
    lines = [
        f"[{server.base_url}] {line}"
        for server in servers
        for line in server.log_text().splitlines()
        if "ERROR" in line or "Deadlock" in line or "Lock wait timeout" in line
    ]
    return "\n".join(lines[-30:]) or "(no errors logged)"


# --- the race for the last units ----------------------------------------------------------------


async def race_for_one_batch(shop: Shop, seats: list[Seat], batch_id: int) -> list[Answer]:
    """Every seat asks for one unit at once; calls alternate between servers and, in pairs,
    between the host's procedure and the client's, so both entry points contend on each server.
    """
    await shop.open_connections(per_server=len(seats) // 2)
    return await asyncio.gather(
        *(
            shop.add_one_unit(i % 2, seat, batch_id, as_client=(i // 2) % 2 == 1)
            for i, seat in enumerate(seats)
        )
    )


def assert_exactly_the_stock_was_sold(
    answers: list[Answer], batch_id: int, database: str, servers: list[Server]
) -> None:
    tally = Counter(answer.outcome for answer in answers)
    context = f"outcomes {dict(tally)}; server log:\n{server_errors(servers)}"
    assert not [a for a in answers if a.status >= 500 or a.status == 0], context
    assert tally == {"ok": ON_HAND, "PRECONDITION_FAILED": RACERS - ON_HAND}, context
    refusals = [a for a in answers if a.outcome == "PRECONDITION_FAILED"]
    assert {a.status for a in refusals} == {412}
    # Refused for inventory on this batch, not for any other precondition.
    assert {a.data.get("batchId") for a in refusals} == {batch_id}, refusals[0]
    assert held_in_open_carts(database, batch_id) == (Decimal(ON_HAND), ON_HAND)


async def test_forty_sessions_racing_for_ten_units_get_exactly_ten(
    shop: Shop, database: str, servers: list[Server]
) -> None:
    batch_id = await shop.new_batch(on_hand=ON_HAND)
    seats = [await shop.new_seat() for _ in range(RACERS)]

    answers = await race_for_one_batch(shop, seats, batch_id)

    assert_exactly_the_stock_was_sold(answers, batch_id, database, servers)


async def test_the_race_for_the_last_units_holds_round_after_round(
    shop: Shop, database: str, servers: list[Server]
) -> None:
    # The same sessions race for a fresh batch each round while still holding earlier ones,
    # so a rare interleaving gets several chances to show.
    seats = [await shop.new_seat() for _ in range(RACERS)]
    for _ in range(ROUNDS):
        batch_id = await shop.new_batch(on_hand=ON_HAND)
        answers = await race_for_one_batch(shop, seats, batch_id)
        assert_exactly_the_stock_was_sold(answers, batch_id, database, servers)


# --- the race to convert ------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", range(ROUNDS))
async def test_converting_a_session_twice_at_once_makes_one_order(
    shop: Shop, database: str, servers: list[Server], attempt: int
) -> None:
    batch_id = await shop.new_batch(on_hand=ON_HAND)
    seat = await shop.new_seat()
    await shop.ok(
        "liveShopping.addToCart",
        {"sessionId": seat.session_id, "batchId": batch_id, "quantity": "3"},
        shop.staff,
    )
    await shop.open_connections(per_server=1)

    end = {"sessionId": seat.session_id, "convertToOrder": True}
    answers = await asyncio.gather(
        shop.call(0, "liveShopping.endSession", end, shop.staff),
        shop.call(1, "liveShopping.endSession", end, shop.staff),
    )

    context = f"answers {answers}; server log:\n{server_errors(servers)}"
    assert sorted(a.outcome for a in answers) == ["CONFLICT", "ok"], context
    [won] = [a for a in answers if a.outcome == "ok"]
    [lost] = [a for a in answers if a.outcome == "CONFLICT"]
    assert won.result["status"] == "CONVERTED"
    order_id = won.result["orderId"]
    assert lost.status == 409
    assert lost.data.get("orderId") == order_id, context
    orders = live_server.query(
        database, "SELECT id FROM orders WHERE session_id = %s", (seat.session_id,)
    )
    assert orders == [(order_id,)]
    [(reserved,)] = live_server.query(
        database, "SELECT reserved_qty FROM batches WHERE id = %s", (batch_id,)
    )
    assert reserved == Decimal(3)
    # The cart no longer holds anything: the session is closed and the order reserves instead.
    assert held_in_open_carts(database, batch_id) == (Decimal(0), 0)
