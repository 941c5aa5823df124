"""A redis-server of the test's own, on a free port, that a test may stop and start at will.

Not a test module. Tests about losing Redis must not stop the shared one, so they run this
(`redis-server` must be installed: without it they skip, or fail when REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests import services

HOST = "127.0.0.1"
READY_TIMEOUT_S = 10.0


def require_binary() -> str:
    path = shutil.which("redis-server")
    if path is not None:
        return path
    reason = "redis-server is not installed (needed to stop and restart a private Redis)"
    if services.required():
        pytest.fail(f"{reason} and REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(reason)


class PrivateRedis:
    """One redis-server process without persistence; `stop` and `start` keep its port."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        assert not self.running, "already running"
        command = [self.binary, "--port", str(self.port), "--bind", HOST]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_ready()

    def stop(self) -> None:
        """SIGTERM and wait: Redis closes every client connection as it exits."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=2.0)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server exited early:\n{log[-2000:]}")
            with contextlib.suppress(redis.RedisError), self.client() as client:
                if client.ping():
                    return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer PING on port {self.port}")


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    """A started private Redis for the block; stopped and its directory removed after."""
    binary = require_binary()
    with tempfile.TemporaryDirectory(prefix="ls-redis-") as directory:
        server = PrivateRedis(binary, Path(directory))
        server.start()
        try:
            yield server
        finally:
            server.stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port
