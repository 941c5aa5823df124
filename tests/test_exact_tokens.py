"""Room codes and share tokens compare exactly: case and trailing spaces count (DESIGN 2.3).

MariaDB's default collation is case-insensitive and ignores trailing spaces, so these run on
MariaDB as well as SQLite; the columns carry a binary, no-pad collation.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.conftest import Rpc
from tests.factories import Shop, refusal, rpc_on


def _variants(secret: str) -> list[str]:
    """Strings a loose comparison would take for `secret`, none of them equal to it."""
    variants = [secret.upper(), secret.lower(), secret + " ", secret + "  "]
    return [v for v in variants if v != secret]


@pytest.fixture
async def rpc_db(db_url: str) -> object:
    async with rpc_on(db_url) as rpc:
        yield rpc


async def test_a_room_code_in_another_case_or_with_a_trailing_space_finds_no_session(
    rpc_db: Rpc,
) -> None:
    shop = Shop(rpc_db)
    customer = await shop.customer()
    room = await shop.session(customer)
    joined = await rpc_db.call(
        "vipPortalLiveShopping.getSessionByRoomCode", {"roomCode": room.code}, customer.token
    )
    assert joined["session"]["roomCode"] == room.code

    for code in _variants(room.code):
        failure = await refusal(
            rpc_db.call(
                "vipPortalLiveShopping.getSessionByRoomCode", {"roomCode": code}, customer.token
            )
        )
        assert failure.code == "NOT_FOUND", code


async def test_a_share_token_in_another_case_or_with_a_trailing_space_opens_no_sheet(
    rpc_db: Rpc,
) -> None:
    shop = Shop(rpc_db)
    customer = await shop.customer()
    stock = await shop.stock()
    room = await shop.session(customer)
    await shop.add(room, stock, "1")
    sheet = await rpc_db.staff("liveShopping.generateSalesSheet", {"sessionId": room.id})
    path = sheet["shareUrl"].split("://", 1)[-1].partition("/")[2]
    token = path.rsplit("/", 1)[1]
    assert (await rpc_db.http.get(f"/sales-sheets/{token}")).status_code == 200

    for variant in _variants(token):
        page = await rpc_db.http.get(f"/sales-sheets/{quote(variant)}")
        assert page.status_code == 404, variant
