"""Server-Sent Events frames, encoded once per event and worker, then shared by every stream."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import msgspec

from app.domain.outbox import AppendedEvent
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


def retry_hint(milliseconds: int) -> bytes:
    return b"retry: %d\n\n" % milliseconds


HEARTBEAT = b": heartbeat\n\n"


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
