"""The process-wide resources one application instance owns, created once at start-up."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.auth import TokenService
from app.config import Settings
from app.db.engine import Database
from app.events.bus import EventBus, create_bus
from app.events.openings import OpeningReads
from app.events.replay import OutboxPages

log = logging.getLogger("app.runtime")


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    tokens: TokenService
    bus: EventBus
    outbox: OutboxPages  # the streams' reads of the outbox, shared per session
    openings: OpeningReads  # the reads streams open with, shared likewise

    @classmethod
    def create(cls, settings: Settings) -> Services:
        db = Database(settings.database_url)
        bus = create_bus(settings)
        return cls(
            settings=settings,
            db=db,
            tokens=TokenService(settings),
            bus=bus,
            outbox=OutboxPages(db, bus.ring),
            openings=OpeningReads(db),
        )

    async def start(self) -> None:
        await self.bus.start()

    async def close(self) -> None:
        # For operators and benchmarks: how well the ring spared the database.
        log.info("outbox reads: %d", self.outbox.queries)
        await self.bus.close()
        await self.outbox.close()
        await self.openings.close()
        await self.db.dispose()
