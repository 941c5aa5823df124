"""The event bus without servers: mailboxes, the per-worker hub, the memory and Redis buses.

A stream's mailbox is bounded and never blocks the publisher: one that falls behind is marked
overflowed and left holding a single RESYNC, so its stream closes and the browser resumes from
the outbox. The hub hands an event only to listeners of its session. Across processes, Redis
carries each committed event to every worker with a listener for that session; a worker holds
a channel subscription only while it has local listeners, and after losing Redis it tells every
listener to resync from the outbox (DESIGN.md 5).
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis import asyncio as aioredis

from app.db.models import SessionStatus
from app.domain.outbox import AppendedEvent
from app.events import bus as bus_module
from app.events.bus import UNSCOPED_CHANNELS, MemoryBus, RedisBus
from app.events.channels import Channels
from app.events.frames import Audience, LiveEvent, frame
from app.events.hub import Hub, Listener, Signal
from tests import live_server, services
from tests.private_redis import private_redis

WAIT_S = 3.0


def appended(session_id: int, seq: int, status: str = "ACTIVE", **extra: Any) -> AppendedEvent:
    """An outbox event whose staff payload carries cost and notes and whose client one does not."""
    staff = {"session": {"id": session_id, "status": status, "internalNotes": "pays late"}}
    client = {"session": {"id": session_id, "status": status}}
    staff["cart"] = {"items": [{"id": 1, "unitPrice": "10.00", "unitCogs": "4.00"}]}
    client["cart"] = {"items": [{"id": 1, "unitPrice": "10.00"}]}
    return AppendedEvent(
        session_id, seq, "CART_UPDATED", {"staff": {**staff, **extra}, "client": client}
    )


def live(session_id: int, seq: int) -> LiveEvent:
    return LiveEvent.of(appended(session_id, seq))


async def next_event(listener: Listener, within: float = WAIT_S) -> LiveEvent:
    """The next LiveEvent in the mailbox, skipping RESYNC signals."""
    async with asyncio.timeout(within):
        while True:
            item = await listener.next(within)
            if isinstance(item, LiveEvent):
                return item


# --- the mailbox --------------------------------------------------------------------------------


async def test_a_listener_that_falls_behind_is_overflowed_and_left_with_a_single_resync() -> None:
    listener = Listener(1, Audience.STAFF, maxsize=3)
    alarms: list[str] = []
    listener.on_overflow = lambda: alarms.append("overflow")

    for seq in range(1, 4):
        listener.offer(live(1, seq))
    assert (listener.overflowed, alarms) == (False, [])

    listener.offer(live(1, 4))

    assert listener.overflowed
    assert alarms == ["overflow"]
    assert await listener.next(0.1) is Signal.RESYNC
    assert await listener.next(0.05) is None


async def test_an_overflowed_listener_takes_nothing_more_and_alarms_once() -> None:
    listener = Listener(1, Audience.CLIENT, maxsize=1)
    alarms: list[str] = []
    listener.on_overflow = lambda: alarms.append("overflow")
    listener.offer(live(1, 1))
    listener.offer(live(1, 2))

    for seq in range(3, 10):
        listener.offer(live(1, seq))
    listener.offer(Signal.RESYNC)

    assert alarms == ["overflow"]
    assert await listener.next(0.1) is Signal.RESYNC
    assert await listener.next(0.05) is None


async def test_a_listener_hands_out_items_in_order_and_none_after_silence() -> None:
    listener = Listener(1, Audience.STAFF, maxsize=10)
    for seq in (1, 2, 3):
        listener.offer(live(1, seq))
    received = [await listener.next(0.1) for _ in range(3)]
    assert [item.seq for item in received if isinstance(item, LiveEvent)] == [1, 2, 3]
    assert await listener.next(0.05) is None


# --- the hub ------------------------------------------------------------------------------------


async def test_the_hub_delivers_an_event_only_to_listeners_of_its_session() -> None:
    hub = Hub()
    staff_1 = Listener(1, Audience.STAFF, 10)
    client_1 = Listener(1, Audience.CLIENT, 10)
    staff_2 = Listener(2, Audience.STAFF, 10)
    for listener in (staff_1, client_1, staff_2):
        hub.add(listener)

    event = live(1, 7)
    hub.deliver(event)

    assert await staff_1.next(0.1) is event
    assert await client_1.next(0.1) is event
    assert await staff_2.next(0.05) is None
    hub.deliver(live(3, 1))  # nobody listens to session 3
    assert hub.listener_count == 3


async def test_resync_reaches_every_listener_of_every_session() -> None:
    hub = Hub()
    listeners = [Listener(s, Audience.STAFF, 10) for s in (1, 1, 2)]
    for listener in listeners:
        hub.add(listener)
    hub.resync_all()
    assert [await listener.next(0.1) for listener in listeners] == [Signal.RESYNC] * 3


def test_the_hub_forgets_a_session_when_its_last_listener_leaves() -> None:
    hub = Hub()
    first, second = Listener(5, Audience.STAFF, 10), Listener(5, Audience.CLIENT, 10)
    hub.add(first)
    hub.add(second)
    hub.remove(first)
    assert hub.listens_to(5) and hub.session_ids() == [5]
    hub.remove(second)
    assert not hub.listens_to(5) and hub.session_ids() == []
    hub.remove(second)  # removing twice is harmless
    assert hub.listener_count == 0


# --- frames -------------------------------------------------------------------------------------


def test_a_frame_is_one_sse_message_with_its_json_on_a_single_data_line() -> None:
    body = frame(12, "CART_UPDATED", {"note": "two\nlines", "price": "1.50"})
    assert body == b'id: 12\nevent: CART_UPDATED\ndata: {"note":"two\\nlines","price":"1.50"}\n\n'


@pytest.mark.parametrize("status", [s.value for s in SessionStatus])
def test_a_live_event_is_final_once_its_session_is_converted_or_cancelled(status: str) -> None:
    event = LiveEvent.of(appended(1, 1, status))
    assert event.final is (status in {"CONVERTED", "CANCELLED"})


def test_a_live_event_carries_each_audience_its_own_projection() -> None:
    event = LiveEvent.of(appended(4, 9))
    assert event.frame_for(Audience.STAFF) == event.staff_frame
    assert event.frame_for(Audience.CLIENT) == event.client_frame
    assert b"unitCogs" in event.staff_frame and b"internalNotes" in event.staff_frame
    assert b"unitCogs" not in event.client_frame and b"internalNotes" not in event.client_frame
    assert event.client_frame.startswith(b"id: 9\nevent: CART_UPDATED\ndata: ")


# --- the memory bus -----------------------------------------------------------------------------


async def test_the_memory_bus_delivers_each_audience_its_own_frame() -> None:
    bus = MemoryBus()
    staff = await bus.listen(4, Audience.STAFF)
    client = await bus.listen(4, Audience.CLIENT)
    elsewhere = await bus.listen(5, Audience.STAFF)

    await bus.publish([appended(4, 1), appended(4, 2)])

    for listener in (staff, client):
        first, second = await next_event(listener), await next_event(listener)
        assert [first.seq, second.seq] == [1, 2]
    assert first.staff_frame != first.client_frame
    assert await elsewhere.next(0.05) is None
    await bus.unlisten(staff)
    await bus.unlisten(client)
    await bus.unlisten(elsewhere)
    assert bus.hub.listener_count == 0


# --- the Redis bus ------------------------------------------------------------------------------


def random_session_id() -> int:
    # The shared Redis may serve other runs: a session id nobody else uses keeps channels apart.
    return random.randrange(10**9, 2**31)


async def numsub(client: aioredis.Redis, session_id: int) -> int:
    """Subscribers of the session's channel as a RedisBus built without channels names it."""
    [(_, count)] = await client.pubsub_numsub(UNSCOPED_CHANNELS.session(session_id))
    return int(count)


async def until_numsub(client: aioredis.Redis, session_id: int, expected: int) -> None:
    """Wait until the session's channel has `expected` subscribers (Redis' own count)."""
    async with asyncio.timeout(WAIT_S):
        while await numsub(client, session_id) != expected:  # noqa: ASYNC110 - Redis' state
            await asyncio.sleep(0.01)


async def started(bus: RedisBus) -> RedisBus:
    await bus.start()
    assert await bus.wait_connected(WAIT_S), "the bus did not connect to Redis"
    return bus


@pytest.fixture
async def redis_url() -> str:
    services.require("redis")
    return services.REDIS_URL


@pytest.fixture
async def redis_admin(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def two_workers(redis_url: str) -> AsyncIterator[tuple[RedisBus, RedisBus]]:
    """Two RedisBus instances, as two worker processes would hold."""
    buses: list[RedisBus] = []
    try:
        for _ in range(2):
            bus = RedisBus(redis_url)
            buses.append(bus)
            await started(bus)
        yield buses[0], buses[1]
    finally:
        for bus in buses:
            await bus.close()


@pytest.mark.redis
async def test_an_event_published_on_one_worker_reaches_a_listener_on_another(
    two_workers: tuple[RedisBus, RedisBus], redis_admin: aioredis.Redis
) -> None:
    receiving, publishing = two_workers
    session_id = random_session_id()
    staff = await receiving.listen(session_id, Audience.STAFF)
    client = await receiving.listen(session_id, Audience.CLIENT)
    unrelated = await receiving.listen(session_id + 1, Audience.STAFF)
    await until_numsub(redis_admin, session_id, 1)

    await publishing.publish([appended(session_id, 1), appended(session_id, 2)])

    for listener in (staff, client):
        first, second = await next_event(listener), await next_event(listener)
        assert (first.session_id, first.seq, second.seq) == (session_id, 1, 2)
    expected = LiveEvent.of(appended(session_id, 2))
    assert second.staff_frame == expected.staff_frame
    assert second.client_frame == expected.client_frame
    assert await unrelated.next(0.1) in (None, Signal.RESYNC)
    for listener in (staff, client, unrelated):
        await receiving.unlisten(listener)


@pytest.mark.redis
async def test_a_worker_subscribes_once_and_unsubscribes_when_its_last_listener_leaves(
    two_workers: tuple[RedisBus, RedisBus], redis_admin: aioredis.Redis
) -> None:
    worker, _ = two_workers
    session_id = random_session_id()
    assert await numsub(redis_admin, session_id) == 0

    first = await worker.listen(session_id, Audience.STAFF)
    second = await worker.listen(session_id, Audience.CLIENT)
    await until_numsub(redis_admin, session_id, 1)  # one connection per worker, not per stream

    await worker.unlisten(first)
    await asyncio.sleep(0.1)
    assert await numsub(redis_admin, session_id) == 1

    await worker.unlisten(second)
    await until_numsub(redis_admin, session_id, 0)
    assert not worker.hub.listens_to(session_id)


@pytest.mark.redis
async def test_buses_of_two_deployments_on_one_redis_never_take_each_others_events(
    redis_url: str, redis_admin: aioredis.Redis
) -> None:
    # Prefixes of this run's own, so that no other run's buses on the shared Redis interfere.
    prefix = live_server.RUN_CHANNEL_PREFIX
    ours = await started(RedisBus(redis_url, channels=Channels(f"{prefix}-ours")))
    theirs = await started(RedisBus(redis_url, channels=Channels(f"{prefix}-theirs")))
    try:
        session_id = random_session_id()  # the same session id and seq on both deployments
        our_listener = await ours.listen(session_id, Audience.STAFF)
        their_listener = await theirs.listen(session_id, Audience.STAFF)
        for control in (ours.channels.control, theirs.channels.control):
            assert await redis_admin.pubsub_numsub(control) == [(control.encode(), 1)]

        await theirs.publish([appended(session_id, 1, deployment="theirs")])
        await ours.publish([appended(session_id, 1, deployment="ours")])

        assert b'"deployment":"ours"' in (await next_event(our_listener)).staff_frame
        assert b'"deployment":"theirs"' in (await next_event(their_listener)).staff_frame
        assert await our_listener.next(0.2) in (None, Signal.RESYNC)
        await ours.unlisten(our_listener)
        await theirs.unlisten(their_listener)
    finally:
        await ours.close()
        await theirs.close()


async def test_without_redis_publishing_never_raises_and_the_bus_says_it_is_unhealthy() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on that port any more: every connection is refused.
    bus = RedisBus(f"redis://127.0.0.1:{port}/0")
    try:
        await bus.start()
        assert not await bus.wait_connected(0.3)
        assert not bus.healthy
        listener = await bus.listen(1, Audience.STAFF)
        async with asyncio.timeout(2.5):  # PUBLISH_TIMEOUT_S bounds a publish
            await bus.publish([appended(1, 1)])
        await bus.unlisten(listener)
    finally:
        await bus.close()


@pytest.mark.redis
async def test_after_redis_comes_back_every_listener_is_told_to_resync() -> None:
    with private_redis() as redis_server:
        bus = await started(RedisBus(redis_server.url))
        try:
            session_id = random_session_id()
            listeners = [
                await bus.listen(session_id, Audience.STAFF),
                await bus.listen(session_id + 1, Audience.CLIENT),
            ]
            for listener in listeners:  # drain anything from the first connect
                while await listener.next(0.05) is not None:
                    pass

            redis_server.stop()
            async with asyncio.timeout(WAIT_S):
                while bus.healthy:  # noqa: ASYNC110 - the bus offers no event for "lost"
                    await asyncio.sleep(0.01)
            redis_server.start()
            assert await bus.wait_connected(WAIT_S)

            for listener in listeners:
                assert await listener.next(WAIT_S) is Signal.RESYNC
            # And the subscriptions are back: a publish reaches the listener again.
            async with aioredis.Redis.from_url(redis_server.url) as admin:
                await until_numsub(admin, session_id, 1)
            await bus.publish([appended(session_id, 5)])
            assert (await next_event(listeners[0])).seq == 5
            for listener in listeners:
                await bus.unlisten(listener)
        finally:
            await bus.close()


# --- publishing off the request path ------------------------------------------------------------


async def test_a_full_publish_queue_drops_for_redis_but_never_for_this_workers_streams(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Not started: nothing takes from the queue, as while Redis hangs.
    bus = RedisBus("redis://127.0.0.1:1/0")
    one_message = len(bus_module._message_encoder.encode(appended(1, 1).payload)) + 100
    monkeypatch.setattr(bus_module, "PUBLISH_QUEUE_BYTES", 3 * one_message)
    local = Listener(1, Audience.STAFF, 100)
    bus.hub.add(local)

    await bus.publish([appended(1, seq) for seq in range(1, 11)])

    assert bus.queued == 3
    assert bus.dropped == 7
    # This worker's own stream had every event at once.
    assert [(await next_event(local)).seq for _ in range(10)] == list(range(1, 11))


@pytest.mark.redis
async def test_a_behind_notice_on_the_control_channel_resyncs_the_streams_that_lack_it(
    two_workers: tuple[RedisBus, RedisBus], redis_admin: aioredis.Redis
) -> None:
    receiving, _ = two_workers
    session_id = random_session_id()
    behind = await receiving.listen(session_id, Audience.STAFF)
    current = await receiving.listen(session_id, Audience.CLIENT)
    current.last_seq = 5
    while await behind.next(0.05) is not None:  # drain the first connect's signals
        pass
    while await current.next(0.05) is not None:
        pass

    notice = bus_module._message_encoder.encode(bus_module.Behind({session_id: 5}))
    await redis_admin.publish(receiving.channels.control, notice)

    assert await behind.next(WAIT_S) is Signal.RESYNC
    assert await current.next(0.2) is None
    for listener in (behind, current):
        await receiving.unlisten(listener)
