"""Command line: python -m app serve|migrate|seed|token|gen-client."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from types import FrameType

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
    token.add_argument(
        "--role", choices=[r.value for r in Role], default=None, help="required without --link"
    )
    # Positive only: the server refuses a token whose sub/clientId is not a positive id.
    token.add_argument("--sub", type=_positive_int, default=None, help="user id (without --link)")
    token.add_argument("--client-id", type=_positive_int, default=None, help="required for CLIENT")
    token.add_argument("--ttl", type=_positive_int, default=8 * 3600, help="seconds until expiry")
    token.add_argument(
        "--link",
        action="store_true",
        help="print sign-in links to the pages for the demo users (of --role, if given)",
    )
    token.add_argument(
        "--base-url", default=None, help="where the service is served (default: http://HOST:PORT)"
    )

    gen = commands.add_parser("gen-client", help="regenerate clients/ from the registry")
    gen.add_argument("--check", action="store_true", help="fail if clients/ is out of date")

    args = parser.parse_args(argv)
    if args.command == "token" and not args.link and (args.role is None or args.sub is None):
        token.error("--role and --sub are required (or --link for sign-in links)")
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


def _exit_when_terminated(signum: int, frame: FrameType | None) -> None:
    """SIGTERM is how a worker is asked to stop: having stopped as asked, it exits 0.

    uvicorn handles the signal itself while it serves (it ends the streams first, see
    app/server.py), then raises it again for the handler it found, this one.
    """
    raise SystemExit(0)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        import uvicorn

        from app.events.sse import SHUTDOWN_GRACE_S
        from app.events.wire import StreamingHttpToolsProtocol

        if args.workers > 1 and settings.redis_url is None:
            print(
                "configuration error: --workers > 1 needs REDIS_URL; the in-process event bus "
                "cannot carry events between worker processes",
                file=sys.stderr,
            )
            return 2

        signal.signal(signal.SIGTERM, _exit_when_terminated)
        uvicorn.run(
            "app.server:create_served_app",
            factory=True,
            host=args.host or settings.host,
            port=args.port or settings.port,
            workers=args.workers,
            loop="uvloop",
            # uvicorn's httptools protocol, giving streams their connection (app/events/wire.py)
            http=StreamingHttpToolsProtocol,
            proxy_headers=True,
            access_log=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
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
    if args.command == "token" and args.link:
        return _print_sign_in_links(args, settings)
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


def _print_sign_in_links(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from app.auth import TokenService
    from app.web.sign_in import NoDemoUsers, demo_sign_in_links, describe

    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
    base_url = args.base_url or f"http://{host}:{settings.port}"
    try:
        links = asyncio.run(
            demo_sign_in_links(
                settings.database_url,
                TokenService(settings),
                base_url=base_url,
                role=None if args.role is None else Role(args.role),
                ttl_seconds=args.ttl,
            )
        )
    except (NoDemoUsers, SQLAlchemyError):
        print(
            "no demo users in the database: run `python -m app migrate` and "
            "`python -m app seed --demo` first",
            file=sys.stderr,
        )
        return 2
    if args.sub is not None:
        links = [link for link in links if link.user_id == args.sub]
    if not links:
        print("no demo user matches", file=sys.stderr)
        return 2
    for link in links:
        print(describe(link))
    return 0


if __name__ == "__main__":
    sys.exit(main())
