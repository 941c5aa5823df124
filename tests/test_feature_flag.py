"""FEATURE_LIVE_SHOPPING_ENABLED: unless true, the live shopping procedures do not exist."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

import procedures  # noqa: F401 - importing registers every procedure
from app.auth import TokenService
from app.config import Settings, load_settings
from app.rpc.context import CallContext
from app.rpc.discovery import openrpc_document
from app.rpc.dispatch import Caller, Dispatcher
from app.rpc.errors import ErrorCode
from app.rpc.registry import REGISTRY, Feature, Input, Namespace, Output, Registry
from app.runtime import Services
from app.server import create_app
from tests.conftest import BASE_ENV, Rpc, Tokens
from tests.factories import Shop, rpc_on

GATED_NAMESPACES = ("liveShopping", "vipPortalLiveShopping")

# The procedures DESIGN.md section 3 promises, whether or not they are registered yet.
LIVE_SHOPPING = [
    "createSession", "listSessions", "getSession", "updateSessionStatus", "addToCart",
    "removeFromCart", "updateCartQuantity", "setOverridePrice", "highlightProduct",
    "toggleCartItemSample", "checkCreditStatus", "generateSalesSheet", "endSession",
    "searchInventory", "cancelSession", "createStreamTicket",
]  # fmt: skip
VIP_PORTAL = [
    "getActiveSession", "getSessionByRoomCode", "addToCart", "updateCartQuantity",
    "removeFromCart", "requestCheckout", "searchInventory", "createStreamTicket",
]  # fmt: skip
DESIGNED = {f"liveShopping.{name}" for name in LIVE_SHOPPING} | {
    f"vipPortalLiveShopping.{name}" for name in VIP_PORTAL
}
REGISTERED = {p.name for p in REGISTRY if p.feature is Feature.LIVE_SHOPPING}
GATED = sorted(DESIGNED | REGISTERED)


def settings_with_flag(database_url: str, flag: str | None) -> Settings:
    """The test settings with the flag set to `flag`, or absent when None."""
    env = {k: v for k, v in BASE_ENV.items() if k != "FEATURE_LIVE_SHOPPING_ENABLED"}
    env["DATABASE_URL"] = database_url
    if flag is not None:
        env["FEATURE_LIVE_SHOPPING_ENABLED"] = flag
    return load_settings(env)


@pytest.fixture(params=["false", None], ids=["flag-false", "flag-absent"])
async def disabled_rpc(request: pytest.FixtureRequest, sqlite_url: str) -> AsyncIterator[Rpc]:
    settings = settings_with_flag(sqlite_url, request.param)
    assert settings.live_shopping_enabled is False
    async with AsyncTestClient(app=create_app(settings)) as http:
        yield Rpc(http, Tokens(TokenService(settings)))


def discovered(document: dict[str, object]) -> set[str]:
    methods = document["methods"]
    assert isinstance(methods, list)
    return {method["name"] for method in methods}


def test_every_registered_live_shopping_procedure_is_behind_the_flag() -> None:
    assert REGISTERED, "no live shopping procedure is registered"
    ungated = {p.name for p in REGISTRY if p.namespace in GATED_NAMESPACES and p.feature is None}
    assert ungated == set()


async def test_when_disabled_every_live_shopping_method_is_not_found_over_json_rpc(
    disabled_rpc: Rpc,
) -> None:
    answers = {}
    for method in GATED:
        token = disabled_rpc.tokens.admin
        if method.startswith("vipPortalLiveShopping."):
            token = disabled_rpc.tokens.client(1)
        response = await disabled_rpc.post(
            {"jsonrpc": "2.0", "id": 1, "method": method, "params": {}}, token
        )
        error = response.json()["error"]
        answers[method] = (response.status_code, error["code"], error["data"]["code"])
    assert answers == {method: (404, -32601, "METHOD_NOT_FOUND") for method in GATED}


async def test_when_disabled_every_live_shopping_method_is_not_found_over_get_and_trpc(
    disabled_rpc: Rpc,
) -> None:
    headers = {"authorization": f"Bearer {disabled_rpc.tokens.admin}"}
    statuses = {}
    for method in GATED:
        for path in (f"/rpc/{method}", f"/trpc/{method}"):
            response = await disabled_rpc.http.get(path, headers=headers)
            statuses[path] = (response.status_code, response.json()["error"]["data"]["code"])
    # Each transport in its own words: JSON-RPC's METHOD_NOT_FOUND, tRPC's NOT_FOUND.
    assert {(path.split("/")[1], answer) for path, answer in statuses.items()} == {
        ("rpc", (404, "METHOD_NOT_FOUND")),
        ("trpc", (404, "NOT_FOUND")),
    }


async def test_when_disabled_rpc_discover_lists_no_live_shopping_method(
    disabled_rpc: Rpc,
) -> None:
    names = discovered(await disabled_rpc.call("rpc.discover"))
    assert "clients.list" in names
    assert {name for name in names if name.startswith(GATED_NAMESPACES)} == set()


async def test_when_enabled_the_live_shopping_methods_exist_and_are_discovered(
    rpc: Rpc,
) -> None:
    assert await rpc.staff("liveShopping.listSessions", {}) is not None
    names = discovered(await rpc.call("rpc.discover"))
    assert names >= REGISTERED


# --- the gating mechanism itself, over a throwaway registry ---------------------------------


class Ping(Input):
    word: str = "ping"


class Pong(Output):
    word: str


def throwaway_registry() -> Registry:
    registry = Registry()
    gated = Namespace("liveShopping", feature=Feature.LIVE_SHOPPING, registry=registry)
    always = Namespace("system", registry=registry)

    @gated.query("echo", roles=None)
    async def gated_echo(ctx: CallContext, params: Ping) -> Pong:
        return Pong(word=params.word)

    @always.query("echo", roles=None)
    async def always_echo(ctx: CallContext, params: Ping) -> Pong:
        return Pong(word=params.word)

    return registry


@asynccontextmanager
async def dispatcher_with_flag(tmp_path: Path, flag: str) -> AsyncIterator[Dispatcher]:
    # The gated calls never open a database session; the URL only has to be valid.
    services = Services.create(settings_with_flag(f"sqlite+aiosqlite:///{tmp_path}/x.db", flag))
    try:
        yield Dispatcher(services, throwaway_registry())
    finally:
        await services.close()


CALLER = Caller(authorization=None, request_id="flag-test")


async def test_a_feature_procedure_is_callable_and_discovered_when_its_feature_is_on(
    tmp_path: Path,
) -> None:
    async with dispatcher_with_flag(tmp_path, "true") as dispatcher:
        outcome = await dispatcher.call("liveShopping.echo", b'{"word":"hi"}', CALLER)
        assert (outcome.result, outcome.error) == (b'{"word":"hi"}', None)
        names = discovered(openrpc_document(dispatcher.registry))
        assert names == {"liveShopping.echo", "system.echo"}


async def test_a_feature_procedure_is_not_found_and_undiscovered_when_its_feature_is_off(
    tmp_path: Path,
) -> None:
    async with dispatcher_with_flag(tmp_path, "false") as dispatcher:
        gated = await dispatcher.call("liveShopping.echo", b'{"word":"hi"}', CALLER)
        always = await dispatcher.call("system.echo", b'{"word":"hi"}', CALLER)
        assert gated.error is not None
        assert gated.error.code is ErrorCode.METHOD_NOT_FOUND
        assert gated.error.code.http_status == 404
        assert always.result == b'{"word":"hi"}'
        assert discovered(openrpc_document(dispatcher.registry)) == {"system.echo"}


# --- the sales sheet page -------------------------------------------------------------------


async def test_when_disabled_a_sales_sheet_link_answers_the_not_found_page(
    sqlite_url: str,
) -> None:
    async with rpc_on(sqlite_url) as enabled:
        shop = Shop(enabled)
        room = await shop.session(await shop.customer())
        await shop.add(room, await shop.stock(), "1")
        sheet = await enabled.staff("liveShopping.generateSalesSheet", {"sessionId": room.id})
        path = "/" + sheet["shareUrl"].split("://", 1)[-1].partition("/")[2]
        assert (await enabled.http.get(path)).status_code == 200
        unknown = await enabled.http.get("/sales-sheets/no-such-sheet")
        assert unknown.status_code == 404

    async with rpc_on(sqlite_url, FEATURE_LIVE_SHOPPING_ENABLED="false") as disabled:
        page = await disabled.http.get(path)
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert page.text == unknown.text
