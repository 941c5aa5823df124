"""RPC_BODY_TIMEOUT_S: a body not in full by then answers 408 and the connection is closed.

DESIGN.md 6. Proven on a real server process over raw sockets that trickle a body a byte at a
time, as the slow clients that used to hold connections open forever did.
"""

from __future__ import annotations

import json
import re
import select
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import live_server
from tests.live_server import Server

TIMEOUT_S = 1.0
# Far beyond the timeout, so the test never depends on tight timing: a server that still holds
# the connection by then has no timeout at all.
GIVE_UP_S = 8.0
TRICKLE_S = 0.2
HEALTH = b'{"jsonrpc":"2.0","id":1,"method":"system.health"}'


@pytest.fixture(scope="module")
def server(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = live_server.sqlite_env(
        sqlite_template, tmp_path_factory.mktemp("body-timeout"), RPC_BODY_TIMEOUT_S=str(TIMEOUT_S)
    )
    with live_server.running_servers(env, 1) as [running]:
        yield running


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any
    closed_after_s: float | None = None  # from the request head to the server closing


def parse(raw: bytes) -> Answer:
    """An HTTP/1.1 answer whose body, all of it in `raw`, is JSON."""
    head_text, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head_text.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(status_line.split()[1]), headers, json.loads(body))


def connect(server: Server) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=GIVE_UP_S)


def head(server: Server, path: str, *, length: int | None) -> bytes:
    framing = "transfer-encoding: chunked" if length is None else f"content-length: {length}"
    host = server.base_url.removeprefix("http://")
    text = f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n{framing}"
    return f"{text}\r\n\r\n".encode()


def trickle(server: Server, path: str, *, chunked: bool = False) -> Answer:
    """Announce a 1000-byte body, send it a byte every TRICKLE_S, and read until the server closes.

    Sends the next byte only after a quiet TRICKLE_S with nothing to read: a byte that reaches
    the server after it has answered and closed makes its kernel reset the connection, and a
    reset drops whatever of the answer this side has not read yet. (Checking only what was
    already read left that window open: one of five full runs lost the answer that way.)
    """
    with connect(server) as sock:
        sock.sendall(head(server, path, length=None if chunked else 1000))
        started = time.monotonic()
        received = b""
        while time.monotonic() - started < GIVE_UP_S:
            readable, _, _ = select.select([sock], [], [], TRICKLE_S)
            if not readable:
                if not received:
                    sock.sendall(b"1\r\n \r\n" if chunked else b" ")
                continue
            data = sock.recv(65536)
            if not data:
                answer = parse(received)
                answer.closed_after_s = time.monotonic() - started
                return answer
            received += data
    raise AssertionError(f"the connection was still open after {GIVE_UP_S} s: {received!r}")


def read_answer(sock: socket.socket) -> Answer:
    """One answer on a connection that stays open: its head, then content-length bytes."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    length = re.search(rb"(?im)^content-length: *(\d+)", received)
    assert length is not None, received
    while len(received.partition(b"\r\n\r\n")[2]) < int(length[1]):
        received += sock.recv(65536)
    return parse(received)


# --- POST /rpc --------------------------------------------------------------------------------


def test_a_body_that_trickles_past_the_timeout_answers_408_and_is_closed(server: Server) -> None:
    answer = trickle(server, "/rpc")
    assert answer.status == 408
    assert answer.headers["connection"] == "close"
    error = answer.body["error"]
    assert (error["code"], error["data"]["code"], error["data"]["httpStatus"]) == (
        -32008,
        "TIMEOUT",
        408,
    )
    assert answer.body["id"] is None
    assert answer.closed_after_s is not None
    assert answer.closed_after_s >= TIMEOUT_S / 2  # it was given its time, not refused at once


def test_a_chunked_body_that_trickles_past_the_timeout_answers_408(server: Server) -> None:
    answer = trickle(server, "/rpc", chunked=True)
    assert (answer.status, answer.body["error"]["data"]["code"]) == (408, "TIMEOUT")


def test_many_slow_bodies_at_once_are_all_answered_and_closed(server: Server) -> None:
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: trickle(server, "/rpc"), range(20)))
    assert {a.status for a in answers} == {408}


def test_a_slow_body_that_arrives_within_the_timeout_is_answered(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(head(server, "/rpc", length=len(HEALTH)))
        for piece in (HEALTH[:20], HEALTH[20:]):
            time.sleep(TIMEOUT_S / 4)
            sock.sendall(piece)
        answer = read_answer(sock)
    assert answer.status == 200
    assert answer.body["result"]["status"] == "ok"


def test_the_timeout_counts_per_request_on_a_kept_alive_connection(server: Server) -> None:
    with connect(server) as sock:
        for _ in range(3):
            time.sleep(TIMEOUT_S * 0.6)  # idle between requests is not body time
            sock.sendall(head(server, "/rpc", length=len(HEALTH)) + HEALTH)
            assert read_answer(sock).status == 200


# --- POST /trpc -------------------------------------------------------------------------------


def test_a_trpc_body_that_trickles_past_the_timeout_answers_408_and_is_closed(
    server: Server,
) -> None:
    answer = trickle(server, "/trpc/catalog.createProduct")
    assert answer.status == 408
    assert answer.headers["connection"] == "close"
    error = answer.body["error"]
    assert (error["code"], error["data"]["code"], error["data"]["httpStatus"]) == (
        -32008,
        "TIMEOUT",
        408,
    )
    assert error["data"]["path"] == "catalog.createProduct"
