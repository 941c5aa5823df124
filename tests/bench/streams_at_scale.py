"""Streams at scale (issue 15): reconnect storm, fan-out to thousands, a busy mix, idle memory.

Real `python -m app serve` processes on one fresh MariaDB database and Redis; the subscribers are
raw asyncio protocols in this process (tests/bench/fanout.py's Subscriber). Four rounds:

- storm: CLIENTS streams of one session over 2 workers drop together, MISSED changes are made,
  then all resume with Last-Event-ID at once: time until every client has every missed event,
  outbox reads for the replays per worker (each worker logs its count when it stops), and
  lost / duplicated / reordered events (must be 0).
- fanout: FANOUT subscribers of one session over 2 workers, one change at a time:
  p99 commit -> receive.
- mix: MIX_STREAMS streams over 2 workers across MIX_SESSIONS sessions, changes at MIX_RATE per
  second spread over the sessions: p99 commit -> receive and every event delivered in order.
- memory: MEMORY_STREAMS idle streams on one worker: resident memory growth per stream.

BENCH_SCALE (default 1) scales every count, e.g. 0.2 on a small shared machine; the figures
printed say what scale ran. The machine's CPUs are shared with the load side, so latencies
include its contention; the load side runs on uvloop, as the servers do, to take as little of
them as it can.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import uvloop

from app.auth import TokenService
from app.config import load_settings
from app.domain.actors import Role
from tests import live_server, services
from tests.bench.fanout import Subscriber, _occurred_at, _percentile, _rss_kib

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
CLIENTS = 2000
MISSED = 20
FANOUT = 5000
MIX_STREAMS = 10_000
MIX_SESSIONS = 2500
MIX_RATE = 200  # changes per second
MIX_SECONDS = 15.0
HEARTBEAT_S = 30.0  # the servers' LIVE_SHOPPING_HEARTBEAT_MS default
DUE_S = 1.0  # an event recorded this long before the check must have arrived
MEMORY_STREAMS = 10_000
MEMORY_WARM = 200
CONNECT_CONCURRENCY = 100
TARGETS = {"storm_s": 2.0, "fanout_p99_ms": 100.0, "mix_p99_ms": 50.0, "kib_per_stream": 12.0}
_OUTBOX_READS = re.compile(rb"outbox reads: (\d+)")


def scaled(count: int) -> int:
    return max(2, round(count * SCALE))


@dataclass
class World:
    """Workers, their RPC, and what the rounds need: a batch to sell and a client to sell to."""

    servers: list[live_server.Server]
    http: httpx.AsyncClient
    staff: str
    client_token: str
    client_id: int
    batch_id: int
    database_url: str

    async def call(self, method: str, params: dict[str, Any], via: int = 0) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        url = f"{self.servers[via].base_url}/rpc"
        answer = (await self.http.post(url, json=body, headers=_auth(self.staff))).json()
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    async def session(self) -> tuple[int, str, int]:
        """A session with one cart line: (id, room code, line id)."""
        session = await self.call("liveShopping.createSession", {"clientId": self.client_id})
        line = await self.call(
            "liveShopping.addToCart",
            {"sessionId": session["sessionId"], "batchId": self.batch_id, "quantity": "1"},
        )
        return session["sessionId"], session["roomCode"], line["items"][0]["id"]

    async def change(self, session_id: int, line_id: int, n: int, via: int = 0) -> None:
        await self.call(
            "liveShopping.updateCartQuantity", change_params(session_id, line_id, n), via
        )

    def request(self, n: int, session_id: int, room: str, last_id: int | None = None) -> bytes:
        server = self.servers[n % len(self.servers)]
        host = server.base_url.removeprefix("http://")
        if n % 2 == 0:
            path, token = f"/api/sse/live-shopping/{session_id}", self.staff
        else:
            path, token = f"/api/sse/vip/live-shopping/{room}", self.client_token
        resume = f"Last-Event-ID: {last_id}\r\n" if last_id is not None else ""
        return (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {token}\r\n{resume}\r\n"
        ).encode()


def change_params(session_id: int, line_id: int, n: int) -> dict[str, Any]:
    """The n-th change of a session's one line: its quantity cycles through 2..6."""
    return {"sessionId": session_id, "cartItemId": line_id, "quantity": str(2 + n % 5)}


async def open_streams(
    world: World, requests: Sequence[tuple[int, bytes]]
) -> list[tuple[Subscriber, asyncio.BaseTransport]]:
    """One Subscriber per (worker index, request), CONNECT_CONCURRENCY at a time."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def open_one(worker: int, request: bytes) -> tuple[Subscriber, asyncio.BaseTransport]:
        host, port = world.servers[worker].base_url.removeprefix("http://").split(":")
        subscriber = Subscriber(request, opened=loop.create_future())
        async with gate:
            transport, _ = await loop.create_connection(lambda: subscriber, host, int(port))
            assert subscriber.opened is not None
            status = await asyncio.wait_for(subscriber.opened, 60)
        if status != 200:
            raise RuntimeError(f"a stream got HTTP {status}")
        return subscriber, transport

    return list(await asyncio.gather(*(open_one(w, r) for w, r in requests)))


class RawChanges:
    """Cart changes over kept-alive raw HTTP/1.1 connections, CONNECTIONS per worker.

    httpx costs the load side about a millisecond of CPU per call, which on this machine's two
    CPUs (shared with the servers and the database) capped the mix well below its rate; a
    ready request and a read of the answer's Content-Length cost a small part of that.
    """

    CONNECTIONS = 16

    def __init__(self, world: World) -> None:
        self._world = world
        self._idle: list[asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = []

    async def open(self) -> None:
        for server in self._world.servers:
            host, port = server.base_url.removeprefix("http://").split(":")
            idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
            for _ in range(self.CONNECTIONS):
                idle.put_nowait(await asyncio.open_connection(host, int(port)))
            self._idle.append(idle)

    def close(self) -> None:
        for idle in self._idle:
            while not idle.empty():
                idle.get_nowait()[1].close()

    async def change(self, session_id: int, line_id: int, n: int, via: int) -> None:
        params = change_params(session_id, line_id, n)
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "liveShopping.updateCartQuantity",
                "params": params,
            }
        ).encode()
        request = (
            b"POST /rpc HTTP/1.1\r\nHost: bench\r\ncontent-type: application/json\r\n"
            b"authorization: Bearer %s\r\ncontent-length: %d\r\n\r\n%s"
            % (self._world.staff.encode(), len(body), body)
        )
        idle = self._idle[via]
        reader, writer = await idle.get()
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))  # type: ignore[union-attr]
            answer = await reader.readexactly(length)
        finally:
            idle.put_nowait((reader, writer))
        if b'"error"' in answer[:40]:
            raise RuntimeError(f"updateCartQuantity: {answer[:200]!r}")


async def until(check: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.01)
    return check()


# --- the rounds ---------------------------------------------------------------------------------


async def storm(world: World) -> tuple[bool, str]:
    clients = scaled(CLIENTS)
    session_id, room, line = await world.session()
    workers = len(world.servers)
    requests = [(n % workers, world.request(n, session_id, room)) for n in range(clients)]
    opened = await open_streams(world, requests)
    await until(lambda: all(s.arrivals for s, _ in opened), 10)
    last = max(max(s.arrivals, default=0) for s, _ in opened)
    for _, transport in opened:
        transport.close()
    await asyncio.sleep(1.0)  # every worker sees its streams go
    for n in range(MISSED):
        await world.change(session_id, line, n)
    target = last + MISSED  # no watcher joins meanwhile, so the next ids are the changes
    with statements_logged(world.database_url) as logged:
        resumed_at = time.monotonic()
        resumed = await open_streams(
            world,
            [(n % workers, world.request(n, session_id, room, last)) for n in range(clients)],
        )
        done = await until(lambda: all(target in s.arrivals for s, _ in resumed), 60)
        caught_up_s = time.monotonic() - resumed_at
    expected = list(range(last + 1, target + 1))
    bad = 0
    for subscriber, transport in resumed:
        got = sorted(subscriber.arrivals, key=subscriber.arrivals.__getitem__)
        if [seq for seq in got if seq <= target] != expected:
            bad += 1
        transport.close()
    ok = done and bad == 0
    line_out = (
        f"storm: {clients} clients of one session over {workers} workers resumed after "
        f"{MISSED} missed events: all caught up in {caught_up_s:.2f} s "
        f"(target < {TARGETS['storm_s']:.0f} s), {bad} with lost/duplicated/reordered events"
        f"\n  SQL while they resumed (MariaDB's general log): {logged.outbox} outbox reads "
        f"for {workers} workers (target <= 1 per worker), {logged.total} statements in all, "
        f"{logged.total / clients:.2f} per client"
    )
    return ok, line_out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else bytes(value).decode(errors="replace")


@dataclass
class Logged:
    outbox: int = 0  # SELECTs of session_events
    total: int = 0  # every statement


@contextlib.contextmanager
def statements_logged(url: str) -> Iterator[Logged]:
    """Count what the servers send MariaDB meanwhile, by its general log (kept in a table
    while on). The bench sends nothing itself in between; the machine runs nothing else."""
    logged = Logged()
    for sql in (
        "SET GLOBAL log_output = 'TABLE'",
        "TRUNCATE TABLE mysql.general_log",
        "SET GLOBAL general_log = 1",
    ):
        live_server.query(url, sql)
    try:
        yield logged
    finally:
        live_server.query(url, "SET GLOBAL general_log = 0")
        rows = live_server.query(
            url,
            "SELECT argument FROM mysql.general_log WHERE command_type = 'Query'"
            " AND argument NOT LIKE 'SET GLOBAL general_log%%'",
        )
        statements = [_text(row[0]).lower() for row in rows]
        logged.total = len(statements)
        logged.outbox = sum(
            1 for sql in statements if sql.startswith("select") and "from session_events" in sql
        )
        live_server.query(url, "TRUNCATE TABLE mysql.general_log")


async def fanout(world: World) -> tuple[bool, str]:
    count = scaled(FANOUT)
    session_id, room, line = await world.session()
    workers = len(world.servers)
    opened = await open_streams(
        world, [(n % workers, world.request(n, session_id, room)) for n in range(count)]
    )
    await asyncio.sleep(1.0)
    first = 1 + max(max(s.arrivals, default=0) for s, _ in opened)
    changes = 20
    for n in range(changes):
        await world.change(session_id, line, n)
        await asyncio.sleep(0.25)
    last = first + changes - 1
    await until(lambda: all(last in s.arrivals for s, _ in opened), 20)
    occurred = _occurred_at(world.database_url, session_id)
    latencies, missing = _latencies([s for s, _ in opened], occurred, range(first, last + 1))
    for _, transport in opened:
        transport.close()
    p99 = _percentile(latencies, 99) if latencies else float("nan")
    line_out = (
        f"fanout: {count} subscribers of one session over {workers} workers, {changes} changes: "
        f"commit -> receive p50 {_percentile(latencies, 50):.1f} ms p99 {p99:.1f} ms "
        f"(target < {TARGETS['fanout_p99_ms']:.0f} ms), {missing} deliveries missing"
    )
    return missing == 0, line_out


async def mix(world: World) -> tuple[bool, str]:
    streams = scaled(MIX_STREAMS)
    sessions = max(1, scaled(MIX_SESSIONS))
    rate = MIX_RATE * SCALE
    workers = len(world.servers)
    made = [await world.session() for _ in range(sessions)]
    requests = []
    owners = []
    for n in range(streams):
        session_id, room, _ = made[n % sessions]
        requests.append((n % workers, world.request(n // sessions, session_id, room)))
        owners.append(session_id)
    opened = await open_streams(world, requests)
    # Thousands of streams just opened: the workers announce who joined (PRESENCE) session by
    # session. The mix is measured on the steady state after that, as a busy evening would be.
    settled_s = await _outbox_settled(world.database_url)
    starts = {sid: 0 for sid, _, _ in made}
    for (subscriber, _), sid in zip(opened, owners, strict=True):
        starts[sid] = max(starts[sid], max(subscriber.arrivals, default=0))

    changes = RawChanges(world)
    await changes.open()
    sent = 0
    started = time.monotonic()
    pending: set[asyncio.Task[None]] = set()
    while time.monotonic() - started < MIX_SECONDS:
        session_id, _, line = made[sent % sessions]
        task = asyncio.create_task(changes.change(session_id, line, sent, via=sent % workers))
        pending.add(task)
        task.add_done_callback(pending.discard)
        sent += 1
        await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))
    achieved = sent / (time.monotonic() - started)  # the rate they were sent at
    await asyncio.gather(*pending)
    changes.close()
    await asyncio.sleep(3.0)
    # What had arrived by now, against every event recorded DUE_S before now. The outbox is
    # read in a thread: a blocked event loop here would stop reading the streams, and events
    # already sent would look missing.
    checked_at = time.time()
    seen = [dict(subscriber.arrivals) for subscriber, _ in opened]
    occurred = await asyncio.to_thread(_all_occurred_at, world.database_url)
    due = {
        sid: sorted(seq for seq, at in occurred.get(sid, {}).items() if at <= checked_at - DUE_S)
        for sid, _, _ in made
    }
    latencies: list[float] = []
    missing = disorder = 0
    late: list[tuple[int, int]] = []  # (stream index, seq) still missing at the check
    for index, sid in enumerate(owners):
        arrivals = seen[index]
        got = [seq for seq in sorted(arrivals, key=arrivals.__getitem__) if seq > starts[sid]]
        if got != sorted(got):
            disorder += 1
        for seq in due[sid]:
            if seq <= starts[sid]:
                continue
            arrived = arrivals.get(seq)
            if arrived is None:
                missing += 1
                late.append((index, seq))
            else:
                latencies.append((arrived - occurred[sid][seq]) * 1000)
    after_heartbeat = ""
    if late:
        await asyncio.sleep(HEARTBEAT_S + 5)
        still = sum(1 for index, seq in late if seq not in opened[index][0].arrivals)
        after_heartbeat = (
            f"\n  of the {len(late)} missing at the check, {still} still missing "
            f"{HEARTBEAT_S + 5:.0f} s later (past a heartbeat, when the outbox watcher resyncs)"
        )
    for _, transport in opened:
        transport.close()
    p99 = _percentile(latencies, 99) if latencies else float("nan")
    line_out = (
        f"mix: {streams} streams over {workers} workers across {sessions} sessions "
        f"(presence settled {settled_s:.0f} s after they opened), "
        f"{achieved:.0f} changes/s for {MIX_SECONDS:.0f} s (target rate {rate:.0f}): "
        f"{len(latencies)} deliveries, commit -> receive "
        f"p50 {_percentile(latencies, 50):.1f} ms p99 {p99:.1f} ms "
        f"(target < {TARGETS['mix_p99_ms']:.0f} ms), {missing} missing, {disorder} out of order"
        f"{after_heartbeat}"
    )
    return missing == 0 and disorder == 0, line_out


async def _outbox_settled(url: str, quiet_s: float = 2.0, within_s: float = 120.0) -> float:
    """Seconds until the outbox has taken no new event for `quiet_s` (at most `within_s`)."""
    started = time.monotonic()
    count, since = -1, time.monotonic()
    while time.monotonic() - started < within_s:
        now = (await asyncio.to_thread(live_server.query, url, _COUNT_EVENTS))[0][0]
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
        await asyncio.sleep(0.25)
    return time.monotonic() - started


_COUNT_EVENTS = "SELECT COUNT(*) FROM session_events"


def _all_occurred_at(url: str) -> dict[int, dict[int, float]]:
    """Session -> seq -> when the event was recorded, for the whole (fresh) database."""
    stamps: dict[int, dict[int, float]] = {}
    for session_id, seq, payload in live_server.query(
        url, "SELECT session_id, seq, payload FROM session_events"
    ):
        at = json.loads(payload)["staff"]["occurredAt"]
        stamps.setdefault(int(session_id), {})[int(seq)] = datetime.fromisoformat(at).timestamp()
    return stamps


async def memory(world: World) -> tuple[bool, str]:
    count = scaled(MEMORY_STREAMS)
    warm = min(scaled(MEMORY_WARM), count // 2)
    session_id, room, _ = await world.session()
    pid = world.servers[0].pid
    first = await open_streams(
        world, [(0, world.request(n, session_id, room)) for n in range(warm)]
    )
    await asyncio.sleep(2.0)
    before = _rss_kib(pid)
    rest = await open_streams(
        world, [(0, world.request(n, session_id, room)) for n in range(warm, count)]
    )
    await asyncio.sleep(3.0)
    per_stream = (_rss_kib(pid) - before) / (count - warm)
    for _, transport in first + rest:
        transport.close()
    line_out = (
        f"memory: {count} idle streams on one worker: {per_stream:.1f} KiB per stream "
        f"(RSS growth over streams {warm + 1}..{count}; "
        f"target < {TARGETS['kib_per_stream']:.0f} KiB)"
    )
    return True, line_out


def _latencies(
    subscribers: list[Subscriber], occurred: dict[int, float], seqs: range
) -> tuple[list[float], int]:
    latencies: list[float] = []
    missing = 0
    for subscriber in subscribers:
        for seq in seqs:
            arrived = subscriber.arrivals.get(seq)
            if arrived is None:
                missing += 1
            else:
                latencies.append((arrived - occurred[seq]) * 1000)
    return latencies, missing


def _auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# --- running ------------------------------------------------------------------------------------

Round = Callable[[World], Awaitable[tuple[bool, str]]]
ROUNDS: dict[str, tuple[int, Round]] = {  # name -> (workers, round)
    "storm": (2, storm),
    "fanout": (2, fanout),
    "mix": (2, mix),
    "memory": (1, memory),
}


def run(*, load: str = "auto", seconds: float | None = None) -> bool:
    """Print every round's figures; False when a round lost, duplicated or reordered events."""
    del load, seconds
    for name in ("mariadb", "redis"):
        if not services.available(name):
            print(f"streams_at_scale: {name} is not reachable; this bench needs MariaDB and Redis")
            return False
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"streams at scale (BENCH_SCALE={SCALE:g}, file limit {hard})")
    wanted = os.environ.get("BENCH_ROUNDS", ",".join(ROUNDS)).split(",")
    ok = True
    for name in wanted:
        workers, round_ = ROUNDS[name]
        with live_server.fresh_database("ls_scale") as url:
            env = live_server.server_env(url, REDIS_URL=services.REDIS_URL)
            with live_server.running_servers(env, workers) as servers:
                clean, line = uvloop.run(_round(servers, env, round_))
                reads = [_outbox_reads(server) for server in servers]
        print(line)
        if name == "storm":
            print(f"  outbox reads over each worker's life, both phases: {reads}")
        ok = ok and clean
    return ok


async def _round(
    servers: list[live_server.Server], env: dict[str, str], round_: Round
) -> tuple[bool, str]:
    tokens = TokenService(load_settings(env))
    admin = tokens.issue(sub=1, role=Role.ADMIN)
    staff = tokens.issue(sub=2, role=Role.STAFF)
    limits = live_server.http_limits(64)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        world = World(servers, http, staff, "", 0, 0, env["DATABASE_URL"])
        client = await world.call("clients.create", {"name": "Scale client"})
        world.staff = admin
        product = await world.call(
            "catalog.createProduct", {"name": "Scale scarf", "sku": "SC-1", "listPrice": "20.00"}
        )
        batch = await world.call(
            "catalog.createBatch",
            {
                "productId": product["id"],
                "code": "SC-1-A",
                "onHandQty": "10000000",
                "unitCogs": "5",
            },
        )
        world.staff = staff
        world.client_id, world.batch_id = client["id"], batch["id"]
        world.client_token = tokens.issue(sub=500, role=Role.CLIENT, client_id=client["id"])
        return await round_(world)


def _outbox_reads(server: live_server.Server) -> int:
    """Stop the worker; it logs how often it read the outbox (app/runtime.py) as it closes."""
    server.process.terminate()
    server.process.wait(30)
    found = _OUTBOX_READS.findall(server.log_path.read_bytes())
    return int(found[-1]) if found else -1


def main() -> None:
    raise SystemExit(0 if run() else 1)


if __name__ == "__main__":
    main()
