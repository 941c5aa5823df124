"""Source of the generated `models.py`: a msgspec Struct or enum per type the API carries.

Structs are written from what the server's msgspec sees (wire names, defaults, tags), so the
client encodes and decodes exactly as the server does. Output Structs do not forbid unknown
fields: a server that adds a field does not break an older client. A Struct only ever sent
(params) is annotated with what the wire accepts: `Decimal | int | str` for a decimal, and an
enum or its plain value (`SessionStatus | SessionStatusValue`).
"""

from __future__ import annotations

import textwrap

import msgspec

from app.codegen.model import Api, EnumSpec, FieldSpec, Mode, ObjectSpec, UnionOf, Unset
from app.codegen.python_source import Imports, Renderer, docstring, value_alias


def models_module(api: Api, header: str) -> str:
    imports = Imports(modules={"msgspec"})
    r = Renderer(api, imports)
    body = [_enum_class(e, imports) for e in api.enums]
    body += [_struct_class(o, r) for o in api.objects]
    body += [_union_alias(name, union, r) for name, union in sorted(api.unions.items())]
    doc = '"""Types of every procedure\'s params and result, mirrored from the server."""'
    return f"{header}{doc}\n\n{imports.render()}\n\n" + "\n\n".join(body)


def _enum_class(spec: EnumSpec, imports: Imports) -> str:
    imports.modules.add("enum")
    values = [v for _, v in spec.members]
    if all(isinstance(v, str) for v in values):
        base = "enum.StrEnum"
    elif all(isinstance(v, int) for v in values):
        base = "enum.IntEnum"
    else:
        base = "enum.Enum"
    lines = [f"class {spec.name}({base}):"]
    lines += [f"    {name} = {value!r}" for name, value in spec.members] or ["    pass"]
    if values:
        imports.add("typing", "Literal")
        imports.add("typing", "TypeAlias")
        literal = f"Literal[{', '.join(repr(v) for v in values)}]"
        lines += ["", "", f"{value_alias(spec.name)}: TypeAlias = {literal}"]
    return "\n".join(lines) + "\n"


def _struct_class(spec: ObjectSpec, r: Renderer) -> str:
    camel = _camel_names([f.name for f in spec.fields])
    renamed = any(f.wire_name != f.name for f in spec.fields)
    use_camel = renamed and sum(f.wire_name == camel[f.name] for f in spec.fields) >= sum(
        f.wire_name == f.name for f in spec.fields
    )
    options = ["msgspec.Struct", "kw_only=True"]
    if use_camel:
        options.append('rename="camel"')
    if spec.omit_defaults:
        options.append("omit_defaults=True")
    if spec.array_like:
        options.append("array_like=True")
    if spec.tag is not None:
        options += [f"tag_field={spec.tag_field!r}", f"tag={spec.tag!r}"]
    lines = [f"class {spec.name}({', '.join(options)}):"]
    if spec.doc:
        lines.append(docstring(spec.doc, indent=4))
    mode = params_mode(spec)
    for f in spec.fields:
        wire = camel[f.name] if use_camel else f.name
        lines.append(f"    {_field_line(f, r, mode, explicit_name=f.wire_name != wire)}")
    if len(lines) == 1:
        lines.append("    pass")
    return "\n".join(lines) + "\n"


def _union_alias(name: str, union: UnionOf, r: Renderer) -> str:
    """`SessionEvent: TypeAlias = A | B`: a union of tagged Structs, each known by its tag."""
    r.imports.add("typing", "TypeAlias")
    options = "\n".join(f"    | {r.type(option)}" for option in union.options)
    doc = r.api.union_docs.get(name, "")
    lines = textwrap.wrap(doc, 98, break_on_hyphens=False)
    comment = "".join(f"# {line}\n" for line in lines)
    return f"{comment}{name}: TypeAlias = (\n{options.replace('    | ', '    ', 1)}\n)\n"


def with_unset(annotation: str) -> str:
    """`T | None` -> `T | msgspec.UnsetType | None` (None last, as linters want it)."""
    if annotation.endswith(" | None"):
        return annotation.removesuffix(" | None") + " | msgspec.UnsetType | None"
    return annotation + " | msgspec.UnsetType"


def params_mode(spec: ObjectSpec) -> Mode:
    """How a Struct's fields are annotated: as params only when it is never decoded."""
    return "input" if spec.modes == {"input"} else "output"


def _field_line(f: FieldSpec, r: Renderer, mode: Mode, *, explicit_name: bool) -> str:
    annotation = r.type(f.type, mode)
    default: str | None = None  # written `= default`, or inside msgspec.field(...)
    field_args: list[str] = []
    if f.default is Unset.UNSET:
        annotation = with_unset(annotation)
        default = "msgspec.UNSET"
    elif f.default_factory is not None:
        field_args.append(f"default_factory={f.default_factory}")
    elif not f.required:
        default = r.value(f.default)
    if explicit_name:
        if default is not None:
            field_args.append(f"default={default}")
            default = None
        field_args.append(f"name={f.wire_name!r}")
    line = f"{f.name}: {annotation}"
    if field_args:
        return f"{line} = msgspec.field({', '.join(field_args)})"
    return line if default is None else f"{line} = {default}"


def _camel_names(names: list[str]) -> dict[str, str]:
    """msgspec's own rename="camel" mapping, so the client renames exactly as the server."""
    if not names:
        return {}
    probe = msgspec.defstruct("Probe", [(n, int) for n in names], rename="camel")
    return dict(zip(names, probe.__struct_encode_fields__, strict=True))
