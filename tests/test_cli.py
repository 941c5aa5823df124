"""The command line: `python -m app token | migrate | seed --demo`, run as a user would."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from app.auth import TokenService
from app.config import load_settings
from app.domain.actors import Actor, Role
from tests.factories import rpc_on

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


# --- token --link: sign-in links to the pages for the demo users -----------------------------

LINK = re.compile(r"(?P<page>console|room): (?P<url>https?://\S+)$")


def seeded_database(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'links.db'}"
    for step in (("migrate",), ("seed", "--demo")):
        done = run_cli(*step, DATABASE_URL=url)
        assert done.returncode == 0, done.stderr
    return url


def links_of(stdout: str) -> dict[int, tuple[str, str]]:
    """user id -> (page, url) for every line of `token --link` that carries a link."""
    found = {}
    for line in stdout.splitlines():
        user = re.search(r"user (\d+)", line)
        link = LINK.search(line)
        if user and link:
            found[int(user.group(1))] = (link["page"], link["url"])
    return found


def token_of(url: str) -> str:
    fragment = urlsplit(url).fragment
    assert fragment.startswith("token="), url
    return fragment.removeprefix("token=")


def test_token_link_prints_a_console_link_per_demo_staff_user_signed_in_as_that_user(
    tmp_path: Path,
) -> None:
    url = seeded_database(tmp_path)
    done = run_cli("token", "--link", DATABASE_URL=url, JWT_SECRET=SECRET, PORT="8123")
    assert done.returncode == 0, done.stderr
    links = links_of(done.stdout)
    assert {1, 2, 3} <= links.keys()
    for user_id, role in ((1, Role.ADMIN), (2, Role.STAFF), (3, Role.STAFF)):
        page, link = links[user_id]
        assert page == "console"
        # The token rides in the fragment, which a browser never sends to the server.
        assert link.startswith("http://127.0.0.1:8123/console#token=")
        actor = tokens_for(SECRET).authenticate(f"Bearer {token_of(link)}")
        assert actor == Actor(user_id=user_id, role=role, client_id=None)
    # Clients without an open session get no room link yet, and are told why.
    assert "no open session" in done.stdout
    assert 101 not in links


def test_token_link_for_a_client_opens_the_room_of_its_active_session(tmp_path: Path) -> None:
    url = seeded_database(tmp_path)

    async def open_session() -> str:
        async with rpc_on(url) as rpc:
            created = await rpc.staff("liveShopping.createSession", {"clientId": 1})
            return str(created["roomCode"])

    room_code = asyncio.run(open_session())
    done = run_cli(
        "token", "--link", "--role", "CLIENT", "--base-url", "https://shop.example",
        DATABASE_URL=url, JWT_SECRET=SECRET,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    links = links_of(done.stdout)
    assert set(links) == {101}, done.stdout  # only clients, and only 101 has a session
    page, link = links[101]
    assert page == "room"
    assert link.startswith(f"https://shop.example/room/{room_code}#token=")
    actor = tokens_for(SECRET).authenticate(f"Bearer {token_of(link)}")
    assert actor == Actor(user_id=101, role=Role.CLIENT, client_id=1)
    assert "console" not in done.stdout.replace("in the console", "")


def test_token_link_without_demo_data_says_to_seed_first(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    assert run_cli("migrate", DATABASE_URL=url).returncode == 0
    done = run_cli("token", "--link", DATABASE_URL=url, JWT_SECRET=SECRET)
    assert done.returncode == 2
    assert "seed --demo" in done.stderr
    assert done.stdout == ""


def test_token_without_link_still_needs_role_and_sub() -> None:
    done = run_cli("token", "--role", "STAFF", JWT_SECRET=SECRET)
    assert done.returncode == 2
    assert "--sub" in done.stderr
    assert done.stdout == ""
