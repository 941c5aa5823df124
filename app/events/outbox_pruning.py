"""Outbox retention in the background: one worker at a time deletes the events it no longer keeps.

DESIGN.md 5 (LIVE_SHOPPING_EVENT_RETENTION_DAYS). Every worker runs the task; on MariaDB a
named lock (GET_LOCK, scoped to the deployment's database) lets one of them prune while the
others skip the round; SQLite is one process. Events go in batches of PRUNE_BATCH, one short
transaction each, so pruning a long history never holds locks for long.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.domain.retention import (
    PRUNE_BATCH,
    prunable_session_ids,
    prune_session_events,
    retention_cutoff,
)
from app.domain.sessions import utcnow
from app.events.channels import database_prefix
from app.runtime import Services

log = logging.getLogger("app.events.retention")

PRUNE_INTERVAL_S = 3600.0
FIRST_PRUNE_S = 60.0  # after start-up, out of the way of a deploy's reconnections
SESSIONS_PER_READ = 100


@asynccontextmanager
async def pruning_turn(services: Services) -> AsyncIterator[bool]:
    """True for the one worker whose turn it is to prune (held for the block)."""
    if services.db.is_sqlite:
        yield True
        return
    name = f"{database_prefix(services.settings.database_url)}:prune-outbox"
    # A lock belongs to a connection: this session keeps one for the whole round.
    async with services.db.read_sessions() as lock_db:
        won = await lock_db.scalar(text("SELECT GET_LOCK(:name, 0)"), {"name": name})
        try:
            yield won == 1
        finally:
            if won == 1:
                await lock_db.scalar(text("SELECT RELEASE_LOCK(:name)"), {"name": name})


async def prune_outbox(
    services: Services, *, now: datetime | None = None, batch: int = PRUNE_BATCH
) -> int:
    """One round: delete the events of sessions final for longer than the retention period.

    Returns how many this worker deleted (0 when another worker has the turn).
    """
    cutoff = retention_cutoff(now or utcnow(), services.settings.event_retention_days)
    deleted = 0
    async with pruning_turn(services) as ours:
        if not ours:
            return 0
        after_id = 0
        while True:
            async with services.db.read_sessions() as db:
                session_ids = await prunable_session_ids(
                    db, cutoff=cutoff, after_id=after_id, limit=SESSIONS_PER_READ
                )
            for session_id in session_ids:
                while True:
                    async with services.db.write_sessions() as db:
                        count = await prune_session_events(
                            db, session_id, cutoff=cutoff, batch=batch
                        )
                        await db.commit()
                    deleted += count
                    if count < batch:
                        break
                    await asyncio.sleep(0)  # let requests run between batches
            if len(session_ids) < SESSIONS_PER_READ:
                return deleted
            after_id = session_ids[-1]


async def prune_forever(services: Services) -> None:
    await asyncio.sleep(FIRST_PRUNE_S)
    while True:
        try:
            deleted = await prune_outbox(services)
            if deleted:
                log.info("pruned %d outbox events past retention", deleted)
        except SQLAlchemyError as exc:
            # The database is away; the next round retries.
            log.warning("outbox pruning failed, retrying later: %s", exc)
        await asyncio.sleep(PRUNE_INTERVAL_S)
