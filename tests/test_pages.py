"""The browser pages as served: right types, a strict CSP, nothing staff-only in the room."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import PurePosixPath

import httpx
import pytest
from litestar.testing import AsyncTestClient

from app.server import create_app
from app.web.pages import STATIC_DIR
from tests.conftest import make_settings

PAGES = ["/console", "/console/session/7", "/room/0b7d2c1e-room-code"]
ROOM_PAGE = "/room/0b7d2c1e-room-code"
# Words that only staff may see: cost, internal notes, credit, staff procedures and streams.
STAFF_ONLY = re.compile(
    r"cogs|\bcost|internal(?!_server_error)|notes|credit|exposure|utili[sz]ation|bypass|"
    r"(?<![a-z])liveShopping\.|"
    r"/api/sse/live-shopping/|console\.js",
    re.IGNORECASE,
)
_ASSET = re.compile(r"""(?:src|href)="(/static/[^"]+)\"""")
_IMPORT = re.compile(r"""(?:^|\s)(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]""", re.M)


@pytest.fixture
async def http(sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncTestClient(app=create_app(make_settings(sqlite_url))) as client:
        yield client


@pytest.fixture
async def http_feature_off(sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(sqlite_url, FEATURE_LIVE_SHOPPING_ENABLED="false")
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


def assert_strict_csp(response: httpx.Response) -> None:
    policy = response.headers["content-security-policy"]
    directives = dict(
        [*part.split(" ", 1), ""][:2] for part in (p.strip() for p in policy.split(";")) if part
    )
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src"):
        assert directives[name] == "'self'", (name, policy)
    assert "unsafe" not in policy
    assert "http" not in policy  # no other origin anywhere
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def assets_of(html: str) -> list[str]:
    return _ASSET.findall(html)


async def module_graph(http: httpx.AsyncClient, entry: str) -> dict[str, str]:
    """Every ES module reachable from `entry` (a /static/ path) -> its served source."""
    found: dict[str, str] = {}
    todo = [entry]
    while todo:
        path = todo.pop()
        if path in found:
            continue
        response = await http.get(path)
        assert response.status_code == 200, path
        found[path] = response.text
        base = PurePosixPath(path).parent
        for relative in _IMPORT.findall(response.text):
            todo.append(str(PurePosixPath(base, relative)).replace("/./", "/"))
    return found


@pytest.mark.parametrize("path", PAGES)
async def test_pages_are_html_with_a_strict_self_only_policy(
    http: httpx.AsyncClient, path: str
) -> None:
    response = await http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert_strict_csp(response)


@pytest.mark.parametrize("path", PAGES)
async def test_pages_carry_no_inline_code_and_name_no_other_origin(
    http: httpx.AsyncClient, path: str
) -> None:
    html = (await http.get(path)).text
    # The policy would block inline code, so there must be none to block.
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "<style" not in html
    assert not re.search(r"\sstyle=|\son[a-z]+=", html)
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", html)
    assert assets_of(html), "a page loads its script and styles from /static/"


@pytest.mark.parametrize("path", ["/console", ROOM_PAGE])
async def test_every_asset_and_module_of_a_page_is_served_with_its_type_and_the_policy(
    http: httpx.AsyncClient, path: str
) -> None:
    html = (await http.get(path)).text
    expected = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    scripts = [a for a in assets_of(html) if a.endswith(".js")]
    modules: dict[str, str] = {}
    for script in scripts:
        modules |= await module_graph(http, script)
    for asset in [*assets_of(html), *modules]:
        response = await http.get(asset)
        assert response.status_code == 200, asset
        suffix = PurePosixPath(asset).suffix
        assert response.headers["content-type"].startswith(expected[suffix]), asset
        assert_strict_csp(response)
    for source in modules.values():
        # Only relative imports of our own files: no CDN, no bare package names to resolve.
        assert not re.search(r"""from\s+['"](?!\.)""", source)
        # Markup is built from text nodes only: nothing from the service can become HTML.
        assert not re.search(
            r"\.(?:inner|outer)HTML\s*=|insertAdjacentHTML|document\.write", source
        )


async def test_the_room_and_everything_it_loads_has_no_staff_only_words(
    http: httpx.AsyncClient,
) -> None:
    html = (await http.get(ROOM_PAGE)).text
    files = {ROOM_PAGE: html}
    for asset in assets_of(html):
        files[asset] = (await http.get(asset)).text
        if asset.endswith(".js"):
            files |= await module_graph(http, asset)
    assert "/static/js/room.js" in files
    leaks = {
        path: sorted({m.group(0) for m in STAFF_ONLY.finditer(text)})
        for path, text in files.items()
        if STAFF_ONLY.search(text)
    }
    assert not leaks


async def test_the_console_is_a_different_program_from_the_room(http: httpx.AsyncClient) -> None:
    console = (await http.get("/console")).text
    room = (await http.get(ROOM_PAGE)).text
    assert "/static/js/console.js" in console and "console.js" not in room
    assert "/static/js/room.js" in room


@pytest.mark.parametrize(
    "path",
    [
        "/static/js/nope.js",
        "/static/../pages.py",
        "/static/%2e%2e/pages.py",
        "/static/js/../../pages.py",
        "/static/room.html",  # pages are served at their routes only
        "/static/.hidden.js",
        "/static/js/room.py",
        "/console/session/not-a-number",
    ],
)
async def test_nothing_outside_the_static_assets_is_served(
    http: httpx.AsyncClient, path: str
) -> None:
    response = await http.get(path)
    assert response.status_code == 404, path
    assert "import" not in response.text


@pytest.mark.parametrize("path", [*PAGES, "/static/js/room.js", "/static/css/base.css"])
async def test_with_the_feature_off_the_pages_and_assets_do_not_exist(
    http_feature_off: httpx.AsyncClient, path: str
) -> None:
    response = await http_feature_off.get(path)
    assert response.status_code == 404
    assert_strict_csp(response)


def test_the_static_folder_holds_only_what_the_pages_serve() -> None:
    kinds = {p.suffix for p in STATIC_DIR.rglob("*") if p.is_file()}
    assert kinds <= {".html", ".js", ".css", ".svg"}
