"""Real `python -m app serve` processes on 127.0.0.1 and throwaway migrated MariaDB databases.

Not a test module: concurrency tests and benchmarks use it when the claim is about several
processes sharing one database, which the in-process ASGI client cannot show.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pymysql
import pytest

from app.config import Settings
from app.db.migrate import upgrade
from tests import services

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0

# Settings the child must not inherit from the test process: a server sees only what it is given.
_SETTING_NAMES = frozenset(f.encode_name for f in msgspec.structs.fields(Settings))

# This run's Redis channels: servers of another run (or another checkout) on the same Redis,
# even on a database of the same name, never see this run's events.
RUN_CHANNEL_PREFIX = f"liveshop-test-{uuid.uuid4().hex[:10]}"


class ServerFailedToStart(RuntimeError):
    """A server exited or did not answer /healthz in time; the message carries its log tail."""


@dataclass(slots=True)
class Server:
    """One `python -m app serve` child process (with its own uvicorn) on a free port."""

    base_url: str  # http://127.0.0.1:<port>, no trailing slash
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (uvicorn shuts down gracefully), then SIGKILL to its group after `timeout`."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                # The child leads its own process group, so this reaches its uvicorn workers
                # (with --workers N) and nothing else.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        self.log_path.unlink(missing_ok=True)


def http_limits(connections: int) -> httpx.Limits:
    """Client pool limits for talking to these servers.

    uvicorn closes a keep-alive connection after 5 idle seconds; a client that keeps it longer
    may send on a socket the server is just closing and see a ReadError that is no server fault.
    """
    return httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=4.0
    )


def server_env(database_url: str, **settings: str) -> dict[str, str]:
    """The settings a test server needs: test mode, live shopping on, the given database.

    Its Redis channels carry this run's prefix; `REDIS_CHANNEL_PREFIX=""` leaves it unset, so
    the server derives one from its database as a deployment does.
    """
    return {
        "APP_ENV": "test",
        "FEATURE_LIVE_SHOPPING_ENABLED": "true",
        "JWT_SECRET": "live-server-secret-that-is-long-enough-for-hs256",
        "DATABASE_URL": database_url,
        "REDIS_CHANNEL_PREFIX": RUN_CHANNEL_PREFIX,
        **settings,
    }


def sqlite_env(template: Path, directory: Path, **settings: str) -> dict[str, str]:
    """server_env on a private copy of the run's migrated SQLite file (see conftest)."""
    path = directory / "server.db"
    shutil.copy(template, path)
    return server_env(f"sqlite+aiosqlite:///{path}", **settings)


def start_servers(env: Mapping[str, str], count: int, *, workers: int = 1) -> list[Server]:
    """Start `count` independent server processes and return once each answers GET /healthz.

    They boot in parallel; if any fails, the ones already started are stopped again.
    """
    launched: list[Server] = []
    try:
        for _ in range(count):
            launched.append(_launch(env, workers=workers))
        for server in launched:
            _wait_until_healthy(server)
    except BaseException:
        stop_servers(launched)
        raise
    return launched


def start_server(env: Mapping[str, str], *, port: int | None = None) -> Server:
    """One server, on `port` when given (a worker restarted behind the same URL)."""
    server = _launch(env, workers=1, port=port)
    try:
        _wait_until_healthy(server)
    except BaseException:
        server.stop()
        raise
    return server


def stop_servers(servers: Sequence[Server]) -> None:
    for server in servers:
        server.stop()


@contextlib.contextmanager
def running_servers(
    env: Mapping[str, str], count: int, *, workers: int = 1
) -> Iterator[list[Server]]:
    """`start_servers` as a context manager (or the body of a yield fixture): always stopped."""
    servers = start_servers(env, count, workers=workers)
    try:
        yield servers
    finally:
        stop_servers(servers)


def _launch(env: Mapping[str, str], *, workers: int, port: int | None = None) -> Server:
    port = port or _free_port()
    inherited = {k: v for k, v in os.environ.items() if k not in _SETTING_NAMES}
    command = [sys.executable, "-m", "app", "serve", "--host", HOST, "--port", str(port)]
    if workers != 1:
        command += ["--workers", str(workers)]
    # A file, not a pipe: nobody reads the output while the server runs, and a full pipe
    # would stall it.
    fd, name = tempfile.mkstemp(prefix=f"ls-server-{port}-", suffix=".log")
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**inherited, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: a Ctrl-C reaches only the test runner, which stops it.
            start_new_session=True,
        )
    return Server(base_url=f"http://{HOST}:{port}", process=process, log_path=Path(name))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_healthy(server: Server, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.base_url, timeout=1.0) as http:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise ServerFailedToStart(
                    f"server on {server.base_url} exited with code {server.process.returncode} "
                    f"before it was ready; log tail:\n{server.log_tail()}"
                )
            try:
                response = http.get("/healthz")
            except httpx.TransportError:
                time.sleep(0.05)  # not listening yet
                continue
            if response.status_code == 200:
                return
            time.sleep(0.05)
    raise ServerFailedToStart(
        f"server on {server.base_url} did not answer GET /healthz within {timeout:.0f} s; "
        f"log tail:\n{server.log_tail()}"
    )


# --- MariaDB -----------------------------------------------------------------------------------


def create_database(prefix: str = "ls_conc") -> str:
    """Create and migrate a fresh database `<prefix>_<random>`; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    services.mysql_admin(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    url = f"{services.MARIADB_URL}/{name}"
    try:
        upgrade(url)
    except BaseException:
        drop_database(url)
        raise
    return url


def drop_database(url: str) -> None:
    services.mysql_admin(f"DROP DATABASE IF EXISTS {_database_name(url)}")


@contextlib.contextmanager
def fresh_database(prefix: str = "ls_conc") -> Iterator[str]:
    """A migrated database for the block, dropped afterwards."""
    url = create_database(prefix)
    try:
        yield url
    finally:
        drop_database(url)


def query(url: str, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Read the database directly, past the service, to check what it really stored."""
    connection = pymysql.connect(
        host=services.MARIADB_HOST,
        port=services.MARIADB_PORT,
        user="root",
        password="",
        database=_database_name(url),
        autocommit=True,
    )
    with connection, connection.cursor() as cursor:
        cursor.execute(sql, args)
        return list(cursor.fetchall())


def _database_name(url: str) -> str:
    name = url.rsplit("/", 1)[1]
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unexpected database name {name!r}")
    return name


def one_server_fixtures(name: str, *, read_s: float, heartbeat_ms: int) -> tuple[Any, Any, Any]:
    """The `env`, `server` and `http` fixtures of a test module served by one real worker on
    its own copy of the migrated SQLite template: `env, server, http = one_server_fixtures(...)`
    at module level (pytest finds fixtures by their names)."""

    @pytest.fixture(scope="module")
    def env(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
        return sqlite_env(
            sqlite_template,
            tmp_path_factory.mktemp(name),
            LIVE_SHOPPING_HEARTBEAT_MS=str(heartbeat_ms),
        )

    @pytest.fixture(scope="module")
    def server(env: dict[str, str]) -> Iterator[Server]:
        with running_servers(env, 1) as [running]:
            yield running

    @pytest.fixture
    async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=read_s, limits=http_limits(8)
        ) as client:
            yield client

    return env, server, http
