"""The official `@trpc/client` v11 (pinned in tests/trpc_client/package.json) against a real
server: what a tRPC frontend sees through httpLink, httpBatchLink and httpBatchStreamLink,
with and without `methodOverride: 'POST'`, and every error code as tRPC names it; and
httpSubscriptionLink (with the `eventsource` package) following both subscriptions of a live
session through a worker restart.

Needs Node and `npm ci --prefix tests/trpc_client`; skipped with the reason when either is
missing, failed instead when REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.auth import TokenService
from app.config import load_settings
from tests import live_server, services
from tests.conftest import Rpc, Tokens
from tests.factories import Shop, outbox_events
from tests.live_server import running_servers, sqlite_env
from tests.sse_client import staff_only_keys

CLIENT_DIR = Path(__file__).parent / "trpc_client"
SCRIPT = CLIENT_DIR / "run.mjs"
NODE_TIMEOUT_S = 60.0
LINKS = ["httpLink", "httpBatchLink", "httpBatchStreamLink"]


def _pinned_modules_problem() -> str | None:
    """Why the pinned client cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    pins = json.loads((CLIENT_DIR / "package.json").read_text())["dependencies"]
    for name, version in pins.items():
        installed = CLIENT_DIR / "node_modules" / name / "package.json"
        if not installed.exists():
            return f"{name} is not installed; run `npm ci --prefix tests/trpc_client`"
        found = json.loads(installed.read_text())["version"]
        if found != version:
            return f"{name} {found} is installed, not the pinned {version}; run npm ci"
    return None


@pytest.fixture(scope="module", autouse=True)
def _official_client() -> None:
    problem = _pinned_modules_problem()
    if problem is None:
        return
    if services.required():
        pytest.fail(f"{problem} and REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(problem)


@dataclass(frozen=True)
class Server:
    url: str  # the tRPC endpoint, http://127.0.0.1:<port>/trpc
    tokens: Tokens


@pytest.fixture(scope="module")
def server(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = sqlite_env(sqlite_template, tmp_path_factory.mktemp("trpc-client"))
    with running_servers(env, 1) as (running,):
        yield Server(f"{running.base_url}/trpc", Tokens(TokenService(load_settings(env))))


@dataclass(frozen=True)
class Run:
    requests: list[dict[str, Any]]
    results: list[dict[str, Any]]

    def data(self) -> list[Any]:
        assert all(r["ok"] for r in self.results), self.results
        return [r["data"] for r in self.results]


def client(
    server: Server,
    link: str,
    calls: list[tuple[str, str, Any]],
    *,
    token: str | None = None,
    method_override: bool = False,
) -> Run:
    """Make `calls` (type, path, input) together through one client with `link`."""
    scenario = {
        "url": server.url,
        "token": token,
        "link": link,
        "methodOverride": method_override,
        # None: no input at all, as a frontend calls `.query()`.
        "calls": [
            {"type": t, "path": p} | ({} if i is None else {"input": i}) for t, p, i in calls
        ],
    }
    done = subprocess.run(
        ["node", str(SCRIPT)],
        cwd=CLIENT_DIR,
        input=json.dumps(scenario),
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    return Run(answer["requests"], answer["results"])


def error_of(result: dict[str, Any], code: str, number: int, status: int, path: str) -> None:
    """A TRPCClientError as a tRPC server's error makes it: `err.data.code` and the rest."""
    assert not result["ok"], result
    assert result["name"] == "TRPCClientError", result
    assert result["shape"]["code"] == number, result
    assert result["data"]["code"] == code, result
    assert result["data"]["httpStatus"] == status, result
    assert result["data"]["path"] == path, result


def query_input(request: dict[str, Any]) -> str | None:
    (value,) = parse_qs(urlsplit(request["url"]).query).get("input", [None])
    return value


# --- each link works --------------------------------------------------------------------------


def test_http_link_sends_a_query_by_get_and_a_mutation_by_post(server: Server) -> None:
    staff = server.tokens.staff
    created = client(
        server, "httpLink", [("mutation", "clients.create", {"name": "Ada"})], token=staff
    )
    run = client(server, "httpLink", [("query", "clients.list", {"limit": 50})], token=staff)
    (listed,) = run.data()
    assert created.data()[0]["id"] in [c["id"] for c in listed]
    assert [r["method"] for r in created.requests + run.requests] == ["POST", "GET"]
    assert json.loads(query_input(run.requests[0]) or "null") == {"limit": 50}


def test_http_batch_link_sends_queries_together_and_answers_each(server: Server) -> None:
    run = client(
        server,
        "httpBatchLink",
        [("query", "system.health", None), ("query", "clients.list", {"limit": 1})],
        token=server.tokens.staff,
    )
    health, clients = run.data()
    assert health["status"] == "ok"
    assert isinstance(clients, list)
    (request,) = run.requests
    assert (request["method"], request["status"]) == ("GET", 200)
    assert "batch=1" in request["url"]


def test_http_batch_link_sends_mutations_together_by_post(server: Server) -> None:
    run = client(
        server,
        "httpBatchLink",
        [
            ("mutation", "clients.create", {"name": "Bea"}),
            ("mutation", "clients.create", {"name": "Cy"}),
        ],
        token=server.tokens.staff,
    )
    first, second = run.data()
    assert first["id"] != second["id"]
    (request,) = run.requests
    assert request["method"] == "POST"


def test_http_batch_stream_link_reads_the_answer_as_json_lines(server: Server) -> None:
    run = client(
        server,
        "httpBatchStreamLink",
        [
            ("query", "system.health", None),
            ("query", "clients.list", {"limit": 1}),
            ("query", "nope.nothing", None),
        ],
        token=server.tokens.staff,
    )
    health, clients, unknown = run.results
    assert health["ok"] and health["data"]["status"] == "ok"
    assert clients["ok"] and isinstance(clients["data"], list)
    error_of(unknown, "NOT_FOUND", -32004, 404, "nope.nothing")
    (request,) = run.requests
    assert request["trpcAccept"] == "application/jsonl"
    assert (request["status"], request["responseContentType"]) == (200, "application/json")


def test_http_batch_stream_link_runs_mutations(server: Server) -> None:
    run = client(
        server,
        "httpBatchStreamLink",
        [("mutation", "clients.create", {"name": "Dee"})],
        token=server.tokens.staff,
    )
    (created,) = run.data()
    assert created["id"] >= 1


# --- methodOverride: 'POST' -------------------------------------------------------------------


@pytest.mark.parametrize("link", LINKS)
def test_method_override_sends_queries_by_post_with_the_input_as_body(
    server: Server, link: str
) -> None:
    run = client(
        server,
        link,
        [("query", "system.health", None), ("query", "clients.list", {"limit": 2})],
        token=server.tokens.staff,
        method_override=True,
    )
    health, clients = run.data()
    assert health["status"] == "ok"
    assert isinstance(clients, list)
    assert {r["method"] for r in run.requests} == {"POST"}
    assert all(query_input(r) is None for r in run.requests)
    assert any(r["body"] and '"limit":2' in r["body"] for r in run.requests)


# --- error codes as tRPC names them -----------------------------------------------------------


@pytest.mark.parametrize("link", LINKS)
def test_an_unknown_path_is_not_found(server: Server, link: str) -> None:
    (result,) = client(server, link, [("query", "nope.nothing", None)]).results
    error_of(result, "NOT_FOUND", -32004, 404, "nope.nothing")


@pytest.mark.parametrize("link", LINKS)
def test_a_validation_failure_is_bad_request(server: Server, link: str) -> None:
    run = client(
        server, link, [("mutation", "clients.create", {"name": ""})], token=server.tokens.staff
    )
    (result,) = run.results
    error_of(result, "BAD_REQUEST", -32600, 400, "clients.create")
    assert [issue["path"] for issue in result["data"]["issues"]] == ["$.name"]


@pytest.mark.parametrize("link", LINKS)
def test_a_mutation_called_as_a_query_is_method_not_supported_and_does_not_run(
    server: Server, link: str
) -> None:
    name = f"Sneaky via {link}"
    run = client(
        server, link, [("query", "clients.create", {"name": name})], token=server.tokens.staff
    )
    (result,) = run.results
    error_of(result, "METHOD_NOT_SUPPORTED", -32005, 405, "clients.create")
    listed = client(
        server, "httpLink", [("query", "clients.list", {"limit": 100})], token=server.tokens.staff
    )
    assert name not in [c["name"] for c in listed.data()[0]]


@pytest.mark.parametrize("link", LINKS)
def test_a_call_without_a_token_is_unauthorized(server: Server, link: str) -> None:
    (result,) = client(server, link, [("query", "clients.list", {})]).results
    error_of(result, "UNAUTHORIZED", -32001, 401, "clients.list")


@pytest.mark.parametrize("link", LINKS)
def test_a_missing_entity_is_not_found(server: Server, link: str) -> None:
    run = client(
        server, link, [("query", "orders.get", {"orderId": 999})], token=server.tokens.staff
    )
    (result,) = run.results
    error_of(result, "NOT_FOUND", -32004, 404, "orders.get")


# --- httpSubscriptionLink through a worker restart --------------------------------------------

SUBSCRIBE_SCRIPT = CLIENT_DIR / "subscribe.mjs"
STAFF_SUBSCRIPTION = "liveShopping.onSessionEvent"
CLIENT_SUBSCRIPTION = "vipPortalLiveShopping.onRoomEvent"
FOLLOW_S = 20.0  # the longest one expectation of the followers may wait (a restart included)


class Followers:
    """The subscribe.mjs process: every line it printed so far, read as it prints them."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(json.loads(raw))
            self._changed.set()
        self._changed.set()

    def of(self, sub: str, kind: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["sub"] == sub and line["kind"] == kind]

    def seqs(self, sub: str) -> list[int]:
        return [int(line["id"]) for line in self.of(sub, "data")]

    async def until(self, what: str, done: Callable[[], bool]) -> None:
        try:
            async with asyncio.timeout(FOLLOW_S):
                while not done():
                    if self._reader.done():
                        raise AssertionError(f"the client exited before {what}: {self.lines}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"no {what} within {FOLLOW_S} s: {self.lines}") from None

    async def caught_up(self, seq: int) -> None:
        await self.until(
            f"event {seq} on both",
            lambda: all(max(self.seqs(s), default=0) >= seq for s in ("staff", "client")),
        )

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        await self._reader


@contextlib.asynccontextmanager
async def followers(url: str, subscriptions: list[dict[str, Any]]) -> AsyncIterator[Followers]:
    process = await asyncio.create_subprocess_exec(
        "node",
        str(SUBSCRIBE_SCRIPT),
        cwd=CLIENT_DIR,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    process.stdin.write(json.dumps({"url": url, "subscriptions": subscriptions}).encode())
    process.stdin.close()
    running = Followers(process)
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture(params=["sqlite", "mariadb+redis"])
def restart_env(
    request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """The workers' settings: one SQLite file and in-process buses, or MariaDB and Redis."""
    if request.param == "sqlite":
        yield sqlite_env(sqlite_template, tmp_path, LIVE_SHOPPING_HEARTBEAT_MS="500")
        return
    services.require("mariadb")
    services.require("redis")
    with live_server.fresh_database("ls_trpc_restart") as url:
        yield live_server.server_env(
            url, REDIS_URL=services.REDIS_URL, LIVE_SHOPPING_HEARTBEAT_MS="500"
        )


async def test_http_subscription_link_follows_both_subscriptions_through_a_worker_restart(
    restart_env: dict[str, str],
) -> None:
    """The worker serving both streams stops (SIGTERM) while the session goes on elsewhere; a
    new worker starts behind the same URL; each subscription reconnects with the id of the last
    event it had, and ends with `return` after the conversion: every event of the outbox
    arrived once, in order, on both."""
    env = restart_env
    tokens = Tokens(TokenService(load_settings(env)))
    worker = live_server.start_server(env)
    elsewhere = live_server.start_server(env)  # takes the session's changes meanwhile
    port = int(worker.base_url.rsplit(":", 1)[1])
    try:
        async with (
            httpx.AsyncClient(base_url=worker.base_url, timeout=10) as http,
            httpx.AsyncClient(base_url=elsewhere.base_url, timeout=10) as other_http,
        ):
            shop = Shop(Rpc(http, tokens))
            shop_elsewhere = Shop(Rpc(other_http, tokens))
            scarf = await shop.stock(name="Silk Scarf", on_hand="50")
            customer = await shop.customer(credit_limit="50000.00")
            room = await shop.session(customer, title="Restart")
            subscriptions = [
                {
                    "name": "staff",
                    "path": STAFF_SUBSCRIPTION,
                    "input": {"sessionId": room.id},
                    "token": tokens.staff,  # the Authorization header
                },
                {
                    "name": "client",
                    "path": CLIENT_SUBSCRIPTION,
                    "input": {"roomCode": room.code},
                    "connectionParams": {"token": customer.token},
                },
            ]
            async with followers(f"{worker.base_url}/trpc", subscriptions) as follow:
                await follow.until(
                    "both snapshots", lambda: bool(follow.seqs("staff") and follow.seqs("client"))
                )
                await shop.add(room, scarf, "1")
                await shop.add(room, scarf, "2")
                await follow.caught_up(await latest_seq(env, room.id))

                worker.stop()  # SIGTERM: its streams end cleanly; the clients retry
                await shop_elsewhere.add(room, scarf, "3")
                await shop_elsewhere.rpc.staff(
                    "liveShopping.highlightProduct",
                    {"sessionId": room.id, "batchId": scarf.batch_id},
                )
                worker = live_server.start_server(env, port=port)

                await follow.caught_up(await latest_seq(env, room.id))
                await shop.add(room, scarf, "4")
                await shop.end(room, convert=True)
                await follow.until(
                    "the end of both",
                    lambda: (
                        len(follow.of("staff", "complete") + follow.of("client", "complete")) == 2
                    ),
                )
    finally:
        worker.stop()
        elsewhere.stop()

    outbox = await outbox_events(env["DATABASE_URL"], room.id)
    assert "SESSION_CONVERTED" in [e.type for e in outbox]
    for sub in ("staff", "client"):
        events = follow.of(sub, "data")
        seqs = follow.seqs(sub)
        first = seqs[0]
        # Nothing lost, duplicated or reordered: exactly the outbox from the snapshot on.
        assert seqs == [e.seq for e in outbox if e.seq >= first], sub
        assert events[0]["data"]["type"] == "SESSION_SNAPSHOT", sub
        assert [e["data"]["type"] for e in events[1:]] == [e.type for e in outbox if e.seq > first]
        assert not follow.of(sub, "error"), follow.of(sub, "error")
        # It did reconnect, resuming: a later request carried the id of an event it had.
        requests = follow.of(sub, "request")
        assert len(requests) >= 2, requests
        resumed_from = [resume_id(r) for r in requests[1:]]
        assert all(r is not None and int(r) in seqs for r in resumed_from), requests
    for event in follow.of("client", "data"):
        assert staff_only_keys(event["data"]) == set(), event


def resume_id(request: dict[str, Any]) -> str | None:
    """The id a request resumed from: its Last-Event-ID header, else the input's lastEventId."""
    if request["lastEventId"]:
        return str(request["lastEventId"])
    raw = query_input(request)
    found = json.loads(raw).get("lastEventId") if raw else None
    return None if found is None else str(found)


async def latest_seq(env: dict[str, str], session_id: int) -> int:
    return (await outbox_events(env["DATABASE_URL"], session_id))[-1].seq
