"""Deployments sharing one Redis never see each other's events (DESIGN.md 5).

Every Redis channel carries the deployment's prefix: REDIS_CHANNEL_PREFIX as given, or, when it
is unset, one derived from where the deployment's data lives (dialect, host, port, database),
never from its credentials. Two deployments on different databases number their sessions and
events independently, so without the prefix one's session 1, event 2 would pass for the other's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.auth import TokenService
from app.config import load_settings
from app.events.channels import Channels, database_prefix
from tests import live_server
from tests.conftest import Rpc, Tokens, make_settings
from tests.factories import Event, Room, Shop, outbox_events
from tests.live_server import Server
from tests.private_redis import PrivateRedis, private_redis
from tests.sse_client import open_stream

READ_S = 5.0


# --- the prefix -----------------------------------------------------------------------------


def test_the_default_prefix_tells_databases_apart_and_never_depends_on_credentials() -> None:
    shop = "mysql+aiomysql://app:first-secret@db.internal:3306/shop"
    same_database = [
        "mysql+aiomysql://app:rotated-secret@db.internal:3306/shop",
        "mysql+aiomysql://reporting@DB.internal:3306/shop?charset=utf8mb4",
    ]
    other_databases = [
        "mysql+aiomysql://app:first-secret@db.internal:3306/shop_staging",
        "mysql+aiomysql://app:first-secret@db2.internal:3306/shop",
        "mysql+aiomysql://app:first-secret@db.internal:3307/shop",
        "sqlite+aiosqlite:///shop",
    ]

    assert {database_prefix(url) for url in same_database} == {database_prefix(shop)}
    others = {database_prefix(url) for url in other_databases}
    assert len(others) == len(other_databases) and database_prefix(shop) not in others
    assert "secret" not in database_prefix(shop) and "db.internal" not in database_prefix(shop)


def test_sqlite_files_are_told_apart_by_their_full_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    relative = "sqlite+aiosqlite:///./liveshop.db"
    monkeypatch.chdir(tmp_path / "a")
    in_a = database_prefix(relative)
    assert in_a == database_prefix(f"sqlite+aiosqlite:///{tmp_path / 'a' / 'liveshop.db'}")
    monkeypatch.chdir(tmp_path / "b")
    assert database_prefix(relative) != in_a


def test_a_configured_prefix_is_used_as_given_on_every_channel() -> None:
    settings = make_settings("sqlite+aiosqlite:///shop.db", REDIS_CHANNEL_PREFIX="eu-prod")
    channels = Channels.for_deployment(settings)
    assert (channels.session(42), channels.control) == ("eu-prod:session:42", "eu-prod:control")

    derived = Channels.for_deployment(make_settings("sqlite+aiosqlite:///shop.db"))
    assert derived.prefix == database_prefix("sqlite+aiosqlite:///shop.db")
    assert derived.session(42).startswith(f"{derived.prefix}:")
    assert derived.control.startswith(f"{derived.prefix}:")


# --- two deployments, one Redis -------------------------------------------------------------


@dataclass
class Deployment:
    """One worker process on a database of its own, with its host's RPC client."""

    server: Server
    database_url: str
    http: httpx.AsyncClient
    shop: Shop

    async def outbox(self, room: Room) -> dict[int, Event]:
        return {e.seq: e for e in await outbox_events(self.database_url, room.id)}


@pytest.fixture(scope="module")
def redis_server() -> Iterator[PrivateRedis]:
    with private_redis() as running:
        yield running


@pytest.fixture(scope="module")
def servers(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory, redis_server: PrivateRedis
) -> Iterator[list[tuple[Server, dict[str, str]]]]:
    """Deployments A and B: each its own SQLite file and worker; REDIS_CHANNEL_PREFIX unset."""
    envs = [
        live_server.sqlite_env(
            sqlite_template,
            tmp_path_factory.mktemp(f"deployment-{name}"),
            REDIS_URL=redis_server.url,
            REDIS_CHANNEL_PREFIX="",  # empty is unset: each derives its prefix from its database
            LIVE_SHOPPING_HEARTBEAT_MS="10000",  # no outbox poll within a test's few seconds
        )
        for name in ("a", "b")
    ]
    with contextlib.ExitStack() as stack:
        running = [stack.enter_context(live_server.running_servers(env, 1))[0] for env in envs]
        yield list(zip(running, envs, strict=True))


@pytest.fixture
async def deployments(
    servers: list[tuple[Server, dict[str, str]]],
) -> AsyncIterator[list[Deployment]]:
    async with contextlib.AsyncExitStack() as stack:
        deployed = []
        for server, env in servers:
            http = await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=server.base_url, timeout=READ_S, limits=live_server.http_limits(4)
                )
            )
            shop = Shop(Rpc(http, Tokens(TokenService(load_settings(env)))))
            deployed.append(Deployment(server, env["DATABASE_URL"], http, shop))
        yield deployed


async def twin_session(deployment: Deployment) -> Room:
    """The same first steps on each deployment, so both number them alike."""
    shop = deployment.shop
    return await shop.session(await shop.customer(), internal_notes="Twin of the other one")


@pytest.mark.redis
async def test_a_stream_never_receives_another_deployments_event_of_the_same_session_and_seq(
    deployments: list[Deployment],
) -> None:
    a, b = deployments
    room_a, room_b = await twin_session(a), await twin_session(b)
    assert room_a.id == room_b.id and room_a.code != room_b.code  # same id, different sessions
    staff_path = f"/api/sse/live-shopping/{room_b.id}"

    async with open_stream(b.http, staff_path, token=b.shop.rpc.tokens.staff) as stream:
        await stream.frame_where(lambda f: f.is_event, within=READ_S)  # the snapshot
        # A's session runs ahead: whatever id B's next event gets, A has published one too.
        for status in ("PAUSED", "ACTIVE", "PAUSED"):
            await a.shop.set_status(room_a, status)
        stock = await b.shop.stock(name="Only on B")
        await b.shop.rpc.staff(
            "liveShopping.highlightProduct", {"sessionId": room_b.id, "batchId": stock.batch_id}
        )
        own = await stream.frame_where(lambda f: f.event == "HIGHLIGHTED", within=READ_S)

    outbox_a, outbox_b = await a.outbox(room_a), await b.outbox(room_b)
    assert own.seq in outbox_a  # A published an event of this session id and seq
    assert own.json()["session"]["roomCode"] == room_b.code
    for event in stream.events[1:]:  # every event B's stream carried is one of B's own
        assert (event.event, event.json()) == (
            outbox_b[event.seq].type,
            outbox_b[event.seq].payload["staff"],
        ), event.seq
    assert all(room_a.code not in (frame.data or "") for frame in stream.frames)
