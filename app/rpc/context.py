"""What a procedure handler receives besides its params: actor, settings, the unit of work."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.domain.actors import Actor
from app.domain.errors import Unauthenticated

if TYPE_CHECKING:
    from app.events.bus import EventBus
    from app.rpc.registry import Registry
    from app.runtime import Services


class UnitOfWork:
    """One transaction per call, opened lazily; committed only when the call succeeds."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], bus: EventBus) -> None:
        self._sessions = sessions
        self._bus = bus
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = self._sessions()
        return self._session

    async def commit(self) -> None:
        if self._session is not None:
            await self._bus.commit(self._session)  # and publishes what it appended

    async def close(self) -> None:
        # Closing without commit rolls back whatever the call did.
        if self._session is not None:
            await self._session.close()
            self._session = None


@dataclass(slots=True)
class CallContext:
    settings: Settings
    services: Services
    registry: Registry
    uow: UnitOfWork
    request_id: str
    maybe_actor: Actor | None = None
    base_url: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def db(self) -> AsyncSession:
        return self.uow.session

    @property
    def actor(self) -> Actor:
        if self.maybe_actor is None:
            raise Unauthenticated("Authentication required")
        return self.maybe_actor
