"""Bearer JWT authentication: HS256 pinned, claims checked, users created on first sight."""

from __future__ import annotations

import base64
import json
import math
import time
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from app.auth import TICKET_TYPE, TokenService
from app.config import Settings
from app.db.engine import Database
from app.db.models import User
from app.domain.actors import Role
from app.events.streams import staff_stream_key
from app.server import create_app
from tests.conftest import Rpc, RpcFailure, Tokens, make_settings

STAFF_PROCEDURE = "clients.list"
CLIENT_PROCEDURE = "vipPortalLiveShopping.getActiveSession"
ISSUER = "https://id.example"
AUDIENCE = "live-shopping"


def _b64(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def staff_claims(**changes: Any) -> dict[str, Any]:
    """Valid STAFF claims; a change set to None removes that claim."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": "2", "role": "STAFF", "iat": now, "exp": now + 600}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def signed(settings: Settings, claims: dict[str, Any], algorithm: str = "HS256") -> str:
    with warnings.catch_warnings():
        # PyJWT warns that the test secret is short for HS384/HS512; those tokens must fail anyway.
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return jwt.encode(claims, settings.jwt_secret, algorithm=algorithm)


async def call_with_header(rpc: Rpc, method: str, authorization: str | None) -> httpx.Response:
    headers = {"authorization": authorization} if authorization is not None else {}
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {}}
    return await rpc.http.post("/rpc", json=body, headers=headers)


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == -32001
    assert error["data"]["code"] == "UNAUTHORIZED"


async def users(url: str) -> list[tuple[int, Role, int | None]]:
    db = Database(url)
    try:
        async with db.read_sessions() as session:
            rows = await session.execute(select(User.id, User.role, User.client_id))
            return sorted((r.id, r.role, r.client_id) for r in rows)
    finally:
        await db.dispose()


# --- a valid token --------------------------------------------------------------------------


async def test_a_valid_staff_token_may_call_a_staff_procedure(rpc: Rpc) -> None:
    assert await rpc.staff(STAFF_PROCEDURE, {}) == []


async def test_public_procedures_need_no_token(rpc: Rpc) -> None:
    assert (await rpc.call("system.health"))["status"] == "ok"


async def test_a_client_token_for_an_existing_client_is_accepted(rpc: Rpc) -> None:
    client = await rpc.staff("clients.create", {"name": "Ada"})
    answer = await rpc.call(CLIENT_PROCEDURE, {}, rpc.tokens.client(client["id"]))
    assert answer == {"session": None}


# --- refused tokens -------------------------------------------------------------------------


async def test_a_call_without_authorization_header_is_unauthorized(rpc: Rpc) -> None:
    assert_unauthorized(await call_with_header(rpc, STAFF_PROCEDURE, None))


@pytest.mark.parametrize("scheme", ["Basic", "Token", "JWT", ""])
async def test_a_scheme_other_than_bearer_is_unauthorized(rpc: Rpc, scheme: str) -> None:
    header = f"{scheme} {rpc.tokens.staff}".strip()
    assert_unauthorized(await call_with_header(rpc, STAFF_PROCEDURE, header))


@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "Bearer", "ey.ey.ey", " "])
async def test_a_garbage_token_is_unauthorized(rpc: Rpc, garbage: str) -> None:
    assert_unauthorized(await call_with_header(rpc, STAFF_PROCEDURE, f"Bearer {garbage}"))


async def test_an_expired_token_is_unauthorized(rpc: Rpc, settings: Settings) -> None:
    token = TokenService(settings).issue(sub=2, role=Role.STAFF, ttl_seconds=-5)
    assert_unauthorized(await call_with_header(rpc, STAFF_PROCEDURE, f"Bearer {token}"))


async def test_a_token_signed_with_another_secret_is_unauthorized(rpc: Rpc) -> None:
    token = jwt.encode(staff_claims(), "another-secret-that-is-long-enough-too", "HS256")
    assert_unauthorized(await call_with_header(rpc, STAFF_PROCEDURE, f"Bearer {token}"))


async def test_a_token_whose_claims_were_edited_after_signing_is_unauthorized(
    rpc: Rpc, settings: Settings
) -> None:
    header, _, signature = signed(settings, staff_claims()).split(".")
    forged = f"{header}.{_b64(staff_claims(role='ADMIN'))}.{signature}"
    assert_unauthorized(await call_with_header(rpc, STAFF_PROCEDURE, f"Bearer {forged}"))


async def test_an_unsigned_alg_none_token_is_unauthorized(rpc: Rpc) -> None:
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(staff_claims())}."
    assert_unauthorized(await call_with_header(rpc, STAFF_PROCEDURE, f"Bearer {token}"))


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
async def test_the_algorithm_is_pinned_to_hs256_even_with_the_right_secret(
    rpc: Rpc, settings: Settings, algorithm: str
) -> None:
    token = signed(settings, staff_claims(), algorithm)
    assert_unauthorized(await call_with_header(rpc, STAFF_PROCEDURE, f"Bearer {token}"))


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param(staff_claims(exp=None), id="missing-exp"),
        pytest.param(staff_claims(sub=None), id="missing-sub"),
        pytest.param(staff_claims(role=None), id="missing-role"),
        pytest.param(staff_claims(sub="alice"), id="non-numeric-sub"),
        pytest.param(staff_claims(sub="0"), id="zero-sub"),
        pytest.param(staff_claims(sub=2), id="integer-sub"),
        pytest.param(staff_claims(role="SUPERUSER"), id="unknown-role"),
        pytest.param(staff_claims(role="staff"), id="lowercase-role"),
        pytest.param(staff_claims(role="CLIENT"), id="client-without-clientId"),
        pytest.param(staff_claims(role="CLIENT", clientId="7"), id="client-with-string-clientId"),
    ],
)
async def test_a_token_with_a_missing_or_malformed_claim_is_unauthorized(
    rpc: Rpc, settings: Settings, claims: dict[str, Any]
) -> None:
    token = signed(settings, claims)
    assert_unauthorized(await call_with_header(rpc, STAFF_PROCEDURE, f"Bearer {token}"))


async def test_a_client_token_naming_a_client_that_does_not_exist_is_unauthorized(
    rpc: Rpc, sqlite_url: str
) -> None:
    token = rpc.tokens.make(Role.CLIENT, sub=77, client_id=424242)
    assert_unauthorized(await call_with_header(rpc, CLIENT_PROCEDURE, f"Bearer {token}"))
    assert await users(sqlite_url) == []


# --- issuer and audience --------------------------------------------------------------------


@pytest.fixture
def pinned_settings(sqlite_url: str) -> Settings:
    return make_settings(sqlite_url, JWT_ISSUER=ISSUER, JWT_AUDIENCE=AUDIENCE)


@pytest.fixture
async def pinned_rpc(pinned_settings: Settings) -> AsyncIterator[Rpc]:
    async with AsyncTestClient(app=create_app(pinned_settings)) as http:
        yield Rpc(http, Tokens(TokenService(pinned_settings)))


async def test_when_issuer_and_audience_are_set_matching_tokens_are_accepted(
    pinned_rpc: Rpc, pinned_settings: Settings
) -> None:
    assert await pinned_rpc.staff(STAFF_PROCEDURE, {}) == []
    token = signed(pinned_settings, staff_claims(iss=ISSUER, aud=[AUDIENCE, "other-api"]))
    assert await pinned_rpc.call(STAFF_PROCEDURE, {}, token) == []


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param(staff_claims(aud=AUDIENCE), id="no-issuer"),
        pytest.param(staff_claims(iss="https://evil.example", aud=AUDIENCE), id="wrong-issuer"),
        pytest.param(staff_claims(iss=ISSUER), id="no-audience"),
        pytest.param(staff_claims(iss=ISSUER, aud="another-api"), id="wrong-audience"),
    ],
)
async def test_when_issuer_and_audience_are_set_other_tokens_are_unauthorized(
    pinned_rpc: Rpc, pinned_settings: Settings, claims: dict[str, Any]
) -> None:
    token = signed(pinned_settings, claims)
    assert_unauthorized(await call_with_header(pinned_rpc, STAFF_PROCEDURE, f"Bearer {token}"))


# --- users appear on first sight ------------------------------------------------------------


@pytest.fixture
async def any_db_rpc(db_url: str) -> AsyncIterator[Rpc]:
    settings = make_settings(db_url)
    async with AsyncTestClient(app=create_app(settings)) as http:
        yield Rpc(http, Tokens(TokenService(settings)))


async def test_the_first_call_with_a_new_sub_creates_the_user_with_the_token_role(
    any_db_rpc: Rpc, db_url: str
) -> None:
    assert await users(db_url) == []
    await any_db_rpc.call(STAFF_PROCEDURE, {}, any_db_rpc.tokens.make(Role.STAFF, sub=4242))
    assert await users(db_url) == [(4242, Role.STAFF, None)]


async def test_a_later_token_with_another_role_updates_the_user_role(
    any_db_rpc: Rpc, db_url: str
) -> None:
    rpc = any_db_rpc
    await rpc.call(STAFF_PROCEDURE, {}, rpc.tokens.make(Role.STAFF, sub=4242))
    await rpc.call(STAFF_PROCEDURE, {}, rpc.tokens.make(Role.ADMIN, sub=4242))
    assert await users(db_url) == [(4242, Role.ADMIN, None)]


async def test_flipping_back_to_an_earlier_role_updates_the_user_role_again(
    any_db_rpc: Rpc, db_url: str
) -> None:
    rpc = any_db_rpc
    for role in (Role.STAFF, Role.ADMIN, Role.STAFF):
        await rpc.call(STAFF_PROCEDURE, {}, rpc.tokens.make(role, sub=4242))
    assert await users(db_url) == [(4242, Role.STAFF, None)]


async def test_a_client_user_is_linked_to_the_client_of_its_token(
    any_db_rpc: Rpc, db_url: str
) -> None:
    rpc = any_db_rpc
    client = await rpc.staff("clients.create", {"name": "Ada"})
    await rpc.call(CLIENT_PROCEDURE, {}, rpc.tokens.client(client["id"], sub=555))
    assert (555, Role.CLIENT, client["id"]) in await users(db_url)


async def test_a_refused_token_creates_no_user(
    rpc: Rpc, settings: Settings, sqlite_url: str
) -> None:
    expired = TokenService(settings).issue(sub=9, role=Role.ADMIN, ttl_seconds=-5)
    assert_unauthorized(await call_with_header(rpc, STAFF_PROCEDURE, f"Bearer {expired}"))
    assert await users(sqlite_url) == []


# --- the role guard -------------------------------------------------------------------------


async def test_a_client_calling_a_staff_procedure_is_forbidden(rpc: Rpc) -> None:
    client = await rpc.staff("clients.create", {"name": "Ada"})
    with pytest.raises(RpcFailure) as refused:
        await rpc.call(STAFF_PROCEDURE, {}, rpc.tokens.client(client["id"]))
    assert (refused.value.status, refused.value.code) == (403, "FORBIDDEN")
    assert refused.value.error["code"] == -32003


async def test_staff_calling_an_admin_procedure_is_forbidden(rpc: Rpc) -> None:
    with pytest.raises(RpcFailure) as refused:
        await rpc.staff("catalog.createProduct", {"name": "X", "sku": "X-1", "listPrice": "1"})
    assert (refused.value.status, refused.value.code) == (403, "FORBIDDEN")


async def test_staff_calling_a_client_procedure_is_forbidden(rpc: Rpc) -> None:
    with pytest.raises(RpcFailure) as refused:
        await rpc.staff(CLIENT_PROCEDURE, {})
    assert (refused.value.status, refused.value.code) == (403, "FORBIDDEN")


@pytest.mark.parametrize(
    ("verb", "path"),
    [("GET", f"/rpc/{STAFF_PROCEDURE}"), ("GET", f"/trpc/{STAFF_PROCEDURE}")],
)
async def test_every_transport_requires_the_token(rpc: Rpc, verb: str, path: str) -> None:
    response = await rpc.http.request(verb, path)
    assert response.status_code == 401
    assert "UNAUTHORIZED" in response.text
    good = await rpc.http.request(
        verb, path, headers={"authorization": f"Bearer {rpc.tokens.staff}"}
    )
    assert good.status_code == 200, good.text


@pytest.mark.parametrize("sub", ["²", "٣", "-4", "0", "1.5"])
async def test_a_sub_that_is_not_plain_ascii_digits_is_unauthorized(
    rpc: Rpc, settings: Settings, sub: str
) -> None:
    # str.isdigit() accepts '²' and Arabic-Indic digits; the claim check must not crash on them.
    token = signed(settings, {**staff_claims(), "sub": sub})
    assert_unauthorized(await call_with_header(rpc, STAFF_PROCEDURE, f"Bearer {token}"))


# --- dates: JSON numbers (RFC 7519 NumericDate) within reason -------------------------------

YEAR_3000 = 32503680000  # 3000-01-01T00:00:00Z, the latest date a token may carry
NO_SUCH_SESSION = 999_999  # its stream answers 404 to a valid token, 401 to a refused one


def soon() -> int:
    return int(time.time()) + 600


# Built when the test runs, so the valid dates around them are current.
INSANE_DATES: dict[str, Callable[[], dict[str, Any]]] = {
    "exp-as-string": lambda: staff_claims(exp=str(soon())),
    "exp-1e300": lambda: staff_claims(exp=1e300),
    "exp-400-digit-integer": lambda: staff_claims(exp=10**400),
    "exp-after-year-3000": lambda: staff_claims(exp=YEAR_3000 + 1),
    "exp-infinity": lambda: staff_claims(exp=math.inf),
    "exp-nan": lambda: staff_claims(exp=math.nan),
    "exp-true": lambda: staff_claims(exp=True),
    "nbf-as-string": lambda: staff_claims(nbf="0"),
    "nbf-false": lambda: staff_claims(nbf=False),
    "nbf-minus-1e300": lambda: staff_claims(nbf=-1e300),
    "iat-as-string": lambda: staff_claims(iat=str(int(time.time()))),
    "iat-true": lambda: staff_claims(iat=True),
    "iat-before-1970": lambda: staff_claims(iat=-1),
    "iat-minus-infinity": lambda: staff_claims(iat=-math.inf),
}


@pytest.mark.parametrize("claims", INSANE_DATES.values(), ids=INSANE_DATES.keys())
async def test_a_token_whose_dates_are_not_sane_numbers_is_unauthorized(
    rpc: Rpc, settings: Settings, claims: Callable[[], dict[str, Any]]
) -> None:
    token = signed(settings, claims())
    assert_unauthorized(await call_with_header(rpc, STAFF_PROCEDURE, f"Bearer {token}"))


async def test_fractional_dates_up_to_year_3000_are_numeric_dates_and_accepted(
    rpc: Rpc, settings: Settings
) -> None:
    now = time.time()
    for claims in (
        staff_claims(exp=now + 600.5, iat=now - 0.5, nbf=now - 1.25),
        staff_claims(exp=YEAR_3000),
    ):
        token = signed(settings, claims)
        assert await rpc.call(STAFF_PROCEDURE, {}, token) == []


async def stream_status(rpc: Rpc, *, authorization: str | None = None, ticket: str = "") -> int:
    path = f"/api/sse/live-shopping/{NO_SUCH_SESSION}"
    headers = {"authorization": authorization} if authorization else {}
    response = await rpc.http.get(
        path, params={"ticket": ticket} if ticket else {}, headers=headers
    )
    return response.status_code


@pytest.mark.parametrize("claims", INSANE_DATES.values(), ids=INSANE_DATES.keys())
async def test_a_stream_refuses_a_bearer_token_whose_dates_are_not_sane_numbers(
    rpc: Rpc, settings: Settings, claims: Callable[[], dict[str, Any]]
) -> None:
    assert await stream_status(rpc, authorization=f"Bearer {rpc.tokens.staff}") == 404
    token = signed(settings, claims())
    assert await stream_status(rpc, authorization=f"Bearer {token}") == 401


@pytest.mark.parametrize("claims", INSANE_DATES.values(), ids=INSANE_DATES.keys())
async def test_a_stream_ticket_whose_dates_are_not_sane_numbers_is_refused(
    rpc: Rpc, settings: Settings, claims: Callable[[], dict[str, Any]]
) -> None:
    scope = {"typ": TICKET_TYPE, "stream": staff_stream_key(NO_SUCH_SESSION)}
    good = signed(settings, {**staff_claims(exp=int(time.time()) + 60), **scope})
    assert await stream_status(rpc, ticket=good) == 404
    assert await stream_status(rpc, ticket=signed(settings, {**claims(), **scope})) == 401
