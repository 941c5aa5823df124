"""Background task in every worker: hold-deadline warnings and ending idle sessions.

Safe to run in every worker at once: each warning and each ending is claimed by a
conditional UPDATE, so exactly one worker sends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.sessions import utcnow
from app.domain.timeouts import (
    SWEEP_BATCH,
    end_if_idle,
    expiring_session_ids,
    idle_session_ids,
    warn_if_expiring,
)
from app.runtime import Services

log = logging.getLogger("app.idle")

Finder = Callable[[AsyncSession, int, int], Awaitable[list[int]]]
Claimer = Callable[[AsyncSession, int], Awaitable[bool]]


def hold_warning(services: Services) -> timedelta:
    """How long before a deadline HOLDS_EXPIRING goes out.

    LIVE_SHOPPING_HOLD_WARNING_MINS, but never more than half the timeout: with a timeout of
    a few minutes (a demo, a test) the warning still comes after the last change, not with it.
    """
    settings = services.settings
    return min(
        timedelta(minutes=settings.hold_warning_mins),
        timedelta(minutes=settings.session_timeout_mins) / 2,
    )


async def _each(services: Services, find: Finder, claim: Claimer, batch_size: int) -> list[int]:
    """Claim every session `find` lists, one transaction each; the ids this worker won."""
    won: list[int] = []
    after_id = 0
    while True:
        async with services.db.read_sessions() as db:
            candidates = await find(db, after_id, batch_size)
        for session_id in candidates:
            async with services.db.write_sessions() as db:
                if await claim(db, session_id):
                    await services.bus.commit(db)
                    won.append(session_id)
        if len(candidates) < batch_size:
            return won
        after_id = candidates[-1]


async def warn_expiring_holds(
    services: Services, *, now: datetime | None = None, batch_size: int = SWEEP_BATCH
) -> list[int]:
    """Send HOLDS_EXPIRING for every deadline now within the warning window (once each)."""
    at = now or utcnow()
    warning = hold_warning(services)

    async def find(db: AsyncSession, after_id: int, limit: int) -> list[int]:
        return await expiring_session_ids(
            db, now=at, warning=warning, after_id=after_id, limit=limit
        )

    async def claim(db: AsyncSession, session_id: int) -> bool:
        return await warn_if_expiring(db, session_id, now=at, warning=warning)

    return await _each(services, find, claim, batch_size)


async def sweep_idle_sessions(
    services: Services, *, now: datetime | None = None, batch_size: int = SWEEP_BATCH
) -> list[int]:
    """End every open session past its hold deadline; returns the ids this worker ended."""
    at = now or utcnow()

    async def find(db: AsyncSession, after_id: int, limit: int) -> list[int]:
        return await idle_session_ids(db, now=at, after_id=after_id, limit=limit)

    async def claim(db: AsyncSession, session_id: int) -> bool:
        return await end_if_idle(db, session_id, now=at)

    return await _each(services, find, claim, batch_size)


def sweep_interval_s(services: Services) -> float:
    # A fraction of the warning window, so a warning is never late by much of it.
    return max(1.0, min(30.0, hold_warning(services).total_seconds() / 6))


async def run_forever(services: Services) -> None:
    interval = sweep_interval_s(services)
    while True:
        await asyncio.sleep(interval)
        try:
            await warn_expiring_holds(services)
            ended = await sweep_idle_sessions(services)
            if ended:
                log.info("ended idle sessions %s", ended)
        except Exception:
            # A database hiccup must not kill the sweeper; the next round retries.
            log.exception("idle session sweep failed")
