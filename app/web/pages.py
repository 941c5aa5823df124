"""The staff console (`/console`) and the client room (`/room/{roomCode}`), with their assets.

Both pages are plain static files from app/web/static: an HTML shell plus ES modules and CSS
that call `/rpc` and follow one SSE stream. Nothing is rendered on the server, so a page
carries no session data and no credentials: the bearer token arrives in the URL fragment,
which browsers never send. Every answer carries a Content-Security-Policy that allows only
this origin, so neither an injected script nor a request to another host can run.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from litestar import Request, Response, get

from app.runtime import Services

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/static"

# No inline script or style, no other origin. `connect-src 'self'` covers fetch and
# EventSource; images are same-origin or data: URLs (none today, so a favicon is not fetched
# from elsewhere); frames of this page only inside this origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'self'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    # The token is in the fragment, which is never in a Referer; the page path still names
    # a session or a room, which another site has no business seeing.
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}
MEDIA_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".txt": "text/plain",
}


def _enabled(request: Request[Any, Any, Any]) -> bool:
    services: Services = request.app.state.services
    return services.settings.live_shopping_enabled


def _file(path: Path, *, cache: str) -> Response[bytes]:
    return Response(
        path.read_bytes(),
        media_type=MEDIA_TYPES[path.suffix],
        headers={**SECURITY_HEADERS, "cache-control": cache},
    )


def _not_found() -> Response[bytes]:
    return Response(
        b"Not found",
        status_code=404,
        media_type=MEDIA_TYPES[".txt"],
        headers={**SECURITY_HEADERS, "cache-control": "no-store"},
    )


def _page(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
    # With the feature off the pages do not exist, as the procedures they call do not.
    if not _enabled(request):
        return _not_found()
    # no-store: a shared or back-button cache never serves an old shell after a deploy.
    return _file(STATIC_DIR / name, cache="no-store")


@get("/console", sync_to_thread=False)
def console_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The staff console: the sessions list and the form to open one."""
    return _page(request, "console.html")


@get("/console/session/{session_id:int}", sync_to_thread=False)
def console_session_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The staff console opened on one live session."""
    return _page(request, "console.html")


@get("/room/{room_code:str}", sync_to_thread=False)
def room_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The client's room; the page reads the room code from its own path."""
    return _page(request, "room.html")


@get(f"{STATIC_PREFIX}/{{asset:path}}", sync_to_thread=False)
def static_asset(request: Request[Any, Any, Any]) -> Response[bytes]:
    """A file of app/web/static: only known kinds, only inside that folder."""
    if not _enabled(request):
        return _not_found()
    asset = _asset_path(request.path_params["asset"])
    if asset is None:
        return _not_found()
    # Revalidated on each load (small files, same origin); pages and assets change together.
    return _file(asset, cache="no-cache")


def _asset_path(given: str) -> Path | None:
    """The file under STATIC_DIR that `given` names, or None (never a path outside it)."""
    relative = PurePosixPath(given.lstrip("/"))
    if relative.suffix not in MEDIA_TYPES or relative.suffix == ".html":
        return None
    if any(part in ("", ".", "..") or part.startswith(".") for part in relative.parts):
        return None
    path = (STATIC_DIR / relative).resolve()
    if not path.is_relative_to(STATIC_DIR.resolve()) or not path.is_file():
        return None
    return path


ROUTES = [console_page, console_session_page, room_page, static_asset]
