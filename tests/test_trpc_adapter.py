"""The tRPC wire adapter at /trpc/{path}: answered as an @trpc/server v11 server answers
what `@trpc/client`'s httpLink, httpBatchLink and httpBatchStreamLink send (no transformer).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from app.rpc import trpc
from app.rpc.dispatch import Caller, Dispatcher
from app.rpc.registry import REGISTRY
from app.server import create_app
from tests.conftest import Rpc, Tokens, make_settings

STREAM = {"trpc-accept": "application/jsonl"}


def auth(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


async def trpc_get(
    rpc: Rpc,
    paths: str,
    input: Any = None,
    token: str | None = None,
    *,
    batch: bool = False,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    params: dict[str, str] = {"batch": "1"} if batch else {}
    if input is not None:
        params["input"] = json.dumps(input)
    return await rpc.http.get(
        f"/trpc/{paths}", params=params, headers={**auth(token), **(headers or {})}
    )


async def trpc_post(
    rpc: Rpc,
    paths: str,
    input: Any = None,
    token: str | None = None,
    *,
    batch: bool = False,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    content = b"" if input is None else json.dumps(input).encode()
    return await rpc.http.post(
        f"/trpc/{paths}",
        params={"batch": "1"} if batch else {},
        content=content,
        headers={"content-type": "application/json", **auth(token), **(headers or {})},
    )


def data_of(answer: dict[str, Any]) -> Any:
    """The data of a success envelope, which carries nothing else."""
    assert set(answer) == {"result"}, answer
    assert set(answer["result"]) == {"data"}, answer
    return answer["result"]["data"]


# tRPC's numbers for its names (@trpc/server TRPC_ERROR_CODES_BY_KEY).
TRPC_NUMBERS = {
    "PARSE_ERROR": -32700,
    "BAD_REQUEST": -32600,
    "UNAUTHORIZED": -32001,
    "NOT_FOUND": -32004,
    "METHOD_NOT_SUPPORTED": -32005,
    "PAYLOAD_TOO_LARGE": -32013,
}


def error_of(answer: dict[str, Any], code: str, status: int, path: str | None) -> dict[str, Any]:
    """The error of an error envelope: message, tRPC's number and data{code,httpStatus,path}.

    `path` None: an error of the whole request, which tRPC sends without a path.
    """
    assert set(answer) == {"error"}, answer
    error: dict[str, Any] = answer["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["code"] == TRPC_NUMBERS[code], error
    assert error["data"]["code"] == code
    assert error["data"]["httpStatus"] == status
    assert error["data"].get("path") == path
    return error


def streamed(response: httpx.Response) -> list[dict[str, Any]]:
    """Each call's envelope from a JSON-lines answer, decoded as @trpc/server's
    jsonlStreamConsumer decodes it: a head line whose values are placeholders for chunks, then
    one line per chunk `[chunkId, status, [[value], ...definitions]]`.
    """
    head, *lines = (json.loads(line) for line in response.text.splitlines())
    chunks: dict[int, Any] = {}
    for chunk_id, status, value in lines:
        assert status == 0, "every chunk is a fulfilled promise"  # PROMISE_STATUS_FULFILLED
        assert chunk_id not in chunks
        chunks[chunk_id] = value

    def decode(encoded: list[Any]) -> Any:
        (value,), *definitions = encoded
        for key, kind, chunk_id in definitions:
            assert kind == 0  # CHUNK_VALUE_TYPE_PROMISE
            resolved = decode(chunks.pop(chunk_id))
            if key is None:
                value = resolved
            else:
                value[key] = resolved
        return value

    envelopes = [decode(head[str(i)]) for i in range(len(head))]
    assert chunks == {}, "every chunk is referred to"
    return envelopes


def dispatcher_of(sqlite_url: str) -> Dispatcher:
    app = create_app(make_settings(sqlite_url))
    return Dispatcher(app.state.services, REGISTRY)


@pytest.fixture
async def limited_rpc(sqlite_url: str, tokens: Tokens) -> AsyncIterator[Rpc]:
    settings = make_settings(sqlite_url, RPC_MAX_BATCH="3")
    async with AsyncTestClient(app=create_app(settings)) as http:
        yield Rpc(http, tokens)


# --- single calls ---------------------------------------------------------------------------


async def test_a_query_is_called_by_get_with_json_input(rpc: Rpc) -> None:
    for name in ["Ada", "Bea", "Cy"]:
        await rpc.staff("clients.create", {"name": name})
    response = await trpc_get(rpc, "clients.list", {"limit": 1, "offset": 2}, rpc.tokens.staff)
    assert response.status_code == 200
    assert [c["name"] for c in data_of(response.json())] == ["Cy"]


async def test_a_query_without_input_sends_no_input_parameter(rpc: Rpc) -> None:
    response = await trpc_get(rpc, "system.health")
    assert response.status_code == 200
    assert data_of(response.json())["status"] == "ok"


async def test_a_mutation_is_called_by_post_with_the_raw_input_as_body(rpc: Rpc) -> None:
    response = await trpc_post(rpc, "clients.create", {"name": "Ada"}, rpc.tokens.staff)
    assert response.status_code == 200
    created = data_of(response.json())
    # Same registry as /rpc: the client made through tRPC is there for JSON-RPC callers.
    assert [c["id"] for c in await rpc.staff("clients.list", {})] == [created["id"]]


async def test_a_domain_error_has_the_trpc_error_shape_and_status(rpc: Rpc) -> None:
    response = await trpc_get(rpc, "orders.get", {"orderId": 999}, rpc.tokens.staff)
    assert response.status_code == 404
    error = error_of(response.json(), "NOT_FOUND", 404, "orders.get")
    assert error["code"] == -32004


async def test_invalid_input_is_bad_request_with_issues(rpc: Rpc) -> None:
    response = await trpc_post(
        rpc,
        "catalog.createBatch",
        {"productId": 1, "code": "B", "onHandQty": "1.00001", "unitCogs": "1"},
        rpc.tokens.admin,
    )
    assert response.status_code == 400
    error = error_of(response.json(), "BAD_REQUEST", 400, "catalog.createBatch")
    assert [issue["path"] for issue in error["data"]["issues"]] == ["$.onHandQty"]


async def test_a_call_without_a_token_is_unauthorized(rpc: Rpc) -> None:
    response = await trpc_get(rpc, "clients.list", {})
    assert response.status_code == 401
    error_of(response.json(), "UNAUTHORIZED", 401, "clients.list")


async def test_an_error_has_exactly_the_shape_of_trpc_without_a_transformer(rpc: Rpc) -> None:
    response = await trpc_get(rpc, "nope.nothing")
    answer = response.json()
    # No `json` wrapper (that is superjson's) and no `stack` (a development server's). Domain
    # errors add their details (and validation errors `issues`) to data, as an errorFormatter
    # would.
    assert answer == {
        "error": {
            "message": answer["error"]["message"],
            "code": -32004,
            "data": {"code": "NOT_FOUND", "httpStatus": 404, "path": "nope.nothing"},
        }
    }


# --- error codes as tRPC names them -----------------------------------------------------------


async def test_an_unknown_path_is_not_found_as_trpc_names_it(rpc: Rpc) -> None:
    response = await trpc_get(rpc, "nope.nothing")
    assert response.status_code == 404
    error = error_of(response.json(), "NOT_FOUND", 404, "nope.nothing")
    assert error["message"] == 'No procedure found on path "nope.nothing"'


async def test_a_validation_failure_is_bad_request_with_trpcs_number(rpc: Rpc) -> None:
    response = await trpc_post(rpc, "clients.create", {"name": ""}, rpc.tokens.staff)
    assert response.status_code == 400
    error = error_of(response.json(), "BAD_REQUEST", 400, "clients.create")
    assert error["code"] == -32600


async def test_a_mutation_called_by_get_is_method_not_supported_and_does_not_run(
    rpc: Rpc,
) -> None:
    response = await trpc_get(rpc, "clients.create", {"name": "Sneaky"}, rpc.tokens.staff)
    assert response.status_code == 405
    error_of(response.json(), "METHOD_NOT_SUPPORTED", 405, "clients.create")
    assert response.headers["allow"] == "POST"
    assert await rpc.staff("clients.list", {}) == []


async def test_without_method_override_a_query_by_post_is_method_not_supported(
    sqlite_url: str,
) -> None:
    # The route runs with method override allowed (see test below); this is the adapter as
    # @trpc/server runs it by default, allowMethodOverride off.
    answer = await trpc.handle(
        dispatcher_of(sqlite_url),
        trpc.Request(
            paths="system.health",
            http_method="POST",
            batch=False,
            raw_input=b"",
            allow_method_override=False,
        ),
        Caller(authorization=None, request_id="r1"),
    )
    assert answer.status == 405
    assert isinstance(answer.body, bytes)
    error_of(json.loads(answer.body), "METHOD_NOT_SUPPORTED", 405, "system.health")
    assert answer.headers["allow"] == "GET"


async def test_every_answer_varies_on_the_stream_headers(rpc: Rpc) -> None:
    for response in [
        await trpc_get(rpc, "system.health"),
        await trpc_get(rpc, "nope.nothing"),
        await trpc_get(rpc, "system.health", batch=True, headers=STREAM),
    ]:
        assert response.headers["vary"] == "trpc-accept, accept"


# --- methodOverride: 'POST' -------------------------------------------------------------------


async def test_a_query_by_post_with_its_input_as_body_is_answered(rpc: Rpc) -> None:
    for name in ["Ada", "Bea"]:
        await rpc.staff("clients.create", {"name": name})
    response = await trpc_post(rpc, "clients.list", {"offset": 1}, rpc.tokens.staff)
    assert response.status_code == 200
    assert [c["name"] for c in data_of(response.json())] == ["Bea"]


async def test_batched_queries_by_post_take_inputs_keyed_by_index(rpc: Rpc) -> None:
    await rpc.staff("clients.create", {"name": "Ada"})
    response = await trpc_post(
        rpc, "clients.list,system.health", {"0": {"limit": 5}}, rpc.tokens.staff, batch=True
    )
    assert response.status_code == 200
    clients, health = response.json()
    assert [c["name"] for c in data_of(clients)] == ["Ada"]
    assert data_of(health)["status"] == "ok"


# --- batches --------------------------------------------------------------------------------


async def test_batched_queries_by_get_answer_in_path_order(rpc: Rpc) -> None:
    await rpc.staff("clients.create", {"name": "Ada"})
    response = await trpc_get(
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
    response = await trpc_post(
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
    response = await trpc_get(
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
    error_of(unknown, "NOT_FOUND", 404, "nope.nothing")


async def test_a_batch_whose_calls_all_fail_alike_answers_their_status(rpc: Rpc) -> None:
    # @trpc/server's getHTTPStatusCode: one status shared by every call is the answer's.
    response = await trpc_get(rpc, "nope.one,nope.two", batch=True)
    assert response.status_code == 404
    first, second = response.json()
    error_of(first, "NOT_FOUND", 404, "nope.one")
    error_of(second, "NOT_FOUND", 404, "nope.two")


async def test_a_batch_mixing_queries_and_mutations_is_refused_whole_and_runs_nothing(
    rpc: Rpc,
) -> None:
    response = await trpc_post(
        rpc,
        "system.health,clients.create",
        {"1": {"name": "Sneaky"}},
        rpc.tokens.staff,
        batch=True,
    )
    assert response.status_code == 400
    error = error_of(response.json(), "BAD_REQUEST", 400, None)
    assert error["message"] == "Cannot mix procedure types in call: query, mutation"
    assert await rpc.staff("clients.list", {}) == []


async def test_mutations_in_a_get_batch_are_method_not_supported_and_do_not_run(
    rpc: Rpc,
) -> None:
    response = await trpc_get(
        rpc,
        "clients.create,clients.create",
        {"0": {"name": "Sneaky"}, "1": {"name": "Sneakier"}},
        rpc.tokens.staff,
        batch=True,
    )
    assert response.status_code == 405
    for answer in response.json():
        error_of(answer, "METHOD_NOT_SUPPORTED", 405, "clients.create")
    assert await rpc.staff("clients.list", {}) == []


async def test_batch_input_that_is_not_json_is_a_parse_error(rpc: Rpc) -> None:
    response = await rpc.http.get(
        "/trpc/system.health,system.health", params={"batch": "1", "input": "{oops"}
    )
    assert response.status_code == 400
    error_of(response.json(), "PARSE_ERROR", 400, None)


async def test_batch_input_that_is_json_but_not_an_object_is_bad_request(rpc: Rpc) -> None:
    response = await rpc.http.get(
        "/trpc/system.health,system.health", params={"batch": "1", "input": "[{}, {}]"}
    )
    assert response.status_code == 400
    error_of(response.json(), "BAD_REQUEST", 400, None)


async def test_a_batch_over_rpc_max_batch_is_payload_too_large_and_runs_nothing(
    limited_rpc: Rpc,
) -> None:
    rpc = limited_rpc
    inputs = {str(i): {"name": f"C{i}"} for i in range(4)}
    response = await trpc_post(
        rpc, ",".join(["clients.create"] * 4), inputs, rpc.tokens.staff, batch=True
    )
    assert response.status_code == 413
    error_of(response.json(), "PAYLOAD_TOO_LARGE", 413, None)
    assert await rpc.staff("clients.list", {}) == []


async def test_a_batch_at_rpc_max_batch_is_answered(limited_rpc: Rpc) -> None:
    response = await trpc_get(limited_rpc, "system.health,system.health,system.health", batch=True)
    assert response.status_code == 200
    assert len(response.json()) == 3


# --- httpBatchStreamLink: trpc-accept: application/jsonl ----------------------------------------


async def test_a_streamed_batch_answers_a_head_line_then_a_chunk_line_per_value(
    rpc: Rpc,
) -> None:
    await rpc.staff("clients.create", {"name": "Ada"})
    response = await trpc_get(
        rpc,
        "clients.list,system.health",
        {"0": {"limit": 5}},
        rpc.tokens.staff,
        batch=True,
        headers=STREAM,
    )
    # As @trpc/server: 200 and application/json whatever the calls answer; errors are inside.
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    lines = response.text.splitlines()
    assert response.text.endswith("\n")
    # Each call is a promise in the head (`[[0], [null, 0, chunkId]]`), its value a chunk.
    assert json.loads(lines[0]) == {"0": [[0], [None, 0, 0]], "1": [[0], [None, 0, 1]]}
    clients, health = streamed(response)
    assert [c["name"] for c in data_of(clients)] == ["Ada"]
    assert data_of(health)["status"] == "ok"


async def test_a_streamed_batch_carries_each_error_in_its_place_with_status_200(
    rpc: Rpc,
) -> None:
    response = await trpc_get(
        rpc,
        "system.health,orders.get,nope.nothing",
        {"1": {"orderId": 999}},
        rpc.tokens.staff,
        batch=True,
        headers=STREAM,
    )
    assert response.status_code == 200
    ok, missing, unknown = streamed(response)
    assert data_of(ok)["status"] == "ok"
    error_of(missing, "NOT_FOUND", 404, "orders.get")
    error_of(unknown, "NOT_FOUND", 404, "nope.nothing")


async def test_streamed_mutations_by_post_run_and_answer_in_path_order(rpc: Rpc) -> None:
    response = await trpc_post(
        rpc,
        "clients.create,clients.create",
        {"0": {"name": "Ada"}, "1": {"name": ""}},
        rpc.tokens.staff,
        batch=True,
        headers=STREAM,
    )
    created, invalid = streamed(response)
    error_of(invalid, "BAD_REQUEST", 400, "clients.create")
    assert [c["id"] for c in await rpc.staff("clients.list", {})] == [data_of(created)["id"]]


async def test_accept_application_jsonl_asks_for_the_stream_too(rpc: Rpc) -> None:
    response = await trpc_get(
        rpc, "system.health", batch=True, headers={"accept": "application/json, application/jsonl"}
    )
    (health,) = streamed(response)
    assert data_of(health)["status"] == "ok"


async def test_a_stream_request_that_is_not_a_batch_is_bad_request(rpc: Rpc) -> None:
    # httpBatchStreamLink always batches (a single call is a batch of one), as tRPC requires.
    response = await trpc_get(rpc, "system.health", headers=STREAM)
    assert response.status_code == 400
    error = error_of(response.json(), "BAD_REQUEST", 400, None)
    assert error["message"] == "Streaming requests must be batched (you can do a batch of 1)"


async def test_a_stream_request_refused_as_a_whole_answers_plain_json(rpc: Rpc) -> None:
    # httpBatchStreamLink reads a non-2xx answer as one JSON error for every call.
    response = await rpc.http.get(
        "/trpc/system.health,system.health",
        params={"batch": "1", "input": "{oops"},
        headers=STREAM,
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    error_of(response.json(), "PARSE_ERROR", 400, None)
