"""The generated client (clients/) drives a real server, and stays in step with the registry."""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import enum
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

import httpx
import msgspec
import pytest

from app.auth import TokenService
from app.codegen import MARKER, generate, python_client, render_clients
from app.codegen.model import CodegenError, build_api
from app.codegen.runtime import errors as runtime_errors
from app.codegen.trpc_router import trpc_router_module
from app.config import Settings
from app.events.schema import EVENT_UNIONS
from app.rpc.context import CallContext
from app.rpc.registry import Input, Namespace, NoInput, Output, Registry
from tests.conftest import BASE_ENV, Tokens, make_settings

ROOT = Path(__file__).resolve().parents[1]
CLIENT_ROOT = ROOT / "clients" / "python"
PACKAGE_DIR = CLIENT_ROOT / "live_shopping_client"
sys.path.insert(0, str(CLIENT_ROOT))  # the client is its own distribution, not part of app

from live_shopping_client import (  # noqa: E402
    AsyncLiveShoppingClient,
    BadRequest,
    Forbidden,
    LiveShoppingClient,
    LiveShoppingError,
    NotFound,
    PreconditionFailed,
    RpcError,
    TransportError,
    Unauthorized,
)
from live_shopping_client.models import (  # noqa: E402
    ClientSessionWithCart,
    EndSessionOut,
    OrderLineIn,
    SessionStatus,
)

READY_TIMEOUT_S = 20.0
_SETTING_NAMES = frozenset(f.encode_name for f in msgspec.structs.fields(Settings))


# --- a real server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    base_url: str
    tokens: Tokens


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`python -m app migrate` then `python -m app serve` on a fresh SQLite file."""
    workdir = tmp_path_factory.mktemp("served")
    database_url = f"sqlite+aiosqlite:///{workdir / 'x.db'}"
    # The server sees only the settings given here, none inherited from the test run.
    inherited = {k: v for k, v in os.environ.items() if k not in _SETTING_NAMES}
    env = {**inherited, **BASE_ENV, "DATABASE_URL": database_url}
    app = [sys.executable, "-m", "app"]
    subprocess.run([*app, "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
    port = _free_port()
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*app, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(base_url, process, log_path)
        yield Server(base_url, Tokens(TokenService(make_settings(database_url))))
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_until_serving(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with LiveShoppingClient(base_url, timeout=1.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"server exited early:\n{log.read_text(errors='replace')}")
            try:
                client.system.health()
                return
            except TransportError:
                time.sleep(0.05)
    pytest.fail(f"server did not answer in {READY_TIMEOUT_S} s:\n{log.read_text()}")


# --- against the server -------------------------------------------------------------------------


def test_sync_client_creates_and_reads_back_catalog_clients_and_orders(server: Server) -> None:
    with LiveShoppingClient(server.base_url, token=server.tokens.admin) as admin:
        product = admin.catalog.create_product(
            name="Silk Scarf", sku="SYNC-1", list_price=Decimal("100.00")
        )
        batch = admin.catalog.create_batch(
            product_id=product.id,
            code="SYNC-1-A",
            on_hand_qty=Decimal("10.5"),
            unit_cogs=Decimal(20),
        )
        client = admin.clients.create(
            name="Ada", credit_limit=Decimal("5000"), price_adjustment_percent=Decimal("-10")
        )

        [stored_batch] = admin.catalog.list_batches(product_id=product.id)
        assert stored_batch.id == batch.id
        assert stored_batch.on_hand_qty == Decimal("10.5")
        assert isinstance(stored_batch.on_hand_qty, Decimal)
        stored_client = admin.clients.get(client_id=client.id)
        assert stored_client.credit_limit == Decimal("5000")
        assert stored_client.price_adjustment_percent == Decimal("-10")

        created = admin.orders.create(
            client_id=client.id,
            lines=[OrderLineIn(batch_id=batch.id, quantity=Decimal(3))],
            payment_terms="NET30",
        )
        order = admin.orders.get(order_id=created.order_id)
    assert order.total == Decimal("270.00")
    assert isinstance(order.total, Decimal)
    assert order.lines[0].unit_price == Decimal("90.00")
    assert order.payment_terms == "NET30"
    assert order.created_at.tzinfo is not None


async def test_async_client_runs_a_live_session_from_both_sides(server: Server) -> None:
    tokens = server.tokens
    async with AsyncLiveShoppingClient(server.base_url, token=tokens.admin) as admin:
        product = await admin.catalog.create_product(
            name="Tea", sku="ASYNC-1", list_price=Decimal("12.50")
        )
        batch = await admin.catalog.create_batch(
            product_id=product.id, code="ASYNC-1-A", on_hand_qty=Decimal(8), unit_cogs=Decimal(4)
        )
        client = await admin.clients.create(name="Grace", price_adjustment_percent=Decimal(-10))

    async with AsyncLiveShoppingClient(server.base_url, token=tokens.staff) as staff:
        session = await staff.live_shopping.create_session(client_id=client.id, title="Tea time")
        cart = await staff.live_shopping.add_to_cart(
            session_id=session.session_id, batch_id=batch.id, quantity=Decimal("1.5")
        )
        assert cart.items[0].quantity == Decimal("1.5")
        assert cart.items[0].unit_price == Decimal("11.25")  # 12.50 less 10 %

        async with AsyncLiveShoppingClient(server.base_url, token=tokens.client(client.id)) as vip:
            joined = await vip.vip_portal_live_shopping.get_session_by_room_code(
                room_code=session.room_code
            )
        assert isinstance(joined, ClientSessionWithCart)
        assert joined.session.status is SessionStatus.ACTIVE
        assert [line.batch_id for line in joined.cart.items] == [batch.id]

        ended = await staff.live_shopping.end_session(
            session_id=session.session_id, convert_to_order=True
        )
        assert isinstance(ended, EndSessionOut)
        assert ended.status is SessionStatus.CONVERTED
        assert ended.order_id is not None
        order = await staff.orders.get(order_id=ended.order_id)
    assert order.session_id == session.session_id
    assert order.total == Decimal("16.88")  # 1.5 x 11.25, rounded half up


def test_each_error_code_raises_its_own_class_under_rpc_error(server: Server) -> None:
    with LiveShoppingClient(server.base_url, token=server.tokens.staff) as staff:
        with pytest.raises(NotFound) as missing:
            staff.clients.get(client_id=987654)
        with pytest.raises(BadRequest) as invalid:
            staff.live_shopping.add_to_cart(session_id=1, batch_id=1, quantity=0)
    assert (missing.value.code, missing.value.rpc_code, missing.value.http_status) == (
        "NOT_FOUND",
        -32004,
        404,
    )
    assert missing.value.data["path"] == "clients.get"
    assert invalid.value.code == "BAD_REQUEST"
    assert invalid.value.rpc_code == -32602
    assert invalid.value.issues[0]["path"] == "$.quantity"

    with LiveShoppingClient(server.base_url) as anonymous, pytest.raises(Unauthorized) as unauth:
        anonymous.catalog.create_product(name="X", sku="X", list_price=1)
    assert (unauth.value.code, unauth.value.rpc_code, unauth.value.http_status) == (
        "UNAUTHORIZED",
        -32001,
        401,
    )
    # The one class of before still catches them all, by its `code`.
    for raised in (missing, invalid, unauth):
        assert isinstance(raised.value, RpcError)
        assert isinstance(raised.value, LiveShoppingError)


async def test_async_client_raises_the_same_errors(server: Server) -> None:
    async with AsyncLiveShoppingClient(server.base_url, token=server.tokens.staff) as staff:
        client = await staff.clients.create(name="Linus")
    client_token = server.tokens.client(client.id)
    async with AsyncLiveShoppingClient(server.base_url, token=client_token) as vip:
        with pytest.raises(Forbidden) as forbidden:
            await vip.catalog.list_products()
        with pytest.raises(NotFound) as not_found:
            await vip.vip_portal_live_shopping.get_session_by_room_code(room_code="NOPE")
    assert (forbidden.value.code, forbidden.value.http_status) == ("FORBIDDEN", 403)
    assert (not_found.value.code, not_found.value.http_status) == ("NOT_FOUND", 404)


def test_a_business_rule_refusal_is_precondition_failed(server: Server) -> None:
    with LiveShoppingClient(server.base_url, token=server.tokens.admin) as admin:
        product = admin.catalog.create_product(name="Rare", sku="RULE-1", list_price="5")
        batch = admin.catalog.create_batch(
            product_id=product.id, code="RULE-1-A", on_hand_qty=1, unit_cogs=1
        )
        client = admin.clients.create(name="Hopper")
        session = admin.live_shopping.create_session(client_id=client.id)
        with pytest.raises(PreconditionFailed) as refused:
            admin.live_shopping.add_to_cart(
                session_id=session.session_id, batch_id=batch.id, quantity="1.5"
            )
    assert refused.value.http_status == 412


def test_decimal_params_take_ints_and_strings_and_enum_params_their_values(
    server: Server,
) -> None:
    with LiveShoppingClient(server.base_url, token=server.tokens.admin) as admin:
        product = admin.catalog.create_product(name="Jam", sku="WIRE-1", list_price="7.25")
        batch = admin.catalog.create_batch(
            product_id=product.id, code="WIRE-1-A", on_hand_qty=12, unit_cogs=Decimal("2.5")
        )
        client = admin.clients.create(name="Noether", price_adjustment_percent="-10")
        session = admin.live_shopping.create_session(client_id=client.id)
        cart = admin.live_shopping.add_to_cart(
            session_id=session.session_id, batch_id=batch.id, quantity="1.5"
        )
        paused = admin.live_shopping.update_session_status(
            session_id=session.session_id, status="PAUSED"
        )
        listed = admin.live_shopping.list_sessions(status="PAUSED", client_id=client.id)
    assert cart.items[0].quantity == Decimal("1.5")
    assert cart.items[0].unit_price == Decimal("6.53")  # 7.25 less 10 %, rounded half up
    assert paused.session.status is SessionStatus.PAUSED
    assert [s.id for s in listed] == [session.session_id]


# --- when no answer arrives -------------------------------------------------------------------


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A port that accepts connections and never answers (as a hung server does)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_an_unreachable_server_raises_transport_error() -> None:
    client = LiveShoppingClient(f"http://127.0.0.1:{_free_port()}")
    with client, pytest.raises(TransportError) as failed:
        client.system.health()
    assert not failed.value.timed_out
    assert isinstance(failed.value.__cause__, httpx.ConnectError)
    assert not isinstance(failed.value, RpcError)
    assert isinstance(failed.value, LiveShoppingError)
    assert "system.health" in str(failed.value)


def test_a_call_timeout_replaces_the_clients_for_that_call() -> None:
    with silent_server() as url, LiveShoppingClient(url, timeout=30.0) as client:
        started = time.monotonic()
        with pytest.raises(TransportError) as failed:
            client.system.health(timeout=0.2)
    assert failed.value.timed_out
    assert time.monotonic() - started < 5.0


async def test_the_async_client_wraps_transport_failures_too() -> None:
    with silent_server() as url:
        async with AsyncLiveShoppingClient(url, timeout=30.0) as client:
            with pytest.raises(TransportError) as failed:
                await client.system.health(timeout=0.2)
    assert failed.value.timed_out


def test_public_procedures_need_no_token(server: Server) -> None:
    with LiveShoppingClient(server.base_url) as anonymous:
        assert anonymous.system.health().status == "ok"
        document = anonymous.rpc.discover()
    assert document["openrpc"].startswith("1.3")


# --- the committed tree -------------------------------------------------------------------------


def test_gen_client_check_passes_on_the_committed_tree() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "gen-client", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_names_changed_missing_and_stale_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate(check=False, root=tmp_path) == 0
    assert generate(check=True, root=tmp_path) == 0
    package = tmp_path / "clients/python/live_shopping_client"
    (package / "models.py").write_text((package / "models.py").read_text() + "# edited\n")
    (tmp_path / "clients/typescript/live-shopping.ts").unlink()
    (package / "old_module.py").write_text(f"# {MARKER}\n")
    (package / "notes.md").write_text("written by hand, not generated\n")
    capsys.readouterr()

    assert generate(check=True, root=tmp_path) == 1

    report = capsys.readouterr().err
    assert "changed  clients/python/live_shopping_client/models.py" in report
    assert "missing  clients/typescript/live-shopping.ts" in report
    assert "stale    clients/python/live_shopping_client/old_module.py" in report
    assert "notes.md" not in report
    assert generate(check=False, root=tmp_path) == 0
    assert not (package / "old_module.py").exists()
    assert (package / "notes.md").exists()
    assert generate(check=True, root=tmp_path) == 0


def test_every_generated_file_says_it_is_generated() -> None:
    for path in render_clients():
        first_line = (ROOT / path).read_text().splitlines()[0]
        assert MARKER in first_line, path


def test_the_python_client_imports_only_what_its_pyproject_declares() -> None:
    declared = tomllib.loads((CLIENT_ROOT / "pyproject.toml").read_text())["project"]
    requirements = {re.split(r"[<>=!~;\[ ]", r)[0] for r in declared["dependencies"]}
    assert requirements == {"msgspec", "httpx", "httpx-sse", "stamina"}
    allowed = set(sys.stdlib_module_names) | {r.replace("-", "_") for r in requirements}
    for path in PACKAGE_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{path.name} imports {roots - allowed}"


# --- whatever gets registered -------------------------------------------------------------------
# Procedures other engineers may add use any type msgspec can carry; the generator must
# produce a client that imports, lints clean and decodes what the server would send.


class Color(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Cat(Output, tag="cat"):
    name: str


class Dog(Output, tag="dog"):
    barks: bool


class Node(Output):
    value: int
    children: list[Node] = []


T = TypeVar("T")


class Page(Output, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class Money(msgspec.Struct, rename="camel", kw_only=True):
    """Used both ways: a TypeScript `MoneyInput` accepts numbers."""

    amount: Decimal
    currency_code: str = "EUR"


class Everything(Input):
    color: Color = Color.RED
    level: Level | None = None
    mode: Literal["a", "b"] = "a"
    when: datetime | None = None
    day: date | None = None
    ident: UUID | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    weights: dict[str, Decimal] = {}
    pair: tuple[int, str] | None = None
    maybe: int | msgspec.UnsetType = msgspec.UNSET
    amount: Decimal = Decimal("1.50")
    price: Money | None = None
    odd: int = msgspec.field(default=0, name="ODD_name")


# Two types both called Item, as two procedure modules might each define one.
AlphaItem = msgspec.defstruct("Item", [("a", int)], bases=(Output,), module="procedures.alpha")
BetaItem = msgspec.defstruct("Item", [("b", str)], bases=(Output,), module="procedures.beta")


class Report(Output, omit_defaults=True):
    pets: list[Cat | Dog]
    page: Page[Node]
    total: Money
    items: tuple[AlphaItem, BetaItem] | None = None
    level: Level = Level.LOW
    note: str | None = None


class Left(Output):
    a: int


class Right(Output):
    b: int


def _exotic_registry() -> Registry:
    registry = Registry()
    ns = Namespace("exoticThings", registry=registry)

    async def report(ctx: CallContext, params: Everything) -> Report:
        raise NotImplementedError

    async def maybe_node(ctx: CallContext, params: NoInput) -> Node | None:
        raise NotImplementedError

    async def list_(ctx: CallContext, params: NoInput) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def status(ctx: CallContext, params: NoInput) -> Literal["up", "down"]:
        raise NotImplementedError

    ns.mutation("report", roles=None)(report)
    ns.query("maybeNode", roles=None)(maybe_node)
    ns.query("list", roles=None)(list_)
    ns.query("status", roles=None)(status)
    return registry


_EXERCISE = """
import asyncio, decimal, msgspec
from live_shopping_client import LiveShoppingClient
from live_shopping_client import client as c, models as m

report = c._EXOTIC_THINGS_REPORT.decoder.decode(
    b'{"pets":[{"type":"dog","barks":true},{"type":"cat","name":"Tom"}],'
    b'"page":{"items":[{"value":1,"children":[{"value":2}]}],"nextCursor":null},'
    b'"total":{"amount":"2.50"}}'
)
assert isinstance(report.pets[0], m.Dog) and report.pets[1].name == "Tom"
assert report.page.items[0].children[0].value == 2 and report.level is m.Level.LOW
assert report.total == m.Money(amount=decimal.Decimal("2.50"), currency_code="EUR")
assert c._EXOTIC_THINGS_MAYBE_NODE.decoder.decode(b"null") is None
assert c._EXOTIC_THINGS_STATUS.decoder.decode(b'"up"') == "up"
sent = msgspec.json.decode(msgspec.json.encode(m.Everything(odd=3, tags=["x"])))
assert sent["ODD_name"] == 3 and sent["amount"] == "1.50" and sent["color"] == "red", sent
assert "maybe" not in sent and sent["tags"] == ["x"]
assert callable(LiveShoppingClient("http://x").exotic_things.list)
"""


def test_generator_handles_unions_generics_enums_literals_and_clashing_names(
    tmp_path: Path,
) -> None:
    files = render_clients(_exotic_registry())
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    client_root = tmp_path / "clients" / "python"

    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(ROOT / "pyproject.toml"), "."],
        cwd=client_root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    exercised = subprocess.run(
        [sys.executable, "-c", _EXERCISE],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(client_root)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert exercised.returncode == 0, exercised.stderr

    models = files["clients/python/live_shopping_client/models.py"]
    assert "class PageOfNode(msgspec.Struct" in models
    assert "class AlphaItem(msgspec.Struct" in models
    assert "items: tuple[AlphaItem, BetaItem] | None = None" in models
    assert 'odd: int = msgspec.field(default=0, name="ODD_name")' in models
    client = files["clients/python/live_shopping_client/client.py"]
    assert (
        "def list(\n"
        "        self, *, timeout: float | None = None, retry: RetrySetting | None = None\n"
        "    ) -> builtins.list[dict[str, Any]]:"
    ) in client
    # Params take what the wire takes; a type also decoded (Money) keeps what msgspec decodes.
    assert 'amount: Decimal | int | str = Decimal("1.50")' in models
    assert "weights: dict[str, Decimal | int | str] = msgspec.field(default_factory=dict)" in models
    assert "color: Color | ColorValue = Color.RED" in models
    assert "level: Level | LevelValue | None = None" in models
    money = models[models.index("class Money(") :]
    assert money.splitlines()[3] == "    amount: Decimal"
    typescript = files["clients/typescript/live-shopping.ts"]
    assert "export interface MoneyInput {\n  amount: string | number;" in typescript
    assert "export interface Money {\n  amount: string;" in typescript
    assert "price?: MoneyInput | null;" in typescript
    assert '"exoticThings.maybeNode": {\n    input: NoInput;\n    output: Node | null;' in (
        typescript
    )
    assert "pets: (Cat | Dog)[];" in typescript


def test_a_result_msgspec_cannot_decode_is_refused_naming_the_procedure() -> None:
    registry = Registry()

    async def either(ctx: CallContext, params: NoInput) -> Left | Right:
        raise NotImplementedError

    Namespace("broken", registry=registry).query("either", roles=None)(either)
    with pytest.raises(CodegenError, match=r"^broken\.either: .*must be tagged"):
        render_clients(registry)


def test_the_runtime_must_have_an_error_class_for_every_code_the_server_sends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    classes = dict(runtime_errors.ERROR_CLASSES)
    del classes["NOT_FOUND"]
    classes["GONE"] = runtime_errors.RpcError
    monkeypatch.setattr(runtime_errors, "ERROR_CLASSES", classes)
    with pytest.raises(CodegenError, match=r"missing: NOT_FOUND; unknown: GONE"):
        render_clients()


def test_a_subscription_is_a_trpc_subscription_and_no_rpc_method() -> None:
    # The registry gains the `subscription` kind (DESIGN.md 2.2); /rpc refuses it, /trpc streams.
    api = build_api(_exotic_registry(), EVENT_UNIONS)
    api.procedures = [
        dataclasses.replace(p, kind="subscription") if p.name == "exoticThings.maybeNode" else p
        for p in api.procedures
    ]
    router = trpc_router_module(api, "// header\n")
    assert 'maybeNode: Subscription<"exoticThings.maybeNode">;' in router
    assert "TRPCSubscriptionProcedure," in router
    assert "maybe_node" not in python_client.client_module(api, "# header\n")


def test_an_event_the_client_cannot_type_is_a_protocol_error_naming_it() -> None:
    from httpx_sse import ServerSentEvent
    from live_shopping_client import ProtocolError
    from live_shopping_client.client import _SESSION_EVENTS
    from live_shopping_client.subscriptions import _Resumption

    follow = _Resumption("http://shop/api/sse/live-shopping/1", {}, None, _SESSION_EVENTS)
    unknown = ServerSentEvent(event="CART_EXPLODED", data='{"cart": {}}', id="3")
    not_known = r"event 3 has a type this client does not know \('CART_EXPLODED'\)"
    with pytest.raises(ProtocolError, match=not_known):
        follow.take(unknown)
    wrong = ServerSentEvent(event="CART_UPDATED", data='{"cart": 1}', id="4")
    with pytest.raises(ProtocolError, match=r"event 4 \(CART_UPDATED\) does not match"):
        follow.take(wrong)
    assert follow.last_event_id is None  # neither counts as delivered
