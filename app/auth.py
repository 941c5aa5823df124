"""Bearer JWT authentication (HS256, pinned) and token minting for local use."""

from __future__ import annotations

import time
from typing import Any

import jwt

from app.config import Settings
from app.domain.actors import Actor, Role
from app.domain.errors import Unauthenticated

ALGORITHM = "HS256"
# A stream ticket opens one SSE stream (query string `?ticket=`) for a minute; it is not a
# bearer token for the RPC surface.
TICKET_TYPE = "stream-ticket"
TICKET_TTL_SECONDS = 60
# RFC 7519 NumericDates: exp, nbf and iat are JSON numbers of seconds since 1970. PyJWT would
# also take a numeric string, a boolean or 1e300 (it only calls int() on them); none of those is
# a date any issuer means, so they are refused, as is any date before 1970 or after the start of
# the year 3000 (a sanity bound, not a lifetime policy: any date under it is a valid datetime).
DATE_CLAIMS = ("exp", "nbf", "iat")
LATEST_DATE = 32_503_680_000


class TokenService:
    def __init__(self, settings: Settings) -> None:
        self._secret = settings.jwt_secret
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience

    def issue(
        self,
        *,
        sub: int,
        role: Role,
        client_id: int | None = None,
        ttl_seconds: int = 3600,
        extra: dict[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"sub": str(sub), "role": role.value, "iat": now}
        claims["exp"] = now + ttl_seconds
        if client_id is not None:
            claims["clientId"] = client_id
        if self._issuer:
            claims["iss"] = self._issuer
        if self._audience:
            claims["aud"] = self._audience
        claims.update(extra or {})
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def authenticate(self, authorization: str | None) -> Actor:
        """The actor of an `Authorization: Bearer <jwt>` header, or Unauthenticated."""
        if not authorization:
            raise Unauthenticated("Authentication required: send Authorization: Bearer <token>")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization header must be 'Bearer <token>'")
        claims = self.decode(token.strip())
        if claims.get("typ") == TICKET_TYPE:
            raise Unauthenticated("A stream ticket only opens its stream; send a bearer token")
        return self.actor_from_claims(claims)

    def issue_stream_ticket(self, actor: Actor, stream: str) -> tuple[str, int]:
        """A short-lived ticket for one stream (e.g. 'staff:12'); returns (ticket, exp)."""
        ticket = self.issue(
            sub=actor.user_id,
            role=actor.role,
            client_id=actor.client_id,
            ttl_seconds=TICKET_TTL_SECONDS,
            extra={"typ": TICKET_TYPE, "stream": stream},
        )
        return ticket, int(time.time()) + TICKET_TTL_SECONDS

    def authenticate_ticket(self, ticket: str, stream: str) -> Actor:
        claims = self.decode(ticket)
        if claims.get("typ") != TICKET_TYPE:
            raise Unauthenticated("Not a stream ticket")
        if claims.get("stream") != stream:
            raise Unauthenticated("This ticket was issued for another stream")
        return self.actor_from_claims(claims)

    def decode(self, token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp", "sub", "role"], "verify_aud": bool(self._audience)},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("Token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"Invalid token: {exc}") from None
        for name in DATE_CLAIMS:
            if name in claims and not _is_numeric_date(claims[name]):
                raise Unauthenticated(
                    f"Token claim '{name}' must be a number of seconds between 1970 and 3000"
                )
        return claims

    @staticmethod
    def actor_from_claims(claims: dict[str, Any]) -> Actor:
        sub = claims.get("sub")
        if (
            not isinstance(sub, str)
            or not (sub.isascii() and sub.isdigit())
            or not 0 < int(sub) < 2**53
        ):
            raise Unauthenticated("Token claim 'sub' must be a positive integer user id string")
        try:
            role = Role(str(claims.get("role")))
        except ValueError:
            raise Unauthenticated("Token claim 'role' must be ADMIN, STAFF or CLIENT") from None
        client_id = claims.get("clientId")
        if role is Role.CLIENT:
            if type(client_id) is not int or client_id < 1:
                raise Unauthenticated("CLIENT tokens need an integer 'clientId' claim")
        else:
            client_id = None
        return Actor(user_id=int(sub), role=role, client_id=client_id)


def _is_numeric_date(value: Any) -> bool:
    # bool is an int subclass in Python, but true is no number in JSON.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    # Compared, not converted: NaN compares false, and an int of 400 digits has no float.
    return 0 <= value <= LATEST_DATE
