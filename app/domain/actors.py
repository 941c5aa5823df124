"""Who is acting: the authenticated principal as the domain sees it."""

from __future__ import annotations

from dataclasses import dataclass

from app.db.models import Role

__all__ = ["ALL_ROLES", "STAFF_ROLES", "Actor", "Role"]

STAFF_ROLES = frozenset({Role.ADMIN, Role.STAFF})
ALL_ROLES = frozenset(Role)


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: int
    role: Role
    client_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN
