"""Background task in every worker that ends idle sessions (safe to run everywhere at once)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from app.domain.sessions import utcnow
from app.domain.timeouts import SWEEP_BATCH, end_if_idle, idle_session_ids
from app.runtime import Services

log = logging.getLogger("app.idle")


async def sweep_idle_sessions(
    services: Services, *, now: datetime | None = None, batch_size: int = SWEEP_BATCH
) -> list[int]:
    """End every live session idle past the timeout; returns the ids this worker ended."""
    now = now or utcnow()
    idle_for = timedelta(minutes=services.settings.session_timeout_mins)
    ended: list[int] = []
    after_id = 0
    while True:
        async with services.db.read_sessions() as db:
            candidates = await idle_session_ids(
                db, idle_for=idle_for, now=now, after_id=after_id, limit=batch_size
            )
        for session_id in candidates:
            # One transaction per session: the conditional UPDATE decides which worker wins.
            async with services.db.write_sessions() as db:
                if await end_if_idle(db, session_id, idle_for=idle_for, now=now):
                    await services.bus.commit(db)
                    ended.append(session_id)
        if len(candidates) < batch_size:
            return ended
        after_id = candidates[-1]


async def run_forever(services: Services) -> None:
    interval = min(60.0, services.settings.session_timeout_mins * 60 / 4)
    while True:
        await asyncio.sleep(interval)
        try:
            ended = await sweep_idle_sessions(services)
            if ended:
                log.info("ended idle sessions %s", ended)
        except Exception:
            # A database hiccup must not kill the sweeper; the next round retries.
            log.exception("idle session sweep failed")
