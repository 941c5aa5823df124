"""The tRPC wire adapter at /trpc/{path}: what an `@trpc/client` httpLink/httpBatchLink sends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from app.server import create_app
from tests.conftest import Rpc, Tokens, make_settings


def auth(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


async def trpc_query(
    rpc: Rpc, paths: str, input: Any = None, token: str | None = None, *, batch: bool = False
) -> httpx.Response:
    params: dict[str, str] = {"batch": "1"} if batch else {}
    if input is not None:
        params["input"] = json.dumps(input)
    return await rpc.http.get(f"/trpc/{paths}", params=params, headers=auth(token))


async def trpc_mutation(
    rpc: Rpc, paths: str, input: Any = None, token: str | None = None, *, batch: bool = False
) -> httpx.Response:
    content = b"" if input is None else json.dumps(input).encode()
    return await rpc.http.post(
        f"/trpc/{paths}",
        params={"batch": "1"} if batch else {},
        content=content,
        headers={"content-type": "application/json", **auth(token)},
    )


def data_of(answer: dict[str, Any]) -> Any:
    """The data of a success envelope, which carries nothing else."""
    assert set(answer) == {"result"}, answer
    assert set(answer["result"]) == {"data"}, answer
    return answer["result"]["data"]


def error_of(answer: dict[str, Any], code: str, status: int, path: str) -> dict[str, Any]:
    """The error of an error envelope: message, JSON-RPC code and data{code,httpStatus,path}."""
    assert set(answer) == {"error"}, answer
    error: dict[str, Any] = answer["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["code"], int) and error["code"] < 0
    assert error["data"]["code"] == code
    assert error["data"]["httpStatus"] == status
    assert error["data"]["path"] == path
    return error


@pytest.fixture
async def limited_rpc(sqlite_url: str, tokens: Tokens) -> AsyncIterator[Rpc]:
    settings = make_settings(sqlite_url, RPC_MAX_BATCH="3")
    async with AsyncTestClient(app=create_app(settings)) as http:
        yield Rpc(http, tokens)


# --- single calls ---------------------------------------------------------------------------


async def test_a_query_is_called_by_get_with_json_input(rpc: Rpc) -> None:
    for name in ["Ada", "Bea", "Cy"]:
        await rpc.staff("clients.create", {"name": name})
    response = await trpc_query(rpc, "clients.list", {"limit": 1, "offset": 2}, rpc.tokens.staff)
    assert response.status_code == 200
    assert [c["name"] for c in data_of(response.json())] == ["Cy"]


async def test_a_query_without_input_sends_no_input_parameter(rpc: Rpc) -> None:
    response = await trpc_query(rpc, "system.health")
    assert response.status_code == 200
    assert data_of(response.json())["status"] == "ok"


async def test_a_mutation_is_called_by_post_with_the_raw_input_as_body(rpc: Rpc) -> None:
    response = await trpc_mutation(rpc, "clients.create", {"name": "Ada"}, rpc.tokens.staff)
    assert response.status_code == 200
    created = data_of(response.json())
    # Same registry as /rpc: the client made through tRPC is there for JSON-RPC callers.
    assert [c["id"] for c in await rpc.staff("clients.list", {})] == [created["id"]]


async def test_a_domain_error_has_the_trpc_error_shape_and_status(rpc: Rpc) -> None:
    response = await trpc_query(rpc, "orders.get", {"orderId": 999}, rpc.tokens.staff)
    assert response.status_code == 404
    error = error_of(response.json(), "NOT_FOUND", 404, "orders.get")
    assert error["code"] == -32004


async def test_invalid_input_is_bad_request_with_issues(rpc: Rpc) -> None:
    response = await trpc_mutation(
        rpc,
        "catalog.createBatch",
        {"productId": 1, "code": "B", "onHandQty": "1.00001", "unitCogs": "1"},
        rpc.tokens.admin,
    )
    assert response.status_code == 400
    error = error_of(response.json(), "BAD_REQUEST", 400, "catalog.createBatch")
    assert [issue["path"] for issue in error["data"]["issues"]] == ["$.onHandQty"]


async def test_a_call_without_a_token_is_unauthorized(rpc: Rpc) -> None:
    response = await trpc_query(rpc, "clients.list", {})
    assert response.status_code == 401
    error_of(response.json(), "UNAUTHORIZED", 401, "clients.list")


async def test_an_unknown_procedure_is_method_not_found(rpc: Rpc) -> None:
    response = await trpc_query(rpc, "nope.nothing")
    assert response.status_code == 404
    error_of(response.json(), "METHOD_NOT_FOUND", 404, "nope.nothing")


async def test_a_query_called_by_post_is_refused(rpc: Rpc) -> None:
    response = await trpc_mutation(rpc, "clients.list", {}, rpc.tokens.staff)
    assert response.status_code == 400
    error_of(response.json(), "BAD_REQUEST", 400, "clients.list")


async def test_a_mutation_called_by_get_is_refused_and_does_not_run(rpc: Rpc) -> None:
    response = await trpc_query(rpc, "clients.create", {"name": "Sneaky"}, rpc.tokens.staff)
    assert response.status_code == 400
    error_of(response.json(), "BAD_REQUEST", 400, "clients.create")
    assert await rpc.staff("clients.list", {}) == []


# --- batches --------------------------------------------------------------------------------


async def test_batched_queries_by_get_answer_in_path_order(rpc: Rpc) -> None:
    await rpc.staff("clients.create", {"name": "Ada"})
    response = await trpc_query(
        rpc,
        "clients.list,system.health,clients.list",
        {"0": {"limit": 5}, "2": {"offset": 1}},
        rpc.tokens.staff,
        batch=True,
    )
    assert response.status_code == 200
    first, second, third = response.json()
    assert [c["name"] for c in data_of(first)] == ["Ada"]
    assert data_of(second)["status"] == "ok"
    assert data_of(third) == []


async def test_batched_mutations_by_post_take_inputs_keyed_by_index(rpc: Rpc) -> None:
    response = await trpc_mutation(
        rpc,
        "clients.create,clients.create",
        {"0": {"name": "Ada"}, "1": {"name": "Bea"}},
        rpc.tokens.staff,
        batch=True,
    )
    assert response.status_code == 200
    ids = [data_of(answer)["id"] for answer in response.json()]
    listed = {c["id"]: c["name"] for c in await rpc.staff("clients.list", {})}
    assert [listed[i] for i in ids] == ["Ada", "Bea"]


async def test_a_batch_with_a_failure_answers_207_with_each_envelope_in_place(rpc: Rpc) -> None:
    response = await trpc_query(
        rpc,
        "system.health,orders.get,nope.nothing",
        {"1": {"orderId": 999}},
        rpc.tokens.staff,
        batch=True,
    )
    assert response.status_code == 207
    ok, missing, unknown = response.json()
    assert data_of(ok)["status"] == "ok"
    error_of(missing, "NOT_FOUND", 404, "orders.get")
    error_of(unknown, "METHOD_NOT_FOUND", 404, "nope.nothing")


async def test_a_mutation_in_a_get_batch_is_refused_and_the_rest_still_answers(rpc: Rpc) -> None:
    response = await trpc_query(
        rpc,
        "system.health,clients.create",
        {"1": {"name": "Sneaky"}},
        rpc.tokens.staff,
        batch=True,
    )
    assert response.status_code == 207
    ok, refused = response.json()
    assert data_of(ok)["status"] == "ok"
    error_of(refused, "BAD_REQUEST", 400, "clients.create")
    assert await rpc.staff("clients.list", {}) == []


async def test_batch_input_that_is_not_json_is_a_parse_error(rpc: Rpc) -> None:
    response = await rpc.http.get(
        "/trpc/system.health,system.health", params={"batch": "1", "input": "{oops"}
    )
    assert response.status_code == 400
    error_of(response.json(), "PARSE_ERROR", 400, "system.health,system.health")


async def test_batch_input_that_is_json_but_not_an_object_is_bad_request(rpc: Rpc) -> None:
    response = await rpc.http.get(
        "/trpc/system.health,system.health", params={"batch": "1", "input": "[{}, {}]"}
    )
    assert response.status_code == 400
    error_of(response.json(), "BAD_REQUEST", 400, "system.health,system.health")


async def test_a_batch_over_rpc_max_batch_is_payload_too_large_and_runs_nothing(
    limited_rpc: Rpc,
) -> None:
    rpc = limited_rpc
    inputs = {str(i): {"name": f"C{i}"} for i in range(4)}
    response = await trpc_mutation(
        rpc, ",".join(["clients.create"] * 4), inputs, rpc.tokens.staff, batch=True
    )
    assert response.status_code == 413
    error_of(response.json(), "PAYLOAD_TOO_LARGE", 413, ",".join(["clients.create"] * 4))
    assert await rpc.staff("clients.list", {}) == []


async def test_a_batch_at_rpc_max_batch_is_answered(limited_rpc: Rpc) -> None:
    response = await trpc_query(
        limited_rpc, "system.health,system.health,system.health", batch=True
    )
    assert response.status_code == 200
    assert len(response.json()) == 3
