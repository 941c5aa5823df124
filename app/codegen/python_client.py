"""Source of the generated client package: `client.py` (one typed method per procedure,
grouped by namespace, sync and async), `__init__.py`, `pyproject.toml`, and the hand-written
runtime modules of `app/codegen/runtime/` (errors, transport, subscriptions, client bases).

Subscriptions are not methods here: `/rpc` does not serve them. The client follows a live
session with `subscribe_session` and `subscribe_room` instead.
"""

from __future__ import annotations

from pathlib import Path

from app import __version__
from app.codegen.model import (
    Api,
    CodegenError,
    EnumSpec,
    ProcedureSpec,
    Unset,
    pascal_case,
    snake_case,
)
from app.codegen.python_models import params_mode, with_unset
from app.codegen.python_source import Imports, ModelRecorder, Renderer, docstring, value_alias
from app.codegen.runtime import errors as runtime_errors
from app.rpc.errors import ErrorCode

PACKAGE = "live_shopping_client"
RUNTIME_DIR = Path(__file__).with_name("runtime")
# The hand-written modules, copied verbatim (they import one another by these names).
RUNTIME_MODULES = (
    "errors.py",
    "retries.py",
    "transport.py",
    "subscriptions.py",
    "client_base.py",
)
_TIMEOUT_PARAM = "timeout"
_RETRY_PARAM = "retry"  # queries only: a mutation is never retried

# Names client.py defines or imports besides the models; no model type may take one of them.
_CLIENT_NAMES = frozenset(
    {"LiveShoppingClient", "AsyncLiveShoppingClient", "SyncClientBase", "AsyncClientBase"}
    | {"SyncTransport", "AsyncTransport", "Method", "DEFAULT_TIMEOUT", "TypeAlias", "EventTypes"}
    | {"Retry", "RetrySetting"}
    | {"Any", "Literal", "Decimal", "UUID", "date", "datetime", "time", "timedelta"}
    | {"builtins", "httpx", "msgspec"}
)


# What the runtime's client bases define; a namespace attribute must not hide one of them.
_BASE_ATTRIBUTES = frozenset({"close", "aclose", "subscribe_session", "subscribe_room"})


def callable_procedures(api: Api) -> list[ProcedureSpec]:
    """The procedures a client method calls through `/rpc`: all but subscriptions."""
    return [p for p in api.procedures if p.kind != "subscription"]


def client_module(api: Api, header: str) -> str:
    imports = Imports(modules={"httpx"})
    imports.local[".client_base"] = {"AsyncClientBase", "SyncClientBase"}
    imports.local[".transport"] = {"AsyncTransport", "DEFAULT_TIMEOUT", "Method", "SyncTransport"}
    imports.local[".retries"] = {"RetrySetting"}
    procedures = callable_procedures(api)
    namespaces = _namespaces(procedures)
    _check_names(api)
    constants = _method_constants(procedures)
    r = ModelRecorder(api, imports)
    method_lines = [_method_constant(p, constants[p.name], r) for p in procedures]
    method_lines += _stream_events(api, imports)
    classes = [
        _namespace_class(namespace, procedures, constants, r, is_async=is_async)
        for is_async in (False, True)
        for namespace, procedures in namespaces.items()
    ]
    classes += [_client_class(namespaces, is_async=False), _client_class(namespaces, is_async=True)]
    doc = '"""LiveShoppingClient and AsyncLiveShoppingClient: one typed method per procedure."""'
    return (
        f"{header}{doc}\n\n{imports.render()}\n\n"
        + "\n".join(method_lines)
        + "\n\n\n"
        + "\n\n".join(classes)
    )


def _method_constant(p: ProcedureSpec, constant: str, r: Renderer) -> str:
    result = r.type(p.output)
    query = ", query=True" if p.kind == "query" else ""
    return f"{constant}: Method[{result}] = Method({p.name!r}, {result}{query})"


def _namespaces(procedures: list[ProcedureSpec]) -> dict[str, list[ProcedureSpec]]:
    grouped: dict[str, list[ProcedureSpec]] = {}
    for p in procedures:  # sorted by name already
        grouped.setdefault(p.namespace, []).append(p)
    return dict(sorted(grouped.items()))


def _check_names(api: Api) -> None:
    taken = set(_CLIENT_NAMES)
    attributes: set[str] = set()
    for namespace in api.namespaces:
        taken |= {f"{pascal_case(namespace)}Procedures", f"Async{pascal_case(namespace)}Procedures"}
        attribute = namespace_attribute(namespace)
        if attribute in attributes:
            raise CodegenError(f"namespace {namespace!r} clashes with another as `{attribute}`")
        attributes.add(attribute)
    names = [spec.name for spec in api.types.values()] + list(api.unions)
    aliases = [value_alias(spec.name) for spec in api.types.values() if isinstance(spec, EnumSpec)]
    for name in sorted(names + aliases):
        if name in taken:
            raise CodegenError(f"type name {name} is taken by the generated client itself")
        taken.add(name)


def _method_constants(procedures: list[ProcedureSpec]) -> dict[str, str]:
    constants: dict[str, str] = {}
    for p in procedures:
        constant = f"_{snake_case(p.namespace).upper()}_{p.method.upper().rstrip('_')}"
        if constant in constants.values():
            raise CodegenError(f"{p.name}: its Python name clashes with another procedure's")
        constants[p.name] = constant
    return constants


def namespace_attribute(namespace: str) -> str:
    name = snake_case(namespace)
    if name in _BASE_ATTRIBUTES or not name.isidentifier():
        raise CodegenError(f"namespace {namespace!r} cannot be a client attribute")
    return name


def _namespace_class(
    namespace: str,
    procedures: list[ProcedureSpec],
    constants: dict[str, str],
    module_renderer: Renderer,
    *,
    is_async: bool,
) -> str:
    prefix = "Async" if is_async else ""
    transport = "AsyncTransport" if is_async else "SyncTransport"
    # Inside the class body a method called `list` hides the builtin from the annotations.
    shadowed = frozenset(p.method for p in procedures)
    r = ModelRecorder(module_renderer.api, module_renderer.imports, shadowed)
    lines = [
        f"class {prefix}{pascal_case(namespace)}Procedures:",
        f'    """`{namespace}.*` procedures."""',
        "",
        f"    def __init__(self, transport: {transport}) -> None:",
        "        self._transport = transport",
    ]
    for p in procedures:
        lines.append("")
        lines += _method(p, constants[p.name], r, is_async=is_async)
    return "\n".join(lines) + "\n"


def _method(p: ProcedureSpec, constant: str, r: Renderer, *, is_async: bool) -> list[str]:
    params = ["self", "*"]
    arguments = []
    mode = params_mode(p.input)
    for f in p.input.fields:
        if f.name in ("self", _TIMEOUT_PARAM, _RETRY_PARAM):
            raise CodegenError(f"{p.name}: a param may not be called `{f.name}`")
        annotation = r.type(f.type, mode)
        if f.required:
            params.append(f"{f.name}: {annotation}")
            arguments.append(f"{f.name}={f.name}")
        elif f.default is Unset.UNSET:
            params.append(f"{f.name}: {with_unset(annotation)} = msgspec.UNSET")
            arguments.append(f"{f.name}={f.name}")
        elif f.default_factory is not None:
            # A mutable default cannot sit in a signature: None stands for "the empty one".
            params.append(f"{f.name}: {annotation} | None = None")
            empty = {"list": "[]", "dict": "{}", "set": "set()"}[f.default_factory]
            arguments.append(f"{f.name}={f.name} if {f.name} is not None else {empty}")
        else:
            params.append(f"{f.name}: {annotation} = {r.value(f.default)}")
            arguments.append(f"{f.name}={f.name}")
    timeout = f"{_TIMEOUT_PARAM}: float | None = None"
    query = p.kind == "query"
    retry = f"{_RETRY_PARAM}: RetrySetting | None = None"
    if query:
        r.imports.local.setdefault(".retries", set()).add("RetrySetting")
    if any(f.default is Unset.UNSET for f in p.input.fields):
        r.imports.modules.add("msgspec")
    r.imports.local.setdefault(".models", set()).add(p.input.name)
    result = r.type(p.output)
    params_struct = f"{p.input.name}({', '.join(arguments)})"
    retry_argument = f", {_RETRY_PARAM}={_RETRY_PARAM}" if query else ""
    call = (
        f"self._transport.call({constant}, {params_struct}, "
        f"timeout={_TIMEOUT_PARAM}{retry_argument})"
    )
    roles = f"for {', '.join(p.roles)}" if p.roles is not None else "open to everyone"
    summary = (p.summary or p.name).strip()
    doc = f"{summary}\n\n`{p.name}`: a {p.kind} {roles}."
    if query:
        doc += " `retry=` replaces the client's retry setting for this call."
    if is_async:
        # One param a line, so the lint waiver stays on the line it is about.
        signature = [
            f"    async def {p.method}(",
            *(f"        {param}," for param in params),
            f"        {timeout},  # noqa: ASYNC109 - per call, as httpx has it",
            *([f"        {retry},"] if query else []),
            f"    ) -> {result}:",
        ]
    else:
        extra = [timeout, retry] if query else [timeout]
        signature = [f"    def {p.method}({', '.join([*params, *extra])}) -> {result}:"]
    return [
        *signature,
        docstring(doc, indent=8),
        f"        return {'await ' if is_async else ''}{call}",
    ]


# The event unions of the staff stream and of the client's (app/events/schema.py), in the order
# of the client bases' type parameters.
STREAM_UNIONS = ("SessionEvent", "RoomEvent")


def _stream_events(api: Api, imports: Imports) -> list[str]:
    """The decoders of each stream's events, built once for every client."""
    missing = [name for name in STREAM_UNIONS if name not in api.unions]
    if missing:
        raise CodegenError(f"the event unions {', '.join(missing)} are not in the API")
    imports.local.setdefault(".models", set()).update(STREAM_UNIONS)
    imports.local.setdefault(".subscriptions", set()).add("EventTypes")
    return [
        f"{_events_constant(name)}: EventTypes[{name}] = EventTypes({name})"
        for name in STREAM_UNIONS
    ]


def _events_constant(union: str) -> str:
    return f"_{snake_case(union).upper()}S"


def _client_class(namespaces: dict[str, list[ProcedureSpec]], *, is_async: bool) -> str:
    prefix = "Async" if is_async else ""
    http = "httpx.AsyncClient" if is_async else "httpx.Client"
    closing = (
        "an `async with` block or `await aclose()`" if is_async else "a `with` block or `close()`"
    )
    doc = (
        f"{'Asyncio' if is_async else 'Blocking'} client of the Live Shopping JSON-RPC API.\n\n"
        "Procedures are grouped by namespace: `client.catalog.create_product(...)` calls "
        "`catalog.createProduct`; each also takes `timeout=` (seconds), which replaces the "
        "client's for that call. The service's errors raise a subclass of `RpcError` "
        "(`NotFound`, `Forbidden`, ...), a call that gets no answer raises `TransportError`. "
        "`retry=Retry(...)` (or True for the default policy) retries queries, never mutations, "
        "that got no answer or a 5xx/TOO_MANY_REQUESTS; a query's own `retry=` overrides it. "
        "`subscribe_session(session_id)` and `subscribe_room(room_code)` follow a live "
        "session's events (Server-Sent Events), reconnecting without losing any; each event's "
        "`data` is typed (`SessionEvent`, `RoomEvent`: one Struct per event type).\n\n"
        f"Close it ({closing}) to release its connections. An `http_client` passed in is "
        "left open, and `timeout` applies only to the client made here."
    )
    base = "AsyncClientBase" if is_async else "SyncClientBase"
    session_events, room_events = STREAM_UNIONS
    lines = [
        f"class {prefix}LiveShoppingClient({base}[{session_events}, {room_events}]):",
        docstring(doc, indent=4),
        "",
        f"    _session_events = {_events_constant(session_events)}",
        f"    _room_events = {_events_constant(room_events)}",
        "",
        "    def __init__(",
        "        self,",
        "        base_url: str,",
        "        *,",
        "        token: str | None = None,",
        "        timeout: float = DEFAULT_TIMEOUT,",
        f"        http_client: {http} | None = None,",
        "        retry: RetrySetting = False,",
        "    ) -> None:",
        "        super().__init__(",
        "            base_url, token=token, timeout=timeout, http_client=http_client, retry=retry",
        "        )",
    ]
    for namespace in namespaces:
        attribute = namespace_attribute(namespace)
        procedures_class = f"{prefix}{pascal_case(namespace)}Procedures"
        lines.append(f"        self.{attribute} = {procedures_class}(self._transport)")
    return "\n".join(lines) + "\n"


def init_module(header: str) -> str:
    errors = sorted(
        {"LiveShoppingError", "ProtocolError", "RpcError", "TransportError"}
        | {cls.__name__ for cls in error_classes().values()}
    )
    clients = ["AsyncLiveShoppingClient", "LiveShoppingClient"]
    exported = sorted([*clients, "AsyncSubscription", "Event", "Retry", "Subscription", *errors])
    listed = "".join(f"    {name!r},\n" for name in exported).replace("'", '"')
    return f'''{header}"""Typed Python client of the Live Shopping JSON-RPC API (sync and asyncio).

    from {PACKAGE} import LiveShoppingClient, NotFound, Retry
    from {PACKAGE}.models import CartUpdatedEvent

    with LiveShoppingClient("http://127.0.0.1:8000", token=token, retry=Retry()) as client:
        created = client.catalog.create_product(name="Tea", sku="T1", list_price="9.50")
        try:
            session = client.live_shopping.get_session(session_id=7, timeout=2.0)
        except NotFound:
            ...

        with client.subscribe_session(session_id) as events:
            for event in events:  # Event(id=7, type="CART_UPDATED", data=CartUpdatedEvent(...))
                match event.data:
                    case CartUpdatedEvent(cart=cart, change=change):
                        ...

Params and results are msgspec Structs in `{PACKAGE}.models`, generated from the server's
procedure registry; a decimal param takes a `Decimal`, an `int` or a `str`, an enum param the
enum or its plain value. The service's errors raise a subclass of `RpcError` per error code
(`NotFound`, `Forbidden`, `PreconditionFailed`, ...); a call that gets no answer raises
`TransportError`, an answer that is not JSON-RPC `ProtocolError`, and all of them derive from
`LiveShoppingError`. `retry=Retry()` on the client (or on one call) retries queries, never
mutations, that got no answer or a passing server error, with stamina.

A subscription yields `Event`s whose `data` is typed, one Struct per event type (`SessionEvent`
on the staff stream, `RoomEvent` on the client's, in `models`); it resumes after a dropped
connection from the last one it delivered, and ends when the session is over.
"""

from .client import AsyncLiveShoppingClient, LiveShoppingClient
from .errors import {", ".join(errors)}
from .retries import Retry
from .subscriptions import AsyncSubscription, Event, Subscription

__all__ = [
{listed}]
__version__ = "{__version__}"
'''


def error_classes() -> dict[str, type[runtime_errors.RpcError]]:
    """The runtime's RpcError subclass of each error name the server sends; the runtime must
    have one for every code in app/rpc/errors.py, and none the server does not know."""
    names = {code.wire_name for code in ErrorCode}
    have = set(runtime_errors.ERROR_CLASSES)
    if have != names:
        missing = ", ".join(sorted(names - have)) or "none"
        unknown = ", ".join(sorted(have - names)) or "none"
        raise CodegenError(
            "app/codegen/runtime/errors.py must have one RpcError subclass per error code "
            f"(missing: {missing}; unknown: {unknown})"
        )
    return dict(sorted(runtime_errors.ERROR_CLASSES.items()))


def runtime_modules(header: str) -> dict[str, str]:
    """Each hand-written runtime module by its file name in the package, marked as generated."""
    return {name: header + (RUNTIME_DIR / name).read_text() for name in RUNTIME_MODULES}


def pyproject(header: str) -> str:
    return f"""{header}[project]
name = "live-shopping-client"
version = "{__version__}"
description = "Typed Python client of the Live Shopping JSON-RPC API (sync and asyncio)."
requires-python = ">=3.11"
dependencies = ["httpx>=0.27", "httpx-sse>=0.4", "msgspec>=0.18", "stamina>=24.2"]

[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[tool.setuptools]
packages = ["{PACKAGE}"]

[tool.setuptools.package-data]
{PACKAGE} = ["py.typed"]
"""
