"""rpc.discover: a valid OpenRPC 1.3 document of exactly the procedures this server exposes.

tests/data/openrpc_meta_schema.json is schema.json of github.com/open-rpc/meta-schema at commit
cd8f0bd497fcb1ac166b8f9befea320fa84cee18 (the OpenRPC 1.3 meta-schema), copied unchanged.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import referencing
import referencing.jsonschema
from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from litestar.testing import AsyncTestClient

from app.rpc.context import CallContext
from app.rpc.registry import REGISTRY, Feature, Namespace, NoInput, Procedure, Registry
from app.rpc.types import IdResult
from app.server import create_app
from tests.conftest import Rpc, Tokens, make_settings

META_SCHEMA = Path(__file__).parent / "data" / "openrpc_meta_schema.json"
# The meta-schema delegates "what is a JSON Schema" to this document (json-schema-tools'
# restatement of draft-07), which is not vendored; draft-07's own meta-schema stands in for it.
JSON_SCHEMA_TOOLS = (
    "https://raw.githubusercontent.com/json-schema-tools/meta-schema/1.5.9/src/schema.json"
)
LIVE_SHOPPING_NAMESPACES = ("liveShopping.", "vipPortalLiveShopping.")
REF_PREFIX = "#/components/schemas/"
# RFC 3986 section 3: an absolute URI is a scheme, a colon, then only URI characters.
ABSOLUTE_URI = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*:(?:[A-Za-z0-9._~!$&'()*+,;=:@/?#\[\]-]|%[0-9A-Fa-f]{2})*"
)


def format_checker() -> FormatChecker:
    """Every format jsonschema checks, with "uri" checked even without its optional parsers.

    jsonschema checks "uri" only when rfc3987 or rfc3986-validator is installed (neither is a
    dependency here) and otherwise passes anything; RFC 3986's absolute-URI grammar stands in.
    """
    checker = FormatChecker()
    if "uri" not in checker.checkers:
        checker.checks("uri")(
            lambda value: not isinstance(value, str) or bool(ABSOLUTE_URI.fullmatch(value))
        )
    return checker


def openrpc_validator() -> Draft7Validator:
    meta = json.loads(META_SCHEMA.read_text())
    # The repository leaves the version enum to its release build, which fills in every
    # published spec version; this document claims 1.3, so only 1.3.x is accepted here.
    meta["properties"]["openrpc"]["enum"] = ["1.3.0", "1.3.1", "1.3.2"]
    draft7 = {k: v for k, v in Draft7Validator.META_SCHEMA.items() if k not in {"$id", "$schema"}}
    json_schema = {
        **draft7,
        "definitions": {
            **draft7["definitions"],
            # the pointer the meta-schema's referenceObject uses into json-schema-tools' file
            "JSONSchemaObject": {"type": "object", "properties": draft7["properties"]},
        },
    }
    resource = referencing.Resource.from_contents(
        json_schema, default_specification=referencing.jsonschema.DRAFT7
    )
    registry: referencing.Registry[Any] = referencing.Registry().with_resource(
        JSON_SCHEMA_TOOLS, resource
    )
    return Draft7Validator(meta, registry=registry, format_checker=format_checker())


def refs_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs_in(item)


def decimal_schemas(node: Any, schemas: dict[str, Any], seen: set[str]) -> Iterator[dict[str, Any]]:
    """The schemas of decimals under `node`, following refs into components once each."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.removeprefix(REF_PREFIX)
            if name not in seen:
                seen.add(name)
                yield from decimal_schemas(schemas[name], schemas, seen)
        if node.get("format") == "decimal":
            yield node
        for value in node.values():
            yield from decimal_schemas(value, schemas, seen)
    elif isinstance(node, list):
        for item in node:
            yield from decimal_schemas(item, schemas, seen)


def enabled_procedures(live_shopping: bool) -> list[Procedure]:
    return list(REGISTRY.enabled([Feature.LIVE_SHOPPING] if live_shopping else []))


@pytest.fixture
async def document(rpc: Rpc) -> dict[str, Any]:
    answer: dict[str, Any] = await rpc.call("rpc.discover")
    return answer


@pytest.fixture
async def rpc_without_live_shopping(sqlite_url: str, tokens: Tokens) -> AsyncIterator[Rpc]:
    settings = make_settings(sqlite_url, FEATURE_LIVE_SHOPPING_ENABLED="false")
    async with AsyncTestClient(app=create_app(settings)) as http:
        yield Rpc(http, tokens)


# --- the document is OpenRPC 1.3 ------------------------------------------------------------


async def test_the_document_validates_against_the_openrpc_1_3_meta_schema(
    document: dict[str, Any],
) -> None:
    validator = openrpc_validator()
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []
    # ...and the meta-schema is really checking: a method without a result is refused,
    broken = copy.deepcopy(document)
    del broken["methods"][0]["result"]
    with pytest.raises(ValidationError):
        validator.validate(broken)
    # ...and so are formats: a server URL that is not an absolute URI.
    relative = copy.deepcopy(document)
    relative["servers"][0]["url"] = "/rpc"
    with pytest.raises(ValidationError, match="is not a 'uri'"):
        validator.validate(relative)


async def test_the_document_declares_openrpc_1_3_and_the_rpc_server(
    document: dict[str, Any],
) -> None:
    assert document["openrpc"].startswith("1.3.")
    assert document["info"]["title"]
    assert [server["url"] for server in document["servers"]] == ["http://testserver.local/rpc"]


async def test_the_server_url_is_built_from_the_request_on_every_transport(rpc: Rpc) -> None:
    host = {"host": "shop.example:8443"}
    posted = await rpc.http.post(
        "/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "rpc.discover"}, headers=host
    )
    got = await rpc.http.get("/rpc/rpc.discover", headers=host)
    for response in (posted, got):
        (server,) = response.json()["result"]["servers"]
        assert server["url"] == "http://shop.example:8443/rpc"


async def test_every_ref_resolves_inside_components_schemas(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    refs = set(refs_in(document))
    assert refs, "the document has no $ref at all; the check below would prove nothing"
    for ref in refs:
        assert ref.startswith(REF_PREFIX), ref
        assert ref.removeprefix(REF_PREFIX) in schemas, ref


# --- it describes exactly the registry ------------------------------------------------------


async def test_every_enabled_procedure_appears_once_and_nothing_else(
    document: dict[str, Any],
) -> None:
    names = [method["name"] for method in document["methods"]]
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(p.name for p in enabled_procedures(live_shopping=True))


async def test_each_method_carries_its_params_result_kind_and_roles(
    document: dict[str, Any],
) -> None:
    methods = {method["name"]: method for method in document["methods"]}
    for procedure in enabled_procedures(live_shopping=True):
        method = methods[procedure.name]
        fields = msgspec.structs.fields(procedure.input_type)
        assert method["paramStructure"] == "by-name"
        assert {p["name"]: p["required"] for p in method["params"]} == {
            f.encode_name: f.required for f in fields
        }, procedure.name
        assert all(isinstance(p["schema"], dict) and p["schema"] for p in method["params"])
        (expected_result,), _ = msgspec.json.schema_components(
            [procedure.output_type], ref_template=REF_PREFIX + "{name}"
        )
        assert method["result"]["schema"] == expected_result, procedure.name
        assert method["x-kind"] == procedure.kind.value
        roles = ["PUBLIC"] if procedure.roles is None else sorted(r.value for r in procedure.roles)
        assert method["x-roles"] == roles, procedure.name


async def test_param_schemas_carry_the_input_constraints(document: dict[str, Any]) -> None:
    create_batch = next(m for m in document["methods"] if m["name"] == "catalog.createBatch")
    params = {p["name"]: p for p in create_batch["params"]}
    assert set(params) == {"productId", "code", "onHandQty", "unitCogs"}
    assert all(p["required"] for p in params.values())
    assert params["productId"]["schema"]["type"] == "integer"
    assert params["productId"]["schema"]["minimum"] == 1
    assert params["code"]["schema"]["maxLength"] == 64


async def test_every_decimal_a_method_accepts_is_a_string_with_its_grammar_or_a_number(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    accepted = [
        schema
        for method in document["methods"]
        for param in method["params"]
        for schema in decimal_schemas(param["schema"], schemas, set())
    ]
    assert accepted, "no method takes a decimal; the check below would prove nothing"
    for schema in accepted:
        assert schema["type"] == ["string", "number"], schema
        assert schema["pattern"] == "^-?[0-9]+(\\.[0-9]+)?$", schema


async def test_every_decimal_a_method_returns_is_a_string(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    returned = [
        schema
        for method in document["methods"]
        for schema in decimal_schemas(method["result"]["schema"], schemas, set())
    ]
    assert returned, "no method returns a decimal; the check below would prove nothing"
    assert all(schema["type"] == "string" for schema in returned)


# --- the feature flag -----------------------------------------------------------------------


async def test_live_shopping_procedures_are_listed_when_the_feature_is_on(
    document: dict[str, Any],
) -> None:
    names = {method["name"] for method in document["methods"]}
    assert {"liveShopping.addToCart", "vipPortalLiveShopping.addToCart"} <= names


async def test_with_the_feature_off_no_live_shopping_method_is_listed_or_callable(
    rpc_without_live_shopping: Rpc,
) -> None:
    rpc = rpc_without_live_shopping
    document = await rpc.call("rpc.discover")
    names = sorted(method["name"] for method in document["methods"])
    assert not [n for n in names if n.startswith(LIVE_SHOPPING_NAMESPACES)]
    assert names == sorted(p.name for p in enabled_procedures(live_shopping=False))
    response = await rpc.post(
        {"jsonrpc": "2.0", "id": 1, "method": "liveShopping.listSessions", "params": {}},
        rpc.tokens.staff,
    )
    assert response.status_code == 404
    assert response.json()["error"]["data"]["code"] == "METHOD_NOT_FOUND"


def test_a_feature_procedure_exists_only_in_views_that_enable_its_feature() -> None:
    registry = Registry()
    gated = Namespace("liveShopping", feature=Feature.LIVE_SHOPPING, registry=registry)
    always = Namespace("system", registry=registry)

    async def handler(ctx: CallContext, params: NoInput) -> IdResult:
        return IdResult(id=1)

    gated.query("ping", roles=None)(handler)
    always.query("ping", roles=None)(handler)
    assert [p.name for p in registry.enabled([])] == ["system.ping"]
    assert [p.name for p in registry.enabled([Feature.LIVE_SHOPPING])] == [
        "liveShopping.ping",
        "system.ping",
    ]
