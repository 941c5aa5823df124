"""A real uvicorn server in a child process on 127.0.0.1, started, probed and always stopped."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Probe:
    """The request that proves a server is ready: it must answer 200 with `expect` in the body."""

    path: str
    body: bytes
    expect: bytes


@dataclass(frozen=True, slots=True)
class RunningServer:
    url: str  # http://127.0.0.1:<port>, no trailing slash
    pid: int
    log_path: Path


def cpu_split() -> tuple[set[int], set[int]] | None:
    """First CPU for the server, the others for the load generator; None with a single CPU."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return {cpus[0]}, set(cpus[1:])


def busy_cpu_share(seconds: float = 1.0) -> float | None:
    """Share of all CPU time spent busy over `seconds` (Linux /proc/stat); None elsewhere."""

    def snapshot() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    try:
        total_before, idle_before = snapshot()
        time.sleep(seconds)
        total_after, idle_after = snapshot()
    except (OSError, ValueError, IndexError):
        return None
    total = total_after - total_before
    return 1 - (idle_after - idle_before) / total if total else None


@contextlib.contextmanager
def pinned_to(cpus: set[int] | None) -> Iterator[None]:
    """Run the block, and every child process started in it, on `cpus` (None: no change)."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def uvicorn_server(
    factory: str,
    *,
    env: Mapping[str, str],
    probe: Probe,
    log_path: Path,
    cpus: set[int] | None = None,
) -> Iterator[RunningServer]:
    """Serve `factory` ("module:function") with uvloop + httptools, one worker, access log off."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        factory,
        "--factory",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    # Output goes to a file, not a pipe: an unread pipe that fills up would stall the server.
    with log_path.open("wb") as log, pinned_to(cpus):
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session, so a Ctrl-C reaches only the bench, which then stops it in order.
            start_new_session=True,
        )
    try:
        _wait_ready(process, port, probe, log_path)
        yield RunningServer(url=f"http://{HOST}:{port}", pid=process.pid, log_path=log_path)
    finally:
        _stop(process)


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(process: subprocess.Popen[bytes], port: int, probe: Probe, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited with code {process.returncode} before it was ready:\n"
                + log_tail(log)
            )
        try:
            status, body = _post(port, probe)
        except OSError:
            time.sleep(0.05)  # not listening yet
            continue
        if status == 200 and probe.expect in body:
            return
        raise RuntimeError(
            f"server answered POST {probe.path} with {status} {body[:300]!r}, "
            f"expected 200 containing {probe.expect!r}"
        )
    raise TimeoutError(
        f"server not ready after {READY_TIMEOUT_S:.0f} s on port {port}:\n" + log_tail(log)
    )


def _post(port: int, probe: Probe) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request(
            "POST", probe.path, body=probe.body, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown, lifespan included
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT_S)
