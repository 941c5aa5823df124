"""Writing to a stream's connection directly, for fan-out to thousands of idle streams.

Through ASGI, each event a stream writes wakes its task, which awaits `send`, which writes to
the socket: tens of microseconds per subscriber, so one event to 5,000 streams held the event
loop for a fifth of a second. The server's HTTP protocol (`StreamingHttpToolsProtocol`, the
one `python -m app serve` runs: uvicorn's httptools protocol plus this) hands each request a
`Wire` in `scope["extensions"]`: a stream that waits with nothing pending writes an event's
bytes onto the connection right where the event is delivered (app/events/hub.py), as a
chunk of the response it started through ASGI, and learns that its client went away without a
task of its own waiting for `http.disconnect`.

A wire writes only when that cannot go wrong: the response has started, with chunked encoding,
is not complete, and the connection is neither gone nor behind (its transport is not paused
for writing). Otherwise it declines, and the stream writes through ASGI as it always does,
with its stall limit. Without a wire (another server, the in-process test client) streams
work exactly the same, only without the shortcut.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

EXTENSION = "liveshop.wire"


class Wire:
    """One request's connection, for the stream answering it."""

    __slots__ = ("_cycle", "on_lost")

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self._cycle = cycle
        # Called once when the connection goes (set by the stream answering the request).
        self.on_lost: Callable[[], None] | None = None

    @property
    def lost(self) -> bool:
        return self._cycle.disconnected or self._cycle.transport.is_closing()

    def write(self, body: bytes) -> bool:
        """Write `body` as the next chunk of the response now, if it can go out without
        waiting; False (and nothing written) otherwise."""
        cycle = self._cycle
        if self.lost:
            # Told already, unless the connection went while another request of it was the
            # protocol's current one (pipelined behind the stream): tell it now.
            self._connection_lost()
            return False
        if (
            not cycle.response_started
            or cycle.response_complete
            or cycle.chunked_encoding is not True
            or cycle.flow.write_paused
        ):
            return False
        cycle.transport.write(b"%x\r\n%s\r\n" % (len(body), body))
        return True

    def _connection_lost(self) -> None:
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost()


def wire_of(scope: Any) -> Wire | None:
    """The request's wire, when its server gave it one."""
    extensions = scope.get("extensions")
    wire = extensions.get(EXTENSION) if extensions else None
    return wire if isinstance(wire, Wire) else None


class _Pipeline(list[Any]):
    """The queue of pipelined requests, as a list: a deque (what uvicorn uses) allocates a
    block of 64 slots at once, 0.6 KiB per connection, and nearly every connection has no
    pipelined request ever; a stream's holds one for hours."""

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)


class StreamingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools HTTP/1.1 protocol, giving each request a Wire (see above)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pipeline = _Pipeline()  # type: ignore[assignment]

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        # No new cycle when the request was an upgrade (WebSocket): nothing to add then.
        if cycle is not None and cycle.scope is self.scope:
            extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
            extensions[EXTENSION] = Wire(cycle)

    def connection_lost(self, exc: Exception | None) -> None:
        cycle = self.cycle
        super().connection_lost(exc)
        if cycle is not None:
            wire = wire_of(cycle.scope)
            if wire is not None:
                wire._connection_lost()
