"""The official `@trpc/client` v11 (pinned in tests/trpc_client/package.json) against a real
server: what a tRPC frontend sees through httpLink, httpBatchLink and httpBatchStreamLink,
with and without `methodOverride: 'POST'`, and every error code as tRPC names it.

Needs Node and `npm ci --prefix tests/trpc_client`; skipped with the reason when either is
missing, failed instead when REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from app.auth import TokenService
from app.config import load_settings
from tests import services
from tests.conftest import Tokens
from tests.live_server import running_servers, sqlite_env

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
