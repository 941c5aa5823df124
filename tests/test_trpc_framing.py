"""tRPC's SSE framing of the live events (app/events/framing.py), byte for byte, and the rule
that each event is encoded once per audience and framing, however many streams carry it.

The shapes are those @trpc/server's sseStreamProducer writes (stream/sse.ts): `tracked(id, data)`
is an unnamed message with `id:`, `connected`, `ping` and `return` are named events, and an error
is `serialized-error` carrying the error's shape.
"""

from __future__ import annotations

import json
from typing import Any

from app.domain.outbox import AppendedEvent
from app.events.frames import Audience, LiveEvent
from app.events.framing import SSE, TrpcFraming, tracked_frame
from app.rpc.errors import ErrorCode, RpcError

PATH = "liveShopping.onSessionEvent"


def event(seq: int = 7) -> LiveEvent:
    staff = {"session": {"id": 3, "status": "ACTIVE", "internalNotes": "pays late"}}
    client = {"session": {"id": 3, "status": "ACTIVE"}}
    return LiveEvent.of(AppendedEvent(3, seq, "CART_UPDATED", {"staff": staff, "client": client}))


def message(frame: bytes) -> dict[str, str]:
    """The fields of one SSE message block."""
    assert frame.endswith(b"\n\n"), frame
    lines = frame.decode().removesuffix("\n\n").split("\n")
    return dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "") for line in lines)


def data(frame: bytes) -> Any:
    return json.loads(message(frame)["data"])


def test_an_event_is_an_unnamed_message_with_its_id_and_its_type_before_its_state() -> None:
    frame = TrpcFraming(PATH, inactivity_ms=1500).event(event(), Audience.STAFF)
    fields = message(frame)
    assert set(fields) == {"id", "data"}  # no `event:`: EventSource's onmessage, a tracked value
    assert fields["id"] == "7"
    assert fields["data"].startswith('{"type":"CART_UPDATED",')
    assert data(frame)["session"]["internalNotes"] == "pays late"


def test_each_audience_gets_its_own_projection() -> None:
    trpc = TrpcFraming(PATH, inactivity_ms=1500)
    assert "internalNotes" not in data(trpc.event(event(), Audience.CLIENT))["session"]
    assert "internalNotes" in data(trpc.event(event(), Audience.STAFF))["session"]


def test_an_event_is_encoded_once_per_audience_and_framing_whatever_the_streams() -> None:
    shared = event()
    calls: list[tuple[int, str]] = []

    def counting(seq: int, event_type: str, body: bytes) -> bytes:
        calls.append((seq, event_type))
        return tracked_frame(seq, event_type, body)

    frames = [shared.framed(Audience.CLIENT, "trpc", counting) for _ in range(1000)]
    assert calls == [(7, "CART_UPDATED")]
    assert all(f is frames[0] for f in frames)  # the same bytes object for every stream
    shared.framed(Audience.STAFF, "trpc", counting)
    assert len(calls) == 2
    # Streams of two framings share an event; each is still encoded once.
    two = TrpcFraming(PATH, inactivity_ms=1500), TrpcFraming(PATH, inactivity_ms=1500)
    assert two[0].event(shared, Audience.CLIENT) is two[1].event(shared, Audience.CLIENT)
    assert SSE.event(shared, Audience.CLIENT) is shared.client_frame


def test_the_head_is_a_retry_hint_then_connected_with_the_client_options() -> None:
    head = TrpcFraming(PATH, inactivity_ms=4500).head()
    hint, connected = head.split(b"\n\n", 1)
    assert hint == b"retry: 2000"
    assert message(connected) == {
        "event": "connected",
        "data": '{"reconnectAfterInactivityMs":4500}',
    }


def test_ping_and_return_are_named_events_with_empty_data() -> None:
    trpc = TrpcFraming(PATH, inactivity_ms=1500)
    assert message(trpc.heartbeat) == {"event": "ping", "data": ""}
    assert message(trpc.after_final()) == {"event": "return", "data": ""}


def test_a_reset_snapshot_carries_its_type_and_the_reset_flag() -> None:
    frame = TrpcFraming(PATH, inactivity_ms=1500).snapshot(9, {"session": {"id": 3}}, reset=True)
    assert message(frame)["id"] == "9"
    assert data(frame) == {"type": "SESSION_SNAPSHOT", "reset": True, "session": {"id": 3}}


def test_an_error_is_a_serialized_error_with_the_error_shape_of_trpc() -> None:
    trpc = TrpcFraming(PATH, inactivity_ms=1500)
    frame = trpc.failed(RpcError(ErrorCode.FORBIDDEN, "Role CLIENT may not open this stream"))
    assert message(frame)["event"] == "serialized-error"
    assert data(frame) == {
        "message": "Role CLIENT may not open this stream",
        "code": -32003,
        "data": {"code": "FORBIDDEN", "httpStatus": 403, "path": PATH},
    }
    refusal = trpc.refusal(RpcError(ErrorCode.UNAUTHORIZED, "Authentication required"))
    assert refusal.status == 200  # as @trpc/server: inside the stream, so the client reads it
    assert refusal.body.startswith(trpc.head())
