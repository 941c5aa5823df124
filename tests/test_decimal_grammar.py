"""Decimal inputs are a JSON number or an ASCII decimal string; any other spelling is refused.

DESIGN.md 4: a string decimal matches `^-?[0-9]+(\\.[0-9]+)?$` (no exponent, underscore,
whitespace, plus sign or non-ASCII digit), on every transport and at every depth; anything else
is BAD_REQUEST at its path. JSON numbers stay exact: they never pass through a float.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

import procedures  # noqa: F401 - importing registers every procedure
from app.domain.actors import Role
from app.rpc.context import CallContext
from app.rpc.dispatch import Dispatcher
from app.rpc.registry import REGISTRY, Input, Namespace, Output, Procedure, Registry
from app.rpc.types import MoneyIn, QuantityIn
from app.rpc.validation import decimal_issues
from app.server import create_app
from tests.conftest import Rpc, make_settings

# Spellings Python's Decimal() takes and the grammar does not.
LENIENT = {
    "underscore": "1_0",
    "arabic-indic-digits": "\u0661\u0662",  # ARABIC-INDIC ONE, TWO: Decimal() reads 12
    "fullwidth-digit": "\uff13",  # FULLWIDTH DIGIT THREE
    "surrounding-spaces": " 2 ",
    "trailing-newline": "2\n",
    "plus-sign": "+2",
    "exponent": "1e3",
    "signed-exponent": "1E+2",
    "nan": "NaN",
    "infinity": "Infinity",
    "negative-infinity": "-Infinity",
    "leading-dot": ".5",
    "trailing-dot": "5.",
}
# Spellings nobody takes; the grammar must refuse them as well.
MALFORMED = {"empty": "", "two-dots": "1.2.3", "comma": "1,5", "hex": "0x10", "minus-minus": "--1"}
GRAMMATICAL = ["12", "0.5", "007.25", "-0", "1.0000"]
BAD_SPELLINGS = {**LENIENT, **MALFORMED}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def assert_refused_at(response: httpx.Response, path: str) -> dict[str, Any]:
    """A JSON-RPC invalid-params answer with exactly one issue, at `path`."""
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert (error["code"], error["data"]["code"]) == (-32602, "BAD_REQUEST")
    assert [issue["path"] for issue in error["data"]["issues"]] == [path]
    return error


async def post_raw(rpc: Rpc, method: str, params: bytes, token: str) -> httpx.Response:
    """POST /rpc with params spliced in as written, so JSON numbers keep their exact text."""
    body = b'{"jsonrpc":"2.0","id":1,"method":"%s","params":%s}' % (method.encode(), params)
    return await rpc.http.post(
        "/rpc", content=body, headers={"content-type": "application/json", **bearer(token)}
    )


# --- over JSON-RPC, top level and nested ---------------------------------------------------------


@pytest.mark.parametrize("spelling", BAD_SPELLINGS.values(), ids=BAD_SPELLINGS.keys())
async def test_a_money_string_outside_the_grammar_is_refused_and_nothing_is_stored(
    rpc: Rpc, spelling: str
) -> None:
    params = {"name": "Ada", "creditLimit": spelling}
    response = await rpc.post(
        {"jsonrpc": "2.0", "id": 1, "method": "clients.create", "params": params},
        rpc.tokens.staff,
    )
    error = assert_refused_at(response, "$.creditLimit")
    assert "decimal" in error["data"]["issues"][0]["message"]
    assert await rpc.staff("clients.list", {}) == []


async def test_a_credit_limit_with_an_underscore_is_not_read_as_fifty_thousand(rpc: Rpc) -> None:
    response = await rpc.post(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "clients.create",
            "params": {"name": "Ada", "creditLimit": "5_0000"},
        },
        rpc.tokens.staff,
    )
    assert_refused_at(response, "$.creditLimit")
    assert await rpc.staff("clients.list", {}) == []


@pytest.mark.parametrize("spelling", LENIENT.values(), ids=LENIENT.keys())
async def test_a_quantity_string_outside_the_grammar_is_refused_at_its_nested_path(
    rpc: Rpc, spelling: str
) -> None:
    lines = [{"batchId": 1, "quantity": "1"}, {"batchId": 2, "quantity": spelling}]
    response = await rpc.post(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "orders.create",
            "params": {"clientId": 1, "lines": lines},
        },
        rpc.tokens.staff,
    )
    assert_refused_at(response, "$.lines[1].quantity")


@pytest.mark.parametrize("spelling", GRAMMATICAL)
async def test_an_ascii_decimal_string_is_accepted(rpc: Rpc, spelling: str) -> None:
    created = await rpc.staff("clients.create", {"name": "Ada", "creditLimit": spelling})
    (client,) = [c for c in await rpc.staff("clients.list", {}) if c["id"] == created["id"]]
    assert Decimal(client["creditLimit"]) == Decimal(spelling)


@pytest.mark.parametrize(
    ("number", "stored"), [(b"0.1", "0.10"), (b"3", "3.00"), (b"1e2", "100.00"), (b"2.50", "2.50")]
)
async def test_a_json_number_is_accepted_exactly(rpc: Rpc, number: bytes, stored: str) -> None:
    answer = await post_raw(
        rpc, "clients.create", b'{"name":"Ada","creditLimit":%s}' % number, rpc.tokens.staff
    )
    assert answer.status_code == 200, answer.text
    (client,) = await rpc.staff("clients.list", {})
    assert client["creditLimit"] == stored


async def test_a_json_number_is_not_rounded_through_a_float(rpc: Rpc) -> None:
    # As a float this is 0.1 exactly and would pass; as written it has 17 places, not 2.
    answer = await post_raw(
        rpc,
        "clients.create",
        b'{"name":"Ada","creditLimit":0.10000000000000001}',
        rpc.tokens.staff,
    )
    error = assert_refused_at(answer, "$.creditLimit")
    assert "places" in error["data"]["issues"][0]["message"]


class Line(Input):
    quantity: QuantityIn = Decimal(1)
    price: MoneyIn | None = None


class Basket(Input):
    lines: list[Line] = msgspec.field(default_factory=lambda: [Line()])
    first: Line = msgspec.field(default_factory=Line)
    maybe: Line | None = None
    total: MoneyIn = Decimal(0)


@pytest.mark.parametrize(
    ("params", "paths"),
    [
        (b"{}", []),
        (b'{"maybe":null,"first":{"price":null},"lines":[{}]}', []),
        (
            b'{"lines":[{"quantity":2},{"quantity":"1_0"}],"first":{"price":" 2"},'
            b'"maybe":{"quantity":"1e1"},"total":"+1"}',
            ["$.lines[1].quantity", "$.first.price", "$.maybe.quantity", "$.total"],
        ),
    ],
    ids=["all-defaults", "nulls-and-nested-defaults", "misspelled-at-every-depth"],
)
def test_misspellings_are_found_at_any_depth_and_defaults_are_never_misspelled(
    params: bytes, paths: list[str]
) -> None:
    value = msgspec.json.decode(params, type=Basket)
    assert [issue.path for issue in decimal_issues(value, params)] == paths


# --- every decimal input of every procedure -------------------------------------------------------


def valid_value(info: msgspec.inspect.Type) -> Any:
    """A JSON value that decodes as this type (its constraints met, every field filled)."""
    match info:
        case msgspec.inspect.Metadata():
            return valid_value(info.type)
        case msgspec.inspect.UnionType():
            return valid_value(
                next(t for t in info.types if not isinstance(t, msgspec.inspect.NoneType))
            )
        case msgspec.inspect.IntType():
            return info.ge if info.ge is not None else 1 if info.gt is None else info.gt + 1
        case msgspec.inspect.StrType():
            return "x" * max(info.min_length or 1, 1)
        case msgspec.inspect.DecimalType():
            return "1"
        case msgspec.inspect.BoolType():
            return False
        case msgspec.inspect.DateTimeType():
            return "2100-01-01T00:00:00Z"
        case msgspec.inspect.EnumType():
            return next(iter(info.cls)).value
        case msgspec.inspect.ListType():
            return [valid_value(info.item_type)]
        case msgspec.inspect.StructType():
            return {f.encode_name: valid_value(f.type) for f in info.fields}
    raise AssertionError(f"no valid value for {info}: extend valid_value")


def decimal_paths(info: msgspec.inspect.Type, path: tuple[str | int, ...] = ()) -> Iterator[Any]:
    """The path (keys and list indexes) of every decimal in a `valid_value` of this type."""
    match info:
        case msgspec.inspect.Metadata():
            yield from decimal_paths(info.type, path)
        case msgspec.inspect.UnionType():
            for member in info.types:
                yield from decimal_paths(member, path)
        case msgspec.inspect.DecimalType():
            yield path
        case msgspec.inspect.ListType():
            yield from decimal_paths(info.item_type, (*path, 0))
        case msgspec.inspect.StructType():
            for f in info.fields:
                yield from decimal_paths(f.type, (*path, f.encode_name))


def json_path(path: tuple[str | int, ...]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def with_value_at(document: Any, path: tuple[str | int, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(document))
    node = copy
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copy


DECIMAL_INPUTS = [
    pytest.param(p, path, id=f"{p.name}:{json_path(path)}")
    for p in REGISTRY
    for path in decimal_paths(msgspec.inspect.type_info(p.input_type))
]


def test_the_registry_has_decimal_inputs_to_check() -> None:
    assert len(DECIMAL_INPUTS) >= 10


@pytest.mark.parametrize(("procedure", "path"), DECIMAL_INPUTS)
async def test_every_decimal_input_of_every_procedure_refuses_a_lenient_spelling(
    rpc: Rpc, procedure: Procedure, path: tuple[str | int, ...]
) -> None:
    params = valid_value(msgspec.inspect.type_info(procedure.input_type))
    assert procedure.roles is not None
    token = rpc.tokens.admin
    if Role.ADMIN not in procedure.roles:  # a client's procedure: a CLIENT of a real client
        client = await rpc.staff("clients.create", {"name": "Ada"})
        token = rpc.tokens.client(client["id"])
    for spelling in ("1_0", "\u0661", "1e1"):
        response = await rpc.post(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": procedure.name,
                "params": with_value_at(params, path, spelling),
            },
            token,
        )
        # One issue, at the decimal: everything else in the params decoded.
        assert_refused_at(response, json_path(path))


# --- the other transports -----------------------------------------------------------------------


async def test_a_lenient_decimal_in_a_trpc_mutation_body_is_bad_request_at_its_path(
    rpc: Rpc,
) -> None:
    response = await rpc.http.post(
        "/trpc/catalog.createProduct",
        content=json.dumps({"name": "Tea", "sku": "T-1", "listPrice": "1_0"}),
        headers={"content-type": "application/json", **bearer(rpc.tokens.admin)},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["data"]["code"] == "BAD_REQUEST"
    assert [issue["path"] for issue in error["data"]["issues"]] == ["$.listPrice"]
    assert await rpc.admin("catalog.listProducts", {}) == []


class Quote(Input):
    quantity: QuantityIn


class Quoted(Output):
    quantity: Decimal


def quoting_registry() -> Registry:
    registry = Registry()
    pricing = Namespace("pricing", registry=registry)

    @pricing.query("quote", roles=None)
    async def quote(ctx: CallContext, params: Quote) -> Quoted:
        return Quoted(quantity=params.quantity)

    return registry


@pytest.fixture
async def quoting_http(sqlite_url: str) -> AsyncIterator[AsyncTestClient[Litestar]]:
    # No real query takes a decimal yet (GET refuses mutations before reading their input), so
    # the GET transports are proven on a throwaway query served by the real routes.
    app = create_app(make_settings(sqlite_url))
    app.state.dispatcher = Dispatcher(app.state.services, quoting_registry())
    async with AsyncTestClient(app=app) as http:
        yield http


@pytest.mark.parametrize("route", ["/rpc/pricing.quote", "/trpc/pricing.quote"])
@pytest.mark.parametrize("spelling", LENIENT.values(), ids=LENIENT.keys())
async def test_a_lenient_decimal_in_a_get_query_input_is_bad_request_at_its_path(
    quoting_http: AsyncTestClient[Litestar], route: str, spelling: str
) -> None:
    response = await quoting_http.get(route, params={"input": json.dumps({"quantity": spelling})})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["data"]["code"] == "BAD_REQUEST"
    assert [issue["path"] for issue in error["data"]["issues"]] == ["$.quantity"]


@pytest.mark.parametrize("route", ["/rpc/pricing.quote", "/trpc/pricing.quote"])
async def test_a_grammatical_decimal_in_a_get_query_input_is_answered(
    quoting_http: AsyncTestClient[Litestar], route: str
) -> None:
    for written, answered in [('"007.25"', "7.25"), ("0.1", "0.1"), ("1.00000", "1.00000")]:
        response = await quoting_http.get(route, params={"input": f'{{"quantity":{written}}}'})
        assert response.status_code == 200, response.text
        assert f'"quantity":"{answered}"' in response.text


# --- discovery ------------------------------------------------------------------------------------


async def test_discovery_declares_the_string_grammar_and_it_is_the_one_enforced(
    rpc: Rpc,
) -> None:
    document = await rpc.call("rpc.discover")
    add = next(m for m in document["methods"] if m["name"] == "liveShopping.addToCart")
    (quantity,) = [p["schema"] for p in add["params"] if p["name"] == "quantity"]
    # JSON Schema patterns are ECMA-262 regexes, whose `$` is Python's `\Z`.
    pattern = re.compile(quantity["pattern"].removesuffix("$") + r"\Z")
    assert [s for s in GRAMMATICAL if not pattern.search(s)] == []
    assert [s for s in BAD_SPELLINGS.values() if pattern.search(s)] == []
