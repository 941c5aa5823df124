"""What every generated client is built on: the transport it owns, and the subscriptions to a
live session's events."""

from __future__ import annotations

from typing import Self
from urllib.parse import quote

import httpx

from .subscriptions import DEFAULT_STREAM_READ_TIMEOUT, AsyncSubscription, Subscription
from .transport import DEFAULT_TIMEOUT, AsyncTransport, SyncTransport, stream_headers


class SyncClientBase:
    """Owns the transport; closes it (unless the httpx client was passed in) on `close()`."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._transport = SyncTransport(
            base_url, token=token, timeout=timeout, http_client=http_client
        )

    def close(self) -> None:
        self._transport.close()

    def subscribe_session(
        self,
        session_id: int,
        *,
        last_event_id: int | None = None,
        read_timeout: float | None = DEFAULT_STREAM_READ_TIMEOUT,
    ) -> Subscription:
        """Follow a live session as staff see it (`GET /api/sse/live-shopping/{sessionId}`).

        Iterate the result (`for event in ...`). It starts with a SESSION_SNAPSHOT of the
        whole state or, given `last_event_id`, with every event after that one. See
        `Subscription` for reconnection, the end of the stream and errors.
        """
        return self._subscribe(
            f"/api/sse/live-shopping/{session_id}",
            last_event_id=last_event_id,
            read_timeout=read_timeout,
        )

    def subscribe_room(
        self,
        room_code: str,
        *,
        last_event_id: int | None = None,
        read_timeout: float | None = DEFAULT_STREAM_READ_TIMEOUT,
    ) -> Subscription:
        """Follow one's own live session as a client (`GET /api/sse/vip/live-shopping/{roomCode}`):
        the client projection of every event, without cost, internal notes or credit.

        Iterate the result (`for event in ...`), as with `subscribe_session`.
        """
        return self._subscribe(
            f"/api/sse/vip/live-shopping/{quote(room_code, safe='')}",
            last_event_id=last_event_id,
            read_timeout=read_timeout,
        )

    def _subscribe(
        self, path: str, *, last_event_id: int | None, read_timeout: float | None
    ) -> Subscription:
        transport = self._transport
        return Subscription(
            transport.http,
            transport.base_url + path,
            stream_headers(transport.token),
            last_event_id=last_event_id,
            read_timeout=read_timeout,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClientBase:
    """Owns the transport; closes it (unless the httpx client was passed in) on `aclose()`."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._transport = AsyncTransport(
            base_url, token=token, timeout=timeout, http_client=http_client
        )

    async def aclose(self) -> None:
        await self._transport.aclose()

    def subscribe_session(
        self,
        session_id: int,
        *,
        last_event_id: int | None = None,
        read_timeout: float | None = DEFAULT_STREAM_READ_TIMEOUT,
    ) -> AsyncSubscription:
        """Follow a live session as staff see it (`GET /api/sse/live-shopping/{sessionId}`).

        Iterate the result (`async for event in ...`). It starts with a SESSION_SNAPSHOT of the
        whole state or, given `last_event_id`, with every event after that one. See
        `AsyncSubscription` for reconnection, the end of the stream and errors.
        """
        return self._subscribe(
            f"/api/sse/live-shopping/{session_id}",
            last_event_id=last_event_id,
            read_timeout=read_timeout,
        )

    def subscribe_room(
        self,
        room_code: str,
        *,
        last_event_id: int | None = None,
        read_timeout: float | None = DEFAULT_STREAM_READ_TIMEOUT,
    ) -> AsyncSubscription:
        """Follow one's own live session as a client (`GET /api/sse/vip/live-shopping/{roomCode}`):
        the client projection of every event, without cost, internal notes or credit.

        Iterate the result (`async for event in ...`), as with `subscribe_session`.
        """
        return self._subscribe(
            f"/api/sse/vip/live-shopping/{quote(room_code, safe='')}",
            last_event_id=last_event_id,
            read_timeout=read_timeout,
        )

    def _subscribe(
        self, path: str, *, last_event_id: int | None, read_timeout: float | None
    ) -> AsyncSubscription:
        transport = self._transport
        return AsyncSubscription(
            transport.http,
            transport.base_url + path,
            stream_headers(transport.token),
            last_event_id=last_event_id,
            read_timeout=read_timeout,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
