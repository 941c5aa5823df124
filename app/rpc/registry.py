"""The procedure registry: procedures declare name, kind, input/output types and roles."""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, get_type_hints

import msgspec

from app.domain.actors import Role

if TYPE_CHECKING:
    from app.rpc.context import CallContext


class Kind(enum.StrEnum):
    QUERY = "query"
    MUTATION = "mutation"


class Feature(enum.StrEnum):
    """Switchable parts of the surface; a disabled feature's procedures do not exist."""

    LIVE_SHOPPING = "liveShopping"


class Input(msgspec.Struct, forbid_unknown_fields=True, rename="camel", kw_only=True):
    """Base of every procedure input: camelCase on the wire, unknown fields refused."""


class Output(msgspec.Struct, rename="camel", kw_only=True):
    """Base of every procedure output: camelCase on the wire."""


class NoInput(Input):
    """For procedures that take no parameters."""


Handler = Callable[["CallContext", Any], Awaitable[Any]]
F = TypeVar("F", bound=Handler)


@dataclass(frozen=True, slots=True)
class Procedure:
    name: str
    kind: Kind
    input_type: type[Input]
    output_type: Any
    roles: frozenset[Role] | None  # None: public, no token needed
    handler: Handler
    feature: Feature | None
    summary: str
    decoder: msgspec.json.Decoder[Any] = field(repr=False, compare=False)

    @property
    def namespace(self) -> str:
        return self.name.split(".", 1)[0]


class Registry:
    """All procedures known to the process, by full name."""

    def __init__(self) -> None:
        self._procedures: dict[str, Procedure] = {}

    def add(self, procedure: Procedure) -> None:
        if procedure.name in self._procedures:
            raise ValueError(f"procedure {procedure.name} registered twice")
        self._procedures[procedure.name] = procedure

    def get(self, name: str) -> Procedure | None:
        return self._procedures.get(name)

    def __iter__(self) -> Iterator[Procedure]:
        return iter(sorted(self._procedures.values(), key=lambda p: p.name))

    def __len__(self) -> int:
        return len(self._procedures)

    def enabled(self, features: Iterable[Feature]) -> Registry:
        """The view of the registry with only the procedures the enabled features allow."""
        on = set(features)
        view = Registry()
        for procedure in self:
            if procedure.feature is None or procedure.feature in on:
                view.add(procedure)
        return view


REGISTRY = Registry()


class Namespace:
    """Declares procedures under one namespace, e.g. `liveShopping.addToCart`."""

    def __init__(
        self, name: str, *, feature: Feature | None = None, registry: Registry = REGISTRY
    ) -> None:
        self.name = name
        self.feature = feature
        self.registry = registry

    def query(self, name: str, *, roles: Iterable[Role] | None) -> Callable[[F], F]:
        return self._declare(name, Kind.QUERY, roles)

    def mutation(self, name: str, *, roles: Iterable[Role] | None) -> Callable[[F], F]:
        return self._declare(name, Kind.MUTATION, roles)

    def _declare(self, name: str, kind: Kind, roles: Iterable[Role] | None) -> Callable[[F], F]:
        def register(handler: F) -> F:
            hints = get_type_hints(handler)
            params = list(inspect.signature(handler).parameters)
            if len(params) != 2:
                raise TypeError(f"{handler.__qualname__} must take (ctx, params)")
            input_type = hints[params[1]]
            if not (isinstance(input_type, type) and issubclass(input_type, Input)):
                raise TypeError(f"{handler.__qualname__}: params must be an Input Struct")
            self.registry.add(
                Procedure(
                    name=f"{self.name}.{name}",
                    kind=kind,
                    input_type=input_type,
                    output_type=hints["return"],
                    roles=None if roles is None else frozenset(roles),
                    handler=handler,
                    feature=self.feature,
                    summary=inspect.getdoc(handler) or "",
                    decoder=msgspec.json.Decoder(input_type),
                )
            )
            return handler

        return register
