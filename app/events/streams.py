"""The two streams of a live session: what each carries and to whom, their URL paths and the
keys stream tickets are bound to."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LiveSession
from app.domain.actors import STAFF_ROLES, Actor, Role
from app.domain.announce import client_snapshot, staff_snapshot
from app.domain.sessions import client_may_watch, session_to_watch, staff_may_watch
from app.events.frames import Audience


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """What differs between the two streams. Plain data, no closures: a worker holds one per
    open stream."""

    audience: Audience
    key: str  # what a stream ticket is bound to
    roles: frozenset[Role]
    session_id: int | None = None  # when the request names it (the staff stream)
    room_code: str | None = None  # the client stream's

    async def read(self, db: AsyncSession) -> LiveSession | None:
        """The session this stream follows, read for no one in particular (see `admit`)."""
        return await session_to_watch(db, session_id=self.session_id, room_code=self.room_code)

    def admit(self, actor: Actor, live: LiveSession | None) -> LiveSession:
        """The session, if the actor may watch it (raises otherwise)."""
        if self.room_code is not None:
            return client_may_watch(actor, self.room_code, live)
        assert self.session_id is not None
        return staff_may_watch(actor, self.session_id, live)

    async def snapshot(self, db: AsyncSession, live: LiveSession) -> object:
        if self.audience is Audience.STAFF:
            return await staff_snapshot(db, live)
        return await client_snapshot(db, live)


_CLIENT_ROLES = frozenset({Role.CLIENT})


def staff_stream(session_id: int) -> StreamSpec:
    """A session's staff stream: every event in full, for staff who may read the session."""
    return StreamSpec(
        Audience.STAFF, staff_stream_key(session_id), STAFF_ROLES, session_id=session_id
    )


def client_stream(room_code: str) -> StreamSpec:
    """A room's client stream: the client projection of every event, for the room's client."""
    return StreamSpec(
        Audience.CLIENT, client_stream_key(room_code), _CLIENT_ROLES, room_code=room_code
    )


def staff_stream_key(session_id: int) -> str:
    return f"staff:{session_id}"


def client_stream_key(room_code: str) -> str:
    return f"client:{room_code}"


def staff_stream_path(session_id: int) -> str:
    return f"/api/sse/live-shopping/{session_id}"


def client_stream_path(room_code: str) -> str:
    return f"/api/sse/vip/live-shopping/{room_code}"
