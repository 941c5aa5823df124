"""`system.*` and `rpc.*`: health and discovery, open to everyone."""

from __future__ import annotations

from typing import Any

from app import __version__
from app.rpc.context import CallContext
from app.rpc.discovery import openrpc_document
from app.rpc.registry import Namespace, NoInput, Output

system = Namespace("system")
rpc = Namespace("rpc")


class Health(Output):
    status: str
    version: str


HEALTHY = Health(status="ok", version=__version__)


@system.query("health", roles=None)
async def health(ctx: CallContext, params: NoInput) -> Health:
    """Liveness of the RPC layer (does not touch the database)."""
    return HEALTHY


@rpc.query("discover", roles=None)
async def discover(ctx: CallContext, params: NoInput) -> dict[str, Any]:
    """The OpenRPC 1.3 document of every procedure this server exposes."""
    return openrpc_document(ctx.registry, ctx.base_url)
