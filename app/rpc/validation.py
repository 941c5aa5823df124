"""Checks msgspec cannot express: decimal bounds and precision declared with DecimalRule."""

from __future__ import annotations

import functools
import typing
from decimal import Decimal
from typing import Annotated, Any, get_args, get_origin

import msgspec

from app.domain.decimals import DecimalRule
from app.rpc.errors import Issue

# One step of a plan: (attribute, wire name, rule for a decimal, nested struct type, is list)
_Step = tuple[str, str, DecimalRule | None, type[msgspec.Struct] | None, bool]


def decimal_issues(value: msgspec.Struct, path: str = "$") -> list[Issue]:
    """Every DecimalRule broken anywhere in a decoded input, with its JSON path."""
    issues: list[Issue] = []
    for attr, wire, rule, nested, is_list in _plan(type(value)):
        item = getattr(value, attr)
        if item is None:
            continue
        where = f"{path}.{wire}"
        items = list(enumerate(item)) if is_list else [(None, item)]
        for index, element in items:
            at = where if index is None else f"{where}[{index}]"
            if rule is not None and isinstance(element, Decimal):
                problem = rule.problem(element)
                if problem:
                    issues.append(Issue(path=at, message=problem))
            elif nested is not None and isinstance(element, msgspec.Struct):
                issues.extend(decimal_issues(element, at))
    return issues


@functools.cache
def _plan(struct_type: type[msgspec.Struct]) -> tuple[_Step, ...]:
    steps: list[_Step] = []
    for f in msgspec.structs.fields(struct_type):
        rule, nested, is_list = _inspect(f.type)
        if rule is not None or nested is not None:
            steps.append((f.name, f.encode_name, rule, nested, is_list))
    return tuple(steps)


def _inspect(tp: Any) -> tuple[DecimalRule | None, type[msgspec.Struct] | None, bool]:
    """Find a DecimalRule or a nested Struct in a field type (through Optional and list)."""
    is_list = False
    for _ in range(4):
        origin = get_origin(tp)
        if origin is Annotated:
            base, *meta = get_args(tp)
            for m in meta:
                if isinstance(m, DecimalRule):
                    return m, None, is_list
            tp = base
        elif origin in (typing.Union, _UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return None, None, is_list
            tp = members[0]
        elif origin is list:
            is_list = True
            tp = get_args(tp)[0]
        else:
            break
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return None, tp, is_list
    return None, None, is_list


_UnionType = type(int | None)
