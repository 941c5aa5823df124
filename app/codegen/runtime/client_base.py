"""What every generated client is built on: the transport it owns, and the subscriptions to a
live session's events.

The bases are generic in the staff stream's event union (`S`) and the client's (`R`): the
generated client names them and gives their decoders, so a subscription yields typed events.
"""

from __future__ import annotations

from typing import Generic, Self, TypeVar
from urllib.parse import quote

import httpx

from .retries import RetrySetting
from .subscriptions import DEFAULT_STREAM_READ_TIMEOUT, AsyncSubscription, EventTypes, Subscription
from .transport import DEFAULT_TIMEOUT, AsyncTransport, SyncTransport, stream_headers

S = TypeVar("S")
R = TypeVar("R")
E = TypeVar("E")


class SyncClientBase(Generic[S, R]):
    """Owns the transport; closes it (unless the httpx client was passed in) on `close()`."""

    # The decoders of each stream's events, set by the generated client.
    _session_events: EventTypes[S]
    _room_events: EventTypes[R]

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        http_client: httpx.Client | None = None,
        retry: RetrySetting = False,
    ) -> None:
        self._transport = SyncTransport(
            base_url, token=token, timeout=timeout, http_client=http_client, retry=retry
        )

    def close(self) -> None:
        self._transport.close()

    def subscribe_session(
        self,
        session_id: int,
        *,
        last_event_id: int | None = None,
        read_timeout: float | None = DEFAULT_STREAM_READ_TIMEOUT,
    ) -> Subscription[S]:
        """Follow a live session as staff see it (`GET /api/sse/live-shopping/{sessionId}`).

        Iterate the result (`for event in ...`; `event.data` is a `SessionEvent`). It
        starts with a SESSION_SNAPSHOT of the whole state or, given `last_event_id`, with every
        event after that one. See
        `Subscription` for reconnection, the end of the stream and errors.
        """
        return self._subscribe(
            f"/api/sse/live-shopping/{session_id}",
            self._session_events,
            last_event_id=last_event_id,
            read_timeout=read_timeout,
        )

    def subscribe_room(
        self,
        room_code: str,
        *,
        last_event_id: int | None = None,
        read_timeout: float | None = DEFAULT_STREAM_READ_TIMEOUT,
    ) -> Subscription[R]:
        """Follow one's own live session as a client (`GET /api/sse/vip/live-shopping/{roomCode}`):
        the client projection of every event, without cost, internal notes or credit.

        Iterate the result (`for event in ...`; `event.data` is a `RoomEvent`), as with
        `subscribe_session`.
        """
        return self._subscribe(
            f"/api/sse/vip/live-shopping/{quote(room_code, safe='')}",
            self._room_events,
            last_event_id=last_event_id,
            read_timeout=read_timeout,
        )

    def _subscribe(
        self,
        path: str,
        events: EventTypes[E],
        *,
        last_event_id: int | None,
        read_timeout: float | None,
    ) -> Subscription[E]:
        transport = self._transport
        return Subscription(
            transport.http,
            transport.base_url + path,
            stream_headers(transport.token),
            last_event_id=last_event_id,
            read_timeout=read_timeout,
            events=events,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClientBase(Generic[S, R]):
    """Owns the transport; closes it (unless the httpx client was passed in) on `aclose()`."""

    # The decoders of each stream's events, set by the generated client.
    _session_events: EventTypes[S]
    _room_events: EventTypes[R]

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        http_client: httpx.AsyncClient | None = None,
        retry: RetrySetting = False,
    ) -> None:
        self._transport = AsyncTransport(
            base_url, token=token, timeout=timeout, http_client=http_client, retry=retry
        )

    async def aclose(self) -> None:
        await self._transport.aclose()

    def subscribe_session(
        self,
        session_id: int,
        *,
        last_event_id: int | None = None,
        read_timeout: float | None = DEFAULT_STREAM_READ_TIMEOUT,
    ) -> AsyncSubscription[S]:
        """Follow a live session as staff see it (`GET /api/sse/live-shopping/{sessionId}`).

        Iterate the result (`async for event in ...`; `event.data` is a `SessionEvent`). It
        starts with a SESSION_SNAPSHOT of the whole state or, given `last_event_id`, with every
        event after that one. See
        `AsyncSubscription` for reconnection, the end of the stream and errors.
        """
        return self._subscribe(
            f"/api/sse/live-shopping/{session_id}",
            self._session_events,
            last_event_id=last_event_id,
            read_timeout=read_timeout,
        )

    def subscribe_room(
        self,
        room_code: str,
        *,
        last_event_id: int | None = None,
        read_timeout: float | None = DEFAULT_STREAM_READ_TIMEOUT,
    ) -> AsyncSubscription[R]:
        """Follow one's own live session as a client (`GET /api/sse/vip/live-shopping/{roomCode}`):
        the client projection of every event, without cost, internal notes or credit.

        Iterate the result (`async for event in ...`; `event.data` is a `RoomEvent`), as with
        `subscribe_session`.
        """
        return self._subscribe(
            f"/api/sse/vip/live-shopping/{quote(room_code, safe='')}",
            self._room_events,
            last_event_id=last_event_id,
            read_timeout=read_timeout,
        )

    def _subscribe(
        self,
        path: str,
        events: EventTypes[E],
        *,
        last_event_id: int | None,
        read_timeout: float | None,
    ) -> AsyncSubscription[E]:
        transport = self._transport
        return AsyncSubscription(
            transport.http,
            transport.base_url + path,
            stream_headers(transport.token),
            last_event_id=last_event_id,
            read_timeout=read_timeout,
            events=events,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
