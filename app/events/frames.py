"""Server-Sent Events frames, encoded once per event and worker, then shared by every stream."""

from __future__ import annotations

import enum
from dataclasses import dataclass
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
    body = _encoder.encode(snapshot)
    if reset:
        # A snapshot is a JSON object that always has members (session, cart): the flag goes
        # in front of them, without decoding and re-encoding the whole state.
        body = b'{"reset":true,' + body[1:]
    return frame(seq, EventType.SESSION_SNAPSHOT.value, body)


def retry_hint(milliseconds: int) -> bytes:
    return b"retry: %d\n\n" % milliseconds


HEARTBEAT = b": heartbeat\n\n"
# The last bytes of a stream that a stopping worker ends; the client reconnects (to another
# worker) and resumes with Last-Event-ID.
SHUTTING_DOWN = b": shutting down\n\n"


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One outbox event as both audiences' frames, plus whether it ends the session's story."""

    session_id: int
    seq: int
    staff_frame: bytes
    client_frame: bytes
    final: bool

    @classmethod
    def of(cls, event: AppendedEvent) -> LiveEvent:
        payload = event.payload
        status = payload.get("staff", {}).get("session", {}).get("status")
        return cls(
            session_id=event.session_id,
            seq=event.seq,
            staff_frame=frame(event.seq, event.type, payload.get("staff")),
            client_frame=frame(event.seq, event.type, payload.get("client")),
            final=status in _FINAL,
        )

    def frame_for(self, audience: Audience) -> bytes:
        return self.staff_frame if audience is Audience.STAFF else self.client_frame
