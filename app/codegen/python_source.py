"""Python source text for generated modules: types, default values, imports, docstrings."""

from __future__ import annotations

import enum
import math
import textwrap
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from app.codegen.model import (
    Api,
    CodegenError,
    DictOf,
    EnumSpec,
    ListOf,
    LiteralOf,
    Mode,
    Prim,
    Ref,
    TupleOf,
    TypeExpr,
    UnionOf,
)

LINE_LENGTH = 100
_BUILTIN_TYPES = frozenset({"bool", "int", "float", "str", "bytes", "list", "dict", "tuple"})
_PRIMS = {
    "none": ("None", None),
    "bool": ("bool", None),
    "int": ("int", None),
    "float": ("float", None),
    "str": ("str", None),
    "bytes": ("bytes", None),
    "decimal": ("Decimal", ("decimal", "Decimal")),
    "datetime": ("datetime", ("datetime", "datetime")),
    "date": ("date", ("datetime", "date")),
    "time": ("time", ("datetime", "time")),
    "timedelta": ("timedelta", ("datetime", "timedelta")),
    "uuid": ("UUID", ("uuid", "UUID")),
    "any": ("Any", ("typing", "Any")),
}


@dataclass
class Imports:
    """What a generated module needs, grouped as isort would (ruff then sorts it exactly)."""

    modules: set[str] = field(default_factory=set)
    names: dict[str, set[str]] = field(default_factory=dict)
    local: dict[str, set[str]] = field(default_factory=dict)

    def add(self, module: str, name: str) -> None:
        self.names.setdefault(module, set()).add(name)

    def render(self) -> str:
        third_party = {"httpx", "msgspec"}
        std = sorted(m for m in self.modules if m not in third_party)
        std_from = sorted(m for m in self.names if m not in third_party)
        ext = sorted(m for m in self.modules if m in third_party)
        ext_from = sorted(m for m in self.names if m in third_party)
        sections = [
            [f"import {m}" for m in std] + [self._from(m, self.names[m]) for m in std_from],
            [f"import {m}" for m in ext] + [self._from(m, self.names[m]) for m in ext_from],
            [self._from(m, names) for m, names in sorted(self.local.items())],
        ]
        head = "from __future__ import annotations\n\n"
        return head + "\n\n".join("\n".join(s) for s in sections if s) + "\n"

    @staticmethod
    def _from(module: str, names: set[str]) -> str:
        return f"from {module} import {', '.join(sorted(names))}"


def value_alias(enum_name: str) -> str:
    """The `Literal` alias of an enum's values, accepted wherever the enum is a param."""
    return f"{enum_name}Value"


class Renderer:
    """Python source for types and values, recording the imports they need.

    In "input" mode (params) a decimal also takes an int or a str, as the wire does (DESIGN.md
    3), and an enum also its plain value; "output" mode (results, and types used both ways) is
    what msgspec decodes.
    """

    def __init__(self, api: Api, imports: Imports, shadowed: frozenset[str] = frozenset()):
        self.api = api
        self.imports = imports
        self.shadowed = shadowed  # names a class body redefines (a method called `list`)

    def type(self, t: TypeExpr, mode: Mode = "output") -> str:
        match t:
            case Prim("decimal") if mode == "input":
                self.imports.add("decimal", "Decimal")
                return f"Decimal | {self._builtin('int')} | {self._builtin('str')}"
            case Prim(kind):
                text, source = _PRIMS[kind]
                if source is not None:
                    self.imports.add(*source)
                return self._builtin(text)
            case ListOf(item):
                return f"{self._builtin('list')}[{self.type(item, mode)}]"
            case TupleOf(items):
                inner = ", ".join(self.type(x, mode) for x in items) or "()"
                return f"{self._builtin('tuple')}[{inner}]"
            case DictOf(key, value):
                key_type, value_type = self.type(key, mode), self.type(value, mode)
                return f"{self._builtin('dict')}[{key_type}, {value_type}]"
            case UnionOf(options):
                named = self.api.union_name(t)
                if named is not None:
                    return self._model_name(None, named)
                parts: list[str] = []
                for option in options:
                    for part in union_parts(self.type(option, mode)):
                        if part not in parts:
                            parts.append(part)
                return " | ".join(parts)
            case LiteralOf(values):
                self.imports.add("typing", "Literal")
                return f"Literal[{', '.join(repr(v) for v in values)}]"
            case Ref(key):
                name = self._model_name(key)
                spec = self.api.types[key]
                if mode == "input" and isinstance(spec, EnumSpec) and spec.members:
                    return f"{name} | {self._model_name(key, value_alias(name))}"
                return name
        raise AssertionError(t)

    def _model_name(self, key: Any, name: str | None = None) -> str:
        name = name or self.api.name(key)
        if name in self.shadowed:
            raise CodegenError(f"a method name shadows the type {name}")
        return name

    def value(self, value: Any) -> str:
        if isinstance(value, enum.Enum) and type(value) in self.api.types:
            return f"{self.api.name(type(value))}.{value.name}"
        if value is None or isinstance(value, bool | int | str):
            return repr(value)
        if isinstance(value, float) and math.isfinite(value):
            return repr(value)
        if isinstance(value, Decimal) and value.is_finite():
            self.imports.add("decimal", "Decimal")
            return f'Decimal("{value}")'
        if value == ():
            return "()"
        raise CodegenError(f"cannot write the default {value!r} in the client")

    def _builtin(self, name: str) -> str:
        if name in self.shadowed and name in _BUILTIN_TYPES:
            self.imports.modules.add("builtins")
            return f"builtins.{name}"
        if name in self.shadowed:
            raise CodegenError(f"a method name shadows the type {name}")
        return name


class ModelRecorder(Renderer):
    """A renderer that also notes which model classes client.py must import."""

    def _model_name(self, key: Any, name: str | None = None) -> str:
        name = super()._model_name(key, name)
        self.imports.local.setdefault(".models", set()).add(name)
        return name


def union_parts(text: str) -> list[str]:
    """The members of a union as written (`A | dict[str, B | None]` -> 2), to drop repeats."""
    parts, depth, start, quote, escaped = [], 0, 0, "", False
    for i, char in enumerate(text):
        if quote:  # inside a Literal's string
            quote = "" if char == quote and not escaped else quote
            escaped = not escaped and char == "\\"
        elif char in "'\"":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif depth == 0 and text.startswith(" | ", i):
            parts.append(text[start:i])
            start = i + 3
    parts.append(text[start:])
    return parts


def docstring(text: str, *, indent: int) -> str:
    """A triple-quoted docstring at `indent`, long lines wrapped to the line length."""
    pad = " " * indent
    width = LINE_LENGTH - indent
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').strip()
    lines: list[str] = []
    for line in text.splitlines():
        wrapped = textwrap.wrap(line, width=width - 3, break_on_hyphens=False) or [""]
        lines += wrapped
    if len(lines) == 1 and len(lines[0]) + 6 <= width:
        return f'{pad}"""{lines[0]}"""'
    body = "\n".join(f"{pad}{line}" if line else "" for line in lines)
    return f'{pad}"""{body.lstrip()}\n{pad}"""'
