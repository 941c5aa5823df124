"""OpenRPC 1.3 document generated from the registry (what `rpc.discover` returns)."""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from app import __version__
from app.rpc.errors import ErrorCode
from app.rpc.registry import Procedure, Registry

OPENRPC_VERSION = "1.3.2"
_REF = "#/components/schemas/{name}"


@functools.lru_cache(maxsize=8)
def openrpc_document(registry: Registry) -> dict[str, Any]:
    procedures = list(registry)
    types: list[Any] = []
    for p in procedures:
        types.extend([p.input_type, p.output_type])
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    methods = [_method(p, components, schemas[2 * i + 1]) for i, p in enumerate(procedures)]
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "Live Shopping",
            "version": __version__,
            "description": "Staff-hosted live sales sessions with VIP clients.",
        },
        "servers": [{"name": "this server", "url": "/rpc"}],
        "methods": methods,
        "components": {"schemas": components, "errors": _errors()},
    }


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
