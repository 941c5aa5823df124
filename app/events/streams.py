"""Names of the two streams: the URL paths and the keys stream tickets are bound to."""

from __future__ import annotations


def staff_stream_key(session_id: int) -> str:
    return f"staff:{session_id}"


def client_stream_key(room_code: str) -> str:
    return f"client:{room_code}"


def staff_stream_path(session_id: int) -> str:
    return f"/api/sse/live-shopping/{session_id}"


def client_stream_path(room_code: str) -> str:
    return f"/api/sse/vip/live-shopping/{room_code}"
