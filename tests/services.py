"""Access to the real MariaDB and Redis: skip without them, fail if REQUIRE_SERVICES=1."""

from __future__ import annotations

import os
import socket

import pymysql
import pytest

MARIADB_HOST = os.environ.get("TEST_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("TEST_MARIADB_PORT", "3306"))
MARIADB_URL = f"mysql+aiomysql://root@{MARIADB_HOST}:{MARIADB_PORT}"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
_PORTS = {"mariadb": (MARIADB_HOST, MARIADB_PORT), "redis": ("127.0.0.1", 6379)}


def required() -> bool:
    return os.environ.get("REQUIRE_SERVICES") == "1"


def available(name: str) -> bool:
    host, port = _PORTS[name]
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(name: str) -> None:
    if available(name):
        return
    host, port = _PORTS[name]
    reason = f"{name} is not reachable on {host}:{port}"
    if required():
        pytest.fail(f"{reason} and REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(reason)


def _connect(database: str | None = None) -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return pymysql.connect(
        host=MARIADB_HOST,
        port=MARIADB_PORT,
        user="root",
        password="",
        database=database,
        autocommit=True,
    )


def mysql_admin(sql: str) -> None:
    with _connect() as conn, conn.cursor() as cursor:
        cursor.execute(sql)


def truncate_all(url: str) -> None:
    database = url.rsplit("/", 1)[1]
    with _connect(database) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s AND table_name <> 'alembic_version'",
            (database,),
        )
        tables = [row[0] for row in cursor.fetchall()]
        cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
        for table in tables:
            cursor.execute(f"TRUNCATE TABLE `{table}`")
        cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
