"""addToCart against its floor: the same semantics written directly on aiomysql (issue 16).

`python -m tests.bench cart_floor` serves liveShopping.addToCart two ways on one fresh MariaDB
database with events on Redis:

- project: `python -m app serve --workers N`, the service as it ships;
- floor: this module's bare ASGI app (`create_app`) under the same uvicorn settings. It does
  what addToCart must do and nothing else: JWT check and host check, the session row FOR
  UPDATE (with the facts its views show), the batch row FOR UPDATE, the held-quantity sum,
  limit and pricing rules, the line upsert, one UPDATE of the session, the outbox row with both
  projections, COMMIT, Redis PUBLISH, and the full staff cart as the answer (the same JSON as
  the project's, byte for byte in size).

wrk drives both with the same requests (32 connections over 64 sessions, each add merging into
a line the session already holds), in alternating rounds A B A B with 1 and then 2 workers,
and the bench prints req/s, p50, p99, server CPU per request and the ratio project/floor.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

# --- the floor: a bare ASGI app on aiomysql -----------------------------------------------------

OPEN = ("SCHEDULED", "ACTIVE", "PAUSED")
CENTS = Decimal("0.01")
PLACES = Decimal("0.0001")
MAX_CART_ITEMS = 200  # LIVE_SHOPPING_MAX_CART_ITEMS' default
DEFAULT_TIMEOUT_MINS = 120

_SESSION = """
SELECT s.id, s.status, s.room_code, s.client_id, s.host_user_id, s.title, s.internal_notes,
       s.session_config, s.highlighted_batch_id, s.scheduled_at, s.started_at, s.ended_at,
       s.checkout_requested_at, s.checkout_answered_at, s.checkout_accepted, s.checkout_message,
       s.holds_expire_at, s.host_present, s.client_present, s.last_activity_at,
       s.last_event_seq, s.created_at,
       (SELECT name FROM clients WHERE id = s.client_id),
       (SELECT price_adjustment_percent FROM clients WHERE id = s.client_id),
       (SELECT id FROM orders WHERE session_id = s.id),
       (SELECT share_url FROM sales_sheets WHERE session_id = s.id ORDER BY id DESC LIMIT 1),
       (SELECT code FROM batches WHERE id = s.highlighted_batch_id),
       (SELECT product_id FROM batches WHERE id = s.highlighted_batch_id),
       (SELECT p.name FROM products p JOIN batches b ON b.product_id = p.id
         WHERE b.id = s.highlighted_batch_id),
       (SELECT p.list_price FROM products p JOIN batches b ON b.product_id = p.id
         WHERE b.id = s.highlighted_batch_id)
FROM live_shopping_sessions s WHERE s.id = %s FOR UPDATE
"""
_BATCH = """
SELECT b.id, b.code, b.product_id, b.on_hand_qty, b.reserved_qty, b.unit_cogs,
       (SELECT name FROM products WHERE id = b.product_id),
       (SELECT list_price FROM products WHERE id = b.product_id),
       (SELECT override_price FROM session_price_overrides
         WHERE session_id = %s AND product_id = b.product_id)
FROM batches b WHERE b.id = %s FOR UPDATE
"""
_HELD = """
SELECT COALESCE(SUM(ci.quantity), 0) FROM session_cart_items ci
JOIN live_shopping_sessions s ON s.id = ci.session_id
WHERE ci.batch_id = %s AND s.status IN ('SCHEDULED', 'ACTIVE', 'PAUSED')
"""
_CART = """
SELECT ci.id, ci.batch_id, b.code, ci.product_id, p.name, ci.quantity, ci.unit_price,
       p.list_price, ci.is_sample, ci.is_highlighted, ci.added_by_role, b.unit_cogs
FROM session_cart_items ci
JOIN batches b ON b.id = ci.batch_id JOIN products p ON p.id = ci.product_id
WHERE ci.session_id = %s ORDER BY ci.id
"""
_UPDATE_LINE = "UPDATE session_cart_items SET quantity = %s, updated_at = %s WHERE id = %s"
_INSERT_LINE = """
INSERT INTO session_cart_items (session_id, batch_id, product_id, quantity, unit_price,
  added_by_role, is_sample, is_highlighted, created_at, updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
_TOUCH = """
UPDATE live_shopping_sessions SET last_activity_at = %s, holds_expire_at = %s,
  last_event_seq = %s WHERE id = %s
"""
_EVENT = """
INSERT INTO session_events (session_id, seq, type, payload, created_at) VALUES (%s, %s, %s, %s, %s)
"""


class _Params(msgspec.Struct, rename="camel"):
    session_id: int
    batch_id: int
    quantity: Decimal
    is_sample: bool = False


class _Call(msgspec.Struct):
    params: _Params
    id: int | str | None = None
    method: str = ""


class _Refused(Exception):
    def __init__(self, status: int, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.name = status, code, name


_decode = msgspec.json.Decoder(_Call).decode
_encode = msgspec.json.Encoder(decimal_format="string").encode


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENTS, rounding=ROUND_HALF_UP)


class FloorApp:
    """addToCart for staff, as directly as aiomysql and Redis allow."""

    def __init__(self, env: Mapping[str, str]) -> None:
        import jwt

        self._jwt = jwt
        self._secret = env["JWT_SECRET"]
        self._database = urlsplit(env["DATABASE_URL"].replace("mysql+aiomysql", "mysql"))
        self._redis_url = env["REDIS_URL"]
        self._channel = f"{env.get('REDIS_CHANNEL_PREFIX') or 'floor'}:floor:session:"
        self._pool: Any = None
        self._redis: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/healthz":
            await _answer(send, 200, b'{"status":"ok"}')
            return
        try:
            call = _decode(body)
            claims = self._claims(scope)
            result = await self._add_to_cart(claims, call.params)
            await _answer(send, 200, b'{"jsonrpc":"2.0","id":%b,"result":%b}' % (
                _encode(call.id), result))  # fmt: skip
        except _Refused as refused:
            error = {"code": refused.code, "message": str(refused), "data": {"code": refused.name}}
            await _answer(send, refused.status, _encode({"jsonrpc": "2.0", "error": error}))
        except msgspec.ValidationError as invalid:
            error = {"code": -32602, "message": str(invalid), "data": {"code": "BAD_REQUEST"}}
            await _answer(send, 400, _encode({"jsonrpc": "2.0", "error": error}))

    async def _lifespan(self, receive: Any, send: Any) -> None:
        import aiomysql
        import redis.asyncio as aioredis

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._pool = await aiomysql.create_pool(
                    host=self._database.hostname,
                    port=self._database.port or 3306,
                    user=self._database.username or "root",
                    password=self._database.password or "",
                    db=self._database.path.lstrip("/"),
                    minsize=1,
                    maxsize=10,
                    autocommit=False,
                    init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                )
                self._redis = aioredis.from_url(self._redis_url)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._pool.close()
                await self._pool.wait_closed()
                await self._redis.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _claims(self, scope: dict[str, Any]) -> dict[str, Any]:
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, token = header.decode().partition(" ")
        if scheme.lower() != "bearer":
            raise _Refused(401, -32001, "UNAUTHORIZED", "Bearer token required")
        try:
            claims: dict[str, Any] = self._jwt.decode(
                token.strip(),
                self._secret,
                algorithms=["HS256"],
                options={"require": ["exp", "sub", "role"]},
            )
        except self._jwt.InvalidTokenError as exc:
            raise _Refused(401, -32001, "UNAUTHORIZED", f"Invalid token: {exc}") from None
        if claims["role"] not in ("ADMIN", "STAFF"):
            raise _Refused(403, -32003, "FORBIDDEN", "Staff only")
        return claims

    async def _add_to_cart(self, claims: dict[str, Any], params: _Params) -> bytes:
        quantity = params.quantity
        if quantity <= 0 or quantity != quantity.quantize(PLACES):
            raise _Refused(400, -32602, "BAD_REQUEST", "quantity must be > 0, 4 places")
        async with self._pool.acquire() as conn:
            try:
                answer, event = await self._in_transaction(conn, claims, params)
            except BaseException:
                await conn.rollback()
                raise
        # After commit, never failing the answer (the outbox has the event).
        with contextlib.suppress(Exception):
            await self._redis.publish(f"{self._channel}{params.session_id}", event)
        return answer

    async def _in_transaction(
        self, conn: Any, claims: dict[str, Any], params: _Params
    ) -> tuple[bytes, bytes]:
        quantity = params.quantity
        cur = await conn.cursor()
        await cur.execute(_SESSION, (params.session_id,))
        row = await cur.fetchone()
        if row is None:
            raise _Refused(404, -32004, "NOT_FOUND", f"Session {params.session_id} not found")
        session = _Session(*row)
        if claims["role"] == "STAFF" and session.host_user_id != int(claims["sub"]):
            raise _Refused(403, -32003, "FORBIDDEN", "Only the host may change it")
        if session.status not in OPEN:
            raise _Refused(412, -32012, "PRECONDITION_FAILED", f"Session is {session.status}")
        await cur.execute(_BATCH, (session.id, params.batch_id))
        batch = await cur.fetchone()
        if batch is None:
            raise _Refused(404, -32004, "NOT_FOUND", f"Batch {params.batch_id} not found")
        b_id, b_code, product_id, on_hand, reserved, cogs, name, list_price, override = batch
        await cur.execute(_HELD, (b_id,))
        (held,) = await cur.fetchone()
        await cur.execute(_CART, (session.id,))
        lines = [list(line) for line in await cur.fetchall()]
        side = "HOST"
        line = next(
            (x for x in lines if x[1] == b_id and bool(x[8]) == params.is_sample and x[10] == side),
            None,
        )
        if line is None and len(lines) >= MAX_CART_ITEMS:
            raise _Refused(412, -32012, "PRECONDITION_FAILED", "Too many lines")
        available = on_hand - reserved - held
        if quantity > available:
            raise _Refused(412, -32012, "PRECONDITION_FAILED", f"{available} available")
        now = datetime.now(UTC)
        before = None if line is None else {"quantity": str(line[5])}
        if line is None:
            adjustment = session.adjustment or Decimal(0)
            price = (
                _cents(override)
                if override is not None
                else _cents(list_price * (100 + adjustment) / 100)
            )
            highlighted = session.highlighted_batch_id == b_id
            await cur.execute(
                _INSERT_LINE,
                (session.id, b_id, product_id, quantity, price, side,
                 params.is_sample, highlighted, _naive(now), _naive(now)),
            )  # fmt: skip
            line = [cur.lastrowid, b_id, b_code, product_id, name, quantity.quantize(PLACES),
                    price, list_price, params.is_sample, highlighted, side, cogs]  # fmt: skip
            lines.append(line)
        else:
            line[5] = (line[5] + quantity).quantize(PLACES)
            await cur.execute(_UPDATE_LINE, (line[5], _naive(now), line[0]))
        config = json.loads(session.session_config or "{}")
        timeout = timedelta(minutes=config.get("sessionTimeoutMins", DEFAULT_TIMEOUT_MINS))
        holds = max(_aware(session.holds_expire_at) or now, now + timeout)
        seq = session.last_event_seq + 1
        await cur.execute(_TOUCH, (_naive(now), _naive(holds), seq, session.id))
        staff_cart, client_cart = _carts(lines)
        change = {
            "subject": {"cartItemId": line[0], "batchId": b_id, "productId": product_id,
                        "isSample": params.is_sample, "addedByRole": side},
            "before": before,
            "after": {"quantity": str(line[5])},
        }  # fmt: skip
        actor = {"userId": int(claims["sub"]), "role": claims["role"]}
        staff_view, client_view = session.views(now, holds)
        payload = {
            "staff": {"session": staff_view, "cart": staff_cart, "orderId": None,
                      "shareUrl": None, "occurredAt": now, "actor": actor, "change": change},
            "client": {"session": client_view, "cart": client_cart, "orderId": None,
                       "shareUrl": None, "occurredAt": now, "actor": actor, "change": change,
                       "staffOnly": False},
        }  # fmt: skip
        encoded = _encode(payload)
        await cur.execute(_EVENT, (session.id, seq, "CART_UPDATED", encoded.decode(), _naive(now)))
        await conn.commit()
        await cur.close()
        event = _encode(
            {"sessionId": session.id, "seq": seq, "type": "CART_UPDATED", "payload": payload}
        )
        return _encode(staff_cart), event


@dataclass(slots=True)
class _Session:
    id: int
    status: str
    room_code: str
    client_id: int
    host_user_id: int
    title: str | None
    internal_notes: str | None
    session_config: str | None
    highlighted_batch_id: int | None
    scheduled_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    checkout_requested_at: datetime | None
    checkout_answered_at: datetime | None
    checkout_accepted: int | None
    checkout_message: str | None
    holds_expire_at: datetime | None
    host_present: int
    client_present: int
    last_activity_at: datetime
    last_event_seq: int
    created_at: datetime
    client_name: str | None
    adjustment: Decimal | None
    order_id: int | None
    share_url: str | None
    hl_code: str | None
    hl_product_id: int | None
    hl_product_name: str | None
    hl_list_price: Decimal | None

    def views(self, now: datetime, holds: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
        highlight = (
            None
            if self.hl_code is None
            else {"batchId": self.highlighted_batch_id, "batchCode": self.hl_code,
                  "productId": self.hl_product_id, "productName": self.hl_product_name,
                  "listPrice": self.hl_list_price}
        )  # fmt: skip
        checkout = (
            None
            if self.checkout_requested_at is None
            else {"requestedAt": _aware(self.checkout_requested_at),
                  "answeredAt": _aware(self.checkout_answered_at),
                  "accepted": None if self.checkout_accepted is None
                  else bool(self.checkout_accepted), "message": self.checkout_message}
        )  # fmt: skip
        presence = {"host": bool(self.host_present), "client": bool(self.client_present)}
        deadline = holds if self.status in ("ACTIVE", "PAUSED") else None
        client = {
            "id": self.id, "status": self.status, "roomCode": self.room_code,
            "title": self.title, "hostUserId": self.host_user_id,
            "scheduledAt": _aware(self.scheduled_at), "startedAt": _aware(self.started_at),
            "endedAt": _aware(self.ended_at),
            "checkoutRequestedAt": _aware(self.checkout_requested_at), "highlight": highlight,
            "orderId": self.order_id, "shareUrl": self.share_url, "holdsExpireAt": deadline,
            "presence": presence, "checkout": checkout,
        }  # fmt: skip
        staff = {
            **client, "clientId": self.client_id, "clientName": self.client_name or "",
            "internalNotes": self.internal_notes, "lastActivityAt": now,
            "createdAt": _aware(self.created_at),
        }  # fmt: skip
        return staff, client


def _carts(lines: list[list[Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    staff_items, client_items, total = [], [], Decimal("0.00")
    for x in lines:
        is_sample = bool(x[8])
        subtotal = Decimal("0.00") if is_sample else _cents(x[5] * x[6])
        total += subtotal
        client_line = {
            "id": x[0], "batchId": x[1], "batchCode": x[2], "productId": x[3],
            "productName": x[4], "quantity": x[5], "unitPrice": x[6], "listPrice": x[7],
            "subtotal": subtotal, "isSample": is_sample, "isHighlighted": bool(x[9]),
            "addedByRole": x[10],
        }  # fmt: skip
        client_items.append(client_line)
        staff_items.append({**client_line, "unitCogs": x[11]})
    return (
        {"items": staff_items, "subtotal": total, "itemCount": len(lines)},
        {"items": client_items, "subtotal": total, "itemCount": len(lines)},
    )


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app() -> FloorApp:
    """Factory for `uvicorn --factory` (settings from the environment, as the project's)."""
    return FloorApp(os.environ)


# --- the bench ----------------------------------------------------------------------------------

CONNECTIONS = 32
SESSIONS = 64
BATCHES = 64
LINES_PER_SESSION = 4  # every add merges into one of these; the answer carries 4 lines
AMPLE_STOCK = 1_000_000_000
WARMUP_S = 3.0
ROUNDS = 3
ROUND_S = 8.0
WORKER_COUNTS = (1, 2)
TARGET_RATIO = 0.5
AIM_RATIO = 0.8

_WRK_SCRIPT = """\
local sessions = {{{sessions}}}
local choices = {{{choices}}}
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"

request = function()
  n = n + 1
  local i = (n % #sessions) + 1
  local batches = choices[i]
  local b = batches[(math.floor(n / #sessions) % #batches) + 1]
  local body = string.format(
    '{{"jsonrpc":"2.0","id":%d,"method":"liveShopping.addToCart",' ..
    '"params":{{"sessionId":%d,"batchId":%d,"quantity":"1"}}}}', n, sessions[i], b)
  return wrk.format(nil, nil, nil, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_RESULT %d %d %d %.0f %.0f\\n",
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True, slots=True)
class Round:
    side: str  # project or floor
    workers: int
    measurement: Any  # load_generators.Measurement
    cpu_ms_per_request: float | None


def run(*, load: str = "auto", seconds: float | None = None) -> bool:
    """The `python -m tests.bench` entry; False if a request failed or a service is missing."""
    from tests import services
    from tests.bench.server_process import busy_cpu_share

    if not (services.available("mariadb") and services.available("redis")):
        print("cart_floor: needs MariaDB and Redis (see tests/services.py for their addresses)")
        return False
    if load == "python":
        print("  note: --load python does not apply; this bench replays varied bodies with wrk")
    wrk = _wrk()
    if wrk is None:
        return False
    round_s = seconds or ROUND_S
    idle = busy_cpu_share()
    print(
        "cart_floor: liveShopping.addToCart (merging into a line) on MariaDB + Redis, project vs "
        "a raw aiomysql ASGI app\n"
        f"  wrk -t1 -c{CONNECTIONS} over {SESSIONS} sessions ({LINES_PER_SESSION} lines each), "
        f"{ROUNDS} rounds x {round_s:.0f} s alternating project/floor after {WARMUP_S:.0f} s "
        f"warm-up each; no CPU pinning, {os.cpu_count()} CPUs shared by servers, MariaDB, "
        "Redis and wrk" + ("" if idle is None else f"; machine {idle:.0%} busy before the run"),
        flush=True,
    )
    rounds = _bench(wrk, round_s)
    busy = busy_cpu_share()
    if busy is not None:
        print(f"  machine {busy:.0%} busy after the run (other work skews both sides alike)")
    return _report(rounds)


def _wrk() -> str | None:
    path = shutil.which("wrk")
    if path is not None:
        return path
    print("  wrk is not installed; installing it with apt-get", flush=True)
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        done = subprocess.run(command, capture_output=True, check=False, timeout=600)
        if done.returncode != 0:
            print(f"  {' '.join(command)} failed: {done.stderr.decode(errors='replace')[-400:]}")
            return None
    return shutil.which("wrk")


def _bench(wrk: str, round_s: float) -> list[Round]:
    from app.auth import TokenService
    from app.config import load_settings
    from app.domain.actors import Role
    from tests import live_server, services

    rounds: list[Round] = []
    with (
        live_server.fresh_database("ls_floor") as database,
        tempfile.TemporaryDirectory(prefix="bench-cart-floor-") as tmp,
    ):
        env = live_server.server_env(database, REDIS_URL=services.REDIS_URL)
        tokens = TokenService(load_settings(env))
        staff = tokens.issue(sub=2, role=Role.STAFF)
        with live_server.running_servers(env, 1) as (setup,):
            sessions, choices = _world(setup.base_url, tokens)
        script = Path(tmp) / "add.lua"
        script.write_text(
            _WRK_SCRIPT.format(
                sessions=",".join(map(str, sessions)),
                choices=",".join("{" + ",".join(map(str, choices[s])) + "}" for s in sessions),
                token=staff,
            )
        )
        for workers in WORKER_COUNTS:
            with (
                live_server.running_servers(env, 1, workers=workers) as (project,),
                _floor_server(env, workers, Path(tmp) / f"floor-{workers}.log") as floor,
            ):
                servers = {"project": (project.base_url, project.pid), "floor": floor}
                if workers == WORKER_COUNTS[0]:
                    _compare_answers(servers, staff, sessions[0], choices[sessions[0]][0])
                for url, _ in servers.values():
                    _wrk_run(wrk, script, f"{url}/rpc", WARMUP_S)
                for number in range(1, ROUNDS + 1):
                    for side, (url, pid) in servers.items():
                        cpu_before = _cpu_seconds(pid)
                        measurement = _wrk_run(wrk, script, f"{url}/rpc", round_s)
                        cpu_after = _cpu_seconds(pid)
                        cpu = (
                            None
                            if cpu_before is None or cpu_after is None or not measurement.requests
                            else (cpu_after - cpu_before) * 1000 / measurement.requests
                        )
                        done = Round(side, workers, measurement, cpu)
                        rounds.append(done)
                        print(f"  {workers} worker{'s' if workers > 1 else ' '} round {number} "
                              f"{_line(done)}", flush=True)  # fmt: skip
    return rounds


def _world(base_url: str, tokens: Any) -> tuple[list[int], dict[int, list[int]]]:
    """SESSIONS sessions, each holding LINES_PER_SESSION lines of its own choice of batches."""
    import asyncio
    import random

    import httpx

    from tests.bench import cart_throughput as throughput

    async def build() -> tuple[list[int], dict[int, list[int]]]:
        async with httpx.AsyncClient(timeout=60.0) as http:
            rpc = throughput.Rpc(http, [f"{base_url}/rpc"], tokens)
            batches = await throughput._gather_bounded(
                [throughput._new_batch(rpc) for _ in range(BATCHES)]
            )
            sessions = await throughput._gather_bounded(
                [throughput._new_session(rpc) for _ in range(SESSIONS)]
            )
            rng = random.Random(0)
            choices = {s: rng.sample(batches, LINES_PER_SESSION) for s in sessions}
            await throughput._gather_bounded(
                [
                    rpc.must(
                        "liveShopping.addToCart",
                        {"sessionId": s, "batchId": b, "quantity": "1"},
                        rpc.staff,
                    )
                    for s in sessions
                    for b in choices[s]
                ]
            )
            return sessions, choices

    return asyncio.run(build())


def _compare_answers(
    servers: Mapping[str, tuple[str, int]], token: str, session_id: int, batch_id: int
) -> None:
    """Both answer the same add with a cart of the same shape and size."""
    import httpx

    sizes = {}
    for side, (url, _) in servers.items():
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "liveShopping.addToCart",
            "params": {"sessionId": session_id, "batchId": batch_id, "quantity": "1"},
        }
        response = httpx.post(
            f"{url}/rpc", json=body, headers={"authorization": f"Bearer {token}"}, timeout=30
        )
        response.raise_for_status()
        sizes[side] = len(response.content)
    print(f"  answer sizes: project {sizes['project']} B, floor {sizes['floor']} B", flush=True)


@contextlib.contextmanager
def _floor_server(
    env: Mapping[str, str], workers: int, log_path: Path
) -> Iterator[tuple[str, int]]:
    """This module's app under uvicorn as the project runs (uvloop, httptools, no access log)."""
    from tests.bench import server_process

    port = server_process._free_port()
    command = [
        sys.executable, "-m", "uvicorn", "tests.bench.cart_floor:create_app", "--factory",
        "--host", server_process.HOST, "--port", str(port), "--workers", str(workers),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=server_process.ROOT,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        probe = server_process.Probe("/healthz", b"{}", expect=b'"ok"')
        server_process._wait_ready(process, port, probe, log_path)
        yield f"http://{server_process.HOST}:{port}", process.pid
    finally:
        server_process._stop(process)


def _wrk_run(wrk: str, script: Path, url: str, seconds: float) -> Any:
    from tests.bench.load_generators import _WRK_RESULT, Measurement

    command = [
        wrk, "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "--latency", "-s", str(script), url,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, timeout=seconds + 60, check=False)
    found = _WRK_RESULT.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.decode()[-400:]}")
    requests, duration_us, errors, p50_us, p99_us = (int(v) for v in found.groups())
    return Measurement(requests, duration_us / 1e6, errors, p50_us / 1000, p99_us / 1000)


def _cpu_seconds(pid: int) -> float | None:
    from tests.bench.cart_throughput import _cpu_of_tree

    try:
        return _cpu_of_tree(pid)
    except OSError:
        return None


def _line(r: Round) -> str:
    m = r.measurement
    cpu = "" if r.cpu_ms_per_request is None else f"  CPU {r.cpu_ms_per_request:5.2f} ms/req"
    errors = f"  ERRORS {m.errors}" if m.errors else ""
    return (
        f"{r.side:<7} {m.rps:>7,.0f} req/s  p50 {m.p50_ms:6.1f} ms  p99 {m.p99_ms:6.1f} ms"
        f"{cpu}{errors}"
    )


def _report(rounds: list[Round]) -> bool:
    ok = True
    for workers in WORKER_COUNTS:
        mine = [r for r in rounds if r.workers == workers]
        medians = {}
        for side in ("project", "floor"):
            runs = [r for r in mine if r.side == side]
            cpus = [r.cpu_ms_per_request for r in runs if r.cpu_ms_per_request is not None]
            medians[side] = statistics.median(r.measurement.rps for r in runs)
            print(
                f"  {workers} worker{'s' if workers > 1 else ' '} median  {side:<7} "
                f"{medians[side]:>7,.0f} req/s  "
                f"p50 {statistics.median(r.measurement.p50_ms for r in runs):6.1f} ms  "
                f"p99 {statistics.median(r.measurement.p99_ms for r in runs):6.1f} ms"
                + (f"  CPU {statistics.median(cpus):5.2f} ms/req" if cpus else "")
            )
        # Each round's ratio against its neighbour on the other side, so drift cancels.
        pairs = [
            p.measurement.rps / f.measurement.rps
            for p, f in zip(
                [r for r in mine if r.side == "project"],
                [r for r in mine if r.side == "floor"],
                strict=True,
            )
            if f.measurement.rps
        ]
        ratio = medians["project"] / medians["floor"] if medians["floor"] else 0.0
        verdict = (
            "meets the aim" if ratio >= AIM_RATIO
            else "meets the target" if ratio >= TARGET_RATIO
            else "BELOW the target"
        )  # fmt: skip
        print(
            f"  {workers} worker{'s' if workers > 1 else ' '} ratio project/floor = {ratio:.2f} "
            f"(rounds: {', '.join(f'{p:.2f}' for p in pairs)}; {verdict} >= {TARGET_RATIO}, "
            f"aim {AIM_RATIO})"
        )
        if any(r.measurement.errors for r in mine):
            print(f"  {workers} worker(s): failed requests; the figures are not trustworthy")
            ok = False
    return ok
