"""The alembic chain builds exactly the schema the models describe, on SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from app.db.engine import create_engine
from app.db.migrate import alembic_config, downgrade, upgrade
from app.db.models import Base
from tests import services

MODEL_TABLES = set(Base.metadata.tables)


class Schema:
    """What a migrated database holds, read through the application's own async engine."""

    def __init__(self, tables: set[str], revision: str | None, differences: list[Any]) -> None:
        self.tables = tables
        self.revision = revision
        self.differences = differences


def _read_schema(connection: Connection) -> Schema:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return Schema(
        tables=set(inspect(connection).get_table_names()) - {"alembic_version"},
        revision=context.get_current_revision(),
        differences=compare_metadata(context, Base.metadata),
    )


async def _schema_of(url: str) -> Schema:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_read_schema)
    finally:
        await engine.dispose()


def schema_of(url: str) -> Schema:
    # upgrade() runs its own event loop, so these tests stay synchronous.
    return asyncio.run(_schema_of(url))


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


@pytest.fixture
def fresh_sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"


@pytest.fixture
def fresh_mariadb_url() -> Iterator[str]:
    services.require("mariadb")
    name = f"ls_migrate_{uuid.uuid4().hex[:10]}"
    services.mysql_admin(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    try:
        yield f"{services.MARIADB_URL}/{name}"
    finally:
        services.mysql_admin(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def fresh_url(request: pytest.FixtureRequest) -> str:
    """An empty database, once SQLite and once MariaDB."""
    url: str = request.getfixturevalue(f"fresh_{request.param}_url")
    return url


def test_upgrade_builds_every_model_table_and_stamps_the_head(fresh_url: str) -> None:
    assert schema_of(fresh_url).tables == set()
    upgrade(fresh_url)
    schema = schema_of(fresh_url)
    assert schema.tables == MODEL_TABLES
    assert schema.revision == head_revision(fresh_url)


def test_after_upgrade_autogenerate_finds_nothing_the_models_and_migrations_disagree_on(
    fresh_url: str,
) -> None:
    upgrade(fresh_url)
    assert schema_of(fresh_url).differences == []


def test_upgrade_twice_is_a_no_op(fresh_url: str) -> None:
    upgrade(fresh_url)
    upgrade(fresh_url)
    schema = schema_of(fresh_url)
    assert (schema.tables, schema.differences) == (MODEL_TABLES, [])


@pytest.mark.parametrize(
    "fresh_url",
    [
        "sqlite",
        pytest.param(
            "mariadb",
            marks=pytest.mark.mariadb,
        ),
    ],
    indirect=True,
)
def test_downgrade_to_base_removes_everything_and_upgrade_rebuilds_it(fresh_url: str) -> None:
    upgrade(fresh_url)
    downgrade(fresh_url, "base")
    emptied = schema_of(fresh_url)
    assert (emptied.tables, emptied.revision) == (set(), None)

    upgrade(fresh_url)
    rebuilt = schema_of(fresh_url)
    assert rebuilt.tables == MODEL_TABLES
    assert rebuilt.differences == []
