"""Whatever arrives at POST /rpc, the answer is well-formed JSON-RPC with a code from the table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import msgspec
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

import procedures  # noqa: F401 - importing the package registers every procedure
from app.rpc.registry import REGISTRY, Procedure
from tests.conftest import Rpc

# pyproject's norecursedirs replaces pytest's default ignores, so a .hypothesis directory at the
# repository root makes hypothesis's pytest plugin warn - an error under filterwarnings=error - on
# every later run. Keep hypothesis's storage inside pytest's cache directory instead.
set_hypothesis_home_dir(Path(__file__).resolve().parents[1] / ".pytest_cache" / "hypothesis")

# DESIGN.md 2.1: (data.code, JSON-RPC code, HTTP status) of every error the server may send.
ERRORS = {
    ("PARSE_ERROR", -32700, 400),
    ("BAD_REQUEST", -32600, 400),
    ("BAD_REQUEST", -32602, 400),
    ("METHOD_NOT_FOUND", -32601, 404),
    ("UNAUTHORIZED", -32001, 401),
    ("FORBIDDEN", -32003, 403),
    ("NOT_FOUND", -32004, 404),
    ("CONFLICT", -32009, 409),
    ("PRECONDITION_FAILED", -32012, 412),
    ("PAYLOAD_TOO_LARGE", -32013, 413),
    ("UNPROCESSABLE_CONTENT", -32022, 422),
    ("TOO_MANY_REQUESTS", -32029, 429),
    ("INTERNAL_SERVER_ERROR", -32603, 500),
}
INVALID_REQUEST_CODES = {-32700, -32600}
ENVELOPE_KEYS = {"jsonrpc", "method", "params", "id"}
INT64 = range(-(2**63), 2**63)

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

PROCEDURES = sorted(REGISTRY, key=lambda p: p.name)
FIELD_NAMES = sorted(
    {f.encode_name for p in PROCEDURES for f in msgspec.structs.fields(p.input_type)}
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Values on the edges of the input rules: id bounds, decimal places and signs, long strings.
# Decimals with more significant digits than Python's decimal context holds are left out; see
# test_jsonrpc_conformance.py::test_a_decimal_longer_than_the_decimal_context_is_invalid_params.
edge_values: st.SearchStrategy[Any] = st.sampled_from(
    [0, -1, 1, 2**53, 2**53 + 1, 2**64, 1.5, "0", "-0", "1.00001", "0.0001", "1e3", "1E-7",
     "NaN", "sNaN", "Infinity", "-100.01", "99999999999.99", "1e999999", "", "x" * 300, True,
     None, [], {}, "ACTIVE", "2030-01-01T00:00:00Z"]
)  # fmt: skip
plausible_values = st.integers(1, 4) | st.sampled_from(["1", "2.5", "Ada", "SKU-1", "-10"])
request_ids = (
    st.none()
    | st.integers()
    | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False)
)


def calls_of(procedure: Procedure) -> st.SearchStrategy[dict[str, Any]]:
    """Requests for this procedure whose params use its own field names, with any values."""
    fields = msgspec.structs.fields(procedure.input_type)
    values = edge_values | plausible_values | json_values
    params = st.fixed_dictionaries(
        {f.encode_name: values for f in fields if f.required},
        optional={f.encode_name: values for f in fields if not f.required},
    )
    return st.fixed_dictionaries(
        {"jsonrpc": st.just("2.0"), "method": st.just(procedure.name), "params": params},
        optional={"id": request_ids},
    )


calls = st.sampled_from(PROCEDURES).flatmap(calls_of)
odd_envelopes = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "1.0"]) | json_values},
    optional={
        "method": st.sampled_from([p.name for p in PROCEDURES]) | st.text(max_size=12),
        "params": st.dictionaries(
            st.sampled_from(FIELD_NAMES) | st.text(max_size=6), edge_values | json_values
        )
        | json_values,
        "id": request_ids,
    },
)
envelopes = calls | odd_envelopes
roles = st.sampled_from(["admin", "admin", "staff", "client", "none"])


def token_for(rpc: Rpc, role: str) -> str | None:
    if role == "admin":
        return rpc.tokens.admin
    if role == "staff":
        return rpc.tokens.staff
    if role == "client":
        return rpc.tokens.client(1)
    return None


async def post(rpc: Rpc, body: bytes, token: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return await rpc.http.post("/rpc", content=body, headers=headers)


def is_notification(value: Any) -> bool:
    """A request object the server can read that has no id (JSON-RPC 2.0, section 4.1)."""
    return (
        isinstance(value, dict)
        and set(value) <= ENVELOPE_KEYS
        and value.get("jsonrpc") == "2.0"
        and isinstance(value.get("method"), str)
        and "id" not in value
    )


def readable_id(value: Any) -> bool:
    request_id = value.get("id") if isinstance(value, dict) else None
    return (
        request_id is None
        or isinstance(request_id, str)
        or (type(request_id) is int and request_id in INT64)
    )


def check_answer(answer: Any) -> None:
    """One response object is well-formed JSON-RPC 2.0 with an error from the table."""
    assert isinstance(answer, dict), answer
    assert answer.get("jsonrpc") == "2.0", answer
    assert "id" in answer, answer
    assert answer["id"] is None or isinstance(answer["id"], int | str), answer
    assert set(answer) in ({"jsonrpc", "id", "result"}, {"jsonrpc", "id", "error"}), answer
    if "error" in answer:
        error = answer["error"]
        assert isinstance(error["message"], str) and error["message"], answer
        data = error["data"]
        assert (data["code"], error["code"], data["httpStatus"]) in ERRORS, answer
        assert data["path"] is None or isinstance(data["path"], str), answer
        event(f"error {data['code']} {error['code']}")
    else:
        event("result")


def check_response(response: httpx.Response, sent: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code == 204:
        assert response.content == b""
        return
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    if isinstance(body, list):
        assert body, "a batch answer is never an empty array"
        for answer in body:
            check_answer(answer)
        all_ok = all("result" in answer for answer in body)
        assert response.status_code == (200 if all_ok else 207)
        return
    check_answer(body)
    if "error" in body:
        assert response.status_code == body["error"]["data"]["httpStatus"]
        invalid = body["error"]["code"] in INVALID_REQUEST_CODES
    else:
        assert response.status_code == 200
        invalid = False
    assert not is_notification(sent), "a notification must not be answered"
    if not invalid and isinstance(sent, dict):
        assert body["id"] == sent.get("id")
    elif isinstance(sent, dict) and "id" in sent and readable_id(sent):
        # Even an invalid request gets its id back when the id itself could be read.
        assert body["id"] in (sent["id"], None)


@FUZZ
@given(value=json_values, role=roles)
async def test_any_json_body_gets_a_well_formed_answer(rpc: Rpc, value: Any, role: str) -> None:
    body = json.dumps(value).encode()
    check_response(await post(rpc, body, token_for(rpc, role)), value)


@FUZZ
@given(body=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
async def test_any_bytes_get_a_well_formed_answer(rpc: Rpc, body: bytes) -> None:
    try:
        sent = json.loads(body)
    except ValueError:
        sent = None  # not JSON: must be a parse error, checked by the shape alone
    check_response(await post(rpc, body, None), sent)


@FUZZ
@given(envelope=envelopes, role=roles)
async def test_any_envelope_gets_a_well_formed_answer_or_none_if_a_notification(
    rpc: Rpc, envelope: dict[str, Any], role: str
) -> None:
    body = json.dumps(envelope).encode()
    check_response(await post(rpc, body, token_for(rpc, role)), envelope)


@FUZZ
@given(batch=st.lists(envelopes | json_values, min_size=1, max_size=6), role=roles)
async def test_any_batch_gets_one_answer_per_non_notification(
    rpc: Rpc, batch: list[Any], role: str
) -> None:
    response = await post(rpc, json.dumps(batch).encode(), token_for(rpc, role))
    check_response(response, batch)
    expected = sum(1 for item in batch if not is_notification(item))
    answered = 0 if response.status_code == 204 else len(response.json())
    assert answered == expected
