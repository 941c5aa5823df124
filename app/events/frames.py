"""Server-Sent Events frames, encoded once per event and worker, then shared by every stream.

Two framings carry the same events (app/events/framing.py): the SSE routes' own (`event: TYPE`)
and tRPC's (`httpSubscriptionLink`: unnamed messages whose data carries the type).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from app.domain.outbox import AppendedEvent, EventType
from app.domain.status import FINAL_STATUSES

_FINAL = frozenset(status.value for status in FINAL_STATUSES)
_encoder = msgspec.json.Encoder(decimal_format="string")


class Audience(enum.Enum):
    """Which projection a stream carries: staff sees everything, clients their own view."""

    STAFF = "staff"
    CLIENT = "client"


def frame(seq: int, event_type: str, data: Any) -> bytes:
    """One SSE message: `id`, `event`, single-line JSON `data`, blank line."""
    body = data if isinstance(data, bytes) else _encoder.encode(data)
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, event_type.encode(), body)


def snapshot_frame(seq: int, snapshot: Any, *, reset: bool) -> bytes:
    """SESSION_SNAPSHOT labelled `seq`, the newest event id the state includes.

    `reset` marks a snapshot sent instead of a replay the outbox cannot give (DESIGN.md 5): its
    data gains a top-level `"reset": true`, telling the client to replace what it holds rather
    than wait for the events it missed. A fresh stream's snapshot has no `reset` member, so it
    reads exactly as before the flag existed.
    """
    return frame(seq, EventType.SESSION_SNAPSHOT.value, snapshot_data(snapshot, reset=reset))


def snapshot_data(snapshot: Any, *, reset: bool) -> bytes:
    """A snapshot's JSON: `reset` puts a top-level `"reset": true` in front of its members."""
    body = _encoder.encode(snapshot)
    # A snapshot is a JSON object that always has members (session, cart): the flag goes in
    # front of them, without decoding and re-encoding the whole state.
    return b'{"reset":true,' + body[1:] if reset else body


def retry_hint(milliseconds: int) -> bytes:
    return b"retry: %d\n\n" % milliseconds


HEARTBEAT = b": heartbeat\n\n"
# The last bytes of a stream that a stopping worker ends; the client reconnects (to another
# worker) and resumes with Last-Event-ID.
SHUTTING_DOWN = b": shutting down\n\n"


def _data_of(sse_frame: bytes) -> bytes:
    """The JSON of a frame made by `frame` (single-line data, then the blank line)."""
    return sse_frame[sse_frame.index(b"\ndata: ") + 7 : -2]


# Encodes one event (id, type, data JSON) in a framing other than the SSE routes' own.
FrameEncoder = Callable[[int, str, bytes], bytes]


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One outbox event as both audiences' frames, plus whether it ends the session's story.

    The SSE routes' frames are made with the event; another framing's (tRPC's) on first use,
    then kept: each event is encoded once per audience and framing, never per subscriber.
    """

    session_id: int
    seq: int
    staff_frame: bytes
    client_frame: bytes
    final: bool
    type: str
    _framed: dict[tuple[Audience, str], bytes] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def of(cls, event: AppendedEvent) -> LiveEvent:
        payload = event.payload
        status = payload.get("staff", {}).get("session", {}).get("status")
        staff_data = _encoder.encode(payload.get("staff"))
        client_data = _encoder.encode(payload.get("client"))
        return cls(
            session_id=event.session_id,
            seq=event.seq,
            staff_frame=frame(event.seq, event.type, staff_data),
            client_frame=frame(event.seq, event.type, client_data),
            final=status in _FINAL,
            type=event.type,
        )

    def frame_for(self, audience: Audience) -> bytes:
        return self.staff_frame if audience is Audience.STAFF else self.client_frame

    def framed(self, audience: Audience, framing: str, encode: FrameEncoder) -> bytes:
        """This event for `audience` in the framing named `framing`, encoded on first use."""
        key = (audience, framing)
        found = self._framed.get(key)
        if found is None:
            found = self._framed[key] = encode(
                self.seq, self.type, _data_of(self.frame_for(audience))
            )
        return found
