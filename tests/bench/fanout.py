"""Fan-out: a committed mutation reaching 1,000 SSE subscribers spread over 2 workers.

Two `python -m app serve` processes share one fresh MariaDB database and Redis. SUBSCRIBERS
streams (half staff, half client projection) are opened on one session, alternating between
the two workers; a staff host then makes MUTATIONS cart edits on the first worker, one at a
time, each followed by a pause. For every (subscriber, event) the bench records when the
event's `id:` line arrived, and reports the latency from the event's `occurredAt` (stamped
when the change is recorded, just before its transaction commits, so this slightly overstates
"committed -> received") and from the moment the mutation request was sent. Memory per idle
connection is the growth of the two servers' resident memory while the added subscribers sit
idle, divided by their number.

The subscribers are raw asyncio protocols in this process, not httpx: 1,000 of them must cost
the load side as little CPU as possible, since they share the machine with the servers.
"""

from __future__ import annotations

import asyncio
import json
import re
import resource
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import httpx
import uvloop

from app.auth import TokenService
from app.config import load_settings
from app.domain.actors import Role
from tests import live_server, services

SUBSCRIBERS = 1000
WARM = 100
SERVERS = 2
MUTATIONS = 40
PAUSE_S = 0.25
CONNECT_CONCURRENCY = 50
DELIVERY_TIMEOUT_S = 10.0
TARGET_P99_MS = 50.0
TARGET_KIB_PER_CONNECTION = 20.0
_ID_LINE = re.compile(rb"(?:^|\n)id: (\d+)\n")


@dataclass(slots=True)
class Subscriber(asyncio.Protocol):
    """One SSE connection that only notes when each event id arrived."""

    request: bytes
    arrivals: dict[int, float] = field(default_factory=dict)
    opened: asyncio.Future[int] | None = None
    closed: bool = False
    _tail: bytes = b""
    _status: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.WriteTransport subclasses, but write the same.
        cast(asyncio.WriteTransport, transport).write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()  # wall clock: compared with the server's occurredAt
        chunk = self._tail + data
        if self._status is None and chunk.startswith(b"HTTP/1.1 "):
            self._status = int(chunk[9:12])
            if self.opened is not None and not self.opened.done():
                self.opened.set_result(self._status)
        for match in _ID_LINE.finditer(chunk):
            self.arrivals.setdefault(int(match.group(1)), now)
        self._tail = chunk[-24:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.opened is not None and not self.opened.done():
            self.opened.set_result(0)


def run(*, load: str = "auto", seconds: float | None = None) -> bool:
    """Print fan-out latency and memory per idle connection; False on a missed event."""
    del load, seconds  # the shape of this bench is fixed by its targets
    for name in ("mariadb", "redis"):
        if not services.available(name):
            print(f"fanout: {name} is not reachable; this bench needs MariaDB and Redis")
            return False
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * SUBSCRIBERS)), hard))
    with live_server.fresh_database("ls_fanout") as url:
        env = live_server.server_env(url, REDIS_URL=services.REDIS_URL)
        with live_server.running_servers(env, SERVERS) as servers:
            return uvloop.run(_bench(servers, env))


async def _bench(servers: list[live_server.Server], env: dict[str, str]) -> bool:
    tokens = TokenService(load_settings(env))
    admin = tokens.issue(sub=1, role=Role.ADMIN)
    staff = tokens.issue(sub=2, role=Role.STAFF)
    async with httpx.AsyncClient(timeout=30, limits=live_server.http_limits(4)) as http:
        rpc_url = f"{servers[0].base_url}/rpc"

        async def call(method: str, params: dict[str, Any], token: str) -> Any:
            body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
            answer = (await http.post(rpc_url, json=body, headers=_auth(token))).json()
            if "error" in answer:
                raise RuntimeError(f"{method}: {answer['error']}")
            return answer["result"]

        client = await call("clients.create", {"name": "Fan-out client"}, staff)
        product = await call(
            "catalog.createProduct",
            {"name": "Fan-out scarf", "sku": "FAN-1", "listPrice": "20.00"},
            admin,
        )
        batch = await call(
            "catalog.createBatch",
            {"productId": product["id"], "code": "FAN-1-A", "onHandQty": "100000", "unitCogs": "5"},
            admin,
        )
        session = await call("liveShopping.createSession", {"clientId": client["id"]}, staff)
        session_id, room = session["sessionId"], session["roomCode"]
        line = await call(
            "liveShopping.addToCart",
            {"sessionId": session_id, "batchId": batch["id"], "quantity": "1"},
            staff,
        )
        line_id = line["items"][0]["id"]
        client_token = tokens.issue(sub=500, role=Role.CLIENT, client_id=client["id"])

        # Memory: the growth from WARM_SUBSCRIBERS to all of them, per added connection, so
        # one-off costs (imports, pools, first-use caches) are not counted as per-connection.
        subscribers = await _open_all(servers, session_id, room, staff, client_token, 0, WARM)
        await asyncio.sleep(2.0)
        baseline_kib = [_rss_kib(s.pid) for s in servers]
        subscribers += await _open_all(
            servers, session_id, room, staff, client_token, WARM, SUBSCRIBERS
        )
        opened = sum(1 for s in subscribers if not s.closed)
        await asyncio.sleep(3.0)  # let allocations settle while everyone is idle
        idle_kib = [_rss_kib(s.pid) for s in servers]

        first_seq = 1 + max(max(s.arrivals, default=0) for s in subscribers)
        sent: dict[int, tuple[float, float]] = {}
        for n in range(MUTATIONS):
            started = time.time()
            await call(
                "liveShopping.updateCartQuantity",
                {"sessionId": session_id, "cartItemId": line_id, "quantity": str(2 + n % 5)},
                staff,
            )
            sent[first_seq + n] = started
            await asyncio.sleep(PAUSE_S)
        await _await_delivery(subscribers, max(sent))
    occurred = _occurred_at(env["DATABASE_URL"], session_id)
    return _report(subscribers, opened, sent, occurred, baseline_kib, idle_kib)


def _occurred_at(url: str, session_id: int) -> dict[int, float]:
    """When each event was recorded, from the outbox (its transaction committed right after)."""
    rows = live_server.query(
        url, "SELECT seq, payload FROM session_events WHERE session_id = %s", [session_id]
    )
    stamps: dict[int, float] = {}
    for seq, payload in rows:
        at = json.loads(payload)["staff"]["occurredAt"]
        stamps[int(seq)] = datetime.fromisoformat(at).timestamp()
    return stamps


def _auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def _open_all(
    servers: list[live_server.Server],
    session_id: int,
    room: str,
    staff: str,
    client: str,
    first: int,
    end: int,
) -> list[Subscriber]:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    transports: list[asyncio.BaseTransport] = []

    async def open_one(n: int) -> Subscriber:
        server = servers[n % len(servers)]
        host, port = server.base_url.removeprefix("http://").split(":")
        if n % 2 == 0:
            path, token = f"/api/sse/live-shopping/{session_id}", staff
        else:
            path, token = f"/api/sse/vip/live-shopping/{room}", client
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
        subscriber = Subscriber(request, opened=loop.create_future())
        async with gate:
            transport, _ = await loop.create_connection(lambda: subscriber, host, int(port))
            transports.append(transport)
            assert subscriber.opened is not None
            status = await asyncio.wait_for(subscriber.opened, 30)
        if status != 200:
            raise RuntimeError(f"subscriber {n} got HTTP {status}")
        return subscriber

    return list(await asyncio.gather(*(open_one(n) for n in range(first, end))))


async def _await_delivery(subscribers: list[Subscriber], last_seq: int) -> None:
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while time.monotonic() < deadline:
        if all(last_seq in s.arrivals for s in subscribers):
            return
        await asyncio.sleep(0.1)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _report(
    subscribers: list[Subscriber],
    opened: int,
    sent: dict[int, float],
    occurred: dict[int, float],
    baseline_kib: list[int],
    idle_kib: list[int],
) -> bool:
    from_commit: list[float] = []
    from_request: list[float] = []
    missing = 0
    for subscriber in subscribers:
        for seq, started in sent.items():
            arrived = subscriber.arrivals.get(seq)
            if arrived is None:
                missing += 1
                continue
            from_commit.append((arrived - occurred[seq]) * 1000)
            from_request.append((arrived - started) * 1000)
    expected = len(subscribers) * len(sent)
    print(
        f"fan-out: {len(subscribers)} subscribers ({opened} open) over {SERVERS} workers, "
        f"{len(sent)} mutations, {expected - missing}/{expected} deliveries"
    )
    ok = missing == 0 and bool(from_commit)
    if from_commit:
        p99 = _percentile(from_commit, 99)
        print(
            f"  recorded (commit) -> received p50 {_percentile(from_commit, 50):7.2f} ms   "
            f"p99 {p99:7.2f} ms   max {max(from_commit):7.2f} ms   "
            f"(target p99 < {TARGET_P99_MS:.0f} ms: {'met' if p99 < TARGET_P99_MS else 'MISSED'})"
        )
        print(
            f"  request sent -> received      p50 {_percentile(from_request, 50):7.2f} ms   "
            f"p99 {_percentile(from_request, 99):7.2f} ms   (includes the mutation's own work)"
        )
    per_connection = [
        (after - before) / ((SUBSCRIBERS - WARM) / len(idle_kib))
        for before, after in zip(baseline_kib, idle_kib, strict=True)
    ]
    worst = max(per_connection)
    print(
        f"  memory per idle connection (connections {WARM + 1}..{SUBSCRIBERS}): "
        + ", ".join(f"worker {n + 1} {kib:.1f} KiB" for n, kib in enumerate(per_connection))
        + f"   (RSS growth / connections; target < {TARGET_KIB_PER_CONNECTION:.0f} KiB: "
        + f"{'met' if worst < TARGET_KIB_PER_CONNECTION else 'MISSED'})"
    )
    return ok


def _percentile(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def main() -> None:
    raise SystemExit(0 if run() else 1)


if __name__ == "__main__":
    main()
