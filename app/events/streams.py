"""The two streams of a live session: what each carries and to whom, their URL paths and the
keys stream tickets are bound to."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LiveSession
from app.domain.actors import STAFF_ROLES, Actor, Role
from app.domain.announce import client_snapshot, staff_snapshot
from app.domain.sessions import session_for_client, session_for_staff
from app.events.frames import Audience

Loader = Callable[[AsyncSession, Actor], Awaitable[LiveSession]]


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """What differs between the two streams."""

    audience: Audience
    key: str  # what a stream ticket is bound to
    roles: frozenset[Role]
    load: Loader  # the session, if the actor may watch it (raises otherwise)

    async def snapshot(self, db: AsyncSession, live: LiveSession) -> object:
        if self.audience is Audience.STAFF:
            return await staff_snapshot(db, live)
        return await client_snapshot(db, live)


def staff_stream(session_id: int) -> StreamSpec:
    """A session's staff stream: every event in full, for staff who may read the session."""

    async def load(db: AsyncSession, actor: Actor) -> LiveSession:
        return await session_for_staff(db, actor, session_id)

    return StreamSpec(Audience.STAFF, staff_stream_key(session_id), STAFF_ROLES, load)


def client_stream(room_code: str) -> StreamSpec:
    """A room's client stream: the client projection of every event, for the room's client."""

    async def load(db: AsyncSession, actor: Actor) -> LiveSession:
        return await session_for_client(db, actor, room_code)

    return StreamSpec(Audience.CLIENT, client_stream_key(room_code), frozenset({Role.CLIENT}), load)


def staff_stream_key(session_id: int) -> str:
    return f"staff:{session_id}"


def client_stream_key(room_code: str) -> str:
    return f"client:{room_code}"


def staff_stream_path(session_id: int) -> str:
    return f"/api/sse/live-shopping/{session_id}"


def client_stream_path(room_code: str) -> str:
    return f"/api/sse/vip/live-shopping/{room_code}"
