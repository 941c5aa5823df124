"""Sign-in links to the pages for the demo users, for development (`python -m app token --link`).

A link carries its token in the URL fragment (`#token=...`), as the embedding ERP passes it:
the browser never sends a fragment to the server, and the page moves it into sessionStorage.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy import select

from app.auth import TokenService
from app.db.engine import Database
from app.db.models import Client, User
from app.db.seed import CLIENTS, STAFF
from app.domain.actors import Role
from app.domain.sessions import active_session_of_client

# The demo users `seed --demo` creates: the staff, then one CLIENT user per client from 101.
DEMO_USER_IDS = [user_id for user_id, _ in STAFF] + [101 + i for i in range(len(CLIENTS))]


@dataclass(frozen=True, slots=True)
class SignInLink:
    role: Role
    user_id: int
    page: str  # "console" or "room"; "" when there is nothing to open yet
    url: str | None
    client_name: str | None = None


class NoDemoUsers(Exception):
    """The database has none of the demo users: migrate and seed it first."""


async def demo_sign_in_links(
    database_url: str,
    tokens: TokenService,
    *,
    base_url: str,
    role: Role | None = None,
    ttl_seconds: int,
) -> list[SignInLink]:
    """A link per demo user (of `role`, when given): staff to the console, a client to the room
    of its open session (none when it has no open session yet).
    """
    base = base_url.rstrip("/")
    db = Database(database_url)
    try:
        async with db.read_sessions() as session:
            query = select(User).where(User.id.in_(DEMO_USER_IDS)).order_by(User.id)
            if role is not None:
                query = query.where(User.role == role)
            users = (await session.scalars(query)).all()
            if not users and role is None:
                raise NoDemoUsers
            links = []
            for user in users:
                token = tokens.issue(
                    sub=user.id, role=user.role, client_id=user.client_id, ttl_seconds=ttl_seconds
                )
                if user.role is not Role.CLIENT or user.client_id is None:
                    links.append(
                        SignInLink(user.role, user.id, "console", f"{base}/console#token={token}")
                    )
                    continue
                client = await session.get(Client, user.client_id)
                live = await active_session_of_client(session, user.client_id)
                url = (
                    None
                    if live is None
                    else f"{base}/room/{quote(live.room_code, safe='')}#token={token}"
                )
                links.append(
                    SignInLink(
                        user.role,
                        user.id,
                        "room" if url else "",
                        url,
                        client_name=client.name if client else None,
                    )
                )
            return links
    finally:
        await db.dispose()


def describe(link: SignInLink) -> str:
    """One line of `token --link` output."""
    who = f"{link.role.value:<6} user {link.user_id:<4}"
    if link.client_name:
        who += f" {link.client_name}"
    if link.url is None:
        return f"{who}: no open session yet - open one in the console, then run this again"
    return f"{who} {link.page}: {link.url}"
