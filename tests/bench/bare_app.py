"""The baseline for rpc_overhead: one litestar route answering what system.health answers."""

from __future__ import annotations

from litestar import Litestar, post

from procedures.system import HEALTHY, Health


@post("/bare", status_code=200)
async def bare_health() -> Health:
    # Async like rpc_post, and the body is left unread: the gap to /rpc is the RPC layer.
    return HEALTHY


def create_app() -> Litestar:
    """Factory for `uvicorn --factory`, configured like app.server.create_app."""
    return Litestar(route_handlers=[bare_health], debug=False, openapi_config=None)
