"""One outbox poll per worker, however many streams it serves.

Live events normally arrive on the bus. The outbox is the truth, though, so each worker checks
it in one query for all the sessions its streams watch: every heartbeat interval while the bus
is healthy (a publish lost between commit and publish, e.g. in a crash, still arrives), every
second while it is not. Streams that have not written a session's latest event get a RESYNC
and read the missing events themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.exc import SQLAlchemyError

from app.domain.outbox import latest_seqs
from app.runtime import Services

log = logging.getLogger("app.events.watch")

DEGRADED_POLL_S = 1.0


async def check_outbox(services: Services) -> None:
    """One round: compare the outbox with what this worker's streams have written."""
    hub = services.bus.hub
    session_ids = hub.session_ids()
    if not session_ids:
        return
    async with services.db.read_sessions() as db:
        latest = await latest_seqs(db, session_ids)
    hub.resync_behind(latest)


async def watch_outbox(services: Services) -> None:
    heartbeat_s = services.settings.heartbeat_ms / 1000
    tick_s = min(heartbeat_s, DEGRADED_POLL_S)
    last_check = time.monotonic()
    while True:
        await asyncio.sleep(tick_s)
        if services.bus.healthy and time.monotonic() - last_check < heartbeat_s:
            continue
        last_check = time.monotonic()
        try:
            await check_outbox(services)
        except SQLAlchemyError as exc:
            # The database is away; streams keep their heartbeat and the next round retries.
            log.warning("outbox check failed, retrying: %s", exc)
