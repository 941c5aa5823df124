"""Core statements compiled once per database and run straight on the driver's cursor.

Executing even a cached statement through SQLAlchemy costs about 0.1 ms of Python per call
(execution context, parameter and result objects, events): for the few statements of the hot
cart path that is a third of their cost. A `Prepared` statement keeps what compilation produced
(SQL text, the order of its parameters, the bind and result processors of its types) and runs
it on the session's own connection, inside the session's transaction.

What SQLAlchemy's execution would add is done here or not needed: values are converted by the
same type processors; errors are raised as SQLAlchemy's (an IntegrityError stays one); a lost
connection is invalidated, or on a transaction's first statement reconnected and the statement
sent again (as engine.py does for every statement). Not done: Python-side column defaults and
onupdate (a prepared statement names every value it writes), expanding IN parameters, and
execution events.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exc, util
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ClauseElement

from app.db.engine import reconnected, statement_sent

Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    names: tuple[str, ...] | None  # parameter order for positional paramstyles
    constants: dict[str, Any]  # values bound in the statement itself (e.g. LIMIT 1)
    binds: dict[str, Processor]
    results: tuple[Processor | None, ...]


class Prepared:
    """One Core statement, compiled on first use for each dialect it meets."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._plans: weakref.WeakKeyDictionary[Dialect, _Plan] = weakref.WeakKeyDictionary()
        # A process serves one database: the last plan is almost always the one wanted.
        self._last: tuple[weakref.ref[Dialect], _Plan] | None = None

    async def rows(self, db: AsyncSession, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run a SELECT in the session's transaction; rows with their values typed."""
        conn = await db.connection()
        rows: list[tuple[Any, ...]] = await conn.run_sync(self._run, params, True)
        return rows

    async def write(self, db: AsyncSession, params: Mapping[str, Any]) -> int:
        """Run an INSERT, UPDATE or DELETE; the new row's id for an INSERT."""
        conn = await db.connection()
        last_id: int = await conn.run_sync(self._run, params, False)
        return last_id

    def _plan(self, dialect: Dialect) -> _Plan:
        if self._last is not None and self._last[0]() is dialect:
            return self._last[1]
        plan = self._plans.get(dialect)
        if plan is None:
            compiled: Any = self.statement.compile(dialect=dialect)
            plan = _Plan(
                sql=compiled.string,
                names=tuple(compiled.positiontup) if compiled.positional else None,
                constants={
                    name: value
                    for name, value in compiled.construct_params(_check=False).items()
                    if value is not None
                },
                binds=dict(compiled._bind_processors),
                results=tuple(
                    column.type._cached_result_processor(dialect, None)
                    for column in compiled._result_columns
                ),
            )
            self._plans[dialect] = plan
        self._last = (weakref.ref(dialect), plan)
        return plan

    def _run(self, conn: Connection, params: Mapping[str, Any], fetch: bool) -> Any:
        dialect = conn.dialect
        plan = self._plan(dialect)
        values = {**plan.constants, **params}
        for name, process in plan.binds.items():
            if name in values:
                values[name] = process(values[name])
        args: Any = values if plan.names is None else [values[name] for name in plan.names]
        dbapi_connection = conn.connection.dbapi_connection
        assert dbapi_connection is not None
        cursor = dbapi_connection.cursor()
        try:
            try:
                cursor.execute(plan.sql, args)
            except dialect.loaded_dbapi.Error as error:
                if not reconnected(conn, cursor, error):
                    raise
                cursor.execute(plan.sql, args)
            statement_sent(conn)
            if not fetch:
                return cursor.lastrowid
            processors = plan.results
            return [
                tuple(
                    value if process is None or value is None else process(value)
                    for value, process in zip(row, processors, strict=True)
                )
                for row in cursor.fetchall()
            ]
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, cursor):
                conn.invalidate(error)
            raise exc.DBAPIError.instance(
                plan.sql, args, error, dialect.loaded_dbapi.Error, dialect=dialect
            ) from error
        except BaseException as error:
            # Cancelled mid-statement (a client that went away): the driver closes its socket,
            # and the connection must not go back to the pool, where every later checkout would
            # fail on it. SQLAlchemy's own execution invalidates it the same way.
            if util.is_exit_exception(error) and not conn.invalidated:
                conn.invalidate(error)
            raise
        finally:
            cursor.close()
