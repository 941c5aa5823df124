"""The generated clients as a frontend and an integrator use them, checked by their own type
checkers and run against a real server:

- `tsc --strict --noEmit` on tests/typed_clients/program.ts, a `@trpc/client` v11 program typed
  by the generated `AppRouter` (clients/typescript/trpc.ts) with no glue, including its two
  subscriptions (events as a discriminated union on `type`, switched over exhaustively), whose
  `@ts-expect-error` lines must each be refused for their own reason;
- `mypy --strict` on tests/typed_clients/python_program.py, whose `# type: ignore[code]` lines
  must each be that error, which catches a real NOT_FOUND with `except NotFound` and follows a
  real session's events with an exhaustive `match` over the typed event union.

The TypeScript half needs Node and `npm ci --prefix tests/trpc_client` (typescript and the
official client are pinned there); it is skipped with the reason when either is missing, and
fails instead when REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.auth import TokenService
from app.config import load_settings
from tests import live_server, services
from tests.conftest import Tokens

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ROOT / "tests" / "typed_clients"
NODE_MODULES = ROOT / "tests" / "trpc_client" / "node_modules"
PINS = ROOT / "tests" / "trpc_client" / "package.json"
PYTHON_CLIENT = ROOT / "clients" / "python"
TOOL_TIMEOUT_S = 120.0
_skus = itertools.count(1)


# --- a real server and something to sell -------------------------------------------------------


@dataclass(frozen=True)
class Shop:
    base_url: str
    tokens: Tokens
    client_id: int
    batch_id: int


@pytest.fixture(scope="module")
def served(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Tokens]]:
    env = live_server.sqlite_env(sqlite_template, tmp_path_factory.mktemp("typed-clients"))
    with live_server.running_servers(env, 1) as [server]:
        yield server.base_url, Tokens(TokenService(load_settings(env)))


@pytest.fixture
def shop(served: tuple[str, Tokens]) -> Shop:
    """A product with 10 on hand and a client of its own, made through the Python client."""
    sys.path.insert(0, str(PYTHON_CLIENT))
    from live_shopping_client import LiveShoppingClient

    base_url, tokens = served
    sku = f"TYPED-{next(_skus)}"
    with LiveShoppingClient(base_url, token=tokens.admin) as admin:
        product = admin.catalog.create_product(name="Tea", sku=sku, list_price="12.50")
        batch = admin.catalog.create_batch(
            product_id=product.id, code=f"{sku}-A", on_hand_qty=10, unit_cogs=Decimal(4)
        )
        client = admin.clients.create(name="Ada")
    return Shop(base_url, tokens, client.id, batch.id)


# --- TypeScript: the generated AppRouter ------------------------------------------------------


def _typescript_problem() -> str | None:
    """Why tsc and the pinned @trpc/client cannot run here, or None when they can."""
    if shutil.which("node") is None:
        return "node is not installed"
    for name, version in json.loads(PINS.read_text())["dependencies"].items():
        installed = NODE_MODULES / name / "package.json"
        if not installed.exists():
            return f"{name} is not installed; run `npm ci --prefix tests/trpc_client`"
        if json.loads(installed.read_text())["version"] != version:
            return f"{name} is not the pinned {version}; run `npm ci --prefix tests/trpc_client`"
    return None


@pytest.fixture(scope="module")
def frontend(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frontend's tree: the committed TypeScript client and the program, node_modules beside."""
    problem = _typescript_problem()
    if problem is not None:
        if services.required():
            pytest.fail(f"{problem} and REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip(problem)
    tree = tmp_path_factory.mktemp("frontend")
    shutil.copytree(ROOT / "clients" / "typescript", tree / "clients" / "typescript")
    shutil.copytree(PROGRAMS, tree / "tests" / "typed_clients", ignore=_only_typescript)
    (tree / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)
    (tree / "package.json").write_text('{"type": "module"}\n')
    return tree


def _only_typescript(directory: str, names: list[str]) -> list[str]:
    return [n for n in names if not n.endswith((".ts", ".mjs", "tsconfig.json"))]


def tsc(tree: Path, *options: str) -> subprocess.CompletedProcess[str]:
    compiler = tree / "node_modules" / "typescript" / "bin" / "tsc"
    config = tree / "tests" / "typed_clients" / "tsconfig.json"
    return subprocess.run(
        ["node", str(compiler), "-p", str(config), "--strict", "--pretty", "false", *options],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )


def test_a_trpc_client_typed_by_the_generated_app_router_passes_tsc_strict(
    frontend: Path,
) -> None:
    # Each `@ts-expect-error` that is not an error fails this too.
    done = tsc(frontend, "--noEmit")
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_line_marked_ts_expect_error_is_refused_for_its_own_reason(frontend: Path) -> None:
    program = frontend / "tests" / "typed_clients" / "program.ts"
    source = program.read_text().splitlines()
    marked = {
        number + 1: line.split("@ts-expect-error -", 1)[1].strip()
        for number, line in enumerate(source, start=1)
        if "// @ts-expect-error" in line
    }
    assert len(marked) >= 14
    unmarked = [line.replace("// @ts-expect-error", "// expected:") for line in source]
    program.write_text("\n".join(unmarked) + "\n")
    try:
        done = tsc(frontend, "--noEmit")
    finally:
        program.write_text("\n".join(source) + "\n")

    errors: dict[int, list[str]] = {}
    line = 0
    for output in done.stdout.splitlines():
        if match := re.match(r".*program\.ts\((\d+),\d+\): error (TS\d+: .*)", output):
            line = int(match[1])
            errors.setdefault(line, []).append(match[2])
        elif output.startswith(" ") and line:  # the rest of the message above
            errors[line].append(output.strip())
    assert set(errors) == set(marked), done.stdout
    reasons = {marked[line]: " ".join(found) for line, found in errors.items()}
    assert "'colour' does not exist" in reasons["a field addToCart does not take"]
    assert "'batchId' is missing" in reasons["a required param left out"]
    assert "'deleteEverything' does not exist" in reasons["a procedure the router does not have"]
    assert "Property 'query' does not exist" in reasons["a mutation has no .query"]
    assert "Property 'mutate' does not exist" in reasons["a query has no .mutate"]
    unknown_status = reasons["a status that does not exist"]
    assert "'\"LIVE\"' is not assignable to type 'SessionStatus'" in unknown_status
    # Subscriptions: `onData` gets `{id, data}`, and `data.type` narrows to one event type.
    other_type = reasons["a field of another event type (PRICE_CHANGED's) on a HIGHLIGHTED event"]
    assert "Property 'unitPrice' does not exist on type '{ batchId: number | null; }'" in other_type
    unknown_type = reasons["an event type the staff stream does not send"]
    assert "'\"CART_UPDATED\"' and '\"CART_CHANGED\"' have no overlap" in unknown_type
    notes = reasons["the client's events never carry the internal notes"]
    assert "Property 'internalNotes' does not exist" in notes
    no_query = reasons["a subscription has no .query"]
    assert "Property 'query' does not exist on type '{ subscribe:" in no_query
    no_room = reasons["onRoomEvent needs its roomCode"]
    assert "'sessionId' does not exist in type 'RoomEvents'" in no_room


def run_compiled(frontend: Path, out: Path, program: str, scenario: dict[str, Any]) -> Any:
    """Compile the programs into `out`, run `program`'s `run(scenario)`, return its outcome."""
    compiled = tsc(frontend, "--outDir", str(out))
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    # The compiled program imports @trpc/client from the tree's node_modules.
    (out / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)
    (out / "package.json").write_text('{"type": "module"}\n')
    done = subprocess.run(
        ["node", str(PROGRAMS / "run.mjs"), str(out / "tests" / "typed_clients" / program)],
        input=json.dumps(scenario),
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_generated_client_maker_calls_a_real_server(
    frontend: Path, shop: Shop, tmp_path: Path
) -> None:
    scenario = {
        "url": f"{shop.base_url}/trpc",
        "staffToken": shop.tokens.staff,
        "clientToken": shop.tokens.client(shop.client_id),
        "clientId": shop.client_id,
        "batchId": shop.batch_id,
    }
    outcome = run_compiled(frontend, tmp_path / "out", "program.js", scenario)
    assert outcome["health"] == "ok"
    assert outcome["sessionStatus"] == "ACTIVE"
    assert [Decimal(q) for q in outcome["quantities"]] == [Decimal(2), Decimal("0.5")]
    assert Decimal(outcome["subtotal"]) == Decimal("25.00")  # the sample bills 0.00
    assert isinstance(outcome["activeSessionId"], int)
    assert (outcome["notFoundCode"], outcome["notFoundHttpStatus"]) == ("NOT_FOUND", 404)


def test_the_generated_client_maker_follows_a_live_session_with_typed_events(
    frontend: Path, shop: Shop, tmp_path: Path
) -> None:
    scenario = {
        "url": f"{shop.base_url}/trpc",
        "staffToken": shop.tokens.staff,
        "clientId": shop.client_id,
        "batchId": shop.batch_id,
    }
    outcome = run_compiled(frontend, tmp_path / "out", "live.js", scenario)
    # "<id> <type>: <describe()>"; the stream's own arrival (PRESENCE, and the deadline it
    # keeps) comes on the server's schedule.
    lines = [line.split(" ", 2) for line in outcome["seen"]]
    changes = [(t, text) for _, t, text in lines if t not in {"PRESENCE:", "HOLDS_EXTENDED:"}]
    assert changes == [
        ("SESSION_SNAPSHOT:", changes[0][1]),
        ("CART_UPDATED:", changes[1][1]),
    ]
    assert changes[0][1].startswith("session ") and changes[1][1].endswith(": 1.5000")
    ids = [int(event_id) for event_id, _, _ in lines]
    assert ids == sorted(ids)
    assert outcome["withoutCredentials"] == "UNAUTHORIZED"


# --- Python: the generated client under mypy --strict -----------------------------------------


def test_a_python_program_using_the_client_passes_mypy_strict(tmp_path: Path) -> None:
    # warn_unused_ignores (part of --strict) fails each `# type: ignore[code]` that is not an
    # error of that code, so the refused lines are proven too.
    program = PROGRAMS / "python_program.py"
    cache = tmp_path / "cache"
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), str(program)],
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(PYTHON_CLIENT)},
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_python_program_catches_a_real_not_found_with_except_not_found(shop: Shop) -> None:
    ids = [str(shop.client_id), str(shop.batch_id)]
    done = subprocess.run(
        [
            sys.executable,
            str(PROGRAMS / "python_program.py"),
            shop.base_url,
            shop.tokens.staff,
            *ids,
        ],
        env={**os.environ, "PYTHONPATH": str(PYTHON_CLIENT)},
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcome: dict[str, Any] = json.loads(done.stdout)
    assert outcome["notFound"] == {
        "class": "NotFound",
        "code": "NOT_FOUND",
        "httpStatus": 404,
        "path": "liveShopping.getSession",
    }
    assert outcome["preconditionFailed"]
    assert outcome["rpcError"] == {"class": "NotFound", "code": "NOT_FOUND"}
    assert outcome["statuses"] == ["PAUSED", "ACTIVE"]
    assert [Decimal(q) for q in outcome["quantities"]] == [Decimal(2), Decimal("0.5")]
    assert outcome["subtotalIsDecimal"] is True
    # The session's events as the program's typed `match` described them, replayed from the start.
    batch = shop.batch_id
    assert outcome["events"] == [
        "status new -> ACTIVE",
        f"line {batch} 2.0000, subtotal 25.00",
        f"line {batch} 0.5000, subtotal 25.00",  # a sample: it bills nothing
        "status ACTIVE -> PAUSED",
        "status PAUSED -> ACTIVE",
    ]
