"""CORS for the API and the streams only, for the origins CORS_ALLOWED_ORIGINS names."""

from __future__ import annotations

from collections.abc import Sequence

from litestar import Router
from litestar.config.cors import CORSConfig
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, ControllerRouterHandler, Message, Receive, Scope, Send

from app.config import Settings
from app.scope_headers import first_header


def open_to_other_origins(
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
        origin = first_header(scope, b"origin")
        if origin is None or not self._config.is_origin_allowed(origin.decode("latin-1")):
            # Same-origin, not from a browser, or not allowed: no CORS headers, so a browser
            # keeps the answer from another origin's page.
            await next_app(scope, receive, send)
            return
        allow_origin = (b"access-control-allow-origin", origin)
        if scope.get("method") == "OPTIONS" and first_header(
            scope, b"access-control-request-method"
        ):
            headers = [allow_origin, *self._preflight]
            requested = first_header(scope, b"access-control-request-headers")
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


def _header_list(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]
