"""Test world: settings, migrated databases (SQLite always, MariaDB when present), RPC client."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from app.auth import TokenService
from app.config import Settings, load_settings
from app.db.migrate import upgrade
from app.domain.actors import Role
from app.server import create_app
from tests import services

BASE_ENV = {
    "APP_ENV": "test",
    "FEATURE_LIVE_SHOPPING_ENABLED": "true",
    "JWT_SECRET": "test-secret-that-is-long-enough-for-hs256",
}


def make_settings(database_url: str, **env: str) -> Settings:
    return load_settings({**BASE_ENV, "DATABASE_URL": database_url, **env})


# --- databases ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per run; each test gets a copy (migrations run once)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "test.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
def mariadb_database() -> Iterator[str]:
    """A fresh, migrated MariaDB database for this run, dropped at the end."""
    services.require("mariadb")
    name = f"ls_test_{uuid.uuid4().hex[:10]}"
    services.mysql_admin(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    url = f"{services.MARIADB_URL}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        services.mysql_admin(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture
def mariadb_url(mariadb_database: str) -> str:
    """The run's MariaDB database, emptied before each test."""
    services.truncate_all(mariadb_database)
    return mariadb_database


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on SQLite and once on MariaDB."""
    name = "sqlite_url" if request.param == "sqlite" else "mariadb_url"
    url: str = request.getfixturevalue(name)
    return url


# --- the service ----------------------------------------------------------------------------


class RpcFailure(Exception):
    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(f"{status} {error['data']['code']}: {error['message']}")
        self.status = status
        self.error = error
        self.code: str = error["data"]["code"]


@dataclass
class Tokens:
    service: TokenService

    def make(self, role: Role, sub: int, client_id: int | None = None) -> str:
        return self.service.issue(sub=sub, role=role, client_id=client_id)

    @property
    def admin(self) -> str:
        return self.make(Role.ADMIN, 1)

    @property
    def staff(self) -> str:
        return self.make(Role.STAFF, 2)

    @property
    def other_staff(self) -> str:
        return self.make(Role.STAFF, 3)

    def client(self, client_id: int, sub: int | None = None) -> str:
        return self.make(Role.CLIENT, sub or 1000 + client_id, client_id)


class Rpc:
    """Calls procedures over real HTTP framing through the ASGI app."""

    def __init__(self, http: httpx.AsyncClient, tokens: Tokens) -> None:
        self.http = http
        self.tokens = tokens
        self._ids = 0

    async def post(self, body: Any, token: str | None = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return await self.http.post("/rpc", json=body, headers=headers)

    async def call(self, method: str, params: Any = None, token: str | None = None) -> Any:
        self._ids += 1
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": self._ids}
        if params is not None:
            body["params"] = params
        response = await self.post(body, token)
        payload = response.json()
        if "error" in payload:
            raise RpcFailure(response.status_code, payload["error"])
        assert response.status_code == 200
        return payload["result"]

    async def admin(self, method: str, params: Any = None) -> Any:
        return await self.call(method, params, self.tokens.admin)

    async def staff(self, method: str, params: Any = None) -> Any:
        return await self.call(method, params, self.tokens.staff)


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return make_settings(sqlite_url)


@pytest.fixture
def tokens(settings: Settings) -> Tokens:
    return Tokens(TokenService(settings))


@pytest.fixture
async def rpc(settings: Settings, tokens: Tokens) -> AsyncIterator[Rpc]:
    async with AsyncTestClient(app=create_app(settings)) as http:
        yield Rpc(http, tokens)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


os.environ.setdefault("APP_ENV", "test")
