"""Command line: python -m tests.bench [name] runs every registered benchmark, or just `name`."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import time
import traceback
from types import FrameType

# name -> module whose `run(*, load: str, seconds: float | None) -> bool` prints its figures and
# says whether the run was clean. Modules are imported only when their bench runs.
BENCHES: dict[str, str] = {
    "rpc_overhead": "tests.bench.rpc_overhead",
    "cart_throughput": "tests.bench.cart_throughput",
    "fanout": "tests.bench.fanout",
    "cart_floor": "tests.bench.cart_floor",
    "streams_at_scale": "tests.bench.streams_at_scale",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("name", nargs="?", choices=sorted(BENCHES), help="default: all of them")
    parser.add_argument(
        "--load",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="load generator (auto: wrk when installed, else the Python client)",
    )
    parser.add_argument("--seconds", type=float, default=None, help="length of one measured round")
    args = parser.parse_args(argv)
    # SIGTERM becomes SystemExit, so the benches' cleanup (stopping servers) still runs.
    signal.signal(signal.SIGTERM, _exit_on_signal)

    failed: list[str] = []
    for name in [args.name] if args.name else list(BENCHES):
        started = time.monotonic()
        try:
            ok = importlib.import_module(BENCHES[name]).run(load=args.load, seconds=args.seconds)
        except Exception:
            traceback.print_exc()
            ok = False
        print(f"{name}: {'done' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s\n")
        if not ok:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
