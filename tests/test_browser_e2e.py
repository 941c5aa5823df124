"""The console and the room in real headless Chromium, against a real server process.

A host page and a client page (two browser contexts, so two separate sign-ins) work one session
together: each change on one side shows on the other within a second, the client cannot touch
the host's lines, nothing staff-only reaches the client (DOM, responses or stream frames), both
pages ride out a server kill and restart without a reload, and the conversion reaches the
client with its order and sales sheet.

Needs Debian's chromium (`apt-get install -y chromium`) and Playwright for Python (dev extras);
Playwright's own browser download is never used. Without them the test skips, unless
REQUIRE_SERVICES=1. `UPDATE_SCREENSHOTS=1` also saves docs/console.png and docs/room.png.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from app.auth import TokenService
from app.config import Settings, load_settings
from app.domain.actors import Role
from tests import services
from tests.live_server import server_env

try:
    from playwright.sync_api import BrowserContext, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the skip below says what to install
    sync_playwright = None

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
# Playwright's own browser builds cannot be downloaded here; Debian's chromium is driven instead,
# with nothing that calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LIVE_MS = 1000  # a change on one side shows on the other within a second
RECONNECT_MS = 20_000

NOTES = "Margin floor 31% - do not go below 289.00 on the tote"
COGS = {"SWD-9-A": "96.17", "LT-9-A": "142.39", "CO-9-A": "310.77"}
CREDIT_LIMIT = "98765.43"
SECRETS = (NOTES, CREDIT_LIMIT, *COGS.values())
FORBIDDEN_KEY = re.compile(r"cogs|internal|credit|exposure|utili[sz]ation", re.IGNORECASE)
FORBIDDEN_TEXT = re.compile(r"unitCogs|internalNotes|creditLimit|internal note|credit", re.I)
_SETTING_NAMES = frozenset(f.encode_name for f in msgspec.structs.fields(Settings))


def require_browser() -> None:
    missing = []
    if sync_playwright is None:
        missing.append("Playwright for Python (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        missing.append(f"chromium at {CHROMIUM} (apt-get install -y chromium)")
    if not missing:
        return
    reason = "browser tests need " + " and ".join(missing)
    if services.required():
        pytest.fail(f"{reason}; REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(reason)


# --- the server ------------------------------------------------------------------------------


class ServerProcess:
    """`python -m app serve` on a fixed port, so it can be killed and started again there."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env = env
        self.port = port
        self.base_url = f"http://{HOST}:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkstemp(prefix=f"e2e-server-{port}-", suffix=".log")[1])

    def start(self) -> None:
        inherited = {k: v for k, v in os.environ.items() if k not in _SETTING_NAMES}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app", "serve", "--host", HOST, "--port", str(self.port)],
                cwd=ROOT,
                env={**inherited, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: killed alone, and all of it
            )
        deadline = time.monotonic() + 20
        with httpx.Client(base_url=self.base_url, timeout=1) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/healthz").status_code == 200:
                        return
                time.sleep(0.05)
        raise RuntimeError(f"server on {self.base_url} did not start:\n{self.log.read_text()}")

    def kill(self) -> None:
        """As a crash would: no graceful shutdown, streams cut."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# --- the world -------------------------------------------------------------------------------


@dataclass
class Rpc:
    base_url: str
    token: str

    def __call__(self, method: str, params: dict[str, Any] | None = None) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
        headers = {"authorization": f"Bearer {self.token}"}
        answer = httpx.post(f"{self.base_url}/rpc", json=body, headers=headers, timeout=10).json()
        assert "error" not in answer, answer
        return answer["result"]


@dataclass
class World:
    session_id: int
    room_code: str
    staff: str
    client: str
    admin: str
    batches: dict[str, int]


def build_world(base_url: str, tokens: TokenService) -> World:
    admin = tokens.issue(sub=1, role=Role.ADMIN, ttl_seconds=3600)
    staff = tokens.issue(sub=2, role=Role.STAFF, ttl_seconds=3600)
    as_admin = Rpc(base_url, admin)
    client_id = as_admin(
        "clients.create",
        {"name": "Maison Laurent", "creditLimit": CREDIT_LIMIT, "priceAdjustmentPercent": "-10"},
    )["id"]
    batches = {}
    for name, sku, price, code, on_hand in [
        ("Silk Wrap Dress", "SWD-9", "420.00", "SWD-9-A", "24"),
        ("Leather Tote", "LT-9", "685.00", "LT-9-A", "15"),
        ("Cashmere Overcoat", "CO-9", "1290.00", "CO-9-A", "8"),
    ]:
        product = as_admin("catalog.createProduct", {"name": name, "sku": sku, "listPrice": price})
        batches[code] = as_admin(
            "catalog.createBatch",
            {
                "productId": product["id"],
                "code": code,
                "onHandQty": on_hand,
                "unitCogs": COGS[code],
            },
        )["id"]
    created = Rpc(base_url, staff)(
        "liveShopping.createSession",
        {"clientId": client_id, "title": "Spring preview", "internalNotes": NOTES},
    )
    client = tokens.issue(sub=101, role=Role.CLIENT, client_id=client_id, ttl_seconds=3600)
    return World(created["sessionId"], created["roomCode"], staff, client, admin, batches)


# --- what a page did -------------------------------------------------------------------------


@dataclass
class Watched:
    """What one page logged and fetched, and every SSE message it received (read by CDP)."""

    page: Page
    origin: str
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    responses: list[Any] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, context: BrowserContext, origin: str) -> Watched:
        page = context.new_page()
        watched = cls(page, origin)
        page.on("console", lambda m: m.type == "error" and watched.errors.append(m.text))
        page.on("pageerror", lambda e: watched.errors.append(f"uncaught: {e}"))
        page.on("request", watched._on_request)
        page.on("response", lambda r: watched.responses.append(r))
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.on("Network.eventSourceMessageReceived", lambda m: watched.frames.append(m["data"]))
        return watched

    def _on_request(self, request: Any) -> None:
        if not request.url.startswith((self.origin + "/", "data:")):
            self.foreign.append(request.url)

    def bodies(self) -> list[str]:
        """Every response body it received, but the streams (their frames are in `frames`)."""
        found = []
        for response in self.responses:
            if "text/event-stream" in response.headers.get("content-type", ""):
                continue
            with contextlib.suppress(Exception):  # a body the browser no longer keeps
                found.append(response.text())
        return found


# Layout shifts not caused by the page's own user (an event arriving), recorded from the start.
RECORD_LAYOUT_SHIFTS = """
window.layoutShifts = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if (entry.hadRecentInput) continue;
    const moved = entry.sources.map(
      (s) => (s.node ? s.node.id || s.node.className || s.node.nodeName : '?'));
    window.layoutShifts.push(`${entry.value.toFixed(4)} ${moved.join(',')}`);
  }
}).observe({type: 'layout-shift', buffered: true});
"""


def layout_shifts(page: Page) -> list[str]:
    """The shifts since the last call (and clears them)."""
    shifts: list[str] = page.evaluate("window.layoutShifts.splice(0)")
    return shifts


def connection(page: Page) -> Any:
    return page.locator("#connection")


def host_row(host: Page, product: str, by: str) -> Any:
    return host.locator("#cart-body tr", has_text=product).filter(
        has=host.locator(f'.tag.by[data-by="{by}"]')
    )


def room_line(room: Page, product: str) -> Any:
    return room.locator("#cart-lines li", has_text=product)


def forced_rpc(room: Page, method: str, params: dict[str, Any]) -> Any:
    """Call the API from inside the room page, with its own sign-in, past its controls."""
    return room.evaluate(
        """async ([method, params]) => {
            const token = sessionStorage.getItem('liveshop.room.token');
            const answer = await fetch('/rpc', {method: 'POST', headers: {
                'content-type': 'application/json', authorization: `Bearer ${token}`},
                body: JSON.stringify({jsonrpc: '2.0', id: 1, method, params})});
            return answer.json();
        }""",
        [method, params],
    )


def json_keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from json_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from json_keys(item)


def leaks_in(text: str) -> list[str]:
    found = [secret for secret in SECRETS if secret in text]
    with contextlib.suppress(ValueError):
        found += [key for key in json_keys(json.loads(text)) if FORBIDDEN_KEY.search(key)]
    return found


# --- the test --------------------------------------------------------------------------------


@pytest.fixture
def server(sqlite_template: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    require_browser()
    database = tmp_path / "e2e.db"
    shutil.copy(sqlite_template, database)
    process = ServerProcess(server_env(f"sqlite+aiosqlite:///{database}"), free_port())
    process.start()
    try:
        yield process
    finally:
        process.stop()
        process.log.unlink(missing_ok=True)


def test_host_and_client_pages_work_one_session_live_across_a_server_restart(
    server: ServerProcess,
) -> None:
    assert sync_playwright is not None
    tokens = TokenService(load_settings(server.env))
    world = build_world(server.base_url, tokens)
    base = server.base_url
    staff = Rpc(base, world.staff)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        host_context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-US")
        room_context = browser.new_context(
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            locale="en-US",
        )
        for context in (host_context, room_context):
            context.add_init_script(RECORD_LAYOUT_SHIFTS)
        host_watch = Watched.open(host_context, base)
        room_watch = Watched.open(room_context, base)
        host, room = host_watch.page, room_watch.page

        # Both pages open from their sign-in links and take the token out of the address bar.
        host.goto(f"{base}/console/session/{world.session_id}#token={world.staff}")
        room.goto(f"{base}/room/{world.room_code}#token={world.client}")
        expect(connection(host)).to_have_text("Live")
        expect(connection(room)).to_have_text("Live")
        assert "token" not in host.url and "token" not in room.url
        expect(host.locator("#presence-client")).to_have_class(re.compile(r"\bon\b"))
        host.evaluate("window.sameDocument = true")
        room.evaluate("window.sameDocument = true")
        expect(room.locator("#search-results li")).to_have_count(3)
        expect(host.locator("#stock-list li")).to_have_count(3)
        room.wait_for_timeout(300)  # the credit meter and timeline of the host page settle
        for page in (host, room):
            layout_shifts(page)  # from here on, only what events move counts

        # The host adds, re-prices and highlights: the client sees each within a second.
        host.get_by_role("button", name="Add Silk Wrap Dress SWD-9-A", exact=True).click()
        expect(room_line(room, "Silk Wrap Dress")).to_contain_text("378.00", timeout=LIVE_MS)
        price = host.locator("#prices-body tr", has_text="Silk Wrap Dress")
        price.get_by_label("Session price of Silk Wrap Dress").fill("350")
        price.get_by_role("button", name="Set").click()
        expect(room_line(room, "Silk Wrap Dress")).to_contain_text("350.00", timeout=LIVE_MS)
        # The list price stays beside it, so the client sees the discount.
        expect(room_line(room, "Silk Wrap Dress")).to_contain_text("420.00")
        host.get_by_role("button", name="Show Leather Tote LT-9-A to the client").click()
        expect(room.locator("#highlight-name")).to_have_text("Leather Tote", timeout=LIVE_MS)

        # What arrived moved nothing on the client's page.
        assert layout_shifts(room) == []

        # The client adds the showcased tote and edits its own line: the host sees both.
        room.get_by_role("button", name="Add to cart").click()
        expect(host_row(host, "Leather Tote", "CLIENT")).to_be_visible(timeout=LIVE_MS)
        own = room_line(room, "Leather Tote")
        own.get_by_label("Quantity of Leather Tote").fill("2")
        own.get_by_role("button", name="Update").click()
        expect(host_row(host, "Leather Tote", "CLIENT").locator("input.qty")).to_have_value(
            "2", timeout=LIVE_MS
        )

        host.wait_for_timeout(300)
        assert layout_shifts(host) == []

        # A host line has no control on the client page, and a forced call is refused.
        host_line = room_line(room, "Silk Wrap Dress")
        expect(host_line).to_contain_text("added by your host")
        assert host_line.locator("input, button").count() == 0
        assert own.locator("input, button").count() == 3
        cart = staff("liveShopping.getSession", {"sessionId": world.session_id})["cart"]
        host_item = next(i for i in cart["items"] if i["addedByRole"] == "HOST")
        load_errors = host_watch.errors + room_watch.errors
        refused = forced_rpc(
            room,
            "vipPortalLiveShopping.updateCartQuantity",
            {"roomCode": world.room_code, "cartItemId": host_item["id"], "quantity": "9"},
        )
        assert refused["error"]["data"]["code"] == "FORBIDDEN"
        expect(host_line).to_contain_text("Qty 1")

        # Checkout: the client asks, the host sees it, answers, and the client reads the answer.
        room.get_by_role("button", name="Request checkout").click()
        expect(host.locator("#checkout-state")).to_contain_text(
            "asked to check out", timeout=LIVE_MS
        )
        expect(room.locator("#checkout-state")).to_contain_text("waiting for your host")
        if os.environ.get("UPDATE_SCREENSHOTS") == "1":
            take_screenshots(host, room)
        host.get_by_label("Message to the client").fill("Wrapping it up now")
        host.get_by_role("button", name="Accept").click()
        expect(room.locator("#checkout-state")).to_contain_text(
            "accepted: “Wrapping it up now”", timeout=LIVE_MS
        )
        assert load_errors == [], load_errors

        # A refusal reads as words, not JSON.
        room.get_by_label("Quantity", exact=True).fill("999")
        room.get_by_role("button", name="Add to cart").click()
        toast = room.locator("#toast")
        expect(toast).to_have_text(
            re.compile(r"^Only [\d.,]+ left - other sessions hold the rest$")
        )

        # The server dies. Both pages say so, and keep trying with fresh tickets.
        room_errors_before = len(room_watch.errors)
        server.kill()
        expect(connection(host)).to_have_text("Reconnecting…", timeout=5000)
        expect(connection(room)).to_have_text("Reconnecting…", timeout=5000)
        # Meanwhile both sides change the cart through another server on the same database.
        stand_in = ServerProcess(server.env, free_port())
        stand_in.start()
        try:
            Rpc(stand_in.base_url, world.staff)(
                "liveShopping.updateCartQuantity",
                {"sessionId": world.session_id, "cartItemId": host_item["id"], "quantity": "3"},
            )
            Rpc(stand_in.base_url, world.client)(
                "vipPortalLiveShopping.addToCart",
                {"roomCode": world.room_code, "batchId": world.batches["CO-9-A"], "quantity": 1},
            )
        finally:
            stand_in.stop()
            stand_in.log.unlink(missing_ok=True)
        server.start()
        # Back on the same port: both resume from the last event they saw, without a reload.
        expect(connection(host)).to_have_text("Live", timeout=RECONNECT_MS)
        expect(connection(room)).to_have_text("Live", timeout=RECONNECT_MS)
        expect(room_line(room, "Silk Wrap Dress")).to_contain_text("Qty 3", timeout=LIVE_MS)
        expect(host_row(host, "Cashmere Overcoat", "CLIENT")).to_be_visible(timeout=LIVE_MS)
        expect(host_row(host, "Silk Wrap Dress", "HOST").locator("input.qty")).to_have_value("3")
        assert host.evaluate("window.sameDocument") is True
        assert room.evaluate("window.sameDocument") is True

        # The host converts: the client sees the order and opens its sales sheet.
        host.get_by_role("button", name="Convert to order").click()
        expect(room.locator("#order")).to_be_visible(timeout=LIVE_MS)
        order_id = room.locator("#order-id").inner_text().lstrip("#")
        assert order_id.isdigit()
        expect(host.locator("#outcome")).to_have_text(f"Order #{order_id} created.")
        sheet_link = room.get_by_role("link", name="Open your sales sheet")
        expect(sheet_link).to_be_visible(timeout=LIVE_MS)
        with room_context.expect_page() as opened:
            sheet_link.click()
        sheet = opened.value
        sheet.wait_for_load_state()
        assert sheet.url.startswith(f"{base}/sales-sheets/")
        expect(sheet.locator("body")).to_contain_text("Silk Wrap Dress")
        expect(sheet.locator("body")).to_contain_text("Leather Tote")
        expect(connection(room)).to_have_text("Session closed", timeout=RECONNECT_MS)

        # Nothing staff-only reached the client: not its DOM, not a response, not a stream frame.
        assert room_watch.frames, "the stream frames were read"
        bodies = room_watch.bodies()
        assert any('"vipPortalLiveShopping' in b or '"cart"' in b for b in bodies)
        dom = room.content()
        assert leaks_in(dom) == [] and not FORBIDDEN_TEXT.search(room.inner_text("body"))
        for text in [*bodies, *room_watch.frames]:
            assert leaks_in(text) == [], text[:300]
        # ...while the host's page did get them: the scan would have seen a leak.
        assert any(NOTES in f for f in host_watch.frames)

        # No request left this origin; the only console errors are from the outage and the
        # refused forced call, on the room, after the pages had loaded.
        assert host_watch.foreign == [] and room_watch.foreign == []
        assert all(
            "Failed to load resource" in e or "ERR_CONNECTION_REFUSED" in e
            for e in host_watch.errors + room_watch.errors[room_errors_before:]
        ), host_watch.errors + room_watch.errors
        browser.close()


def take_screenshots(host: Page, room: Page) -> None:
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    host.screenshot(path=str(docs / "console.png"))
    room.screenshot(path=str(docs / "room.png"), full_page=True)
