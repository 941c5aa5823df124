"""What the RPC layer costs: system.health over POST /rpc against a bare litestar route."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import msgspec

from app.config import Settings
from tests.bench import load_generators
from tests.bench.load_generators import LoadGenerator, Measurement, Target
from tests.bench.server_process import ROOT, Probe, busy_cpu_share, cpu_split, uvicorn_server

_SETTING_NAMES = frozenset(f.encode_name for f in msgspec.structs.fields(Settings))
RPC_BODY = b'{"jsonrpc":"2.0","id":1,"method":"system.health"}'
TARGET_RATIO = 0.90
CONNECTIONS = 32
WARMUP_S = 2.0
ROUNDS = 3
ROUND_S = 8.0
MIGRATE_TIMEOUT_S = 120.0
BUSY_WARNING = 0.10  # share of all CPUs busy while the bench is idle


def run(*, load: str = "auto", seconds: float | None = None) -> bool:
    """Measure both servers in alternating rounds and print rps, latencies and the ratio."""
    round_s = seconds or ROUND_S
    _warn_if_busy("before the run")
    split = cpu_split()
    server_cpus, load_cpus = split if split is not None else (None, None)
    with tempfile.TemporaryDirectory(prefix="bench-rpc-overhead-") as tmp:
        workdir = Path(tmp)
        generator = load_generators.choose(
            load, connections=CONNECTIONS, cpus=load_cpus, workdir=workdir
        )
        env = _server_env(workdir / "bench.db")
        _migrate(env)
        with contextlib.ExitStack() as servers:
            rpc = servers.enter_context(
                uvicorn_server(
                    "app.server:create_app",
                    env=env,
                    probe=Probe("/rpc", RPC_BODY, expect=b'"result":{"status":"ok"'),
                    log_path=workdir / "rpc-server.log",
                    cpus=server_cpus,
                )
            )
            bare = servers.enter_context(
                uvicorn_server(
                    "tests.bench.bare_app:create_app",
                    env=env,
                    probe=Probe("/bare", RPC_BODY, expect=b'{"status":"ok"'),
                    log_path=workdir / "bare-server.log",
                    cpus=server_cpus,
                )
            )
            # Both requests carry the same body, so only the handling differs.
            targets = {
                "rpc": Target(f"{rpc.url}/rpc", RPC_BODY),
                "bare": Target(f"{bare.url}/bare", RPC_BODY),
            }
            _print_header(generator, round_s, split)
            results = _measure(generator, targets, round_s)
    _warn_if_busy("after the run")
    return _report(results)


def _warn_if_busy(when: str) -> None:
    # Another process on the servers' CPU skews one side of the ratio; say so next to it.
    busy = busy_cpu_share()
    if busy is not None and busy > BUSY_WARNING:
        print(f"  warning: the machine was {busy:.0%} busy {when}; expect noisy figures")


def _server_env(database: Path) -> dict[str, str]:
    # The servers see only the settings given here, whatever the calling shell exports.
    inherited = {k: v for k, v in os.environ.items() if k not in _SETTING_NAMES}
    return {
        **inherited,
        "APP_ENV": "test",
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
    }


def _migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=MIGRATE_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"python -m app migrate failed:\n{done.stderr.decode(errors='replace')}")


def _measure(
    generator: LoadGenerator, targets: dict[str, Target], round_s: float
) -> dict[str, list[Measurement]]:
    for target in targets.values():
        generator.measure(target, WARMUP_S)
    results: dict[str, list[Measurement]] = {name: [] for name in targets}
    # Alternating rounds spread any drift of the machine over both sides alike.
    for number in range(1, ROUNDS + 1):
        for name, target in targets.items():
            measurement = generator.measure(target, round_s)
            results[name].append(measurement)
            print(f"  round {number}  {_line(name, measurement)}", flush=True)
    return results


def _print_header(
    generator: LoadGenerator, round_s: float, split: tuple[set[int], set[int]] | None
) -> None:
    import litestar
    import uvicorn

    placement = (
        f"servers on CPU {_cpus(split[0])}, load on CPU {_cpus(split[1])}"
        if split is not None
        else "no CPU pinning (a single CPU)"
    )
    print(
        "rpc_overhead: system.health via POST /rpc vs POST /bare returning the same Struct\n"
        f"  litestar {litestar.__version__.formatted(short=True)}, uvicorn {uvicorn.__version__}"
        " (uvloop, httptools, 1 worker, access log off)\n"
        f"  load: {generator.description}; warm-up {WARMUP_S:.0f} s each, "
        f"{ROUNDS} rounds x {round_s:.0f} s alternating; {placement}",
        flush=True,
    )


def _cpus(cpus: set[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))


def _line(name: str, m: Measurement) -> str:
    errors = f"  ERRORS {m.errors}" if m.errors else ""
    return (
        f"{name:<4}  {m.rps:>9,.0f} req/s  p50 {m.p50_ms:6.2f} ms  p99 {m.p99_ms:6.2f} ms{errors}"
    )


def _report(results: dict[str, list[Measurement]]) -> bool:
    rps = {name: statistics.median(m.rps for m in runs) for name, runs in results.items()}
    p50 = {name: statistics.median(m.p50_ms for m in runs) for name, runs in results.items()}
    p99 = {name: statistics.median(m.p99_ms for m in runs) for name, runs in results.items()}
    for name in results:
        print(
            f"  median   {name:<4}  {rps[name]:>9,.0f} req/s  "
            f"p50 {p50[name]:6.2f} ms  p99 {p99[name]:6.2f} ms"
        )
    ratio = rps["rpc"] / rps["bare"] if rps["bare"] else 0.0
    verdict = "meets" if ratio >= TARGET_RATIO else "BELOW"
    print(f"  ratio rpc/bare = {ratio:.3f} ({verdict} target >= {TARGET_RATIO:.2f})")
    errors = sum(m.errors for runs in results.values() for m in runs)
    if errors:
        print(f"  {errors} failed requests: the figures above are not trustworthy")
    return errors == 0
