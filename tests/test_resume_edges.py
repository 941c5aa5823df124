"""Resuming a stream never ends in an error or in silence, whatever its Last-Event-ID (DESIGN.md 5).

An id the outbox can replay from is replayed, id 0 included (the whole history). Any other id,
malformed, from another session or from the future, gets a SESSION_SNAPSHOT whose data carries
`"reset": true`, labelled with the session's latest id, and the stream then goes live: a 4xx
would make EventSource give up for good, and silence would leave the client on stale state.
A fresh stream's snapshot carries no `reset` member. Only a final session (converted or
cancelled) resumed from its last id answers 204, which is what stops EventSource.

The server is a real `python -m app serve` process (SQLite, the in-memory bus).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from app.auth import TokenService
from app.config import load_settings
from app.events.sse import replay_after
from tests import live_server
from tests.conftest import Rpc, Tokens
from tests.factories import Customer, Event, Room, Shop, Stock, outbox_events
from tests.sse_client import WATCHING_EVENTS, EventStream, Frame, changes, open_stream

READ_S = 5.0
HEARTBEAT_MS = 500

GARBAGE_IDS = ["abc", "-1", "5.0", "1.5", "0x10", "+3", "1e3", "3,4", "99" * 20]
# Also in the query string, where spaces are part of the value (a header's are not) and a
# non-ASCII digit ('\u00b2', superscript two, passes str.isdigit() but not int()) can be sent.
GARBAGE_QUERY_IDS = ["abc", "-1", "5.0", " 3", "3 ", "\u00b2", "99" * 20]


env, server, http = live_server.one_server_fixtures(
    "resume-edges", read_s=READ_S, heartbeat_ms=HEARTBEAT_MS
)


@dataclass
class Scene:
    """An ACTIVE session with a few events, its client, and a batch to sell."""

    shop: Shop
    database_url: str
    customer: Customer
    room: Room
    scarf: Stock

    @property
    def staff_path(self) -> str:
        return f"/api/sse/live-shopping/{self.room.id}"

    @property
    def client_path(self) -> str:
        return f"/api/sse/vip/live-shopping/{self.room.code}"

    @property
    def staff_token(self) -> str:
        return self.shop.rpc.tokens.staff

    def path_and_token(self, side: str) -> tuple[str, str]:
        if side == "staff":
            return self.staff_path, self.staff_token
        return self.client_path, self.customer.token

    async def outbox(self, room: Room | None = None) -> list[Event]:
        return await outbox_events(self.database_url, (room or self.room).id)

    async def latest_seq(self, room: Room | None = None) -> int:
        return (await self.outbox(room))[-1].seq

    async def assert_only_watching_between(self, after: int, upto: int) -> None:
        """Nothing but who-is-watching events (a stream opened meanwhile) in (after, upto]."""
        between = [e.type for e in await self.outbox() if after < e.seq <= upto]
        assert set(between) <= WATCHING_EVENTS, between

    async def change(self) -> None:
        await self.shop.add(self.room, self.scarf, "1")


@pytest.fixture
async def scene(http: httpx.AsyncClient, env: dict[str, str]) -> Scene:
    shop = Shop(Rpc(http, Tokens(TokenService(load_settings(env)))))
    scarf = await shop.stock(on_hand="500")
    customer = await shop.customer()
    room = await shop.session(customer, title="Resume edges", internal_notes="Staff only")
    for _ in range(3):
        await shop.add(room, scarf, "1")
    return Scene(shop, env["DATABASE_URL"], customer, room, scarf)


async def reset_snapshot_then_live(stream: EventStream, scene: Scene, latest: int) -> Frame:
    """The stream opened with a reset snapshot at the session's latest id and then goes live."""
    assert stream.response.status_code == 200
    hint = await stream.next_frame()
    assert hint.retry is not None
    [snapshot] = await stream.next_events(1, within=READ_S)
    assert snapshot.event == "SESSION_SNAPSHOT"
    assert snapshot.json()["reset"] is True
    assert snapshot.json()["session"]["id"] == scene.room.id
    await scene.assert_only_watching_between(latest, snapshot.seq)

    await scene.change()
    [live] = await stream.next_changes(1, within=READ_S)
    assert live.event == "CART_UPDATED"
    # Nothing between the snapshot and the change but who-is-watching events.
    await scene.assert_only_watching_between(snapshot.seq, live.seq - 1)
    return snapshot


# --- ids that cannot be replayed get a reset snapshot -------------------------------------------


@pytest.mark.parametrize("given", GARBAGE_IDS)
async def test_a_malformed_last_event_id_header_gets_a_reset_snapshot_then_live_events(
    http: httpx.AsyncClient, scene: Scene, given: str
) -> None:
    latest = await scene.latest_seq()
    async with open_stream(
        http, scene.client_path, token=scene.customer.token, last_event_id=given
    ) as stream:
        await reset_snapshot_then_live(stream, scene, latest)


@pytest.mark.parametrize("given", GARBAGE_QUERY_IDS)
@pytest.mark.parametrize("side", ["staff", "client"])
async def test_a_malformed_last_event_id_in_the_query_gets_a_reset_snapshot_on_either_stream(
    http: httpx.AsyncClient, scene: Scene, side: str, given: str
) -> None:
    path, token = scene.path_and_token(side)
    latest = await scene.latest_seq()
    async with open_stream(http, path, token=token, params={"lastEventId": given}) as stream:
        snapshot = await reset_snapshot_then_live(stream, scene, latest)
    # Each side still gets its own projection in the reset snapshot.
    assert ("internalNotes" in snapshot.json()["session"]) is (side == "staff")


async def test_the_latest_id_of_a_busier_session_gets_a_reset_snapshot_not_silence(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    busier = await scene.shop.session(scene.customer, title="Busier")
    for _ in range(12):
        await scene.shop.add(busier, scene.scarf, "1")
    borrowed = await scene.latest_seq(busier)
    latest = await scene.latest_seq()
    assert borrowed > latest

    async with open_stream(
        http, scene.staff_path, token=scene.staff_token, last_event_id=borrowed
    ) as stream:
        snapshot = await reset_snapshot_then_live(stream, scene, latest)
    assert snapshot.seq < borrowed


@pytest.mark.parametrize("status", ["CONVERTED", "CANCELLED"])
async def test_a_final_session_resumed_from_an_unusable_id_sends_the_reset_snapshot_and_ends(
    http: httpx.AsyncClient, scene: Scene, status: str
) -> None:
    if status == "CONVERTED":
        await scene.shop.end(scene.room, convert=True)
    else:
        await scene.shop.set_status(scene.room, status)
    latest = await scene.latest_seq()

    for given in ["abc", str(latest + 50)]:
        async with open_stream(
            http, scene.client_path, token=scene.customer.token, last_event_id=given
        ) as stream:
            assert stream.response.status_code == 200
            frames = await stream.rest(within=READ_S)
        [snapshot] = changes(frames)
        assert snapshot.event == "SESSION_SNAPSHOT"
        assert snapshot.json()["reset"] is True
        assert snapshot.json()["session"]["status"] == status
        assert snapshot.seq == latest


# --- ids that can be replayed are replayed -------------------------------------------------------


async def test_id_zero_replays_the_whole_history_then_goes_live(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    history = await scene.outbox()
    async with open_stream(
        http, scene.staff_path, token=scene.staff_token, last_event_id=0
    ) as stream:
        replayed = await stream.events_until(history[-1].seq, within=READ_S)
        await scene.change()
        [live] = await stream.next_changes(1, within=READ_S)

    assert [(e.seq, e.event) for e in replayed] == [(e.seq, e.type) for e in history]
    assert [e.seq for e in replayed] == list(range(1, len(history) + 1))
    assert "SESSION_SNAPSHOT" not in [e.event for e in stream.events]
    assert live.event == "CART_UPDATED"


async def test_the_final_id_of_an_ended_session_resumes_normally_and_hears_what_follows(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    await scene.shop.end(scene.room, convert=False)
    assert await scene.shop.status(scene.room) == "ENDED"
    ended_at = await scene.latest_seq()

    async with open_stream(
        http, scene.client_path, token=scene.customer.token, last_event_id=ended_at
    ) as stream:
        assert stream.response.status_code == 200
        # Quiet but alive: heartbeats, no snapshot, no replay.
        await stream.frame_where(lambda f: bool(f.comments), within=HEARTBEAT_MS / 250)
        await scene.shop.set_status(scene.room, "CANCELLED")
        tail = changes(await stream.rest(within=READ_S))

    assert "SESSION_SNAPSHOT" not in [f.event for f in changes(stream.frames)]
    [cancelled] = tail
    assert cancelled.json()["session"]["status"] == "CANCELLED"


async def test_a_fresh_stream_and_an_empty_last_event_id_get_a_snapshot_without_reset(
    http: httpx.AsyncClient, scene: Scene
) -> None:
    for given in [None, ""]:
        async with open_stream(
            http, scene.staff_path, token=scene.staff_token, last_event_id=given
        ) as stream:
            [snapshot] = await stream.next_events(1, within=READ_S)
        assert snapshot.event == "SESSION_SNAPSHOT"
        assert "reset" not in snapshot.json()


# --- the one rule that decides ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "latest", "oldest_kept", "expected"),
    [
        ("0", 7, 1, 0),  # nothing pruned: id 0 replays everything
        ("7", 7, 1, 7),  # up to date: nothing to replay, go live
        ("3", 7, 1, 3),
        ("8", 7, 1, None),  # ahead of the session
        ("abc", 7, 1, None),
        ("-1", 7, 1, None),
        ("5.0", 7, 1, None),
        ("9" * 40, 7, 1, None),
        # Once events 1..4 are pruned, a resume needs its next event (id + 1) to be kept.
        ("3", 7, 5, None),
        ("4", 7, 5, 4),
        ("0", 7, 5, None),
        ("7", 7, 8, 7),  # everything pruned, and the client has everything
    ],
)
def test_replay_needs_an_id_of_this_session_whose_next_event_is_still_kept(
    given: str, latest: int, oldest_kept: int, expected: int | None
) -> None:
    assert replay_after(given, latest=latest, oldest_kept=oldest_kept) == expected
