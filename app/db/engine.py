"""Engine and session factory for MariaDB/MySQL and the embedded SQLite default."""

from __future__ import annotations

import time
from typing import Any, cast

import msgspec
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import await_

# Execution option a write transaction sets so SQLite takes its write lock at BEGIN,
# serialising writers up front instead of failing at the first write (SQLITE_BUSY).
SQLITE_IMMEDIATE = "sqlite_begin_immediate"

# A pooled connection idle for longer than this is pinged once before use. A busy pool never
# pings (no round trip on the hot path); one that sat idle may have lost its server (restart,
# network cut, wait_timeout), which the ping finds before a request does.
IDLE_PING_AFTER_S = 30.0
# Below MariaDB's wait_timeout (8 h by default): the server never drops a pooled connection.
POOL_RECYCLE_S = 3600
_IDLE_SINCE = "idle_since"
_NOTHING_SENT = "nothing_sent_in_transaction"
_READ_COMMITTED = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"


def _json_text(value: Any) -> str:
    return msgspec.json.encode(value).decode()


# JSON columns (the outbox payloads above all) through msgspec rather than the json module:
# the same documents, written and read several times faster, and more compactly.
_JSON_CODEC: dict[str, Any] = {
    "json_serializer": _json_text,
    "json_deserializer": msgspec.json.decode,
}


def create_engine(url: str, *, echo: bool = False, read_only: bool = False) -> AsyncEngine:
    """An engine for `url`; on MariaDB `read_only` gives one whose connections autocommit.

    Read-only units of work then cost no COMMIT: each SELECT is its own statement-level
    transaction, which under READ COMMITTED sees exactly what it would inside a transaction.
    """
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30}, **_JSON_CODEC)
        _configure_sqlite(engine)
        return engine
    engine = create_async_engine(
        url,
        echo=echo,
        # Reads hold a connection for one or two statements, so their pool is smaller: a
        # worker opens at most 20 write and 10 read connections, the 30 it had with one pool
        # (four workers stay under MariaDB's default max_connections of 151).
        pool_size=5 if read_only else 10,
        max_overflow=5 if read_only else 10,
        pool_recycle=POOL_RECYCLE_S,
        # No ping per checkout (a round trip on every call); see _ping_after_idle.
        pool_pre_ping=False,
        # Every unit of work ends its transaction itself (commit, or the session's rollback on
        # close), so the pool's reset ROLLBACK would be a second, empty round trip. A
        # connection whose end is unknown (an error mid-rollback) is invalidated, not reused.
        pool_reset_on_return=None,
        # Row locks (SELECT ... FOR UPDATE) guard every invariant; READ COMMITTED avoids
        # the gap locks and stale snapshots of REPEATABLE READ.
        isolation_level="AUTOCOMMIT" if read_only else "READ COMMITTED",
        # Also part of the driver's own (re)connect, which _retry_first_statement relies on.
        connect_args={} if read_only else {"init_command": _READ_COMMITTED},
        **_JSON_CODEC,
    )
    _ping_after_idle(engine)
    _retry_first_statement(engine)
    if read_only:
        _skip_transaction_ends(engine.sync_engine.dialect)
    return engine


def _ping_after_idle(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(
        dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        if getattr(getattr(dbapi_connection, "_connection", None), "closed", False):
            # Closed by its driver while out of the pool (e.g. a statement cancelled mid-way
            # that was not invalidated): never hand it out. Costs no round trip.
            raise exc.DisconnectionError("pooled connection was closed by its driver")
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_AFTER_S:
            return
        try:
            engine.sync_engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool discards this connection and checks out (or opens) another.
            raise exc.DisconnectionError(f"pooled connection failed its ping: {error}") from error


def _retry_first_statement(engine: AsyncEngine) -> None:
    """A connection found dead by the first statement of a transaction is reconnected and the
    statement sent again, once.

    Nothing of the unit of work has reached the server before its first statement, so sending
    it again on a new connection is the same as retrying the whole unit of work. This is what
    keeps dead connections harmless without a ping per checkout: a server restart or a dropped
    connection costs one reconnect, not a failed call. A disconnect later in a transaction
    still fails the call (what was sent is lost with the connection).
    """
    sync_engine = engine.sync_engine
    dialect = sync_engine.dialect
    send = dialect.do_execute

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.info[_NOTHING_SENT] = True

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _after_execute(conn: Connection, *_args: Any) -> None:
        statement_sent(conn)

    def do_execute(cursor: Any, statement: str, parameters: Any, context: Any = None) -> None:
        try:
            send(cursor, statement, parameters, context)
        except Exception as error:
            if context is None or not reconnected(context.root_connection, cursor, error):
                raise
            send(cursor, statement, parameters, context)

    dialect.do_execute = do_execute  # type: ignore[method-assign]


def statement_sent(conn: Connection) -> None:
    """Note that this transaction has sent a statement (see `reconnected`)."""
    conn.info[_NOTHING_SENT] = False


def reconnected(conn: Connection, cursor: Any, error: Exception) -> bool:
    """After `error` on the first statement of a transaction: whether it was a lost connection,
    now reconnected, so that the statement can be sent again (once).
    """
    if not conn.info.get(_NOTHING_SENT) or not conn.dialect.is_disconnect(
        cast(Any, error), None, cursor
    ):
        return False
    conn.info[_NOTHING_SENT] = False
    # The adapted cursor's driver connection: ping(reconnect=True) opens a new socket on the
    # same connection object (re-running init_command and autocommit), so the cursor and the
    # pool's record stay valid.
    await_(cursor._connection.ping(reconnect=True))
    return True


def _skip_transaction_ends(dialect: Dialect) -> None:
    """On autocommit connections COMMIT and ROLLBACK have nothing to end: skip the round trip.

    The driver sends them to the server regardless (aiomysql's commit() is a COM_QUERY).
    Nothing here opens a transaction explicitly (no BEGIN, no savepoints on reads).
    """

    def _nothing_to_end(_dbapi_connection: Any) -> None:
        return None

    dialect.do_commit = _nothing_to_end  # type: ignore[method-assign, assignment]
    dialect.do_rollback = _nothing_to_end  # type: ignore[method-assign, assignment]


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take over transaction control from the driver so BEGIN can be IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(SQLITE_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


class Database:
    """Engines and two session factories: reads, and writes (that lock early on SQLite).

    On MariaDB reads have their own pool of autocommit connections (no COMMIT, no ROLLBACK
    per call); writes use READ COMMITTED transactions. SQLite shares one engine.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = create_engine(url, echo=echo)
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.read_engine = self.engine
            self.read_sessions = create_sessionmaker(self.engine)
            self.write_sessions = create_sessionmaker(
                self.engine.execution_options(**{SQLITE_IMMEDIATE: True})
            )
        else:
            self.read_engine = create_engine(url, echo=echo, read_only=True)
            self.read_sessions = create_sessionmaker(self.read_engine)
            self.write_sessions = create_sessionmaker(self.engine)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
