"""The application factory: one ASGI app per worker process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, get
from litestar.datastructures import State

import procedures  # noqa: F401 - importing registers every procedure
from app.config import Settings, load_settings
from app.idle_sweeper import run_forever
from app.rpc.dispatch import Dispatcher
from app.rpc.http import ROUTES
from app.rpc.registry import REGISTRY
from app.runtime import Services
from app.web.sales_sheets import sales_sheet_page


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings(os.environ)
    services = Services.create(settings)
    dispatcher = Dispatcher(services, REGISTRY)

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(run_forever(services), name="idle-sweeper")
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await services.close()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return Litestar(
        route_handlers=[*ROUTES, healthz, sales_sheet_page],
        state=State({"dispatcher": dispatcher, "services": services}),
        lifespan=[lifespan],
        request_max_body_size=settings.rpc_max_body_bytes,
        debug=False,
        openapi_config=None,
    )
