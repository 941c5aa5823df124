"""Who may call what: every registered procedure against every kind of caller, as one table.

DESIGN.md 3: ADMIN can do everything; STAFF hosts sessions and may change only the sessions it
hosts (reads of any session are fine); a CLIENT acts only in its own sessions, and a session it
does not own answers NOT_FOUND (no existence oracle); anonymous callers get UNAUTHORIZED except
on public procedures. The matrix below is built from the registry, so a procedure added
without a row fails here until someone decides who may call it.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient

import procedures  # noqa: F401 - importing registers every procedure
from app.auth import TokenService
from app.rpc.registry import REGISTRY, Kind
from app.server import create_app
from tests.conftest import Rpc, RpcFailure, Tokens, make_settings

# --- the callers ----------------------------------------------------------------------------

ADMIN = "ADMIN"
HOST = "HOST"  # STAFF, sub 2: hosts the session under test
OTHER_STAFF = "OTHER_STAFF"  # STAFF, sub 3: hosts nothing here
OWNER = "OWNER"  # CLIENT whose session it is
FOREIGN_CLIENT = "FOREIGN_CLIENT"  # another client's token
ANONYMOUS = "ANONYMOUS"
CALLERS = (ADMIN, HOST, OTHER_STAFF, OWNER, FOREIGN_CLIENT, ANONYMOUS)

OK = "OK"
UNAUTHORIZED = "UNAUTHORIZED"
FORBIDDEN = "FORBIDDEN"
NOT_FOUND = "NOT_FOUND"

# --- the kinds of rows ----------------------------------------------------------------------

PUBLIC = {ADMIN: OK, HOST: OK, OTHER_STAFF: OK, OWNER: OK, FOREIGN_CLIENT: OK, ANONYMOUS: OK}
ADMIN_ONLY = {
    ADMIN: OK,
    HOST: FORBIDDEN,
    OTHER_STAFF: FORBIDDEN,
    OWNER: FORBIDDEN,
    FOREIGN_CLIENT: FORBIDDEN,
    ANONYMOUS: UNAUTHORIZED,
}
ANY_STAFF = {
    ADMIN: OK,
    HOST: OK,
    OTHER_STAFF: OK,
    OWNER: FORBIDDEN,
    FOREIGN_CLIENT: FORBIDDEN,
    ANONYMOUS: UNAUTHORIZED,
}
HOST_OR_ADMIN = {
    ADMIN: OK,
    HOST: OK,
    OTHER_STAFF: FORBIDDEN,
    OWNER: FORBIDDEN,
    FOREIGN_CLIENT: FORBIDDEN,
    ANONYMOUS: UNAUTHORIZED,
}
ANY_CLIENT = {
    ADMIN: FORBIDDEN,
    HOST: FORBIDDEN,
    OTHER_STAFF: FORBIDDEN,
    OWNER: OK,
    FOREIGN_CLIENT: OK,
    ANONYMOUS: UNAUTHORIZED,
}
ROOM_OWNER = {
    ADMIN: FORBIDDEN,
    HOST: FORBIDDEN,
    OTHER_STAFF: FORBIDDEN,
    OWNER: OK,
    FOREIGN_CLIENT: NOT_FOUND,  # never FORBIDDEN: that would confirm the room exists
    ANONYMOUS: UNAUTHORIZED,
}

# --- the matrix: procedure -> caller -> outcome ---------------------------------------------

MATRIX: dict[str, dict[str, str]] = {
    # catalog: writes and batch costs are ADMIN's; staff may browse products.
    "catalog.createProduct": ADMIN_ONLY,
    "catalog.updateProduct": ADMIN_ONLY,
    "catalog.listProducts": ANY_STAFF,
    "catalog.createBatch": ADMIN_ONLY,
    "catalog.updateBatch": ADMIN_ONLY,
    "catalog.listBatches": ADMIN_ONLY,
    # clients and orders: staff work, never a client's.
    "clients.create": ANY_STAFF,
    "clients.update": ANY_STAFF,
    "clients.get": ANY_STAFF,
    "clients.list": ANY_STAFF,
    "orders.create": ANY_STAFF,
    "orders.get": ANY_STAFF,
    "orders.list": ANY_STAFF,
    # liveShopping: any staff may open a session and read any session...
    "liveShopping.createSession": ANY_STAFF,
    "liveShopping.listSessions": ANY_STAFF,
    "liveShopping.getSession": ANY_STAFF,
    "liveShopping.checkCreditStatus": ANY_STAFF,
    "liveShopping.searchInventory": ANY_STAFF,
    "liveShopping.createStreamTicket": ANY_STAFF,  # watching is reading
    "liveShopping.getTimeline": ANY_STAFF,  # the full story, notes included, is staff's
    "liveShopping.onSessionEvent": ANY_STAFF,  # following is reading
    # ...but only its host (or an ADMIN) may change it.
    "liveShopping.updateSessionStatus": HOST_OR_ADMIN,
    "liveShopping.cancelSession": HOST_OR_ADMIN,
    "liveShopping.endSession": HOST_OR_ADMIN,
    "liveShopping.addToCart": HOST_OR_ADMIN,
    "liveShopping.updateCartQuantity": HOST_OR_ADMIN,
    "liveShopping.removeFromCart": HOST_OR_ADMIN,
    "liveShopping.setOverridePrice": HOST_OR_ADMIN,
    "liveShopping.highlightProduct": HOST_OR_ADMIN,
    "liveShopping.toggleCartItemSample": HOST_OR_ADMIN,
    "liveShopping.generateSalesSheet": HOST_OR_ADMIN,
    "liveShopping.updateSession": HOST_OR_ADMIN,
    "liveShopping.extendHolds": HOST_OR_ADMIN,
    "liveShopping.respondToCheckout": HOST_OR_ADMIN,
    # vipPortalLiveShopping: clients only, and only in their own room.
    "vipPortalLiveShopping.getActiveSession": ANY_CLIENT,
    "vipPortalLiveShopping.searchInventory": ANY_CLIENT,
    "vipPortalLiveShopping.getSessionByRoomCode": ROOM_OWNER,
    "vipPortalLiveShopping.addToCart": ROOM_OWNER,
    "vipPortalLiveShopping.updateCartQuantity": ROOM_OWNER,
    "vipPortalLiveShopping.removeFromCart": ROOM_OWNER,
    "vipPortalLiveShopping.requestCheckout": ROOM_OWNER,
    "vipPortalLiveShopping.createStreamTicket": ROOM_OWNER,
    "vipPortalLiveShopping.getTimeline": ROOM_OWNER,
    "vipPortalLiveShopping.onRoomEvent": ROOM_OWNER,
    # health and discovery need no token.
    "system.health": PUBLIC,
    "rpc.discover": PUBLIC,
}

# --- the world every cell runs in -----------------------------------------------------------

_serial = itertools.count(1)


@dataclass(frozen=True)
class Scene:
    """A fresh ACTIVE session hosted by staff 2 for client A, with one line from each side."""

    session_id: int
    room_code: str
    client_line: int
    host_line: int


@dataclass
class World:
    rpc: Rpc
    client_a: int
    client_b: int
    product_id: int
    batch_x: int
    batch_y: int
    order_id: int

    def token(self, caller: str) -> str | None:
        tokens = self.rpc.tokens
        return {
            ADMIN: tokens.admin,
            HOST: tokens.staff,
            OTHER_STAFF: tokens.other_staff,
            OWNER: tokens.client(self.client_a),
            FOREIGN_CLIENT: tokens.client(self.client_b),
            ANONYMOUS: None,
        }[caller]

    async def scene(self, client_id: int | None = None, *, checkout: bool = False) -> Scene:
        """With `checkout`, the client has asked to check out and waits for an answer."""
        client_id = client_id or self.client_a
        created = await self.rpc.staff(
            "liveShopping.createSession",
            {"clientId": client_id, "title": "Preview", "internalNotes": "pays late"},
        )
        room = created["roomCode"]
        await self.rpc.call(
            "vipPortalLiveShopping.addToCart",
            {"roomCode": room, "batchId": self.batch_x, "quantity": "1"},
            self.rpc.tokens.client(client_id),
        )
        cart = await self.rpc.staff(
            "liveShopping.addToCart",
            {"sessionId": created["sessionId"], "batchId": self.batch_y, "quantity": "1"},
        )
        by_role = {line["addedByRole"]: line["id"] for line in cart["items"]}
        if checkout:
            await self.rpc.call(
                "vipPortalLiveShopping.requestCheckout",
                {"roomCode": room},
                self.rpc.tokens.client(client_id),
            )
        return Scene(created["sessionId"], room, by_role["CLIENT"], by_role["HOST"])


async def build_world(rpc: Rpc) -> World:
    coat = await rpc.admin(
        "catalog.createProduct", {"name": "Wool Coat", "sku": "WC-1", "listPrice": "400.00"}
    )
    scarf = await rpc.admin(
        "catalog.createProduct", {"name": "Silk Scarf", "sku": "SS-1", "listPrice": "90.00"}
    )
    batch_x = await rpc.admin(
        "catalog.createBatch",
        {"productId": coat["id"], "code": "WC-1-A", "onHandQty": "1000", "unitCogs": "150.00"},
    )
    batch_y = await rpc.admin(
        "catalog.createBatch",
        {"productId": scarf["id"], "code": "SS-1-A", "onHandQty": "1000", "unitCogs": "30.00"},
    )
    client_a = await rpc.staff("clients.create", {"name": "Ada"})
    client_b = await rpc.staff("clients.create", {"name": "Grace"})
    order = await rpc.staff(
        "orders.create",
        {"clientId": client_a["id"], "lines": [{"batchId": batch_x["id"], "quantity": "1"}]},
    )
    return World(
        rpc=rpc,
        client_a=client_a["id"],
        client_b=client_b["id"],
        product_id=coat["id"],
        batch_x=batch_x["id"],
        batch_y=batch_y["id"],
        order_id=order["orderId"],
    )


# Valid params for each procedure. Those that act on a session get a fresh one (`s`).
Params = Callable[[World], dict[str, Any] | None]
SessionParams = Callable[[World, Scene], dict[str, Any]]

PARAMS: dict[str, Params] = {
    "catalog.createProduct": lambda w: {
        "name": "Linen Shirt",
        "sku": f"LS-{next(_serial)}",
        "listPrice": "60.00",
    },
    "catalog.updateProduct": lambda w: {"productId": w.product_id, "name": "Wool Coat"},
    "catalog.listProducts": lambda w: {},
    "catalog.createBatch": lambda w: {
        "productId": w.product_id,
        "code": f"WC-1-{next(_serial)}",
        "onHandQty": "5",
        "unitCogs": "150.00",
    },
    "catalog.updateBatch": lambda w: {"batchId": w.batch_x, "unitCogs": "150.00"},
    "catalog.listBatches": lambda w: {},
    "clients.create": lambda w: {"name": "Hedy"},
    "clients.update": lambda w: {"clientId": w.client_a, "name": "Ada"},
    "clients.get": lambda w: {"clientId": w.client_a},
    "clients.list": lambda w: {},
    "orders.create": lambda w: {
        "clientId": w.client_a,
        "lines": [{"batchId": w.batch_x, "quantity": "1"}],
    },
    "orders.get": lambda w: {"orderId": w.order_id},
    "orders.list": lambda w: {},
    "liveShopping.createSession": lambda w: {"clientId": w.client_a},
    "liveShopping.listSessions": lambda w: {},
    "liveShopping.searchInventory": lambda w: {},
    "vipPortalLiveShopping.getActiveSession": lambda w: None,
    "vipPortalLiveShopping.searchInventory": lambda w: {},
    "system.health": lambda w: None,
    "rpc.discover": lambda w: None,
}

SESSION_PARAMS: dict[str, SessionParams] = {
    "liveShopping.getSession": lambda w, s: {"sessionId": s.session_id},
    "liveShopping.checkCreditStatus": lambda w, s: {"sessionId": s.session_id},
    "liveShopping.createStreamTicket": lambda w, s: {"sessionId": s.session_id},
    "liveShopping.updateSessionStatus": lambda w, s: {
        "sessionId": s.session_id,
        "status": "PAUSED",
    },
    "liveShopping.cancelSession": lambda w, s: {"sessionId": s.session_id},
    "liveShopping.endSession": lambda w, s: {"sessionId": s.session_id, "convertToOrder": True},
    "liveShopping.addToCart": lambda w, s: {
        "sessionId": s.session_id,
        "batchId": w.batch_x,
        "quantity": "1",
    },
    "liveShopping.updateCartQuantity": lambda w, s: {
        "sessionId": s.session_id,
        "cartItemId": s.host_line,
        "quantity": "2",
    },
    "liveShopping.removeFromCart": lambda w, s: {
        "sessionId": s.session_id,
        "cartItemId": s.host_line,
    },
    "liveShopping.setOverridePrice": lambda w, s: {
        "sessionId": s.session_id,
        "productId": w.product_id,
        "overridePrice": "350.00",
    },
    "liveShopping.highlightProduct": lambda w, s: {
        "sessionId": s.session_id,
        "batchId": w.batch_x,
    },
    "liveShopping.toggleCartItemSample": lambda w, s: {
        "sessionId": s.session_id,
        "cartItemId": s.host_line,
        "isSample": True,
    },
    "liveShopping.generateSalesSheet": lambda w, s: {"sessionId": s.session_id},
    "liveShopping.updateSession": lambda w, s: {
        "sessionId": s.session_id,
        "title": "Private preview",
        "internalNotes": "prefers wool",
    },
    "liveShopping.extendHolds": lambda w, s: {"sessionId": s.session_id, "minutes": 15},
    "liveShopping.respondToCheckout": lambda w, s: {
        "sessionId": s.session_id,
        "accept": True,
        "message": "Wrapping it up",
    },
    "liveShopping.getTimeline": lambda w, s: {"sessionId": s.session_id},
    "liveShopping.onSessionEvent": lambda w, s: {"sessionId": s.session_id},
    "vipPortalLiveShopping.getTimeline": lambda w, s: {"roomCode": s.room_code},
    "vipPortalLiveShopping.onRoomEvent": lambda w, s: {"roomCode": s.room_code},
    "vipPortalLiveShopping.getSessionByRoomCode": lambda w, s: {"roomCode": s.room_code},
    "vipPortalLiveShopping.addToCart": lambda w, s: {
        "roomCode": s.room_code,
        "batchId": w.batch_x,
        "quantity": "1",
    },
    "vipPortalLiveShopping.updateCartQuantity": lambda w, s: {
        "roomCode": s.room_code,
        "cartItemId": s.client_line,
        "quantity": "2",
    },
    "vipPortalLiveShopping.removeFromCart": lambda w, s: {
        "roomCode": s.room_code,
        "cartItemId": s.client_line,
    },
    "vipPortalLiveShopping.requestCheckout": lambda w, s: {"roomCode": s.room_code},
    "vipPortalLiveShopping.createStreamTicket": lambda w, s: {"roomCode": s.room_code},
}

# Procedures whose scene has a checkout request waiting (an answer needs a question).
NEEDS_CHECKOUT_REQUEST = {"liveShopping.respondToCheckout"}


async def outcome(rpc: Rpc, method: str, params: Any, token: str | None) -> str:
    """OK, or the error's code name (after checking the HTTP status agrees with it)."""
    procedure = REGISTRY.get(method)
    if procedure is not None and procedure.kind is Kind.SUBSCRIPTION:
        return await subscription_outcome(rpc, method, params, token)
    try:
        await rpc.call(method, params, token)
    except RpcFailure as failure:
        assert failure.status == failure.error["data"]["httpStatus"], failure.error
        return failure.code
    return OK


async def subscription_outcome(rpc: Rpc, method: str, params: Any, token: str | None) -> str:
    """A subscription, followed over tRPC (it is no /rpc call): OK when its events come, else
    the code of the error it sends inside the stream. Its session is over (`scene` for
    subscriptions), so the stream ends after the snapshot and the in-process client can read
    it whole."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    answer = await rpc.http.get(
        f"/trpc/{method}", params={"input": json.dumps(params)}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    messages = [
        dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        for block in answer.text.split("\n\n")
    ]
    errors = [m["data"] for m in messages if m.get("event") == "serialized-error"]
    if errors:
        code: str = json.loads(errors[0])["data"]["code"]
        return code
    assert messages[-2].get("event") == "return", answer.text  # the last block is empty
    return OK


async def refused(rpc: Rpc, method: str, params: Any, token: str | None) -> str:
    with pytest.raises(RpcFailure) as failure:
        await rpc.call(method, params, token)
    return failure.value.code


# --- the matrix -----------------------------------------------------------------------------


def test_the_matrix_has_no_rows_for_procedures_that_do_not_exist() -> None:
    registered = {procedure.name for procedure in REGISTRY}
    assert set(MATRIX) - registered == set()
    assert (set(PARAMS) | set(SESSION_PARAMS)) - registered == set()
    assert set(PARAMS) & set(SESSION_PARAMS) == set()
    assert NEEDS_CHECKOUT_REQUEST - set(SESSION_PARAMS) == set()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def matrix_world(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    """One world for the whole matrix: cells change only sessions, and get fresh ones."""
    path = tmp_path_factory.mktemp("roles") / "matrix.db"
    shutil.copy(sqlite_template, path)
    settings = make_settings(f"sqlite+aiosqlite:///{path}")
    async with AsyncTestClient(app=create_app(settings)) as http:
        yield await build_world(Rpc(http, Tokens(TokenService(settings))))


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("method", [procedure.name for procedure in REGISTRY])
async def test_each_caller_gets_the_outcome_the_matrix_states(
    matrix_world: World, method: str
) -> None:
    assert method in MATRIX, f"{method} has no row in the role matrix: decide who may call it"
    assert method in PARAMS or method in SESSION_PARAMS, f"{method} has no params here"
    assert set(MATRIX[method]) == set(CALLERS)
    world = matrix_world
    procedure = REGISTRY.get(method)
    assert procedure is not None
    on_session = method in SESSION_PARAMS
    checkout = method in NEEDS_CHECKOUT_REQUEST
    scene = await world.scene(checkout=checkout) if on_session else None
    if scene is not None and procedure.kind is Kind.SUBSCRIPTION:
        await world.rpc.staff("liveShopping.cancelSession", {"sessionId": scene.session_id})
    actual: dict[str, str] = {}
    for caller in CALLERS:
        params = SESSION_PARAMS[method](world, scene) if scene else PARAMS[method](world)
        actual[caller] = await outcome(world.rpc, method, params, world.token(caller))
        if on_session and procedure.kind is Kind.MUTATION and actual[caller] == OK:
            # The change may have used the session up (ended, paused, line removed): the next
            # caller gets a fresh one, so no cell's outcome depends on another's.
            scene = await world.scene(checkout=checkout)
    assert actual == MATRIX[method]


# --- rules the matrix cannot show -----------------------------------------------------------


async def test_a_client_sees_only_its_own_active_session(rpc: Rpc) -> None:
    world = await build_world(rpc)
    scene = await world.scene()
    owner = await rpc.call("vipPortalLiveShopping.getActiveSession", None, world.token(OWNER))
    foreign = await rpc.call(
        "vipPortalLiveShopping.getActiveSession", None, world.token(FOREIGN_CLIENT)
    )
    assert owner["session"]["id"] == scene.session_id
    assert foreign == {"session": None}


async def test_a_client_cannot_reach_another_sessions_line_through_its_own_room(
    rpc: Rpc,
) -> None:
    world = await build_world(rpc)
    theirs = await world.scene()
    mine = await world.scene(client_id=world.client_b)
    me = world.token(FOREIGN_CLIENT)
    before = await rpc.admin("liveShopping.getSession", {"sessionId": theirs.session_id})
    update = {"roomCode": mine.room_code, "cartItemId": theirs.client_line, "quantity": "5"}
    remove = {"roomCode": mine.room_code, "cartItemId": theirs.client_line}
    assert await refused(rpc, "vipPortalLiveShopping.updateCartQuantity", update, me) == NOT_FOUND
    assert await refused(rpc, "vipPortalLiveShopping.removeFromCart", remove, me) == NOT_FOUND
    assert await rpc.admin("liveShopping.getSession", {"sessionId": theirs.session_id}) == before


async def test_a_client_may_change_only_the_lines_it_added(rpc: Rpc) -> None:
    world = await build_world(rpc)
    scene = await world.scene()
    owner = world.token(OWNER)
    before = await rpc.admin("liveShopping.getSession", {"sessionId": scene.session_id})
    update = {"roomCode": scene.room_code, "cartItemId": scene.host_line, "quantity": "5"}
    remove = {"roomCode": scene.room_code, "cartItemId": scene.host_line}
    assert await refused(rpc, "vipPortalLiveShopping.updateCartQuantity", update, owner) == (
        FORBIDDEN
    )
    assert await refused(rpc, "vipPortalLiveShopping.removeFromCart", remove, owner) == FORBIDDEN
    assert await rpc.admin("liveShopping.getSession", {"sessionId": scene.session_id}) == before


async def test_a_client_cannot_set_its_own_price(rpc: Rpc) -> None:
    world = await build_world(rpc)
    scene = await world.scene()
    params = {
        "roomCode": scene.room_code,
        "batchId": world.batch_x,
        "quantity": "1",
        "unitPrice": "0.01",
    }
    code = await refused(rpc, "vipPortalLiveShopping.addToCart", params, world.token(OWNER))
    assert code == "BAD_REQUEST"
    cart = (await rpc.admin("liveShopping.getSession", {"sessionId": scene.session_id}))["cart"]
    assert {line["unitPrice"] for line in cart["items"]} == {"400.00", "90.00"}


async def test_only_an_admin_may_bypass_the_credit_check(rpc: Rpc) -> None:
    world = await build_world(rpc)
    tight = await rpc.staff("clients.create", {"name": "Tight", "creditLimit": "1.00"})
    scene = await world.scene(client_id=tight["id"])
    end = {"sessionId": scene.session_id, "convertToOrder": True}
    bypass = {**end, "bypassCreditCheck": True}
    assert await refused(rpc, "liveShopping.endSession", end, world.token(HOST)) == (
        "PRECONDITION_FAILED"
    )
    assert await refused(rpc, "liveShopping.endSession", bypass, world.token(HOST)) == FORBIDDEN
    converted = await rpc.admin("liveShopping.endSession", bypass)
    assert converted["status"] == "CONVERTED"
    assert converted["orderId"] > world.order_id
