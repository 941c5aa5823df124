"""Command line: python -m app serve|migrate|seed|token|gen-client."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from app.config import ConfigError, Settings, load_settings
from app.domain.actors import Role


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the API with uvicorn")
    serve.add_argument("--host", default=None, help="default: $HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT or 8000")
    serve.add_argument(
        "--workers", type=_positive_int, default=1, help="worker processes (N > 1 needs REDIS_URL)"
    )

    commands.add_parser("migrate", help="apply database migrations (alembic upgrade head)")

    seed = commands.add_parser("seed", help="load data")
    seed.add_argument("--demo", action="store_true", required=True, help="the demo data set")

    token = commands.add_parser("token", help="print a signed JWT for local use")
    token.add_argument("--role", choices=[r.value for r in Role], required=True)
    # Positive only: the server refuses a token whose sub/clientId is not a positive id.
    token.add_argument("--sub", type=_positive_int, required=True, help="user id")
    token.add_argument("--client-id", type=_positive_int, default=None, help="required for CLIENT")
    token.add_argument("--ttl", type=_positive_int, default=8 * 3600, help="seconds until expiry")

    gen = commands.add_parser("gen-client", help="regenerate clients/ from the registry")
    gen.add_argument("--check", action="store_true", help="fail if clients/ is out of date")

    args = parser.parse_args(argv)
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return _run(args, settings)


def _positive_int(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        import uvicorn

        if args.workers > 1 and settings.redis_url is None:
            print(
                "configuration error: --workers > 1 needs REDIS_URL; the in-process event bus "
                "cannot carry events between worker processes",
                file=sys.stderr,
            )
            return 2

        uvicorn.run(
            "app.server:create_app",
            factory=True,
            host=args.host or settings.host,
            port=args.port or settings.port,
            workers=args.workers,
            loop="uvloop",
            http="httptools",
            proxy_headers=True,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        return 0
    if args.command == "migrate":
        from app.db.migrate import upgrade

        upgrade(settings.database_url)
        return 0
    if args.command == "seed":
        from app.db.seed import seed_demo

        created = asyncio.run(seed_demo(settings.database_url))
        print("demo data loaded" if created else "demo data already present; nothing changed")
        return 0
    if args.command == "token":
        from app.auth import TokenService

        role = Role(args.role)
        if role is Role.CLIENT and args.client_id is None:
            print("--client-id is required for a CLIENT token", file=sys.stderr)
            return 2
        print(
            TokenService(settings).issue(
                sub=args.sub, role=role, client_id=args.client_id, ttl_seconds=args.ttl
            )
        )
        return 0
    if args.command == "gen-client":
        from app.codegen import generate

        return generate(check=args.check)
    return 2


if __name__ == "__main__":
    sys.exit(main())
