"""The application factory: one ASGI app per worker process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Response, get
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.types import Receive, Scope, Send
from sqlalchemy import text

import procedures  # noqa: F401 - importing registers every procedure
from app.config import Settings, load_settings
from app.cross_origin import open_to_other_origins
from app.events.heartbeat import send_heartbeats
from app.events.outbox_pruning import prune_forever
from app.events.outbox_watch import watch_outbox
from app.events.sse import OPEN_STREAMS, STREAMS_PREFIX, open_stream
from app.events.sse import ROUTES as SSE_ROUTES
from app.idle_sweeper import run_forever
from app.presence_keeper import PresenceKeeper
from app.rpc.dispatch import Dispatcher
from app.rpc.http import ROUTES, TRPC_PREFIX, served_subscription
from app.rpc.registry import REGISTRY
from app.runtime import Services
from app.scope_headers import first_header
from app.stop_signals import on_stop_signals
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
        pruner = asyncio.create_task(prune_forever(services), name="outbox-pruner")
        heartbeats = asyncio.create_task(
            send_heartbeats(services.bus.hub, settings.heartbeat_ms), name="heartbeats"
        )
        try:
            # Told to stop, the worker ends its streams within the grace period (DESIGN.md 5).
            with on_stop_signals(OPEN_STREAMS.close_all):
                yield
        finally:
            for task in (presence, sweeper, watcher, pruner, heartbeats):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await services.close()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return Litestar(
        route_handlers=[
            *open_to_other_origins(settings, [*ROUTES, *SSE_ROUTES]),
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


def create_served_app() -> StreamsFirst:
    """What `python -m app serve` runs: the app, with streams answered before its router."""
    return StreamsFirst(create_app())


class StreamsFirst:
    """The ASGI app in front of litestar: a stream request (under /api/sse, or a tRPC
    subscription) goes straight to the stream core, everything else to litestar.

    A stream is long-lived and most of its life idle: through the router, litestar's layers
    (its scope copy, state, exception and send wrappers, one suspended frame each) stayed alive
    as long as it did, a few KB per stream, which at ten thousand streams per worker is what
    this saves. The answer is the same either way (the router's mount calls the same core,
    and in-process tests go through it). A request with an Origin goes through the router when
    CORS is configured, so the API's one CORS layer answers it (app/cross_origin.py).
    """

    def __init__(self, app: Litestar) -> None:
        self.app = app
        self._dispatcher: Dispatcher = app.state.dispatcher
        self._services: Services = app.state.services
        self._cors = bool(self._services.settings.cors_allowed_origins)
        self._prefix = STREAMS_PREFIX + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and not (self._cors and first_header(scope, b"origin")):
            path = scope["path"]
            if path.startswith(self._prefix):
                path = path[len(STREAMS_PREFIX) :]
                await open_stream(self._services, scope, receive, send, path)
                return
            # A tRPC subscription likewise; any other /trpc call goes to the router.
            if path.startswith(TRPC_PREFIX):
                subscription = served_subscription(self._dispatcher, scope, receive, send)
                if subscription is not None:
                    await subscription
                    return
        await self.app(scope, receive, send)
