"""A call cancelled in the middle of a statement leaves its pool healthy.

Callers go away mid-call: a tRPC `httpBatchStreamLink` request whose client disconnects is
cancelled by the server, and so is everything at shutdown. The driver then closes its socket;
a connection in that state that went back to the pool would fail every later call that drew
it. Statements run through `Prepared` (the hot paths) bypass SQLAlchemy's own execution, which
is what normally invalidates such a connection, so they must do it themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import pytest
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.engine import Database
from app.db.prepared import Prepared

pytestmark = pytest.mark.mariadb

SLEEP = Prepared(select(func.sleep(bindparam("s"))))
ONE = Prepared(select(func.abs(bindparam("n"))))


@pytest.fixture
async def database(mariadb_url: str) -> AsyncIterator[Database]:
    db = Database(mariadb_url)
    yield db
    await db.dispose()


Opener = Callable[[Database], AbstractAsyncContextManager[AsyncSession]]


@pytest.mark.parametrize(
    "open_unit",
    [
        pytest.param(lambda db: db.read_sessions(), id="read"),
        pytest.param(lambda db: db.write_sessions(), id="write"),
    ],
)
async def test_a_statement_cancelled_mid_way_does_not_poison_the_pool(
    database: Database, open_unit: Opener
) -> None:
    async def slow_unit() -> None:
        async with open_unit(database) as db:
            await SLEEP.rows(db, {"s": 5})

    unit = asyncio.create_task(slow_unit())
    await sleeping_on_the_server(database)
    unit.cancel()
    with pytest.raises(asyncio.CancelledError):
        await unit

    # More calls than the pool has idle connections, so the poisoned one would be drawn.
    for n in range(12):
        async with open_unit(database) as db:
            assert await ONE.rows(db, {"n": -n}) == [(n,)]
    assert database.engine.pool.checkedout() == 0
    assert database.read_engine.pool.checkedout() == 0


async def sleeping_on_the_server(database: Database) -> None:
    """Wait until the unit's SLEEP runs on the server, so the cancel lands mid-statement."""
    probe = text(
        "SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE 'SELECT sleep%'"
    )
    async with asyncio.timeout(5):
        while True:
            async with database.read_sessions() as db:
                if await db.scalar(probe):
                    return
            await asyncio.sleep(0.01)
