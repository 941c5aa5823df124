"""The command line: `python -m app token | migrate | seed --demo`, run as a user would."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.auth import TokenService
from app.config import load_settings
from app.domain.actors import Actor, Role

ROOT = Path(__file__).resolve().parents[1]
SECRET = "cli-test-secret-that-is-long-enough-for-hs256"
SEEDED_TABLES = ("users", "clients", "products", "batches")


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("APP_", "JWT_", "DATABASE_", "FEATURE_", "REDIS_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env={**inherited, "APP_ENV": "test", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def tokens_for(secret: str) -> TokenService:
    return TokenService(load_settings({"APP_ENV": "test", "JWT_SECRET": secret}))


def test_token_prints_a_jwt_that_authenticates_as_the_requested_staff_actor() -> None:
    done = run_cli("token", "--role", "STAFF", "--sub", "2", JWT_SECRET=SECRET)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    actor = tokens_for(SECRET).authenticate(f"Bearer {token}")
    assert actor == Actor(user_id=2, role=Role.STAFF, client_id=None)


def test_token_for_a_client_carries_its_client_id_and_the_requested_lifetime() -> None:
    done = run_cli(
        "token", "--role", "CLIENT", "--sub", "7", "--client-id", "3", "--ttl", "120",
        JWT_SECRET=SECRET,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    claims = tokens_for(SECRET).decode(done.stdout.strip())
    assert TokenService.actor_from_claims(claims) == Actor(7, Role.CLIENT, 3)
    assert claims["exp"] - claims["iat"] == 120


@pytest.mark.parametrize(
    "args", [("--sub", "0"), ("--sub", "-3"), ("--sub", "two"), ("--sub", "2", "--ttl", "0")]
)
def test_token_refuses_ids_and_lifetimes_the_server_would_never_accept(
    args: tuple[str, ...],
) -> None:
    done = run_cli("token", "--role", "STAFF", *args, JWT_SECRET=SECRET)
    assert done.returncode == 2
    assert "positive integer" in done.stderr
    assert done.stdout == ""


def test_a_client_token_without_client_id_is_refused_with_exit_status_2() -> None:
    done = run_cli("token", "--role", "CLIENT", "--sub", "7", JWT_SECRET=SECRET)
    assert done.returncode == 2
    assert "--client-id" in done.stderr
    assert done.stdout == ""


def row_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in SEEDED_TABLES}


def test_migrate_then_seed_loads_the_demo_set_once(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    url = f"sqlite+aiosqlite:///{path}"

    migrated = run_cli("migrate", DATABASE_URL=url)
    assert migrated.returncode == 0, migrated.stderr

    first = run_cli("seed", "--demo", DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    assert "demo data loaded" in first.stdout
    seeded = row_counts(path)
    assert all(count > 0 for count in seeded.values()), seeded

    second = run_cli("seed", "--demo", DATABASE_URL=url)
    assert second.returncode == 0, second.stderr
    assert "already present" in second.stdout
    assert row_counts(path) == seeded


def test_serving_several_workers_without_redis_is_refused_before_anything_starts() -> None:
    done = run_cli("serve", "--workers", "2", "--port", "1")
    assert done.returncode == 2
    assert "REDIS_URL" in done.stderr
    assert "Uvicorn running" not in done.stdout + done.stderr
