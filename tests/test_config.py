"""Settings come from the environment once; a bad value stops start-up naming the variable."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import (
    DEFAULT_DATABASE_URL,
    DEV_JWT_SECRET,
    AppEnv,
    ConfigError,
    load_settings,
)

ROOT = Path(__file__).resolve().parents[1]
PRIVATE_SECRET = "a-private-production-secret-of-48-characters-xyz"


def test_an_empty_environment_gives_the_documented_defaults() -> None:
    settings = load_settings({})
    assert settings.app_env is AppEnv.DEVELOPMENT
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite+aiosqlite:///./liveshop.db"
    assert settings.redis_url is None
    assert settings.jwt_secret == DEV_JWT_SECRET
    assert settings.jwt_issuer is None
    assert settings.jwt_audience is None
    assert settings.live_shopping_enabled is False
    assert settings.heartbeat_ms == 30000
    assert settings.max_cart_items == 200
    assert settings.session_timeout_mins == 120
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.cors_allowed_origins == ()


def test_every_documented_variable_is_read() -> None:
    settings = load_settings(
        {
            "APP_ENV": "test",
            "DATABASE_URL": "mysql+aiomysql://shop:pw@db.internal/shop",
            "REDIS_URL": "redis://cache.internal:6379/2",
            "JWT_SECRET": "a-test-secret",
            "JWT_ISSUER": "https://id.example",
            "JWT_AUDIENCE": "live-shopping",
            "FEATURE_LIVE_SHOPPING_ENABLED": "true",
            "LIVE_SHOPPING_HEARTBEAT_MS": "1500",
            "LIVE_SHOPPING_MAX_CART_ITEMS": "7",
            "LIVE_SHOPPING_SESSION_TIMEOUT_MINS": "45",
            "HOST": "0.0.0.0",
            "PORT": "9123",
            "CORS_ALLOWED_ORIGINS": "https://console.example.com,http://localhost:5173",
        }
    )
    assert settings.app_env is AppEnv.TEST
    assert settings.database_url == "mysql+aiomysql://shop:pw@db.internal/shop"
    assert settings.redis_url == "redis://cache.internal:6379/2"
    assert settings.jwt_secret == "a-test-secret"
    assert settings.jwt_issuer == "https://id.example"
    assert settings.jwt_audience == "live-shopping"
    assert settings.live_shopping_enabled is True
    assert settings.heartbeat_ms == 1500
    assert settings.max_cart_items == 7
    assert settings.session_timeout_mins == 45
    assert settings.host == "0.0.0.0"
    assert settings.port == 9123
    assert settings.cors_allowed_origins == ("https://console.example.com", "http://localhost:5173")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("false", False), ("0", False), ("", False)],
)
def test_the_feature_flag_accepts_the_usual_spellings(value: str, expected: bool) -> None:
    settings = load_settings({"FEATURE_LIVE_SHOPPING_ENABLED": value})
    assert settings.live_shopping_enabled is expected


def test_variables_the_service_does_not_know_are_ignored() -> None:
    assert load_settings({"PATH": "/usr/bin", "SHELL": "/bin/sh"}) == load_settings({})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LIVE_SHOPPING_HEARTBEAT_MS", "fast"),
        ("LIVE_SHOPPING_HEARTBEAT_MS", "0"),
        ("LIVE_SHOPPING_MAX_CART_ITEMS", "2.5"),
        ("LIVE_SHOPPING_MAX_CART_ITEMS", "0"),
        ("LIVE_SHOPPING_SESSION_TIMEOUT_MINS", "-5"),
        ("LIVE_SHOPPING_SESSION_TIMEOUT_MINS", "two hours"),
        ("FEATURE_LIVE_SHOPPING_ENABLED", "maybe"),
        ("APP_ENV", "staging"),
        ("APP_ENV", "PRODUCTION"),
        ("DATABASE_URL", "postgresql+asyncpg://db/shop"),
        ("DATABASE_URL", "sqlite:///./liveshop.db"),
        ("DATABASE_URL", "mysql+pymysql://db/shop"),
        ("REDIS_URL", "http://cache.internal:6379"),
        ("PORT", "0"),
        ("PORT", "65536"),
        ("PORT", "http"),
        ("CORS_ALLOWED_ORIGINS", "*"),
        ("CORS_ALLOWED_ORIGINS", "https://*.example.com"),
        ("CORS_ALLOWED_ORIGINS", "https://console.example.com/"),
        ("CORS_ALLOWED_ORIGINS", "https://console.example.com/app"),
        ("CORS_ALLOWED_ORIGINS", "console.example.com"),
        ("CORS_ALLOWED_ORIGINS", "https://console.example.com:443"),
        ("CORS_ALLOWED_ORIGINS", "https://console.example.com:99999"),
        ("CORS_ALLOWED_ORIGINS", "https://user@console.example.com"),
        ("CORS_ALLOWED_ORIGINS", "https://console.example.com;http://localhost:5173"),
        ("CORS_ALLOWED_ORIGINS", "null"),
    ],
)
def test_an_invalid_value_is_refused_with_a_message_naming_the_variable(
    name: str, value: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({name: value})
    assert name in str(refused.value)


def test_cors_origins_are_kept_as_browsers_send_them_in_the_origin_header() -> None:
    given = " https://Console.Example.com , http://[::1]:8080,http://127.0.0.1:3000,"
    assert load_settings({"CORS_ALLOWED_ORIGINS": given}).cors_allowed_origins == (
        "https://console.example.com",
        "http://[::1]:8080",
        "http://127.0.0.1:3000",
    )


def test_production_refuses_the_development_jwt_secret() -> None:
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_settings({"APP_ENV": "production"})
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_settings({"APP_ENV": "production", "JWT_SECRET": DEV_JWT_SECRET})


def test_production_refuses_a_short_jwt_secret() -> None:
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_settings({"APP_ENV": "production", "JWT_SECRET": "hunter2-but-longer"})


def test_production_accepts_a_long_private_jwt_secret() -> None:
    settings = load_settings({"APP_ENV": "production", "JWT_SECRET": PRIVATE_SECRET})
    assert settings.is_production
    assert settings.jwt_secret == PRIVATE_SECRET


def test_development_and_test_may_run_on_the_development_secret() -> None:
    assert load_settings({"APP_ENV": "development"}).jwt_secret == DEV_JWT_SECRET
    assert load_settings({"APP_ENV": "test"}).jwt_secret == DEV_JWT_SECRET


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_in_production_without_a_secret_stops_before_listening() -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "APP_"))}
    env["APP_ENV"] = "production"
    finished = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert finished.returncode != 0
    assert "JWT_SECRET" in finished.stderr
    assert "Uvicorn running" not in finished.stdout + finished.stderr
    # Nothing was left listening on the port it was asked to use.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


def test_serve_with_an_invalid_cors_origin_stops_before_listening() -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "APP_", "CORS_"))}
    env["CORS_ALLOWED_ORIGINS"] = "https://console.example.com/"
    finished = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert finished.returncode == 2
    assert "CORS_ALLOWED_ORIGINS" in finished.stderr
    assert "Uvicorn running" not in finished.stdout + finished.stderr
