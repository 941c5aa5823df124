"""Load generators: wrk when it is installed, else a small asyncio HTTP/1.1 keep-alive client."""

from __future__ import annotations

import asyncio
import functools
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast
from urllib.parse import urlsplit

from tests.bench.server_process import pinned_to

WRK_HINT = "wrk is not installed; for steadier figures install it (Debian: apt-get install -y wrk)"


@dataclass(frozen=True, slots=True)
class Target:
    """POST `body` as JSON to `url` over and over."""

    url: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Measurement:
    requests: int  # completed responses, good or bad
    seconds: float
    errors: int  # non-2xx/3xx answers plus socket errors and timeouts
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


class LoadGenerator(Protocol):
    description: str

    def measure(self, target: Target, seconds: float) -> Measurement: ...


def choose(kind: str, *, connections: int, cpus: set[int] | None, workdir: Path) -> LoadGenerator:
    """`kind` is auto, wrk or python; auto takes wrk when it is on PATH."""
    wrk = shutil.which("wrk")
    if kind == "wrk" and wrk is None:
        raise RuntimeError(WRK_HINT)
    if kind in {"auto", "wrk"} and wrk is not None:
        return Wrk(wrk, connections=connections, cpus=cpus, workdir=workdir)
    if kind == "auto":
        print(f"note: {WRK_HINT}; using the Python load generator")
    return PythonLoad(connections=connections, cpus=cpus)


# --- wrk --------------------------------------------------------------------------------------

# wrk's done() hook prints the figures on one line, so nothing depends on its report layout.
_WRK_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_RESULT %d %d %d %.0f %.0f\\n",
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""
_WRK_RESULT = re.compile(rb"^BENCH_RESULT (\d+) (\d+) (\d+) (\d+) (\d+)$", re.MULTILINE)


class Wrk:
    def __init__(
        self, path: str, *, connections: int, cpus: set[int] | None, workdir: Path
    ) -> None:
        self.path = path
        self.connections = connections
        self.cpus = cpus
        self.workdir = workdir
        self.description = f"wrk (1 thread, {connections} connections)"

    def measure(self, target: Target, seconds: float) -> Measurement:
        script = self.workdir / "post.lua"
        script.write_text(_WRK_SCRIPT.format(body=target.body.decode()))
        command = [
            self.path,
            "-t1",
            f"-c{self.connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "5s",
            "--latency",
            "-s",
            str(script),
            target.url,
        ]
        with pinned_to(self.cpus):
            done = subprocess.run(command, capture_output=True, timeout=seconds + 30, check=False)
        found = _WRK_RESULT.search(done.stdout)
        if done.returncode != 0 or found is None:
            raise RuntimeError(
                f"wrk failed ({done.returncode}): {done.stderr.decode(errors='replace')}"
                f"{done.stdout.decode(errors='replace')}"
            )
        requests, duration_us, errors, p50_us, p99_us = (int(v) for v in found.groups())
        return Measurement(
            requests=requests,
            seconds=duration_us / 1e6,
            errors=errors,
            p50_ms=p50_us / 1000,
            p99_ms=p99_us / 1000,
        )


# --- pure Python fallback -----------------------------------------------------------------------


class PythonLoad:
    """N keep-alive connections, each sending its next request when the previous answer is in.

    It runs in the bench process on one CPU, so against a fast server it can saturate first;
    then both sides of a comparison are capped and their ratio is flattered towards 1.
    """

    def __init__(self, *, connections: int, cpus: set[int] | None) -> None:
        self.connections = connections
        self.cpus = cpus
        self.description = f"Python asyncio client ({connections} keep-alive connections)"

    def measure(self, target: Target, seconds: float) -> Measurement:
        with pinned_to(self.cpus), asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(asyncio.wait_for(self._measure(target, seconds), seconds + 30))

    async def _measure(self, target: Target, seconds: float) -> Measurement:
        parts = urlsplit(target.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        request = (
            f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(target.body)}\r\n\r\n"
        ).encode() + target.body
        loop = asyncio.get_running_loop()
        tally = _Tally()
        started = time.perf_counter()
        deadline = started + seconds
        finished: list[asyncio.Future[None]] = []
        for _ in range(self.connections):
            done = loop.create_future()
            finished.append(done)
            try:
                await loop.create_connection(
                    functools.partial(_Connection, request, tally, deadline, done), host, port
                )
            except OSError:
                tally.errors += 1
                done.set_result(None)
        await asyncio.gather(*finished)
        return tally.measurement(min(time.perf_counter(), deadline) - started)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class _Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0

    def measurement(self, seconds: float) -> Measurement:
        ordered = sorted(self.latencies)

        def percentile(share: float) -> float:
            if not ordered:
                return 0.0
            return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

        return Measurement(
            requests=len(ordered),
            seconds=seconds,
            errors=self.errors,
            p50_ms=percentile(0.50),
            p99_ms=percentile(0.99),
        )


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class _Connection(asyncio.Protocol):
    def __init__(
        self, request: bytes, tally: _Tally, deadline: float, done: asyncio.Future[None]
    ) -> None:
        self.request = request
        self.tally = tally
        self.deadline = deadline
        self.done = done
        self.buffer = bytearray()
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, though they implement it.
        self.transport = cast(asyncio.Transport, transport)
        self._send()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end])
            length = _CONTENT_LENGTH.search(head)
            if length is None:  # only fixed-length answers are expected here
                self._fail()
                return
            total = end + 4 + int(length.group(1))
            if len(self.buffer) < total:
                return
            del self.buffer[:total]
            now = time.perf_counter()
            if now > self.deadline:
                self._finish()
                return
            self.tally.latencies.append(now - self.sent_at)
            if not 200 <= int(head[9:12]) < 400:
                self.tally.errors += 1
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.tally.errors += 1  # the server hung up before the run was over
            self.done.set_result(None)

    def _send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)

    def _fail(self) -> None:
        self.tally.errors += 1
        self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)
        if self.transport is not None:
            self.transport.close()
