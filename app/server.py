"""The application factory: one ASGI app per worker process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

from litestar import Litestar, Response, Router, get
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, ControllerRouterHandler, Message, Receive, Scope, Send
from sqlalchemy import text

import procedures  # noqa: F401 - importing registers every procedure
from app.config import Settings, load_settings
from app.events.outbox_watch import watch_outbox
from app.events.sse import OPEN_STREAMS
from app.events.sse import ROUTES as SSE_ROUTES
from app.idle_sweeper import run_forever
from app.presence_keeper import PresenceKeeper
from app.rpc.dispatch import Dispatcher
from app.rpc.http import ROUTES
from app.rpc.registry import REGISTRY
from app.runtime import Services
from app.web.pages import ROUTES as PAGE_ROUTES
from app.web.sales_sheets import sales_sheet_page

READINESS_TIMEOUT_S = 2.0


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@get("/readyz")
async def readyz(state: State) -> Response[dict[str, str]]:
    """Readiness: 503 without the database; 'degraded' (still 200) without Redis.

    Without Redis every worker is equally degraded, so taking them out of the load balancer
    would not help: calls still commit and streams fall back to reading the outbox.
    """
    services: Services = state.services
    database = "ok"
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_S), services.db.read_sessions() as db:
            await db.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means not ready; say which part
        logging.getLogger("app.health").warning("readiness: database check failed: %s", exc)
        database = "unavailable"
    ready = database == "ok"
    status = "unavailable" if not ready else "ok" if services.bus.healthy else "degraded"
    body = {"status": status, "database": database, "bus": services.bus.status}
    return Response(body, status_code=200 if ready else 503)


def _open_to_other_origins(
    settings: Settings, handlers: Sequence[ControllerRouterHandler]
) -> list[ControllerRouterHandler]:
    """The handlers, behind CORS for CORS_ALLOWED_ORIGINS when it names any (DESIGN.md 2.3)."""
    if not settings.cors_allowed_origins:
        return [*handlers]  # no middleware at all: same-origin calls pay nothing
    cors = CORSConfig(
        allow_origins=[*settings.cors_allowed_origins],
        allow_methods=["GET", "POST"],
        # Whatever headers a page sends (authorization, content-type, last-event-id, tRPC's
        # own and an app's): the origin is the gate, and a fixed list would break a frontend
        # that adds one.
        allow_headers=["*"],
        # Calls carry a bearer token or a stream ticket, never cookies.
        allow_credentials=False,
        expose_headers=["x-request-id"],
    )
    return [Router("/", route_handlers=[*handlers], middleware=[_CrossOrigin(cors)])]


class _CrossOrigin(ASGIMiddleware):
    """Applies a CORSConfig to the routes it wraps, and to no others.

    litestar applies a CORSConfig to a whole app only (litestar#3403), while DESIGN.md 2.3
    opens the API and the streams and nothing else. The config still decides which origins
    and which headers; this answers with header lists built once, since /rpc is the hot route
    and browsers send Origin with every POST, same-origin ones too: those pass through after
    one look at the headers. (litestar's own CORS middleware, on a Router, added 20-30 us to
    each such call in process, about what the JSON-RPC layer itself costs; this adds a few.)
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, config: CORSConfig) -> None:
        self._config = config
        # Vary: Origin, the allowed methods and the max age (no credentials, no "*").
        self._preflight = _header_list(config.preflight_headers)
        self._simple = _header_list({**config.simple_headers, "Vary": "Origin"})

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        origin = _header(scope, b"origin")
        if origin is None or not self._config.is_origin_allowed(origin.decode("latin-1")):
            # Same-origin, not from a browser, or not allowed: no CORS headers, so a browser
            # keeps the answer from another origin's page.
            await next_app(scope, receive, send)
            return
        allow_origin = (b"access-control-allow-origin", origin)
        if scope.get("method") == "OPTIONS" and _header(scope, b"access-control-request-method"):
            headers = [allow_origin, *self._preflight]
            requested = _header(scope, b"access-control-request-headers")
            if requested:
                headers.append((b"access-control-allow-headers", requested))
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), allow_origin, *self._simple]
                message = {**message, "headers": headers}
            await send(message)

        await next_app(scope, receive, send_with_cors)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def _header_list(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


_SignalHandler = Callable[[int, FrameType | None], Any]


@contextlib.contextmanager
def _on_stop_signals(callback: Callable[[], None]) -> Iterator[None]:
    """Run `callback` in the event loop as soon as the process is told to stop.

    uvicorn takes SIGTERM and SIGINT before the lifespan starts, but tells the app only at
    lifespan shutdown, after it has waited for open connections to close: a stream would be
    cut, not ended. So its handlers are wrapped; each still does what it did. A signal left
    to its default (outside uvicorn) keeps its default.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    loop = asyncio.get_running_loop()

    def then(previous: _SignalHandler) -> _SignalHandler:
        def handler(signum: int, frame: FrameType | None) -> None:
            # A signal handler interrupts the loop anywhere: hand the callback to the loop.
            # A loop already closed (an app stopped earlier in this process) has no streams.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback)
            previous(signum, frame)

        return handler

    wrapped: list[tuple[signal.Signals, _SignalHandler, _SignalHandler]] = []
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(stop_signal)
        if callable(previous):
            handler = then(previous)
            signal.signal(stop_signal, handler)
            wrapped.append((stop_signal, previous, handler))
    try:
        yield
    finally:
        for stop_signal, previous, handler in wrapped:
            if signal.getsignal(stop_signal) is handler:
                signal.signal(stop_signal, previous)


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings(os.environ)
    services = Services.create(settings)
    dispatcher = Dispatcher(services, REGISTRY)

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        await services.start()
        sweeper = asyncio.create_task(run_forever(services), name="idle-sweeper")
        watcher = asyncio.create_task(watch_outbox(services), name="outbox-watcher")
        presence = asyncio.create_task(
            PresenceKeeper(services).run_forever(), name="presence-keeper"
        )
        try:
            # Told to stop, the worker ends its streams within the grace period (DESIGN.md 5).
            with _on_stop_signals(OPEN_STREAMS.close_all):
                yield
        finally:
            for task in (presence, sweeper, watcher):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await services.close()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return Litestar(
        route_handlers=[
            *_open_to_other_origins(settings, [*ROUTES, *SSE_ROUTES]),
            *PAGE_ROUTES,
            healthz,
            readyz,
            sales_sheet_page,
        ],
        state=State({"dispatcher": dispatcher, "services": services}),
        lifespan=[lifespan],
        request_max_body_size=settings.rpc_max_body_bytes,
        debug=False,
        openapi_config=None,
    )
