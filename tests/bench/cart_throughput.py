"""Cart throughput on MariaDB: addToCart + updateCartQuantity against real server processes.

`python -m tests.bench cart_throughput` compares one server with 1 and then 2 uvicorn workers;
`python -m tests.bench.cart_throughput` runs every phase in PHASES. Each phase starts its servers
(`python -m app serve` on 127.0.0.1, events on Redis) on one fresh migrated database, builds its
own sessions and batches, warms up, then keeps CONCURRENCY requests in flight for PHASE_S seconds
from one asyncio httpx client and reports requests/s and p50/p99. The happy-path phases spread
the sessions over many batches with ample stock; the contended phases put every session on ONE
batch, so every add waits for that batch's row lock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.auth import TokenService
from app.config import load_settings
from app.domain.actors import Role
from tests import live_server, services

CONCURRENCY = 32
WARMUP_S = 2.0
PHASE_S = 10.0
SESSIONS = 64  # two per in-flight request, so no two requests wait on the same session lock
BATCHES = 64
BATCHES_PER_SESSION = 8  # keeps every cart (and every response) small
AMPLE_STOCK = 1_000_000_000
SETUP_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    processes: int
    workers: int = 1  # uvicorn workers per process
    one_batch: bool = False


# The registered bench: what a second worker in the same server buys.
WORKER_PHASES = [
    Phase("1 worker", processes=1, workers=1),
    Phase("2 workers", processes=1, workers=2),
]
PHASES = [
    Phase("1 process", processes=1),
    Phase("2 processes", processes=2),
    Phase("1 process --workers 2", processes=1, workers=2),
    Phase("1 process, ONE batch", processes=1, one_batch=True),
    Phase("2 processes, ONE batch", processes=2, one_batch=True),
]


@dataclass(slots=True)
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Result:
    phase: Phase
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failures: Counter[str]
    client_cpu: float  # share of one CPU the load client used while measuring
    server_cpu_s: float | None  # CPU seconds the server processes used while measuring
    server_errors: int = 0  # ERROR lines in the servers' logs (internal errors, deadlocks)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def server_cpu_ms_per_request(self) -> float | None:
        if self.server_cpu_s is None or not self.requests:
            return None
        return self.server_cpu_s * 1000 / self.requests


class Rpc:
    """JSON-RPC calls to the phase's servers, round-robin, as the staff host or an admin."""

    def __init__(self, http: httpx.AsyncClient, urls: list[str], tokens: TokenService) -> None:
        self.http = http
        self.urls = urls
        self.admin = tokens.issue(sub=1, role=Role.ADMIN)
        self.staff = tokens.issue(sub=2, role=Role.STAFF)
        self._next = itertools.count()

    async def call(self, method: str, params: dict[str, Any], token: str) -> tuple[Any, str]:
        """(result, "ok") or (None, the error code name)."""
        n = next(self._next)
        body = {"jsonrpc": "2.0", "id": n, "method": method, "params": params}
        try:
            response = await self.http.post(
                self.urls[n % len(self.urls)],
                json=body,
                headers={"authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            return None, type(exc).__name__
        try:
            payload = response.json()
        except ValueError:  # not JSON-RPC at all, e.g. uvicorn's plain-text 500
            payload = None
        if isinstance(payload, dict):
            if "error" in payload:
                return None, str(payload["error"]["data"]["code"])
            if "result" in payload:
                return payload["result"], "ok"
        return None, f"HTTP {response.status_code}"

    async def must(self, method: str, params: dict[str, Any], token: str) -> Any:
        result, outcome = await self.call(method, params, token)
        if outcome != "ok":
            raise RuntimeError(f"setup call {method} failed: {outcome}")
        return result


async def _gather_bounded(calls: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def one(call: Any) -> Any:
        async with gate:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))


async def _new_batch(rpc: Rpc) -> int:
    sku = f"BENCH-{uuid.uuid4().hex[:10]}"
    product = await rpc.must(
        "catalog.createProduct", {"name": "Bench item", "sku": sku, "listPrice": "10.00"}, rpc.admin
    )
    batch = await rpc.must(
        "catalog.createBatch",
        {
            "productId": product["id"],
            "code": f"{sku}-A",
            "onHandQty": str(AMPLE_STOCK),
            "unitCogs": "2.00",
        },
        rpc.admin,
    )
    return int(batch["id"])


async def _new_session(rpc: Rpc) -> int:
    client = await rpc.must("clients.create", {"name": "Bench client"}, rpc.staff)
    created = await rpc.must("liveShopping.createSession", {"clientId": client["id"]}, rpc.staff)
    return int(created["sessionId"])


async def _cart_edits(
    rpc: Rpc,
    sessions: list[int],
    choices: dict[int, list[int]],
    seed: int,
    deadline: float,
    tally: Tally | None,
) -> None:
    """One in-flight request at a time: add 1 unit of a batch, then set that line's quantity."""
    rng = random.Random(seed)
    for session_id in itertools.cycle(sessions):
        if time.monotonic() >= deadline:
            return
        batch_id = rng.choice(choices[session_id])
        add = {"sessionId": session_id, "batchId": batch_id, "quantity": "1"}
        cart = await _timed(rpc, "liveShopping.addToCart", add, tally)
        if cart is None:
            continue
        line = next(item for item in cart["items"] if item["batchId"] == batch_id)
        update = {"sessionId": session_id, "cartItemId": line["id"], "quantity": rng.randint(1, 5)}
        await _timed(rpc, "liveShopping.updateCartQuantity", update, tally)


async def _timed(rpc: Rpc, method: str, params: dict[str, Any], tally: Tally | None) -> Any:
    started = time.perf_counter()
    result, outcome = await rpc.call(method, params, rpc.staff)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if tally is not None:
        if outcome == "ok":
            tally.latencies_ms.append(elapsed_ms)
        else:
            tally.failures[f"{method}: {outcome}"] += 1
    return result


async def _measure(
    phase: Phase, servers: list[live_server.Server], tokens: TokenService, seconds: float
) -> Result:
    urls = [server.base_url for server in servers]
    limits = live_server.http_limits(2 * CONCURRENCY)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as http:
        rpc = Rpc(http, [f"{url}/rpc" for url in urls], tokens)
        batch_count = 1 if phase.one_batch else BATCHES
        batches = await _gather_bounded([_new_batch(rpc) for _ in range(batch_count)])
        sessions = await _gather_bounded([_new_session(rpc) for _ in range(SESSIONS)])
        rng = random.Random(0)
        choices = {s: rng.sample(batches, min(BATCHES_PER_SESSION, len(batches))) for s in sessions}
        # Each in-flight loop owns its own sessions: contention is on batches, never sessions.
        owned = [sessions[i::CONCURRENCY] for i in range(CONCURRENCY)]

        async def run(duration: float, tally: Tally | None) -> float:
            started = time.monotonic()
            deadline = started + duration
            await asyncio.gather(
                *(
                    _cart_edits(rpc, owned[i], choices, i, deadline, tally)
                    for i in range(CONCURRENCY)
                )
            )
            return time.monotonic() - started

        await run(WARMUP_S, None)
        tally = Tally()
        cpu_before = time.process_time()
        server_cpu_before = _server_cpu_seconds(servers)
        elapsed = await run(seconds, tally)
        server_cpu_after = _server_cpu_seconds(servers)
        client_cpu = (time.process_time() - cpu_before) / elapsed
    latencies = sorted(tally.latencies_ms)
    return Result(
        phase=phase,
        requests=len(latencies) + sum(tally.failures.values()),
        seconds=elapsed,
        p50_ms=_percentile(latencies, 50),
        p99_ms=_percentile(latencies, 99),
        failures=tally.failures,
        client_cpu=client_cpu,
        server_cpu_s=(
            None
            if server_cpu_before is None or server_cpu_after is None
            else server_cpu_after - server_cpu_before
        ),
    )


def _server_cpu_seconds(servers: list[live_server.Server]) -> float | None:
    """CPU time of the server processes and their uvicorn workers (Linux /proc); None elsewhere.

    Unlike requests/s, CPU per request hardly moves when other work shares the machine.
    """
    try:
        return sum(_cpu_of_tree(server.pid) for server in servers)
    except OSError:
        return None


def _cpu_of_tree(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return own + sum(_cpu_of_tree(int(child)) for child in children.read().split())


def _percentile(sorted_values: list[float], pct: int) -> float:
    if not sorted_values:
        return float("nan")
    if len(sorted_values) == 1:
        return sorted_values[0]
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[pct - 1]


def run(*, load: str = "auto", seconds: float | None = None) -> bool:
    """The `python -m tests.bench` entry: WORKER_PHASES; False unless every call succeeded.

    False too, with a message saying which, when MariaDB or Redis is not reachable.
    """
    if not _services_reachable():
        return False
    if load != "auto":
        # wrk replays one fixed request; each update here needs the line id its add returned.
        print(f"  note: --load {load} does not apply; this bench drives its own httpx client")
    _print_header(WORKER_PHASES, seconds or PHASE_S)
    results = measure(WORKER_PHASES, seconds or PHASE_S)
    if len(results) == 2 and results[0].rps:
        print(f"  2 workers / 1 worker = {results[1].rps / results[0].rps:.2f}x requests/s")
    return all(_clean(result) for result in results)


def measure(phases: list[Phase], seconds: float = PHASE_S) -> list[Result]:
    """Run `phases` on one fresh database, printing each result as it comes."""
    results = []
    with live_server.fresh_database("ls_bench") as database:
        # Every phase on the Redis bus, which several workers need, so only the count differs.
        env = live_server.server_env(database, REDIS_URL=services.REDIS_URL)
        tokens = TokenService(load_settings(env))
        for phase in phases:
            with live_server.running_servers(env, phase.processes, workers=phase.workers) as up:
                result = asyncio.run(_measure(phase, up, tokens, seconds))
                logged = sum(s.log_text().count(" ERROR ") for s in up)
            result = dataclasses.replace(result, server_errors=logged)
            print(_line(result), flush=True)
            results.append(result)
    return results


def _clean(result: Result) -> bool:
    """Every call answered ok and no server logged an error (an internal error or deadlock)."""
    return result.requests > 0 and not result.failures and not result.server_errors


def _line(r: Result) -> str:
    failures = f"  FAILED {dict(r.failures)}" if r.failures else ""
    logged = f"  {r.server_errors} ERROR lines in server logs" if r.server_errors else ""
    cpu = r.server_cpu_ms_per_request
    server_cpu = "" if cpu is None else f"server CPU {cpu:.1f} ms/req, "
    return (
        f"  {r.phase.name:<24} {r.rps:>6,.0f} req/s  p50 {r.p50_ms:7.1f} ms  "
        f"p99 {r.p99_ms:7.1f} ms  ({r.requests} requests in {r.seconds:.1f} s, "
        f"{server_cpu}client CPU {r.client_cpu:.0%}){failures}{logged}"
    )


def _services_reachable() -> bool:
    if not services.available("mariadb"):
        print(
            f"cart_throughput: MariaDB is not reachable on {services.MARIADB_HOST}:"
            f"{services.MARIADB_PORT}; this bench needs it (start it, or point "
            "TEST_MARIADB_HOST / TEST_MARIADB_PORT at one)"
        )
        return False
    if not services.available("redis"):
        print(
            f"cart_throughput: Redis is not reachable at {services.REDIS_URL}; this bench needs "
            "it, as `serve --workers N` does (start it, or point TEST_REDIS_URL at one)"
        )
        return False
    return True


def _print_header(phases: list[Phase], seconds: float) -> None:
    print(
        "cart_throughput: liveShopping.addToCart + updateCartQuantity on MariaDB, Redis bus "
        f"({', '.join(phase.name for phase in phases)})\n"
        f"  {CONCURRENCY} requests in flight from one asyncio httpx client, round-robin over the "
        f"phase's server ports; {SESSIONS} sessions, "
        f"{BATCHES} batches ({BATCHES_PER_SESSION} per session)"
        f"{' or ONE batch' if any(phase.one_batch for phase in phases) else ''}, stock "
        f"{AMPLE_STOCK:,}; warm-up {WARMUP_S:.0f} s, measured {seconds:.0f} s per phase; "
        f"{os.cpu_count()} CPUs shared by servers, MariaDB and the load client",
        flush=True,
    )


def main() -> int:
    """Every phase in PHASES (MariaDB and Redis required); exit status 1 if a call failed."""
    if not _services_reachable():
        return 1
    _print_header(PHASES, PHASE_S)
    results = measure(PHASES)
    return 0 if all(_clean(result) for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
