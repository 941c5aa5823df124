"""Checks msgspec cannot express on decimal inputs: how they are spelled, and their DecimalRule."""

from __future__ import annotations

import functools
import typing
from decimal import Decimal
from typing import Annotated, Any, NamedTuple, get_args, get_origin

import msgspec

from app.domain.decimals import DecimalRule
from app.rpc.errors import Issue
from app.rpc.types import DECIMAL_STRING

MISSPELLED = (
    "Expected a decimal: a JSON number, or a string of ASCII digits with an optional leading "
    "minus and at most one dot"
)
_text = msgspec.json.Decoder(str)


class _Step(NamedTuple):
    """One field of an input that holds decimals, directly or in a nested Struct."""

    attr: str
    wire: str
    is_list: bool
    nested: type[msgspec.Struct] | None  # a Struct to walk into; None: the field is a decimal
    rule: DecimalRule | None  # the decimal's bounds and places, when it declares them


def decimal_issues(value: msgspec.Struct, params: bytes) -> list[Issue]:
    """Every decimal anywhere in a decoded input that is misspelled or breaks its rule, by path.

    `params` is the JSON the value was decoded from. msgspec builds a Decimal from a JSON string
    with Python's lenient Decimal(), which reads "1_0" as 10, "١٢" as 12 and also takes " 2 ",
    "+2" and "1e3"; the spelling survives only in the JSON text, so the decimal fields (and
    nothing else) are read from it once more.
    """
    struct_type = type(value)
    if not _plan(struct_type):
        return []  # most inputs hold no decimal: nothing to read again
    written = _spelling_decoder(struct_type).decode(params)
    issues: list[Issue] = []
    _check(value, written, "$", issues)
    return issues


def _check(value: msgspec.Struct, written: Any, path: str, issues: list[Issue]) -> None:
    """`written` mirrors `value` with the JSON text of each decimal; None where the input left
    a field out and it holds its default, which nobody spelled."""
    for step in _plan(type(value)):
        item = getattr(value, step.attr)
        if item is None:
            continue
        where = f"{path}.{step.wire}"
        text = None if written is None else getattr(written, step.attr)
        if step.is_list:
            texts = [None] * len(item) if text is None else text
            elements = [
                (f"{where}[{i}]", e, t) for i, (e, t) in enumerate(zip(item, texts, strict=True))
            ]
        else:
            elements = [(where, item, text)]
        for at, element, element_text in elements:
            if step.nested is not None:
                _check(element, element_text, at, issues)
                continue
            problem = _misspelling(element_text)
            if problem is None and step.rule is not None:
                problem = step.rule.problem(element)
            if problem:
                issues.append(Issue(path=at, message=problem))


def _misspelling(written: msgspec.Raw | None) -> str | None:
    """Why a decimal's JSON text is not one, or None; JSON numbers are always fine."""
    if written is None or not bytes(written).startswith(b'"'):
        return None
    return None if DECIMAL_STRING.fullmatch(_text.decode(written)) else MISSPELLED


@functools.cache
def _spelling_decoder(struct_type: type[msgspec.Struct]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(_spelling_type(struct_type))


@functools.cache
def _spelling_type(struct_type: type[msgspec.Struct]) -> type[msgspec.Struct]:
    """A Struct with the decimal fields of `struct_type` at any depth, each as its JSON text.

    Other fields are skipped unread, which keeps the second reading cheap.
    """
    fields: list[tuple[str, Any, Any]] = []
    for step in _plan(struct_type):
        leaf: Any = msgspec.Raw if step.nested is None else _spelling_type(step.nested)
        shape: Any = list[leaf] if step.is_list else leaf
        # null is a Raw too; a list or a Struct that may be null needs the None.
        if step.is_list or step.nested is not None:
            shape = shape | None
        fields.append((step.attr, shape, msgspec.field(default=None, name=step.wire)))
    return msgspec.defstruct(f"{struct_type.__name__}Spelling", fields)


@functools.cache
def _plan(struct_type: type[msgspec.Struct]) -> tuple[_Step, ...]:
    steps: list[_Step] = []
    for f in msgspec.structs.fields(struct_type):
        found = _inspect(f.type)
        if found is None:
            continue
        is_list, nested, rule = found
        if nested is None or _plan(nested):
            steps.append(_Step(f.name, f.encode_name, is_list, nested, rule))
    return tuple(steps)


def _inspect(tp: Any) -> tuple[bool, type[msgspec.Struct] | None, DecimalRule | None] | None:
    """(is list, nested Struct, rule) of a field holding a decimal or a Struct, else None.

    Looks through Annotated, Optional and list.
    """
    is_list = False
    rule: DecimalRule | None = None
    for _ in range(4):
        origin = get_origin(tp)
        if origin is Annotated:
            base, *meta = get_args(tp)
            rule = next((m for m in meta if isinstance(m, DecimalRule)), rule)
            tp = base
        elif origin in (typing.Union, _UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return None
            tp = members[0]
        elif origin is list:
            is_list = True
            tp = get_args(tp)[0]
        else:
            break
    if tp is Decimal:
        return is_list, None, rule
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return is_list, tp, None
    return None


_UnionType = type(int | None)
