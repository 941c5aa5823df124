"""OpenRPC 1.3 document generated from the registry (what `rpc.discover` returns)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import msgspec

from app import __version__
from app.rpc.errors import ErrorCode
from app.rpc.registry import Procedure, Registry

OPENRPC_VERSION = "1.3.2"
_REF = "#/components/schemas/{name}"


def openrpc_document(registry: Registry, base_url: str = "") -> dict[str, Any]:
    """The document; `base_url` is the request's scheme, host and root path.

    OpenRPC's server URL is a `uri` (absolute), so it is built from the request that asked,
    as share links are: whatever name the caller reached this server by.
    """
    methods, components = _described(registry)
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "Live Shopping",
            "version": __version__,
            "description": "Staff-hosted live sales sessions with VIP clients.",
        },
        "servers": [{"name": "this server", "url": f"{base_url}/rpc"}],
        "methods": methods,
        "components": components,
    }


@functools.lru_cache(maxsize=8)
def _described(registry: Registry) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Methods and components of a registry, made once (callers only read them)."""
    procedures = list(registry)
    types: list[Any] = []
    for p in procedures:
        types.extend([p.input_type, p.output_type])
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    _accept_numbers(components, {p.input_type.__name__ for p in procedures})
    methods = [_method(p, components, schemas[2 * i + 1]) for i, p in enumerate(procedures)]
    return methods, {"schemas": components, "errors": _errors()}


def _accept_numbers(components: dict[str, Any], inputs: set[str]) -> None:
    """Declare each decimal an input takes as `string | number`, as the decoder reads it.

    `pattern` (the string grammar, app/rpc/types.py) constrains only the string form. Results
    stay `string`: decimals are always sent as strings.
    """
    pending, seen = list(inputs), set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in _objects(components[name]):
            ref = node.get("$ref")
            if isinstance(ref, str):
                pending.append(ref.removeprefix(_REF.format(name="")))
            if node.get("format") == "decimal":
                node["type"] = ["string", "number"]


def _objects(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _objects(value)
    elif isinstance(node, list):
        for item in node:
            yield from _objects(item)


def _method(p: Procedure, components: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    input_schema = components[p.input_type.__name__]
    required = set(input_schema.get("required", []))
    params = [
        {"name": name, "required": name in required, "schema": schema}
        for name, schema in input_schema.get("properties", {}).items()
    ]
    method: dict[str, Any] = {
        "name": p.name,
        "summary": p.summary.split("\n", 1)[0] if p.summary else p.name,
        "paramStructure": "by-name",
        "params": params,
        "result": {"name": "result", "schema": result},
        "x-kind": p.kind.value,
        "x-roles": sorted(r.value for r in p.roles) if p.roles is not None else ["PUBLIC"],
    }
    if p.summary:
        method["description"] = p.summary
    return method


def _errors() -> dict[str, Any]:
    return {
        code.name: {
            "code": code.rpc_code,
            "message": code.wire_name,
            "data": {"httpStatus": code.http_status},
        }
        for code in ErrorCode
    }
