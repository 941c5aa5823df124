"""Bad requests to live-shopping mutations get a typed error, never a 5xx, and change nothing.

Every liveShopping.* and vipPortalLiveShopping.* mutation is swept with malformed params
(generated from its input type: wrong types, missing and unknown fields, out-of-range decimals)
and with well-formed but impossible ones (unknown ids, other people's sessions, wrong session
status, more than is available). After each refusal the session's cart, every batch's net
availability, the orders and the outbox are exactly as before (DESIGN.md 2.1 and 4).

The full sweep shares one SQLite world to stay fast: each case compares the state after its
call with the state known before it, so a case that changes the world fails itself. A
representative subset runs again on SQLite and on MariaDB, in one world per database.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import httpx
import msgspec
import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

import procedures  # noqa: F401 - importing registers every procedure
from app.auth import TokenService
from app.config import Settings
from app.db.engine import Database
from app.db.models import SessionEvent
from app.domain.decimals import DecimalRule
from app.rpc.registry import REGISTRY, Kind
from app.server import create_app
from tests.conftest import Rpc, RpcFailure, Tokens, make_settings

BAD_REQUEST = "BAD_REQUEST"
NOT_FOUND = "NOT_FOUND"
FORBIDDEN = "FORBIDDEN"
CONFLICT = "CONFLICT"
PRECONDITION_FAILED = "PRECONDITION_FAILED"
INVALID_PARAMS = -32602

UNKNOWN_ID = 999_999
MUTATIONS = sorted(
    p.name
    for p in REGISTRY
    if p.kind is Kind.MUTATION and p.namespace in ("liveShopping", "vipPortalLiveShopping")
)

# --- the world ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """A session in one state: client A's unless named otherwise, hosted by staff 2."""

    session_id: int
    room_code: str
    client_line: int | None  # a line the client added (batch X)
    host_line: int | None  # a line the host added (batch Y)


@dataclass
class World:
    rpc: Rpc
    db: Database
    client_a: int
    client_b: int
    product_x: int
    batch_x: int
    batch_y: int
    scenes: dict[str, Scene] = field(default_factory=dict)
    # The last state known to be right, by part: "session <id>", "available", "orders", "events".
    known: dict[str, Any] = field(default_factory=dict)

    async def scene(self, kind: str) -> Scene:
        """The session of that kind, built on first use.

        ACTIVE, PAUSED, ENDED, CANCELLED, CONVERTED and SCHEDULED are client A's sessions in
        that status; EMPTY is an active one with no lines; FOREIGN is client B's active
        session; OVER_CREDIT is an active session whose cart exceeds its client's limit.
        CHECKOUT_REQUESTED is an active one whose client asked to check out, CHECKOUT_ANSWERED
        one whose request the host answered, and CANCELLED_WHILE_REQUESTED one cancelled with
        the request still waiting.
        """
        if kind not in self.scenes:
            self.scenes[kind] = await self._build(kind)
            # Building changed holds, orders and the outbox on purpose; other sessions not.
            self.known = {k: v for k, v in self.known.items() if k.startswith("session ")}
        return self.scenes[kind]

    async def remember(self, *scenes: Scene) -> None:
        """Record the parts of the state a coming call must leave alone (if not known yet)."""
        needed = {f"session {s.session_id}" for s in scenes} | {"available", "orders", "events"}
        if not needed <= self.known.keys():
            self.known = {**await self.snapshot(*scenes), **self.known}

    async def changes(self, *scenes: Scene) -> dict[str, tuple[Any, Any]]:
        """What differs from the known state now, as {part: (was, now)}; then know it."""
        now = await self.snapshot(*scenes)
        changed = {k: (self.known[k], v) for k, v in now.items() if self.known[k] != v}
        self.known.update(now)  # an unexpected change is blamed on one case only
        return changed

    async def _build(self, kind: str) -> Scene:
        rpc = self.rpc
        if kind == "SCHEDULED":
            created = await rpc.staff(
                "liveShopping.createSession",
                {"clientId": self.client_a, "scheduledAt": "2099-01-01T09:00:00Z"},
            )
            cart = await rpc.staff(
                "liveShopping.addToCart",
                {"sessionId": created["sessionId"], "batchId": self.batch_y, "quantity": "1"},
            )
            return Scene(created["sessionId"], created["roomCode"], None, cart["items"][0]["id"])
        if kind == "EMPTY":
            created = await rpc.staff("liveShopping.createSession", {"clientId": self.client_a})
            return Scene(created["sessionId"], created["roomCode"], None, None)
        client_id = {"FOREIGN": self.client_b}.get(kind, self.client_a)
        if kind == "OVER_CREDIT":
            tight = await rpc.staff("clients.create", {"name": "Tight", "creditLimit": "1.00"})
            client_id = tight["id"]
        scene = await self.active_scene(client_id)
        session = {"sessionId": scene.session_id}
        if kind in ("CHECKOUT_REQUESTED", "CHECKOUT_ANSWERED", "CANCELLED_WHILE_REQUESTED"):
            await self.request_checkout(scene)
        if kind == "CHECKOUT_ANSWERED":
            await rpc.staff("liveShopping.respondToCheckout", {**session, "accept": False})
        elif kind == "CANCELLED_WHILE_REQUESTED":
            await rpc.staff("liveShopping.cancelSession", session)
        elif kind == "PAUSED":
            await rpc.staff("liveShopping.updateSessionStatus", {**session, "status": "PAUSED"})
        elif kind == "ENDED":
            await rpc.staff("liveShopping.endSession", {**session, "convertToOrder": False})
        elif kind == "CANCELLED":
            await rpc.staff("liveShopping.cancelSession", session)
        elif kind == "CONVERTED":
            await rpc.staff("liveShopping.endSession", {**session, "convertToOrder": True})
        else:
            assert kind in ("ACTIVE", "FOREIGN", "OVER_CREDIT", "CHECKOUT_REQUESTED"), kind
        return scene

    async def request_checkout(self, scene: Scene) -> None:
        await self.rpc.call(
            "vipPortalLiveShopping.requestCheckout",
            {"roomCode": scene.room_code},
            self.rpc.tokens.client(self.client_a),
        )

    async def active_scene(self, client_id: int) -> Scene:
        """A new ACTIVE session with a line from the client (X) and one from the host (Y)."""
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
        return Scene(created["sessionId"], room, by_role["CLIENT"], by_role["HOST"])

    async def snapshot(self, *scenes: Scene) -> dict[str, Any]:
        """The sessions with their carts, net availability, orders and the outbox size."""
        reads = [("liveShopping.getSession", {"sessionId": s.session_id}) for s in scenes]
        reads += [("liveShopping.searchInventory", {}), ("orders.list", {})]
        batch = [
            {"jsonrpc": "2.0", "id": i, "method": method, "params": params}
            for i, (method, params) in enumerate(reads)
        ]
        response = await self.rpc.post(batch, self.rpc.tokens.admin)
        assert response.status_code == 200, response.text
        results = [r["result"] for r in sorted(response.json(), key=lambda r: r["id"])]
        *sessions, stock, orders = results
        async with self.db.read_sessions() as db:
            events = await db.scalar(select(func.count()).select_from(SessionEvent))
        return {
            **{f"session {s.session_id}": view for s, view in zip(scenes, sessions, strict=True)},
            "available": {row["batchId"]: row["available"] for row in stock},
            "orders": orders,
            "events": events,
        }


async def build_world(rpc: Rpc, db: Database) -> World:
    coat = await rpc.admin(
        "catalog.createProduct", {"name": "Wool Coat", "sku": "WC-1", "listPrice": "100.00"}
    )
    scarf = await rpc.admin(
        "catalog.createProduct", {"name": "Silk Scarf", "sku": "SS-1", "listPrice": "50.00"}
    )
    batch_x = await rpc.admin(
        "catalog.createBatch",
        {"productId": coat["id"], "code": "WC-1-A", "onHandQty": "10", "unitCogs": "40.00"},
    )
    batch_y = await rpc.admin(
        "catalog.createBatch",
        {"productId": scarf["id"], "code": "SS-1-A", "onHandQty": "10", "unitCogs": "20.00"},
    )
    client_a = await rpc.staff("clients.create", {"name": "Ada"})
    client_b = await rpc.staff("clients.create", {"name": "Grace"})
    return World(
        rpc=rpc,
        db=db,
        client_a=client_a["id"],
        client_b=client_b["id"],
        product_x=coat["id"],
        batch_x=batch_x["id"],
        batch_y=batch_y["id"],
    )


@asynccontextmanager
async def world_on(database_url: str) -> AsyncIterator[World]:
    settings = make_settings(database_url)
    db = Database(database_url)
    try:
        async with AsyncTestClient(app=create_app(settings)) as http:
            yield await build_world(Rpc(http, Tokens(TokenService(settings))), db)
    finally:
        await db.dispose()


# --- cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawJson:
    """Params sent as this JSON text verbatim (for numbers Python's json cannot write)."""

    text: str


Params = Callable[[World, Scene], Any]


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    params: Params
    expect: str
    scene: str = "ACTIVE"
    path: str | None = None  # for invalid params: the JSON path the issue must name
    also_watch: tuple[str, ...] = ()  # other sessions the call must not touch
    # Staff calls come from the host (staff 2) unless another staff member (3) is named.
    by_other_staff: bool = False

    @property
    def as_client(self) -> bool:
        return self.method.startswith("vipPortalLiveShopping.")

    def token(self, world: World) -> str:
        tokens = world.rpc.tokens
        if self.as_client:
            return tokens.client(world.client_a)
        return tokens.other_staff if self.by_other_staff else tokens.staff


# Valid params for every mutation against an ACTIVE session; each bad case changes one thing.
VALID: dict[str, Params] = {
    "liveShopping.createSession": lambda w, s: {"clientId": w.client_a},
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
        "productId": w.product_x,
        "overridePrice": "80.00",
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
    "liveShopping.updateSessionStatus": lambda w, s: {
        "sessionId": s.session_id,
        "status": "PAUSED",
    },
    "liveShopping.cancelSession": lambda w, s: {"sessionId": s.session_id},
    "liveShopping.endSession": lambda w, s: {"sessionId": s.session_id, "convertToOrder": True},
    "liveShopping.generateSalesSheet": lambda w, s: {"sessionId": s.session_id},
    "liveShopping.updateSession": lambda w, s: {
        "sessionId": s.session_id,
        "title": "Private preview",
        "internalNotes": "prefers wool",
    },
    "liveShopping.extendHolds": lambda w, s: {"sessionId": s.session_id, "minutes": 15},
    # Valid against a session whose client asked to check out (CHECKOUT_REQUESTED).
    "liveShopping.respondToCheckout": lambda w, s: {
        "sessionId": s.session_id,
        "accept": True,
        "message": "Wrapping it up",
    },
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
}


def valid_with(method: str, **changes: Any) -> Params:
    """The method's valid params with some fields replaced (a value of ... removes it)."""

    def build(w: World, s: Scene) -> dict[str, Any]:
        params = dict(VALID[method](w, s))
        for key, value in changes.items():
            if value is ...:
                params.pop(key, None)
            else:
                params[key] = value(w, s) if callable(value) else value
        return params

    return build


# -- generated from the input types: malformed params are BAD_REQUEST naming the field ------


def _decimal_rule(tp: Any) -> DecimalRule | None:
    for _ in range(4):
        if get_origin(tp) is Annotated:
            base, *meta = get_args(tp)
            rules = [m for m in meta if isinstance(m, DecimalRule)]
            if rules:
                return rules[0]
            tp = base
        elif get_origin(tp) in (Union, type(int | None)):
            members = [a for a in get_args(tp) if a is not type(None)]
            tp = members[0]
        else:
            break
    return None


def _wrong_type_value(info: msgspec.inspect.Type) -> Any:
    """A JSON value of the wrong type for a field of this type."""
    while isinstance(info, msgspec.inspect.Metadata):
        info = info.type
    if isinstance(info, msgspec.inspect.UnionType):
        return _wrong_type_value(
            next(t for t in info.types if not isinstance(t, msgspec.inspect.NoneType))
        )
    if isinstance(info, msgspec.inspect.IntType):
        return "1"
    if isinstance(info, msgspec.inspect.DecimalType):
        return True
    if isinstance(info, msgspec.inspect.BoolType):
        return "yes"
    if isinstance(info, msgspec.inspect.StrType | msgspec.inspect.EnumType):
        return 42
    if isinstance(info, msgspec.inspect.DateTimeType):
        return 42
    raise AssertionError(f"no wrong-type value for {info}: extend _wrong_type_value")


def _decimal_variants(rule: DecimalRule) -> Iterator[tuple[str, Any, Any]]:
    """(name, value, marks) of decimals that break the rule."""
    yield "negative", "-1", ()
    if rule.gt is not None:
        yield "zero", "0", ()
    yield f"{rule.places + 1}-places", "1." + "0" * rule.places + "1", ()
    yield "absurdly-large", "1e15", ()
    yield "json-number-1e400", RawJson("1e400"), ()
    yield "not-a-number", "NaN", ()
    yield "35-digits-and-too-precise", "123456789012345678901234567890.12345", ()
    yield "exponent-beyond-the-context", "1E+999999999", ()


def _with_raw(method: str, key: str, raw: RawJson) -> Params:
    def build(w: World, s: Scene) -> RawJson:
        params = msgspec.json.encode({k: v for k, v in VALID[method](w, s).items() if k != key})
        return RawJson(params[:-1].decode() + f',"{key}":{raw.text}}}')

    return build


def as_param(case: Case, marks: Any = ()) -> Any:
    return pytest.param(case, id=case.id, marks=marks)


def malformed_cases() -> Iterator[Any]:
    for method in MUTATIONS:
        procedure = REGISTRY.get(method)
        assert procedure is not None
        for f in msgspec.structs.fields(procedure.input_type):
            key = f.encode_name
            if f.required:
                yield as_param(
                    Case(
                        f"{method}-{key}-missing",
                        method,
                        valid_with(method, **{key: ...}),
                        BAD_REQUEST,
                        path="$",
                    )
                )
            wrong = _wrong_type_value(msgspec.inspect.type_info(f.type))
            yield as_param(
                Case(
                    f"{method}-{key}-wrong-type",
                    method,
                    valid_with(method, **{key: wrong}),
                    BAD_REQUEST,
                    path=f"$.{key}",
                )
            )
            rule = _decimal_rule(f.type)
            if rule is None:
                continue
            for name, value, marks in _decimal_variants(rule):
                params = (
                    _with_raw(method, key, value)
                    if isinstance(value, RawJson)
                    else valid_with(method, **{key: value})
                )
                case = Case(f"{method}-{key}-{name}", method, params, BAD_REQUEST, path=f"$.{key}")
                yield as_param(case, marks)
        yield as_param(
            Case(
                f"{method}-unknown-field",
                method,
                valid_with(method, notAField=1),
                BAD_REQUEST,
                path="$",
            )
        )


# -- written out: well-formed requests the state of the world makes impossible --------------


def _foreign_line(w: World, s: Scene) -> int | None:
    return w.scenes["FOREIGN"].client_line


def _foreign_room(w: World, s: Scene) -> str:
    return w.scenes["FOREIGN"].room_code


def impossible(
    id: str,
    method: str,
    expect: str,
    scene: str = "ACTIVE",
    *,
    issue_path: str | None = None,
    by_other_staff: bool = False,
    **changes: Any,
) -> Case:
    """A case: the method's valid params with `changes`, against the session `scene`."""
    uses_foreign = any(v in (_foreign_line, _foreign_room) for v in changes.values())
    return Case(
        f"{method}-{id}",
        method,
        valid_with(method, **changes),
        expect,
        scene=scene,
        path=issue_path,
        also_watch=("FOREIGN",) if uses_foreign else (),
        by_other_staff=by_other_staff,
    )


LS = "liveShopping."
VIP = "vipPortalLiveShopping."
ABSURD_QUANTITY = "99999999999.9999"  # the largest well-formed quantity

IMPOSSIBLE: list[Case] = [
    # createSession
    impossible("unknown-client", LS + "createSession", NOT_FOUND, clientId=UNKNOWN_ID),
    impossible(
        "naive-scheduled-at",
        LS + "createSession",
        BAD_REQUEST,
        issue_path="$.scheduledAt",
        scheduledAt="2099-01-01T09:00:00",
    ),
    # addToCart (staff)
    impossible("unknown-session", LS + "addToCart", NOT_FOUND, sessionId=UNKNOWN_ID),
    impossible("unknown-batch", LS + "addToCart", NOT_FOUND, batchId=UNKNOWN_ID),
    impossible("more-than-available", LS + "addToCart", PRECONDITION_FAILED, quantity="11"),
    impossible("merge-beyond-available", LS + "addToCart", PRECONDITION_FAILED, quantity="10"),
    impossible(
        "absurd-well-formed-quantity",
        LS + "addToCart",
        PRECONDITION_FAILED,
        quantity=ABSURD_QUANTITY,
    ),
    impossible("ended-session", LS + "addToCart", PRECONDITION_FAILED, scene="ENDED"),
    impossible("cancelled-session", LS + "addToCart", PRECONDITION_FAILED, scene="CANCELLED"),
    impossible("converted-session", LS + "addToCart", PRECONDITION_FAILED, scene="CONVERTED"),
    # updateCartQuantity (staff)
    impossible("unknown-session", LS + "updateCartQuantity", NOT_FOUND, sessionId=UNKNOWN_ID),
    impossible("unknown-line", LS + "updateCartQuantity", NOT_FOUND, cartItemId=UNKNOWN_ID),
    impossible(
        "line-of-another-session", LS + "updateCartQuantity", NOT_FOUND, cartItemId=_foreign_line
    ),
    impossible(
        "more-than-available", LS + "updateCartQuantity", PRECONDITION_FAILED, quantity="11"
    ),
    impossible(
        "absurd-well-formed-quantity",
        LS + "updateCartQuantity",
        PRECONDITION_FAILED,
        quantity=ABSURD_QUANTITY,
    ),
    impossible("ended-session", LS + "updateCartQuantity", PRECONDITION_FAILED, scene="ENDED"),
    # removeFromCart (staff)
    impossible("unknown-session", LS + "removeFromCart", NOT_FOUND, sessionId=UNKNOWN_ID),
    impossible("unknown-line", LS + "removeFromCart", NOT_FOUND, cartItemId=UNKNOWN_ID),
    impossible(
        "line-of-another-session", LS + "removeFromCart", NOT_FOUND, cartItemId=_foreign_line
    ),
    impossible("cancelled-session", LS + "removeFromCart", PRECONDITION_FAILED, scene="CANCELLED"),
    impossible("converted-session", LS + "removeFromCart", PRECONDITION_FAILED, scene="CONVERTED"),
    # setOverridePrice
    impossible("unknown-session", LS + "setOverridePrice", NOT_FOUND, sessionId=UNKNOWN_ID),
    impossible("unknown-product", LS + "setOverridePrice", NOT_FOUND, productId=UNKNOWN_ID),
    impossible("ended-session", LS + "setOverridePrice", PRECONDITION_FAILED, scene="ENDED"),
    # highlightProduct
    impossible("unknown-session", LS + "highlightProduct", NOT_FOUND, sessionId=UNKNOWN_ID),
    impossible("unknown-batch", LS + "highlightProduct", NOT_FOUND, batchId=UNKNOWN_ID),
    impossible(
        "cancelled-session", LS + "highlightProduct", PRECONDITION_FAILED, scene="CANCELLED"
    ),
    impossible(
        "clear-on-converted-session",
        LS + "highlightProduct",
        PRECONDITION_FAILED,
        scene="CONVERTED",
        batchId=None,
    ),
    # toggleCartItemSample
    impossible("unknown-session", LS + "toggleCartItemSample", NOT_FOUND, sessionId=UNKNOWN_ID),
    impossible("unknown-line", LS + "toggleCartItemSample", NOT_FOUND, cartItemId=UNKNOWN_ID),
    impossible(
        "line-of-another-session",
        LS + "toggleCartItemSample",
        NOT_FOUND,
        cartItemId=_foreign_line,
    ),
    impossible(
        "converted-session", LS + "toggleCartItemSample", PRECONDITION_FAILED, scene="CONVERTED"
    ),
    # updateSessionStatus: the status machine (DESIGN.md 4)
    impossible("unknown-session", LS + "updateSessionStatus", NOT_FOUND, sessionId=UNKNOWN_ID),
    impossible(
        "unknown-status",
        LS + "updateSessionStatus",
        BAD_REQUEST,
        issue_path="$.status",
        status="active",
    ),
    impossible(
        "to-converted-without-endSession",
        LS + "updateSessionStatus",
        PRECONDITION_FAILED,
        status="CONVERTED",
    ),
    impossible(
        "active-to-active", LS + "updateSessionStatus", PRECONDITION_FAILED, status="ACTIVE"
    ),
    impossible(
        "scheduled-to-paused",
        LS + "updateSessionStatus",
        PRECONDITION_FAILED,
        scene="SCHEDULED",
        status="PAUSED",
    ),
    impossible(
        "paused-to-scheduled",
        LS + "updateSessionStatus",
        PRECONDITION_FAILED,
        scene="PAUSED",
        status="SCHEDULED",
    ),
    impossible(
        "ended-to-active",
        LS + "updateSessionStatus",
        PRECONDITION_FAILED,
        scene="ENDED",
        status="ACTIVE",
    ),
    impossible(
        "cancelled-to-active",
        LS + "updateSessionStatus",
        PRECONDITION_FAILED,
        scene="CANCELLED",
        status="ACTIVE",
    ),
    impossible(
        "converted-to-cancelled",
        LS + "updateSessionStatus",
        PRECONDITION_FAILED,
        scene="CONVERTED",
        status="CANCELLED",
    ),
    # cancelSession
    impossible("unknown-session", LS + "cancelSession", NOT_FOUND, sessionId=UNKNOWN_ID),
    impossible("already-cancelled", LS + "cancelSession", PRECONDITION_FAILED, scene="CANCELLED"),
    impossible("converted-session", LS + "cancelSession", PRECONDITION_FAILED, scene="CONVERTED"),
    # endSession
    impossible("unknown-session", LS + "endSession", NOT_FOUND, sessionId=UNKNOWN_ID),
    impossible(
        "convert-cancelled-session", LS + "endSession", PRECONDITION_FAILED, scene="CANCELLED"
    ),
    impossible("convert-again", LS + "endSession", CONFLICT, scene="CONVERTED"),
    impossible(
        "end-an-ended-session",
        LS + "endSession",
        PRECONDITION_FAILED,
        scene="ENDED",
        convertToOrder=False,
    ),
    impossible(
        "end-a-scheduled-session",
        LS + "endSession",
        PRECONDITION_FAILED,
        scene="SCHEDULED",
        convertToOrder=False,
    ),
    impossible("convert-empty-cart", LS + "endSession", PRECONDITION_FAILED, scene="EMPTY"),
    impossible(
        "convert-over-credit-limit", LS + "endSession", PRECONDITION_FAILED, scene="OVER_CREDIT"
    ),
    # generateSalesSheet
    impossible("unknown-session", LS + "generateSalesSheet", NOT_FOUND, sessionId=UNKNOWN_ID),
    # updateSession: the host's (or an ADMIN's), scheduledAt only while SCHEDULED and ahead
    impossible("unknown-session", LS + "updateSession", NOT_FOUND, sessionId=UNKNOWN_ID),
    impossible("another-hosts-session", LS + "updateSession", FORBIDDEN, by_other_staff=True),
    impossible(
        "scheduled-at-while-active",
        LS + "updateSession",
        PRECONDITION_FAILED,
        scheduledAt="2099-01-01T09:00:00Z",
    ),
    impossible(
        "scheduled-at-in-the-past",
        LS + "updateSession",
        BAD_REQUEST,
        scene="SCHEDULED",
        issue_path="$.scheduledAt",
        scheduledAt="2020-01-01T09:00:00Z",
    ),
    impossible(
        "scheduled-at-null",
        LS + "updateSession",
        BAD_REQUEST,
        scene="SCHEDULED",
        issue_path="$.scheduledAt",
        scheduledAt=None,
    ),
    impossible(
        "naive-scheduled-at",
        LS + "updateSession",
        BAD_REQUEST,
        scene="SCHEDULED",
        issue_path="$.scheduledAt",
        scheduledAt="2099-01-01T09:00:00",
    ),
    impossible("empty-title", LS + "updateSession", BAD_REQUEST, issue_path="$.title", title=""),
    impossible(
        "title-too-long", LS + "updateSession", BAD_REQUEST, issue_path="$.title", title="t" * 256
    ),
    impossible(
        "notes-too-long",
        LS + "updateSession",
        BAD_REQUEST,
        issue_path="$.internalNotes",
        internalNotes="n" * 10_001,
    ),
    impossible("converted-session", LS + "updateSession", PRECONDITION_FAILED, scene="CONVERTED"),
    impossible("cancelled-session", LS + "updateSession", PRECONDITION_FAILED, scene="CANCELLED"),
    # extendHolds: open sessions only, 1 to the session's timeout (120 here) at a time
    impossible("unknown-session", LS + "extendHolds", NOT_FOUND, sessionId=UNKNOWN_ID),
    impossible("another-hosts-session", LS + "extendHolds", FORBIDDEN, by_other_staff=True),
    impossible("ended-session", LS + "extendHolds", PRECONDITION_FAILED, scene="ENDED"),
    impossible("cancelled-session", LS + "extendHolds", PRECONDITION_FAILED, scene="CANCELLED"),
    impossible("converted-session", LS + "extendHolds", PRECONDITION_FAILED, scene="CONVERTED"),
    impossible("zero-minutes", LS + "extendHolds", BAD_REQUEST, issue_path="$.minutes", minutes=0),
    impossible(
        "negative-minutes", LS + "extendHolds", BAD_REQUEST, issue_path="$.minutes", minutes=-15
    ),
    impossible(
        "more-than-the-timeout",
        LS + "extendHolds",
        BAD_REQUEST,
        issue_path="$.minutes",
        minutes=121,
    ),
    impossible(
        "a-week-and-a-minute",
        LS + "extendHolds",
        BAD_REQUEST,
        issue_path="$.minutes",
        minutes=10_081,
    ),
    impossible(
        "fractional-minutes", LS + "extendHolds", BAD_REQUEST, issue_path="$.minutes", minutes=1.5
    ),
    # respondToCheckout: one answer to a pending request, by the host or an ADMIN
    impossible(
        "unknown-session",
        LS + "respondToCheckout",
        NOT_FOUND,
        scene="CHECKOUT_REQUESTED",
        sessionId=UNKNOWN_ID,
    ),
    impossible(
        "another-hosts-session",
        LS + "respondToCheckout",
        FORBIDDEN,
        scene="CHECKOUT_REQUESTED",
        by_other_staff=True,
    ),
    impossible("never-requested", LS + "respondToCheckout", PRECONDITION_FAILED),
    impossible(
        "already-answered",
        LS + "respondToCheckout",
        PRECONDITION_FAILED,
        scene="CHECKOUT_ANSWERED",
    ),
    impossible(
        "cancelled-while-requested",
        LS + "respondToCheckout",
        PRECONDITION_FAILED,
        scene="CANCELLED_WHILE_REQUESTED",
    ),
    impossible(
        "message-too-long",
        LS + "respondToCheckout",
        BAD_REQUEST,
        scene="CHECKOUT_REQUESTED",
        issue_path="$.message",
        message="m" * 501,
    ),
    # vipPortal addToCart: the client acts only in its own ACTIVE session
    impossible("unknown-room", VIP + "addToCart", NOT_FOUND, roomCode="no-such-room"),
    impossible("another-clients-room", VIP + "addToCart", NOT_FOUND, roomCode=_foreign_room),
    impossible("unknown-batch", VIP + "addToCart", NOT_FOUND, batchId=UNKNOWN_ID),
    impossible("more-than-available", VIP + "addToCart", PRECONDITION_FAILED, quantity="11"),
    impossible(
        "absurd-well-formed-quantity",
        VIP + "addToCart",
        PRECONDITION_FAILED,
        quantity=ABSURD_QUANTITY,
    ),
    impossible("paused-session", VIP + "addToCart", PRECONDITION_FAILED, scene="PAUSED"),
    impossible("scheduled-session", VIP + "addToCart", PRECONDITION_FAILED, scene="SCHEDULED"),
    impossible("ended-session", VIP + "addToCart", PRECONDITION_FAILED, scene="ENDED"),
    # vipPortal updateCartQuantity
    impossible("unknown-room", VIP + "updateCartQuantity", NOT_FOUND, roomCode="no-such-room"),
    impossible(
        "another-clients-room", VIP + "updateCartQuantity", NOT_FOUND, roomCode=_foreign_room
    ),
    impossible("unknown-line", VIP + "updateCartQuantity", NOT_FOUND, cartItemId=UNKNOWN_ID),
    impossible(
        "line-of-another-session",
        VIP + "updateCartQuantity",
        NOT_FOUND,
        cartItemId=_foreign_line,
    ),
    impossible(
        "the-hosts-line",
        VIP + "updateCartQuantity",
        FORBIDDEN,
        cartItemId=lambda w, s: s.host_line,
    ),
    impossible(
        "more-than-available", VIP + "updateCartQuantity", PRECONDITION_FAILED, quantity="11"
    ),
    impossible(
        "absurd-well-formed-quantity",
        VIP + "updateCartQuantity",
        PRECONDITION_FAILED,
        quantity=ABSURD_QUANTITY,
    ),
    impossible("paused-session", VIP + "updateCartQuantity", PRECONDITION_FAILED, scene="PAUSED"),
    # vipPortal removeFromCart
    impossible("unknown-room", VIP + "removeFromCart", NOT_FOUND, roomCode="no-such-room"),
    impossible("another-clients-room", VIP + "removeFromCart", NOT_FOUND, roomCode=_foreign_room),
    impossible("unknown-line", VIP + "removeFromCart", NOT_FOUND, cartItemId=UNKNOWN_ID),
    impossible(
        "the-hosts-line",
        VIP + "removeFromCart",
        FORBIDDEN,
        cartItemId=lambda w, s: s.host_line,
    ),
    impossible("paused-session", VIP + "removeFromCart", PRECONDITION_FAILED, scene="PAUSED"),
    impossible("converted-session", VIP + "removeFromCart", PRECONDITION_FAILED, scene="CONVERTED"),
    # vipPortal requestCheckout
    impossible("unknown-room", VIP + "requestCheckout", NOT_FOUND, roomCode="no-such-room"),
    impossible("another-clients-room", VIP + "requestCheckout", NOT_FOUND, roomCode=_foreign_room),
    impossible("paused-session", VIP + "requestCheckout", PRECONDITION_FAILED, scene="PAUSED"),
    impossible("ended-session", VIP + "requestCheckout", PRECONDITION_FAILED, scene="ENDED"),
    impossible("empty-cart", VIP + "requestCheckout", PRECONDITION_FAILED, scene="EMPTY"),
    impossible(
        "converted-session", VIP + "requestCheckout", PRECONDITION_FAILED, scene="CONVERTED"
    ),
]

SWEEP = [*malformed_cases(), *map(as_param, IMPOSSIBLE)]

# Run again on SQLite and MariaDB, each in a world of its own.
REPRESENTATIVE = {
    "liveShopping.addToCart-quantity-5-places",
    "liveShopping.addToCart-unknown-batch",
    "liveShopping.addToCart-more-than-available",
    "liveShopping.addToCart-absurd-well-formed-quantity",
    "liveShopping.addToCart-converted-session",
    "liveShopping.updateCartQuantity-line-of-another-session",
    "liveShopping.setOverridePrice-overridePrice-3-places",
    "liveShopping.highlightProduct-unknown-batch",
    "liveShopping.updateSessionStatus-cancelled-to-active",
    "liveShopping.endSession-convert-again",
    "liveShopping.endSession-convert-over-credit-limit",
    "vipPortalLiveShopping.addToCart-another-clients-room",
    "vipPortalLiveShopping.addToCart-paused-session",
    "vipPortalLiveShopping.updateCartQuantity-the-hosts-line",
    "vipPortalLiveShopping.requestCheckout-empty-cart",
    "liveShopping.updateSession-another-hosts-session",
    "liveShopping.updateSession-scheduled-at-while-active",
    "liveShopping.updateSession-scheduled-at-in-the-past",
    "liveShopping.extendHolds-ended-session",
    "liveShopping.extendHolds-more-than-the-timeout",
    "liveShopping.respondToCheckout-never-requested",
    "liveShopping.respondToCheckout-already-answered",
    "liveShopping.respondToCheckout-message-too-long",
}


# --- running a case -------------------------------------------------------------------------


async def send(rpc: Rpc, method: str, params: Any, token: str) -> httpx.Response:
    if isinstance(params, RawJson):
        body = f'{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params.text}}}'
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        return await rpc.http.post("/rpc", content=body, headers=headers)
    return await rpc.post({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, token)


async def assert_refused_and_nothing_changed(world: World, case: Case) -> None:
    scene = await world.scene(case.scene)
    watched = [scene] + [await world.scene(kind) for kind in case.also_watch]
    params = case.params(world, scene)
    await world.remember(*watched)

    response = await send(world.rpc, case.method, params, case.token(world))

    payload = response.json()
    assert "error" in payload, f"accepted: {payload}"
    error = payload["error"]
    assert response.status_code < 500, error
    assert (error["data"]["code"], response.status_code) == (
        case.expect,
        error["data"]["httpStatus"],
    ), error
    if case.path is not None:
        assert error["code"] == INVALID_PARAMS, error
        assert [issue["path"] for issue in error["data"]["issues"]] == [case.path], error
    assert await world.changes(*watched) == {}


# --- the sweep (SQLite, one shared world) ---------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sweep_world(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    path = tmp_path_factory.mktemp("bad_input") / "sweep.db"
    shutil.copy(sqlite_template, path)
    async with world_on(f"sqlite+aiosqlite:///{path}") as world:
        yield world


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("case", SWEEP)
async def test_a_bad_request_is_refused_with_a_typed_error_and_changes_nothing(
    sweep_world: World, case: Case
) -> None:
    await assert_refused_and_nothing_changed(sweep_world, case)


# --- the representative subset on each database ---------------------------------------------

REPRESENTATIVE_CASES = [p.values[0] for p in SWEEP if p.id in REPRESENTATIVE]


@pytest.fixture
async def own_world(db_url: str) -> AsyncIterator[World]:
    async with world_on(db_url) as world:
        yield world


async def test_on_each_database_representative_bad_requests_are_refused_and_change_nothing(
    own_world: World,
) -> None:
    # One world per database keeps MariaDB's share of the run small; every case still
    # checks its own refusal and state, and all failures are reported together.
    failures: dict[str, str] = {}
    for case in REPRESENTATIVE_CASES:
        try:
            await assert_refused_and_nothing_changed(own_world, case)
        except AssertionError as failure:
            failures[case.id] = str(failure)
    assert failures == {}


# --- the sweep covers what it claims --------------------------------------------------------


def test_every_mutation_is_swept() -> None:
    assert set(VALID) == set(MUTATIONS), "give every mutation valid params in VALID"
    for method in MUTATIONS:
        expectations = {c.expect for c in IMPOSSIBLE if c.method == method}
        assert NOT_FOUND in expectations, f"{method}: add an unknown-id case"
    assert {case.id for case in REPRESENTATIVE_CASES} == REPRESENTATIVE


async def test_the_valid_params_each_case_starts_from_are_accepted(
    rpc: Rpc, settings: Settings
) -> None:
    # Otherwise a malformed case could be refused for another reason than the one it names.
    db = Database(settings.database_url)
    try:
        world = await build_world(rpc, db)
        for batch_id in (world.batch_x, world.batch_y):  # stock for a fresh session each
            await rpc.admin("catalog.updateBatch", {"batchId": batch_id, "onHandQty": "1000"})
        for method in MUTATIONS:
            fresh = await world.active_scene(world.client_a)
            if method == LS + "respondToCheckout":
                await world.request_checkout(fresh)
            owner = rpc.tokens.client(world.client_a)
            token = owner if method.startswith(VIP) else rpc.tokens.staff
            await rpc.call(method, VALID[method](world, fresh), token)
    finally:
        await db.dispose()


# --- bugs found by this sweep outside the mutations' params ---------------------------------


@pytest.mark.parametrize("key", ["createdFrom", "createdTo"])
async def test_a_date_filter_without_a_timezone_is_refused_as_bad_params(
    rpc: Rpc, key: str
) -> None:
    with pytest.raises(RpcFailure) as failure:
        await rpc.staff("liveShopping.listSessions", {key: "2024-01-01T00:00:00"})
    assert failure.value.code == BAD_REQUEST
    assert [i["path"] for i in failure.value.error["data"]["issues"]] == [f"$.{key}"]


async def test_converting_a_cart_too_large_to_bill_is_refused_and_changes_nothing(
    own_world: World,
) -> None:
    world = own_world
    rpc = world.rpc
    token = rpc.tokens.staff
    scene = await world.scene("EMPTY")
    await rpc.staff(
        "liveShopping.addToCart",
        {"sessionId": scene.session_id, "batchId": world.batch_x, "quantity": "2"},
    )
    await rpc.staff(
        "liveShopping.setOverridePrice",
        {
            "sessionId": scene.session_id,
            "productId": world.product_x,
            "overridePrice": "9999999999999.99",
        },
    )
    before = await world.snapshot(scene)

    response = await send(rpc, LS + "endSession", VALID[LS + "endSession"](world, scene), token)

    error = response.json().get("error")
    assert error is not None, "a total the order cannot hold was converted"
    assert 400 <= response.status_code < 500, error  # a typed refusal, not a crash
    assert error["data"]["code"] == "UNPROCESSABLE_CONTENT", error
    assert await world.snapshot(scene) == before
