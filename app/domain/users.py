"""Users appear on first sight of a valid token, as with an external identity provider."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Client, User
from app.domain.actors import Actor
from app.domain.errors import Unauthenticated


async def ensure_user(session: AsyncSession, actor: Actor) -> None:
    """Create or refresh the user row for an authenticated actor; the token is the truth."""
    if actor.client_id is not None and await session.get(Client, actor.client_id) is None:
        raise Unauthenticated(f"Token names client {actor.client_id}, which does not exist")
    user = await session.get(User, actor.user_id)
    if user is None:
        session.add(User(id=actor.user_id, role=actor.role, client_id=actor.client_id))
    elif user.role is not actor.role or user.client_id != actor.client_id:
        user.role = actor.role
        user.client_id = actor.client_id
    await session.flush()
