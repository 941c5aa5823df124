"""catalog.*, clients.* and orders.* on SQLite and MariaDB, orders respecting soft holds."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from app.server import create_app
from tests.conftest import Rpc, RpcFailure, Tokens, make_settings


@pytest.fixture
async def any_db_rpc(db_url: str) -> Rpc:
    settings = make_settings(db_url)
    from app.auth import TokenService

    async with AsyncTestClient(app=create_app(settings)) as http:
        yield Rpc(http, Tokens(TokenService(settings)))


async def _world(rpc: Rpc) -> tuple[int, int, int]:
    product = await rpc.admin(
        "catalog.createProduct", {"name": "Silk Scarf", "sku": "SS-1", "listPrice": "100.00"}
    )
    batch = await rpc.admin(
        "catalog.createBatch",
        {"productId": product["id"], "code": "SS-1-A", "onHandQty": "10", "unitCogs": "20"},
    )
    client = await rpc.staff("clients.create", {"name": "Ada", "priceAdjustmentPercent": "-10"})
    return product["id"], batch["id"], client["id"]


async def test_an_order_reserves_inventory_at_the_client_price(any_db_rpc: Rpc) -> None:
    rpc = any_db_rpc
    _, batch_id, client_id = await _world(rpc)
    created = await rpc.staff(
        "orders.create", {"clientId": client_id, "lines": [{"batchId": batch_id, "quantity": 3}]}
    )
    order = await rpc.staff("orders.get", {"orderId": created["orderId"]})
    assert order["total"] == "270.00"
    assert order["lines"][0]["unitPrice"] == "90.00"
    batches = await rpc.admin("catalog.listBatches", {})
    assert batches[0]["reservedQty"] == "3.0000"


async def test_ordering_more_than_available_is_refused_and_changes_nothing(any_db_rpc: Rpc) -> None:
    rpc = any_db_rpc
    _, batch_id, client_id = await _world(rpc)
    with pytest.raises(RpcFailure) as failure:
        await rpc.staff(
            "orders.create",
            {"clientId": client_id, "lines": [{"batchId": batch_id, "quantity": "10.0001"}]},
        )
    assert failure.value.code == "PRECONDITION_FAILED"
    assert await rpc.staff("orders.list", {}) == []
    assert (await rpc.admin("catalog.listBatches", {}))[0]["reservedQty"] == "0.0000"


async def test_an_order_whose_total_is_too_large_to_record_is_refused_and_changes_nothing(
    any_db_rpc: Rpc,
) -> None:
    rpc = any_db_rpc
    _, batch_id, client_id = await _world(rpc)
    line = {"batchId": batch_id, "quantity": "2", "unitPrice": "9999999999999.99"}
    with pytest.raises(RpcFailure) as failure:
        await rpc.staff("orders.create", {"clientId": client_id, "lines": [line]})
    assert failure.value.code == "UNPROCESSABLE_CONTENT"
    assert await rpc.staff("orders.list", {}) == []
    assert (await rpc.admin("catalog.listBatches", {}))[0]["reservedQty"] == "0.0000"


async def test_a_client_markup_pricing_beyond_the_largest_amount_is_refused(
    any_db_rpc: Rpc,
) -> None:
    rpc = any_db_rpc
    product = await rpc.admin(
        "catalog.createProduct",
        {"name": "Crown", "sku": "CR-1", "listPrice": "9999999999999.99"},
    )
    batch = await rpc.admin(
        "catalog.createBatch",
        {"productId": product["id"], "code": "CR-1-A", "onHandQty": "1", "unitCogs": "1"},
    )
    client = await rpc.staff("clients.create", {"name": "Ada", "priceAdjustmentPercent": "10"})
    line = {"batchId": batch["id"], "quantity": "1"}
    with pytest.raises(RpcFailure) as failure:
        await rpc.staff("orders.create", {"clientId": client["id"], "lines": [line]})
    assert failure.value.code == "UNPROCESSABLE_CONTENT"
    assert await rpc.staff("orders.list", {}) == []
