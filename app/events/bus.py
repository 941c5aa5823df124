"""The event bus: after commit, outbox events reach every worker's listeners.

`MemoryBus` serves a single process (the embedded default). `RedisBus` crosses processes:
each worker publishes over a small connection pool and holds one pub/sub connection, on which
it subscribes to a session's channel when its first local stream for that session opens and
unsubscribes when the last one leaves. Redis is a fast path only; the outbox is the truth, so
losing Redis delays events (streams backfill from the outbox) but never loses them. Every
channel carries the deployment's prefix (app/events/channels.py): session ids and sequence
numbers are only unique within one database, so deployments sharing a Redis must not share
channels.

A mutation never waits for Redis (DESIGN.md 5): `commit` commits, hands the events to this
worker's own streams at once, and queues them for a background task that publishes them to the
other workers. The queue is bounded by bytes (PUBLISH_QUEUE_BYTES of encoded messages); when
Redis is slow or hung and the queue is full, further events are dropped from it and counted,
and nothing else waits. A dropped event is still in the outbox: once publishing works again the
task tells the other workers which sessions are behind (on the control channel), and until then
their outbox watchers (app/events/outbox_watch.py) find it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import msgspec
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.domain.outbox import AppendedEvent, appended_events
from app.events.channels import Channels
from app.events.frames import Audience, LiveEvent
from app.events.hub import Hub, Listener
from app.events.ring import FrameRing

log = logging.getLogger("app.events")

# The channels of a RedisBus built without a deployment's (only tests build one so); a served
# app always passes Channels.for_deployment(settings), see create_bus.
UNSCOPED_CHANNELS = Channels("liveshop")
LISTENER_QUEUE_SIZE = 256
PUBLISH_TIMEOUT_S = 1.0
# The most encoded messages waiting for Redis on one worker. A message is an event's staff and
# client payloads (1-40 KB), so this holds a few seconds of a busy worker's events: enough to
# ride out a slow round trip, while a hung Redis costs bounded memory and no waiting.
PUBLISH_QUEUE_BYTES = 8 * 1024 * 1024
# Messages sent in one pipeline.
PUBLISH_BATCH = 256
# On close, how long the publisher may take to send what is still queued.
PUBLISH_FLUSH_S = 0.5
SUBSCRIBE_CONFIRM_S = 1.0
RECONNECT_MAX_S = 2.0
# After this much silence the reader pings Redis; no answer in as long again means the
# connection is dead even though the socket never closed (a NAT or load balancer that drops
# idle flows), so the reader reconnects. The ping also keeps such a flow from going idle.
LIVENESS_S = 5.0


class BusMessage(msgspec.Struct, frozen=True):
    sessionId: int  # noqa: N815 - wire name
    seq: int
    type: str
    payload: dict[str, Any]
    origin: str = ""  # the publishing worker (RedisBus._origin)


class Behind(msgspec.Struct, frozen=True):
    """On the control channel: these sessions have events newer than some workers got."""

    latest: dict[int, int]  # session id -> its newest event id


_message_encoder = msgspec.json.Encoder(decimal_format="string")
_message_decoder = msgspec.json.Decoder(BusMessage)
_behind_decoder = msgspec.json.Decoder(Behind)


class EventBus:
    def __init__(self, *, queue_size: int = LISTENER_QUEUE_SIZE) -> None:
        self.hub = Hub()
        self._queue_size = queue_size
        # Recent frames of the sessions watched here, for replays without SQL.
        self.ring = FrameRing(self.hub.listens_to)

    async def start(self) -> None:
        """Open connections (called once the event loop runs)."""

    async def close(self) -> None:
        """Release connections."""

    @property
    def healthy(self) -> bool:
        return True

    @property
    def status(self) -> str:
        """For /readyz: `memory`, `redis` or `redis-unavailable`."""
        return "memory"

    async def commit(self, db: AsyncSession) -> None:
        """Commit the transaction, then publish the outbox events it appended.

        The one way a change is committed, so no committed event goes unpublished. Awaits
        nothing but the commit: publishing never delays the answer.
        """
        await db.commit()
        self.publish_soon(appended_events(db))

    async def publish(self, events: Sequence[AppendedEvent]) -> None:
        """Send committed outbox events to every worker; never raises, never waits."""
        self.publish_soon(events)

    def publish_soon(self, events: Sequence[AppendedEvent]) -> None:
        """Deliver to this worker's streams now; queue for the other workers."""
        for event in events:
            self._deliver_here(LiveEvent.of(event))
        self._send_to_others(events)

    def _deliver_here(self, event: LiveEvent) -> None:
        self.ring.add(event)
        self.hub.deliver(event)

    def _send_to_others(self, events: Sequence[AppendedEvent]) -> None:
        """Hand the events to the other workers (nothing to do within one process)."""

    async def listen(self, session_id: int, audience: Audience) -> Listener:
        listener = Listener(session_id, audience, self._queue_size)
        self.hub.add(listener)
        await self._subscription_changed(session_id)
        return listener

    async def unlisten(self, listener: Listener) -> None:
        self.hub.remove(listener)
        if not self.hub.listens_to(listener.session_id):
            # Its events stop arriving here, so what the ring holds would go stale.
            self.ring.forget(listener.session_id)
        await self._subscription_changed(listener.session_id)

    async def _subscription_changed(self, session_id: int) -> None:
        """Subscribe or unsubscribe upstream when a session gains or loses local listeners."""


class MemoryBus(EventBus):
    """In-process fan-out: valid for one worker process only."""


class RedisBus(EventBus):
    def __init__(
        self,
        url: str,
        *,
        channels: Channels = UNSCOPED_CHANNELS,
        queue_size: int = LISTENER_QUEUE_SIZE,
        liveness_s: float = LIVENESS_S,
    ) -> None:
        super().__init__(queue_size=queue_size)
        self._url = url
        self.channels = channels
        self._liveness_s = liveness_s
        self._client: aioredis.Redis | None = None
        self._pubsub: Any = None  # redis.asyncio.client.PubSub while connected
        self._subscribed: set[int] = set()
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._confirmations: dict[bytes, asyncio.Future[None]] = {}
        # Tells this worker's own messages apart when Redis echoes them back: its streams
        # had them at commit.
        self._origin = secrets.token_hex(8)
        self._outgoing: deque[tuple[int, int, bytes]] = deque()  # (session, seq, message)
        self._outgoing_bytes = 0
        self._outgoing_ready = asyncio.Event()
        self._drained = asyncio.Event()  # nothing queued nor being sent
        self._drained.set()
        self._publisher: asyncio.Task[None] | None = None
        self._closing = False
        # Sessions with events that did not reach Redis: their newest such event.
        self._unsent: dict[int, int] = {}
        self.dropped = 0  # events never published (queue full or Redis failed); outbox has them

    @property
    def healthy(self) -> bool:
        return self._connected.is_set()

    @property
    def status(self) -> str:
        return "redis" if self.healthy else "redis-unavailable"

    async def start(self) -> None:
        # No silent retries: a lost connection must surface here, so that the reader knows
        # it may have missed messages and tells every stream to resync from the outbox.
        # A blocking pool: when more calls publish at once than there are connections, a
        # publish waits for one (within PUBLISH_TIMEOUT_S) instead of failing at once with
        # "Too many connections" and leaving its events to the streams' heartbeat poll.
        pool = aioredis.BlockingConnectionPool.from_url(
            self._url,
            socket_connect_timeout=1.0,
            max_connections=32,
            timeout=PUBLISH_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        self._client = aioredis.Redis.from_pool(pool)
        self._reader = asyncio.create_task(self._read_forever(), name="redis-bus-reader")
        self._publisher = asyncio.create_task(self._publish_forever(), name="redis-bus-publisher")

    async def close(self) -> None:
        if self._publisher is not None:
            if self.healthy:
                # What is still queued gets a short chance to go out; the outbox has it anyway.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._drained.wait(), PUBLISH_FLUSH_S)
            # The flag as well as the cancel: redis-py may swallow a cancellation that lands
            # inside a pipeline, and the task must end anyway.
            self._closing = True
            self._outgoing_ready.set()
            self._publisher.cancel()
            await asyncio.wait([self._publisher], timeout=PUBLISH_TIMEOUT_S)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._client is not None:
            await self._client.aclose()

    async def wait_connected(self, within_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), within_s)
        return self.healthy

    @property
    def queued(self) -> int:
        """Events waiting for the publisher."""
        return len(self._outgoing)

    def _send_to_others(self, events: Sequence[AppendedEvent]) -> None:
        for event in events:
            message = BusMessage(
                event.session_id, event.seq, event.type, event.payload, origin=self._origin
            )
            data = _message_encoder.encode(message)
            if self._outgoing_bytes + len(data) > PUBLISH_QUEUE_BYTES:
                self._drop(event.session_id, event.seq, "the publish queue is full")
                continue
            self._outgoing.append((event.session_id, event.seq, data))
            self._outgoing_bytes += len(data)
        if self._outgoing:
            self._drained.clear()
            self._outgoing_ready.set()

    def _drop(self, session_id: int, seq: int, why: str) -> None:
        if not self._unsent:
            # Once per run of drops: a hung Redis must not also flood the log.
            log.warning("events not published to Redis (%s); the outbox delivers them", why)
        self.dropped += 1
        self._unsent[session_id] = max(seq, self._unsent.get(session_id, 0))

    async def _publish_forever(self) -> None:
        """Send queued messages in order, one pipeline at a time."""
        while not self._closing:
            await self._outgoing_ready.wait()
            batch: list[tuple[int, int, bytes]] = []
            while self._outgoing and len(batch) < PUBLISH_BATCH:
                batch.append(self._outgoing.popleft())
            self._outgoing_bytes -= sum(len(data) for _, _, data in batch)
            if not self._outgoing and not self._closing:
                self._outgoing_ready.clear()
            if batch and not self._closing:
                await self._publish_batch(batch)
            if not self._outgoing:
                self._drained.set()

    async def _publish_batch(self, batch: list[tuple[int, int, bytes]]) -> None:
        assert self._client is not None
        unsent = self._unsent
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                async with self._client.pipeline(transaction=False) as pipe:
                    for session_id, _, data in batch:
                        pipe.publish(self.channels.session(session_id), data)
                    if unsent:
                        # Publishing works again: point the other workers at what they missed.
                        notice = _message_encoder.encode(Behind(dict(unsent)))
                        pipe.publish(self.channels.control, notice)
                    await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            # Committed already: streams find these events in the outbox (gap or resync).
            for session_id, seq, _ in batch:
                self._drop(session_id, seq, f"publish failed: {exc!r}")
            return
        if unsent:
            log.info("publishing to Redis again (%d events left to the outbox)", self.dropped)
            for session_id, seq in list(unsent.items()):
                if self._unsent.get(session_id) == seq:
                    del self._unsent[session_id]

    async def _subscription_changed(self, session_id: int) -> None:
        async with self._lock:
            pubsub = self._pubsub
            if pubsub is None:
                return  # the reader subscribes to every listened session when it reconnects
            wanted = self.hub.listens_to(session_id)
            channel = self.channels.session(session_id)
            try:
                if wanted and session_id not in self._subscribed:
                    # Wait for Redis to confirm, so that a stream reading its snapshot next
                    # cannot miss an event published in between.
                    confirmed = asyncio.get_running_loop().create_future()
                    self._confirmations[channel.encode()] = confirmed
                    await pubsub.subscribe(channel)
                    self._subscribed.add(session_id)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(confirmed, SUBSCRIBE_CONFIRM_S)
                elif not wanted and session_id in self._subscribed:
                    await pubsub.unsubscribe(channel)
                    self._subscribed.discard(session_id)
            except (RedisError, OSError) as exc:
                log.warning("Redis (un)subscribe failed, the reader will reconnect: %s", exc)
            finally:
                self._confirmations.pop(channel.encode(), None)

    async def _read_forever(self) -> None:
        assert self._client is not None
        delay = 0.05
        control = self.channels.control.encode()
        while True:
            pubsub = self._client.pubsub()
            try:
                async with self._lock:
                    await pubsub.subscribe(self.channels.control)
                    self._subscribed = set(self.hub.session_ids())
                    if self._subscribed:
                        channels = [self.channels.session(s) for s in self._subscribed]
                        await pubsub.subscribe(*channels)
                    self._pubsub = pubsub
                if not self._connected.is_set():
                    self._connected.set()
                    log.info("Redis event bus connected (channels %s:*)", self.channels.prefix)
                # Anything published while we were not subscribed is only in the outbox.
                self.ring.clear()
                self.hub.resync_all()
                delay = 0.05
                pinged = False
                while True:
                    message = await pubsub.get_message(timeout=self._liveness_s)
                    if message is None:
                        if pinged:
                            raise RedisConnectionError("Redis did not answer a PING")
                        await pubsub.ping()
                        pinged = True
                        continue
                    pinged = False  # any message (a pong too) shows the connection is alive
                    if message["type"] == "message":
                        if message["channel"] == control:
                            self._catch_up_with(message["data"])
                        else:
                            self._deliver(message["data"])
                    elif message["type"] == "subscribe":
                        waiter = self._confirmations.get(message["channel"])
                        if waiter is not None and not waiter.done():
                            waiter.set_result(None)
            except (RedisError, OSError) as exc:
                if self._connected.is_set():
                    # The outbox watcher (app/events/outbox_watch.py) sees `healthy` drop and
                    # checks the outbox every second until the bus is back.
                    log.warning("Redis event bus lost (%s); streams fall back to the outbox", exc)
                    self._connected.clear()
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await cast(Any, pubsub).aclose()  # typed in some redis-py versions only
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    def _deliver(self, data: bytes) -> None:
        # Runs in the reader task: a message it cannot use is skipped, never allowed to end the
        # reader (which would silently stop all delivery while `healthy` still says True).
        try:
            message = _message_decoder.decode(data)
            if message.origin == self._origin:
                return  # published here: this worker's streams had it at commit
            event = AppendedEvent(message.sessionId, message.seq, message.type, message.payload)
            live = LiveEvent.of(event)
        except (msgspec.DecodeError, AttributeError, TypeError) as exc:
            log.warning("ignoring a malformed bus message: %s", exc)
            return
        self._deliver_here(live)

    def _catch_up_with(self, data: bytes) -> None:
        """A worker could not publish some events: streams here that lack them read the outbox."""
        try:
            behind = _behind_decoder.decode(data)
        except msgspec.DecodeError as exc:
            log.warning("ignoring a malformed control message: %s", exc)
            return
        self.hub.resync_behind(behind.latest)


def create_bus(settings: Settings) -> EventBus:
    if settings.redis_url is None:
        return MemoryBus()
    return RedisBus(settings.redis_url, channels=Channels.for_deployment(settings))
