"""This deployment's Redis channel names, so deployments sharing one Redis never mix events."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from app.config import Settings


@dataclass(frozen=True, slots=True)
class Channels:
    """`<prefix>:session:<id>` for each session and `<prefix>:control` for the deployment."""

    prefix: str

    @classmethod
    def for_deployment(cls, settings: Settings) -> Channels:
        """REDIS_CHANNEL_PREFIX as given; unset, a prefix derived from the deployment's database."""
        return cls(settings.redis_channel_prefix or database_prefix(settings.database_url))

    def session(self, session_id: int) -> str:
        return f"{self.prefix}:session:{session_id}"

    @property
    def control(self) -> str:
        return f"{self.prefix}:control"


def database_prefix(database_url: str) -> str:
    """`liveshop-<hash>` of where the data lives: dialect, host, port and database (or file).

    Session ids and event numbers are only unique within one database, so that is what must
    keep channels apart: the workers of one deployment share a database and agree on the
    prefix; deployments on different databases never do. User, password and options are left
    out: rotating a password must not move some workers to other channels than the rest, and
    the prefix, visible to anyone who may list Redis channels, reveals nothing but a hash.
    """
    url = make_url(database_url)
    backend = url.get_backend_name()
    database = url.database or ""
    if backend == "sqlite":
        if database in ("", ":memory:"):
            # A private in-memory database: no other process shares its events.
            where = f"memory-{secrets.token_hex(8)}"
        else:
            # Absolute, so two deployments started in different directories on the same
            # relative path (the default ./liveshop.db) stay apart.
            where = str(Path(database).resolve())
    else:
        where = f"{(url.host or '').lower()}:{url.port or ''}/{database}"
    digest = hashlib.sha256(f"{backend}:{where}".encode()).hexdigest()
    return f"liveshop-{digest[:12]}"
