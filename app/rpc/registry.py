"""The procedure registry: procedures declare name, kind, input/output types and roles."""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, get_args, get_origin, get_type_hints

import msgspec

from app.domain.actors import Role

if TYPE_CHECKING:
    from app.events.streams import StreamSpec
    from app.rpc.context import CallContext


class Kind(enum.StrEnum):
    QUERY = "query"
    MUTATION = "mutation"
    SUBSCRIPTION = "subscription"


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
E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class Subscribe(Generic[E]):
    """What a subscription's handler answers: the event stream its input names, and the id of
    the last event the caller has (None: start with a snapshot). `E` is each event's data.

    The stream itself is served by app/events (auth, access, replay, heartbeat), not by the
    dispatcher: a subscription is long-lived and holds no unit of work.
    """

    stream: StreamSpec
    last_event_id: str | None = None


Opener = Callable[[Any], Subscribe[Any]]
S = TypeVar("S", bound=Opener)


async def _not_a_call(ctx: CallContext, params: Any) -> Any:
    raise AssertionError("a subscription is opened as a stream, never called")


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
    # A subscription's handler: its input -> the stream it opens (None for queries, mutations).
    opener: Opener | None = field(default=None, repr=False, compare=False)

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

    def subscription(self, name: str, *, roles: Iterable[Role]) -> Callable[[S], S]:
        """Declares a stream of events: the handler takes the input and answers `Subscribe[E]`
        (which stream, from where); the procedure's output type is `E`, one event's data."""

        def register(opener: S) -> S:
            hints = get_type_hints(opener)
            params = list(inspect.signature(opener).parameters)
            if len(params) != 1:
                raise TypeError(f"{opener.__qualname__} must take (params)")
            answer = hints["return"]
            if get_origin(answer) is not Subscribe:
                raise TypeError(f"{opener.__qualname__} must answer Subscribe[EventType]")
            (event_type,) = get_args(answer)
            self._add(name, Kind.SUBSCRIPTION, roles, opener, hints[params[0]], event_type)
            return opener

        return register

    def _declare(self, name: str, kind: Kind, roles: Iterable[Role] | None) -> Callable[[F], F]:
        def register(handler: F) -> F:
            hints = get_type_hints(handler)
            params = list(inspect.signature(handler).parameters)
            if len(params) != 2:
                raise TypeError(f"{handler.__qualname__} must take (ctx, params)")
            self._add(name, kind, roles, handler, hints[params[1]], hints["return"])
            return handler

        return register

    def _add(
        self,
        name: str,
        kind: Kind,
        roles: Iterable[Role] | None,
        handler: Callable[..., Any],
        input_type: Any,
        output_type: Any,
    ) -> None:
        if not (isinstance(input_type, type) and issubclass(input_type, Input)):
            raise TypeError(f"{handler.__qualname__}: params must be an Input Struct")
        subscription = kind is Kind.SUBSCRIPTION
        self.registry.add(
            Procedure(
                name=f"{self.name}.{name}",
                kind=kind,
                input_type=input_type,
                output_type=output_type,
                roles=None if roles is None else frozenset(roles),
                handler=_not_a_call if subscription else handler,
                feature=self.feature,
                summary=inspect.getdoc(handler) or "",
                decoder=msgspec.json.Decoder(input_type),
                opener=handler if subscription else None,
            )
        )
