"""The generated client retries queries, never mutations, that met a passing failure (issue 14).

A real server runs behind a `Front`: a TCP port of the test's own that can be down (connections
refused), drop connections without an answer, answer as a gateway whose server is away (503), or
relay to the server. Retries are counted with stamina's own retry hook, which also opens a front
that was down once the first attempt has been refused: the server "starts late", with no
guessing at timings.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import stamina.instrumentation

from app.auth import TokenService
from app.config import load_settings
from tests import live_server
from tests.conftest import Tokens
from tests.live_server import Server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients" / "python"))

from live_shopping_client import (
    AsyncLiveShoppingClient,
    LiveShoppingClient,
    NotFound,
    ProtocolError,
    Retry,
    TransportError,
)

FAST = Retry(attempts=5, timeout=20.0, wait_initial=0.01, wait_max=0.05, wait_jitter=0.01)
_skus = itertools.count(1)
GATEWAY_PAGE = b"<html><body>503 Service Unavailable</body></html>"


@pytest.fixture(scope="module")
def env(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return live_server.sqlite_env(sqlite_template, tmp_path_factory.mktemp("client-retry"))


@pytest.fixture(scope="module")
def server(env: dict[str, str]) -> Iterator[Server]:
    with live_server.running_servers(env, 1) as [running]:
        yield running


@pytest.fixture(scope="module")
def tokens(env: dict[str, str]) -> Tokens:
    return Tokens(TokenService(load_settings(env)))


# --- a front that fails on purpose ------------------------------------------------------------


@dataclass
class Front:
    """A TCP port in front of the server. Down until `open()`; then each new connection is
    dropped unanswered while `drop` > 0, answered 503 by a "gateway" while `unavailable` > 0,
    and relayed to the server otherwise. `connections` counts those it accepted."""

    upstream: tuple[str, int]
    port: int = 0
    drop: int = 0
    unavailable: int = 0
    connections: int = 0
    _listener: socket.socket | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not self.port:  # a free port, closed again: connections to it are refused
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self) -> None:
        if self._listener is not None:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        self._start(self._accept, listener)

    def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.connections += 1
                drop, self.drop = self.drop > 0, max(self.drop - 1, 0)
                away = not drop and self.unavailable > 0
                self.unavailable -= away
            if drop:
                conn.close()
            elif away:
                self._start(self._answer_unavailable, conn)
            else:
                self._start(self._relay, conn)

    @staticmethod
    def _answer_unavailable(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/html\r\n"
                b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
                % (len(GATEWAY_PAGE), GATEWAY_PAGE)
            )

    def _relay(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream)
        self._start(_pump, upstream, conn)
        _pump(conn, upstream)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


@pytest.fixture
def front(server: Server) -> Iterator[Front]:
    address = urlsplit(server.base_url)
    assert address.hostname is not None and address.port is not None
    made = Front((address.hostname, address.port))
    try:
        yield made
    finally:
        made.close()


@dataclass
class Retries:
    """The retries stamina scheduled (each a failed attempt that is tried again)."""

    causes: list[BaseException] = field(default_factory=list)
    then: list[Callable[[], None]] = field(default_factory=list)  # run at the first retry

    def __call__(self, details: stamina.instrumentation.RetryDetails) -> None:
        self.causes.append(details.caused_by)
        while self.then:
            self.then.pop(0)()


@pytest.fixture
def retries() -> Iterator[Retries]:
    seen = Retries()
    before = stamina.instrumentation.get_on_retry_hooks()
    stamina.instrumentation.set_on_retry_hooks([seen])
    try:
        yield seen
    finally:
        stamina.instrumentation.set_on_retry_hooks(before)


# --- queries are retried ----------------------------------------------------------------------


def test_a_query_reaches_a_server_that_comes_up_after_the_first_attempt(
    front: Front, tokens: Tokens, retries: Retries
) -> None:
    # The port refuses the first attempt; the retry hook opens it: the server "starts late".
    retries.then.append(front.open)
    with LiveShoppingClient(front.base_url, token=tokens.staff, retry=FAST) as staff:
        sessions = staff.live_shopping.list_sessions()
    assert isinstance(sessions, list)
    assert len(retries.causes) == 1
    assert isinstance(retries.causes[0], TransportError)


async def test_the_asyncio_client_retries_a_query_the_same_way(
    front: Front, tokens: Tokens, retries: Retries
) -> None:
    retries.then.append(front.open)
    async with AsyncLiveShoppingClient(front.base_url, token=tokens.staff, retry=FAST) as staff:
        sessions = await staff.live_shopping.list_sessions()
    assert isinstance(sessions, list)
    assert [type(c) for c in retries.causes] == [TransportError]


def test_a_query_is_retried_past_dropped_connections_and_a_gateways_503(
    front: Front, tokens: Tokens, retries: Retries
) -> None:
    front.open()
    front.drop, front.unavailable = 1, 1
    with LiveShoppingClient(front.base_url, token=tokens.staff, retry=True) as staff:
        health = staff.system.health()
    assert health.status == "ok"
    assert [type(c) for c in retries.causes] == [TransportError, ProtocolError]
    assert front.connections == 3


def test_a_query_gives_up_after_its_attempts_with_the_last_error(
    front: Front, tokens: Tokens, retries: Retries
) -> None:
    # Down for good: three attempts, then the TransportError of the last one.
    with (
        LiveShoppingClient(front.base_url, token=tokens.staff) as staff,
        pytest.raises(TransportError),
    ):
        staff.system.health(retry=Retry(attempts=3, wait_initial=0.01, wait_max=0.01))
    assert len(retries.causes) == 2


def test_a_call_may_turn_retries_off_or_on_whatever_the_client_says(
    front: Front, tokens: Tokens, retries: Retries
) -> None:
    front.open()
    front.drop = 1
    with LiveShoppingClient(front.base_url, token=tokens.staff, retry=FAST) as staff:
        with pytest.raises(TransportError):
            staff.system.health(retry=False)
        assert retries.causes == []
    front.drop = 1
    with LiveShoppingClient(front.base_url, token=tokens.staff) as staff:
        with pytest.raises(TransportError):
            staff.system.health()  # the client's default: no retries
        front.drop = 1
        assert staff.system.health(retry=FAST).status == "ok"
    assert len(retries.causes) == 1


# --- what is never retried --------------------------------------------------------------------


def test_a_mutation_is_never_retried_even_when_the_client_retries_queries(
    front: Front, tokens: Tokens, retries: Retries
) -> None:
    front.open()
    front.drop = 1
    sku = f"RETRY-{next(_skus)}"
    with LiveShoppingClient(front.base_url, token=tokens.admin, retry=FAST) as admin:
        with pytest.raises(TransportError):
            admin.catalog.create_product(name="Tea", sku=sku, list_price=Decimal(3))
        assert retries.causes == []
        assert front.connections == 1
        # The dropped call never reached the server; nothing was made behind the caller's back.
        assert [p for p in admin.catalog.list_products(query=sku) if p.sku == sku] == []


def test_an_error_the_server_means_is_not_retried(
    front: Front, tokens: Tokens, retries: Retries
) -> None:
    front.open()
    with (
        LiveShoppingClient(front.base_url, token=tokens.staff, retry=FAST) as staff,
        pytest.raises(NotFound),
    ):
        staff.live_shopping.get_session(session_id=987654321)
    assert retries.causes == []


def test_a_retry_policy_needs_at_least_one_attempt() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Retry(attempts=0)


async def test_an_asyncio_mutation_is_never_retried(
    front: Front, tokens: Tokens, retries: Retries
) -> None:
    front.open()
    front.drop = 1
    async with AsyncLiveShoppingClient(front.base_url, token=tokens.admin, retry=FAST) as admin:
        with pytest.raises(TransportError):
            await admin.clients.create(name="Ada")
    assert retries.causes == []
