"""The registry as the generators see it: procedures over named object and enum types.

Every input and output type is read through `msgspec.inspect`, so the generated clients see
exactly what the server's encoder and decoder see (wire names, defaults, omitted fields).
"""

from __future__ import annotations

import enum
import inspect
import keyword
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
import msgspec.inspect as mi

from app.rpc.registry import Procedure

Mode = Literal["input", "output"]
EmptyFactory = Literal["list", "dict", "set"]
_FACTORIES: dict[Any, EmptyFactory] = {list: "list", dict: "dict", set: "set"}


class CodegenError(Exception):
    """The registry holds something the generators cannot express; the message says what."""


# --- type expressions ---------------------------------------------------------------------------

Scalar = Literal[
    "none", "bool", "int", "float", "str", "bytes", "decimal", "datetime", "date", "time",
    "timedelta", "uuid", "any",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Prim:
    kind: Scalar


@dataclass(frozen=True, slots=True)
class ListOf:
    item: TypeExpr


@dataclass(frozen=True, slots=True)
class TupleOf:
    items: tuple[TypeExpr, ...]


@dataclass(frozen=True, slots=True)
class DictOf:
    key: TypeExpr
    value: TypeExpr


@dataclass(frozen=True, slots=True)
class UnionOf:
    options: tuple[TypeExpr, ...]


@dataclass(frozen=True, slots=True)
class LiteralOf:
    values: tuple[str | int | bool | None, ...]


@dataclass(frozen=True, slots=True)
class Ref:
    """A named object or enum type, by the key of its spec in `Api.types`."""

    key: Any


TypeExpr = Prim | ListOf | TupleOf | DictOf | UnionOf | LiteralOf | Ref


# --- named types and procedures -----------------------------------------------------------------


class Unset(enum.Enum):
    """How a field without a default behaves: absent from the wire until set."""

    UNSET = "UNSET"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str  # the Python attribute
    wire_name: str
    type: TypeExpr
    required: bool
    default: Any  # when omitted: a value, `Unset.UNSET`, or NODEFAULT with a factory
    default_factory: EmptyFactory | None  # the default is a new empty one of these
    description: str | None


@dataclass(slots=True)
class ObjectSpec:
    key: Any
    name: str
    fields: tuple[FieldSpec, ...]
    omit_defaults: bool
    array_like: bool
    tag_field: str | None
    tag: str | int | None
    doc: str | None
    modes: set[Mode] = field(default_factory=set)


@dataclass(slots=True)
class EnumSpec:
    key: Any
    name: str
    members: tuple[tuple[str, str | int], ...]
    modes: set[Mode] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class ProcedureSpec:
    name: str  # on the wire: liveShopping.addToCart
    namespace: str  # liveShopping
    method: str  # add_to_cart, a Python identifier
    kind: str
    roles: tuple[str, ...] | None  # None: public
    summary: str
    input: ObjectSpec
    output: TypeExpr


@dataclass(slots=True)
class Api:
    procedures: list[ProcedureSpec]
    types: dict[Any, ObjectSpec | EnumSpec]
    # Named unions of tagged Structs (the live events), by the name the clients give them.
    unions: dict[str, UnionOf] = field(default_factory=dict)
    union_docs: dict[str, str] = field(default_factory=dict)

    def union_name(self, t: TypeExpr) -> str | None:
        """The name of a named union that `t` is, if it is one."""
        return next((name for name, union in self.unions.items() if union == t), None)

    def name(self, key: Any) -> str:
        return self.types[key].name

    @property
    def objects(self) -> list[ObjectSpec]:
        found = [t for t in self.types.values() if isinstance(t, ObjectSpec)]
        return sorted(found, key=lambda t: t.name)

    @property
    def enums(self) -> list[EnumSpec]:
        found = [t for t in self.types.values() if isinstance(t, EnumSpec)]
        return sorted(found, key=lambda t: t.name)

    @property
    def namespaces(self) -> dict[str, list[ProcedureSpec]]:
        grouped: dict[str, list[ProcedureSpec]] = {}
        for p in sorted(self.procedures, key=lambda p: p.name):
            grouped.setdefault(p.namespace, []).append(p)
        return dict(sorted(grouped.items()))


def build_api(
    procedures: Iterable[Procedure], unions: Mapping[str, tuple[Any, str]] | None = None
) -> Api:
    """Read every procedure's input and output type into an `Api` with unique type names.

    `unions` names unions of tagged Structs (the live events), each with its description, that
    the clients should also have, and call by that name, whether or not a procedure returns
    them.
    """
    reader = _TypeReader()
    named: dict[str, UnionOf] = {}
    docs = {name: doc for name, (_, doc) in (unions or {}).items()}
    for name, (union, _) in (unions or {}).items():
        read_union = reader.read(mi.type_info(union), "output")
        if not isinstance(read_union, UnionOf) or not all(
            isinstance(option, Ref) for option in read_union.options
        ):
            raise CodegenError(f"{name}: a named union must be a union of Structs")
        named[name] = read_union
    read: list[tuple[Procedure, Ref, TypeExpr]] = []
    for p in procedures:
        try:
            input_ref = reader.read(mi.type_info(p.input_type), "input")
            output = reader.read(mi.type_info(p.output_type), "output")
        except (CodegenError, TypeError) as exc:  # TypeError: msgspec cannot carry the type
            raise CodegenError(f"{p.name}: {exc}") from None
        assert isinstance(input_ref, Ref)
        read.append((p, input_ref, output))
    _assign_names(reader.types)
    specs = [
        ProcedureSpec(
            name=p.name,
            namespace=p.namespace,
            method=python_identifier(snake_case(p.name.split(".", 1)[1].replace(".", "_"))),
            kind=p.kind.value,
            roles=None if p.roles is None else tuple(sorted(r.value for r in p.roles)),
            summary=p.summary,
            input=_object(reader.types[input_ref.key]),
            output=output,
        )
        for p, input_ref, output in read
    ]
    return Api(
        procedures=sorted(specs, key=lambda p: p.name),
        types=reader.types,
        unions=named,
        union_docs=docs,
    )


def _description(t: mi.Type) -> str | None:
    """A field's `Meta(description=...)`, also when it is one member of a union."""
    if isinstance(t, mi.Metadata):
        found = (t.extra_json_schema or {}).get("description")
        return found if isinstance(found, str) else _description(t.type)
    if isinstance(t, mi.UnionType):
        return next((d for x in t.types if (d := _description(x))), None)
    return None


def _own_doc(cls: type) -> str | None:
    """The class's own docstring: not a base's, nor the signature dataclasses make up."""
    doc = cls.__dict__.get("__doc__")
    if not isinstance(doc, str) or doc.startswith(f"{cls.__name__}("):
        return None
    return inspect.cleandoc(doc)


def _object(spec: ObjectSpec | EnumSpec) -> ObjectSpec:
    assert isinstance(spec, ObjectSpec)
    return spec


class _TypeReader:
    """Turns `msgspec.inspect` types into `TypeExpr`s, collecting the named types met."""

    def __init__(self) -> None:
        self.types: dict[Any, ObjectSpec | EnumSpec] = {}

    def read(self, t: mi.Type, mode: Mode) -> TypeExpr:
        match t:
            case mi.Metadata():
                return self.read(t.type, mode)
            case mi.NoneType():
                return Prim("none")
            case mi.BoolType():
                return Prim("bool")
            case mi.IntType():
                return Prim("int")
            case mi.FloatType():
                return Prim("float")
            case mi.StrType():
                return Prim("str")
            case mi.BytesType() | mi.ByteArrayType() | mi.MemoryViewType():
                return Prim("bytes")
            case mi.DecimalType():
                return Prim("decimal")
            case mi.DateTimeType():
                return Prim("datetime")
            case mi.DateType():
                return Prim("date")
            case mi.TimeType():
                return Prim("time")
            case mi.TimeDeltaType():
                return Prim("timedelta")
            case mi.UUIDType():
                return Prim("uuid")
            case mi.AnyType() | mi.RawType():
                return Prim("any")
            case mi.ListType() | mi.SetType() | mi.FrozenSetType() | mi.VarTupleType():
                return ListOf(self.read(t.item_type, mode))
            case mi.TupleType():
                return TupleOf(tuple(self.read(x, mode) for x in t.item_types))
            case mi.DictType():
                return DictOf(self.read(t.key_type, mode), self.read(t.value_type, mode))
            case mi.UnionType():
                return UnionOf(tuple(self.read(x, mode) for x in t.types))
            case mi.LiteralType():
                return LiteralOf(tuple(t.values))
            case mi.EnumType():
                return self._enum(t, mode)
            case mi.StructType() | mi.DataclassType() | mi.TypedDictType():
                return self._object(t, mode)
        raise CodegenError(f"no client type for {t!r}")

    def _enum(self, t: mi.EnumType, mode: Mode) -> Ref:
        spec = self.types.get(t.cls)
        if spec is None:
            members = tuple((m.name, m.value) for m in t.cls)
            for name, value in members:
                if not isinstance(value, str | int) or isinstance(value, bool):
                    raise CodegenError(f"{t.cls.__name__}.{name}: enum values must be str or int")
            spec = EnumSpec(key=t.cls, name="", members=members)
            self.types[t.cls] = spec
        spec.modes.add(mode)
        return Ref(t.cls)

    def _object(self, t: mi.StructType | mi.DataclassType | mi.TypedDictType, mode: Mode) -> Ref:
        spec = self.types.get(t.cls)
        if spec is not None:
            if mode not in spec.modes:
                spec.modes.add(mode)
                self._fields(t, mode)  # reach nested types in this mode too
            return Ref(t.cls)
        origin = typing.get_origin(t.cls) or t.cls
        config = getattr(origin, "__struct_config__", None)
        spec = ObjectSpec(
            key=t.cls,
            name="",
            fields=(),
            omit_defaults=bool(config and config.omit_defaults),
            array_like=isinstance(t, mi.StructType) and t.array_like,
            tag_field=t.tag_field if isinstance(t, mi.StructType) else None,
            tag=t.tag if isinstance(t, mi.StructType) else None,
            doc=_own_doc(origin),
            modes={mode},
        )
        self.types[t.cls] = spec  # before the fields: a type may contain itself
        spec.fields = self._fields(t, mode)
        return Ref(t.cls)

    def _fields(
        self, t: mi.StructType | mi.DataclassType | mi.TypedDictType, mode: Mode
    ) -> tuple[FieldSpec, ...]:
        fields = []
        for f in t.fields:
            default: Any = f.default
            factory = None
            if f.default_factory is not msgspec.NODEFAULT:
                factory = _FACTORIES.get(f.default_factory)
                if factory is None:
                    raise CodegenError(
                        f"{f.name}: default_factory {f.default_factory!r} is not supported"
                    )
            elif not f.required and default is msgspec.NODEFAULT:
                default = Unset.UNSET
            description = _description(f.type)
            fields.append(
                FieldSpec(
                    name=f.name,
                    wire_name=f.encode_name,
                    type=self.read(f.type, mode),
                    required=f.required,
                    default=default,
                    default_factory=factory,
                    description=description,
                )
            )
        return tuple(fields)


# --- names --------------------------------------------------------------------------------------


def _assign_names(types: dict[Any, ObjectSpec | EnumSpec]) -> None:
    """Class names, made unique: a clash is settled by the defining module's name."""
    candidates: dict[Any, list[str]] = {key: _name_candidates(key) for key in types}
    depth = dict.fromkeys(types, 0)
    while True:
        chosen = {key: names[depth[key]] for key, names in candidates.items()}
        by_name: dict[str, list[Any]] = {}
        for key, name in chosen.items():
            by_name.setdefault(name, []).append(key)
        clashes = [keys for keys in by_name.values() if len(keys) > 1]
        if not clashes:
            break
        for keys in clashes:
            for key in keys:
                if depth[key] + 1 >= len(candidates[key]):
                    listed = ", ".join(sorted(_qualified(k) for k in keys))
                    raise CodegenError(f"cannot give distinct names to {listed}")
                depth[key] += 1
    for key, name in chosen.items():
        types[key].name = name


def _name_candidates(key: Any) -> list[str]:
    origin = typing.get_origin(key) or key
    base = origin.__name__
    args = typing.get_args(key)
    if args:  # a parametrised generic, e.g. Page[SessionView] -> PageOfSessionView
        base += "Of" + "And".join(pascal_case(_arg_name(a)) for a in args)
    parts = origin.__module__.split(".")
    return [
        base,
        pascal_case(parts[-1]) + base,
        "".join(pascal_case(p) for p in parts) + base,
    ]


def _arg_name(arg: Any) -> str:
    origin = typing.get_origin(arg)
    if origin is not None:
        return "".join(pascal_case(_arg_name(a)) for a in (origin, *typing.get_args(arg)))
    name = getattr(arg, "__name__", None) or re.sub(r"\W+", "_", str(arg))
    return str(name)


def _qualified(key: Any) -> str:
    origin = typing.get_origin(key) or key
    return f"{origin.__module__}.{origin.__qualname__}"


def snake_case(name: str) -> str:
    """getSessionByRoomCode -> get_session_by_room_code; liveShopping -> live_shopping."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def pascal_case(name: str) -> str:
    """vip_portal -> VipPortal; liveShopping -> LiveShopping."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_\W]+", name) if part)


def python_identifier(name: str) -> str:
    return f"{name}_" if keyword.iskeyword(name) else name
