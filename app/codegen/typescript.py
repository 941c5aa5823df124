"""Source of the generated TypeScript types: every param and result, and a `Procedures` map.

Decimals are strings on output and `string | number` on input (DESIGN.md 3), so a type whose
input and output shapes differ is written twice: `Name` for results, `NameInput` for params.
"""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any

from app.codegen.model import (
    Api,
    DictOf,
    EnumSpec,
    FieldSpec,
    ListOf,
    LiteralOf,
    Mode,
    ObjectSpec,
    Prim,
    Ref,
    TupleOf,
    TypeExpr,
    UnionOf,
    Unset,
)
from app.rpc.errors import ErrorCode

_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_PRIMS = {
    "none": "null",
    "bool": "boolean",
    "int": "number",
    "float": "number",
    "str": "string",
    "bytes": "string",  # base64
    "datetime": "string",  # RFC 3339
    "date": "string",
    "time": "string",
    "timedelta": "string",  # ISO 8601 duration
    "uuid": "string",
    "any": "unknown",
}


class TypeScript:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.split: set[Any] = set()  # object keys written twice (NameInput for params)
        self._find_split_types()

    def module(self, header: str) -> str:
        parts = [
            header.rstrip("\n"),
            "// Types of the Live Shopping JSON-RPC API (POST /rpc, or the tRPC wire at /trpc).\n"
            "// Decimals are strings in results and accept a string or a number in params;\n"
            "// times are RFC 3339 UTC strings.",
        ]
        parts += [self._enum(e) for e in self.api.enums]
        for spec in self.api.objects:
            for mode in self._modes_written(spec):
                parts.append(self._interface(spec, mode))
        parts += [self._union(name, union) for name, union in sorted(self.api.unions.items())]
        parts += [self._procedures(), self._helpers(), self._kinds(), self._errors()]
        return "\n\n".join(parts) + "\n"

    # --- named types ----------------------------------------------------------------------------

    def _enum(self, spec: EnumSpec) -> str:
        values = " | ".join(json.dumps(v) for _, v in spec.members) or "never"
        return f"export type {spec.name} = {values};"

    def _union(self, name: str, union: UnionOf) -> str:
        """A discriminated union: its members are told apart by their tag (`type`)."""
        members = [self.api.types[o.key] for o in union.options if isinstance(o, Ref)]
        tags = {m.tag_field for m in members if isinstance(m, ObjectSpec)}
        tag = next(iter(tags)) if len(tags) == 1 else None
        text = "\n".join(
            textwrap.wrap(self.api.union_docs.get(name, ""), 96, break_on_hyphens=False)
        )
        if tag:
            text += f"\n\n`switch (value.{tag})` narrows it to one member."
        doc = _jsdoc(text, indent="") + "\n" if text.strip() else ""
        options = "\n".join(f"  | {self.type(option, 'output')}" for option in union.options)
        return f"{doc}export type {name} =\n{options};"

    def _modes_written(self, spec: ObjectSpec) -> list[Mode]:
        if spec.key in self.split:
            return ["output", "input"]
        return ["output" if "output" in spec.modes else "input"]

    def _interface(self, spec: ObjectSpec, mode: Mode) -> str:
        lines = []
        if spec.doc:
            lines.append(_jsdoc(spec.doc, indent=""))
        fields = self._fields(spec, mode)
        if not fields:
            lines.append(f"export type {self._name(spec.key, mode)} = Record<string, never>;")
            return "\n".join(lines)
        lines.append(f"export interface {self._name(spec.key, mode)} {{")
        lines += fields
        lines.append("}")
        return "\n".join(lines)

    def _fields(self, spec: ObjectSpec, mode: Mode) -> list[str]:
        lines = []
        if spec.tag is not None and spec.tag_field is not None:
            lines.append(f"  {_key(spec.tag_field)}: {json.dumps(spec.tag)};")
        for f in spec.fields:
            if f.description:
                lines.append(_jsdoc(f.description, indent="  "))
            optional = "?" if self._optional(spec, f, mode) else ""
            lines.append(f"  {_key(f.wire_name)}{optional}: {self.type(f.type, mode)};")
        return lines

    @staticmethod
    def _optional(spec: ObjectSpec, f: FieldSpec, mode: Mode) -> bool:
        if f.default is Unset.UNSET:
            return True  # omitted from the wire until set
        if mode == "input":
            return not f.required
        return spec.omit_defaults and not f.required

    def _name(self, key: Any, mode: Mode) -> str:
        name = self.api.name(key)
        return f"{name}Input" if mode == "input" and key in self.split else name

    def _find_split_types(self) -> None:
        """Types used in both directions whose shapes differ, found to a fixed point (a type
        holding a split type differs too, as it names `XInput`)."""
        both = [o for o in self.api.objects if o.modes == {"input", "output"}]
        changed = True
        while changed:
            changed = False
            for spec in both:
                if spec.key in self.split:
                    continue
                if self._fields(spec, "input") != self._fields(spec, "output"):
                    self.split.add(spec.key)
                    changed = True

    def type(self, t: TypeExpr, mode: Mode) -> str:
        match t:
            case Prim("decimal"):
                return "string | number" if mode == "input" else "string"
            case Prim(kind):
                return _PRIMS[kind]
            case ListOf(item):
                inner = self.type(item, mode)
                return f"({inner})[]" if len(_union_parts(inner)) > 1 else f"{inner}[]"
            case TupleOf(items):
                return f"[{', '.join(self.type(x, mode) for x in items)}]"
            case DictOf(key, value):
                record = f"Record<{self._key_type(key, mode)}, {self.type(value, mode)}>"
                return f"Partial<{record}>" if isinstance(key, LiteralOf | Ref) else record
            case UnionOf(options):
                named = self.api.union_name(t)
                if named is not None:
                    return named
                rendered: list[str] = []
                for option in options:
                    for part in _union_parts(self.type(option, mode)):
                        if part not in rendered:
                            rendered.append(part)
                return " | ".join(rendered)
            case LiteralOf(values):
                return " | ".join(json.dumps(v) for v in values) or "never"
            case Ref(key):
                return self._name(key, mode)
        raise AssertionError(t)

    def _key_type(self, key: TypeExpr, mode: Mode) -> str:
        if isinstance(key, LiteralOf | Ref):
            return self.type(key, mode)
        return "string"  # JSON object keys are strings, whatever they encode

    # --- the procedure map ----------------------------------------------------------------------

    def _procedures(self) -> str:
        lines = [
            "/** Every procedure by its wire name: params, result, kind and the roles allowed. */",
            "export interface Procedures {",
        ]
        for p in self.api.procedures:
            roles = " | ".join(json.dumps(r) for r in p.roles) if p.roles else '"PUBLIC"'
            summary = (p.summary or "").strip().split("\n\n", 1)[0]
            if summary:
                lines.append(_jsdoc(summary, indent="  "))
            lines += [
                f"  {json.dumps(p.name)}: {{",
                f"    input: {self._name(p.input.key, 'input')};",
                f"    output: {self.type(p.output, 'output')};",
                f"    kind: {json.dumps(p.kind)};",
                f"    roles: {roles};",
                "  };",
            ]
        lines.append("}")
        return "\n".join(lines)

    @staticmethod
    def _helpers() -> str:
        return "\n".join(
            [
                "export type ProcedureName = keyof Procedures;",
                'export type ProcedureInput<P extends ProcedureName> = Procedures[P]["input"];',
                'export type ProcedureOutput<P extends ProcedureName> = Procedures[P]["output"];',
                "export type QueryName = {",
                '  [P in ProcedureName]: Procedures[P]["kind"] extends "query" ? P : never;',
                "}[ProcedureName];",
                "export type MutationName = {",
                '  [P in ProcedureName]: Procedures[P]["kind"] extends "mutation" ? P : never;',
                "}[ProcedureName];",
            ]
        )

    def _kinds(self) -> str:
        lines = [
            "/** Each procedure's kind at run time: queries may use GET, mutations POST. */",
            "export const PROCEDURE_KINDS = {",
        ]
        lines += [f"  {json.dumps(p.name)}: {json.dumps(p.kind)}," for p in self.api.procedures]
        lines.append(
            '} as const satisfies { readonly [P in ProcedureName]: Procedures[P]["kind"] };'
        )
        return "\n".join(lines)

    @staticmethod
    def _errors() -> str:
        names = sorted({code.wire_name for code in ErrorCode})
        codes = "\n".join(f"  | {json.dumps(n)}" for n in names)
        return "\n".join(
            [
                f"export type RpcErrorCode =\n{codes};",
                "",
                "/** `error.data` of a JSON-RPC error answer. */",
                "export interface RpcErrorData {",
                "  code: RpcErrorCode;",
                "  httpStatus: number;",
                "  path: string | null;",
                "  issues?: { path: string; message: string }[];",
                "  [extra: string]: unknown;",
                "}",
                "",
                "export interface RpcErrorObject {",
                "  code: number;",
                "  message: string;",
                "  data: RpcErrorData;",
                "}",
            ]
        )


def typescript_module(api: Api, header: str) -> str:
    return TypeScript(api).module(header)


def _union_parts(text: str) -> list[str]:
    """The members of a union as written, not splitting inside brackets."""
    parts, depth, start, quoted, escaped = [], 0, 0, False, False
    for i, char in enumerate(text):
        if quoted:
            quoted = escaped or char != '"'
            escaped = not escaped and char == "\\"
        elif char == '"':
            quoted = True
        elif char in "([{<":
            depth += 1
        elif char in ")]}>":
            depth -= 1
        elif depth == 0 and text.startswith(" | ", i):
            parts.append(text[start:i])
            start = i + 3
    parts.append(text[start:])
    return parts


def _key(name: str) -> str:
    return name if _IDENTIFIER.match(name) else json.dumps(name)


def _jsdoc(text: str, *, indent: str) -> str:
    text = text.strip().replace("*/", "*\\/")
    lines = text.splitlines()
    if len(lines) == 1:
        return f"{indent}/** {lines[0]} */"
    body = "\n".join(f"{indent} *{' ' + line if line else ''}" for line in lines)
    return f"{indent}/**\n{body}\n{indent} */"
