"""The process-wide resources one application instance owns, created once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from app.auth import TokenService
from app.config import Settings
from app.db.engine import Database


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    tokens: TokenService

    @classmethod
    def create(cls, settings: Settings) -> Services:
        return cls(
            settings=settings, db=Database(settings.database_url), tokens=TokenService(settings)
        )

    async def close(self) -> None:
        await self.db.dispose()
