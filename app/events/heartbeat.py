"""One heartbeat clock per worker, however many streams it serves.

A stream that has written nothing for a heartbeat interval gets a heartbeat (DESIGN.md 5):
instead of a timer per stream (10,000 idle streams, 10,000 timers), one task looks at every
stream a few times per interval and hands a heartbeat to those that are due. An idle stream
takes it as a direct write (app/events/hub.py), so it is not even woken.
"""

from __future__ import annotations

import asyncio
import time

from app.events.hub import Hub

# Looks per interval: a heartbeat goes out between 0.9 and 1.15 intervals after the last write.
TICKS_PER_INTERVAL = 4
# A short interval (tests use 100 ms) is still looked at this often at most.
MIN_TICK_S = 0.02
# A long one at least once a second, so that streams opened together spread their heartbeats.
MAX_TICK_S = 1.0


async def send_heartbeats(hub: Hub, heartbeat_ms: int) -> None:
    interval_s = heartbeat_ms / 1000
    tick_s = min(max(interval_s / TICKS_PER_INTERVAL, MIN_TICK_S), MAX_TICK_S)
    while True:
        await asyncio.sleep(tick_s)
        hub.beat(due_before=time.monotonic() - interval_s * 0.9)
