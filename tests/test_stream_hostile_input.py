"""The stream endpoints under hostile input: a clear, typed error and nothing else, never a 500,
a traceback in the server's log, or a request left hanging (DESIGN.md 2.2, 2.3, 5).

Attacked as an outside tester would, over real HTTP to a real `python -m app serve` process
whose output is read after every test: the tRPC subscriptions `GET /trpc/liveShopping.
onSessionEvent` and `GET /trpc/vipPortalLiveShopping.onRoomEvent`, and the SSE routes
`/api/sse/live-shopping/{sessionId}` and `/api/sse/vip/live-shopping/{roomCode}`.

What a refusal looks like depends on when it comes. A tRPC request the adapter cannot take as
a subscription (its verb, a batch, unreadable connectionParams) is an HTTP error with tRPC's
JSON error body; what the call itself finds wrong (input, credentials, access) is a started
stream: `event: connected`, one `event: serialized-error`, then the end. The SSE routes refuse
with an HTTP status and a JSON-RPC error body. A Last-Event-ID is never a reason to refuse: one
replay cannot serve gets a SESSION_SNAPSHOT marked `reset` (DESIGN.md 5).
Every read here has a deadline, so a request that hangs fails its test instead of the run.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from app.auth import TICKET_TYPE, TokenService
from app.config import load_settings
from app.domain.actors import Role
from app.events.streams import client_stream_key, staff_stream_key
from tests import live_server
from tests.conftest import Rpc, Tokens
from tests.factories import Shop
from tests.live_server import Server
from tests.sse_client import EventStream, open_stream

# About 20 s of cases: run by `make test-slow` (beside the suite in CI), so that `make test`
# stays under five minutes on two cores.
pytestmark = pytest.mark.slow

READ_S = 5.0
HEARTBEAT_MS = 500

STAFF = "liveShopping.onSessionEvent"
CLIENT = "vipPortalLiveShopping.onRoomEvent"

# What a server log must never hold after hostile input.
CRASH_MARKERS = ("Traceback", "Exception in ASGI application", "Internal error")


env, server, http = live_server.one_server_fixtures(
    "stream-hostile-input", read_s=READ_S, heartbeat_ms=HEARTBEAT_MS
)


@dataclass(frozen=True)
class World:
    """One session with its client, and what it takes to knock on its streams."""

    tokens: TokenService
    session_id: int
    room_code: str
    staff_token: str
    client_token: str
    client_id: int
    staff_ticket: str
    client_ticket: str

    def input_for(self, path: str, **more: Any) -> dict[str, Any]:
        if path == STAFF:
            return {"sessionId": self.session_id, **more}
        return {"roomCode": self.room_code, **more}

    def token_for(self, path: str) -> str:
        return self.staff_token if path == STAFF else self.client_token

    def ticket_for(self, path: str) -> str:
        return self.staff_ticket if path == STAFF else self.client_ticket

    def sse_path(self, path: str) -> str:
        if path == STAFF:
            return f"/api/sse/live-shopping/{self.session_id}"
        return f"/api/sse/vip/live-shopping/{self.room_code}"

    def expired_ticket(self, path: str) -> str:
        """A ticket of the right stream whose `exp` is a minute past."""
        if path == STAFF:
            sub, role, client_id, key = 2, Role.STAFF, None, staff_stream_key(self.session_id)
        else:
            sub, role, client_id = 1000 + self.client_id, Role.CLIENT, self.client_id
            key = client_stream_key(self.room_code)
        return self.tokens.issue(
            sub=sub,
            role=role,
            client_id=client_id,
            ttl_seconds=-60,
            extra={"typ": TICKET_TYPE, "stream": key},
        )


@pytest.fixture(scope="module")
def world(server: Server, env: dict[str, str]) -> World:
    tokens = TokenService(load_settings(env))

    async def build() -> World:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=READ_S) as http:
            shop = Shop(Rpc(http, Tokens(tokens)))
            scarf = await shop.stock(name="Silk Scarf", unit_cogs="41.17", on_hand="50")
            customer = await shop.customer()
            room = await shop.session(customer, title="Spring")
            await shop.add(room, scarf, "1")
            staff_ticket = await shop.rpc.staff(
                "liveShopping.createStreamTicket", {"sessionId": room.id}
            )
            client_ticket = await shop.rpc.call(
                "vipPortalLiveShopping.createStreamTicket", {"roomCode": room.code}, customer.token
            )
        return World(
            tokens,
            room.id,
            room.code,
            shop.rpc.tokens.staff,
            customer.token,
            customer.id,
            staff_ticket["ticket"],
            client_ticket["ticket"],
        )

    return asyncio.run(build())


@pytest.fixture(autouse=True)
def no_crash_in_the_log(server: Server) -> Iterator[None]:
    """Whatever a test sent, the server wrote no traceback and no internal error meanwhile."""
    before = len(server.log_text())
    yield
    time.sleep(0.01)  # what the server logs as a response ends (the last test reads it all)
    written = server.log_text()[before:]
    for marker in CRASH_MARKERS:
        assert marker not in written, written
    assert server.process.poll() is None, "the server died"


# --- reading answers --------------------------------------------------------------------------


def encoded(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


async def started(stream: EventStream) -> None:
    """A 200 event stream whose first event is `connected` (after the retry hint)."""
    assert stream.response.status_code == 200, await stream.response.aread()
    assert stream.response.headers["content-type"].startswith("text/event-stream")
    first = await stream.frame_where(lambda f: f.retry is None, within=READ_S)
    assert first.event == "connected", first


async def serialized_error(stream: EventStream, path: str) -> dict[str, Any]:
    """A started stream that sends one serialized-error, then ends; its data.code and shape."""
    await started(stream)
    rest = await stream.rest(within=READ_S)
    assert [f.event for f in rest] == ["serialized-error"], rest
    shape: dict[str, Any] = rest[0].json()
    assert isinstance(shape["code"], int) and shape["message"]
    assert shape["data"]["path"] == path
    assert shape["data"]["httpStatus"] in {400, 401, 403, 404}
    return shape


async def snapshot_of(stream: EventStream, *, framing: str) -> dict[str, Any]:
    """The first event of an opened stream, which must be a SESSION_SNAPSHOT."""
    if framing == "trpc":
        await started(stream)
    else:
        assert stream.response.status_code == 200, await stream.response.aread()
    frame = await stream.frame_where(
        lambda f: f.data is not None and f.event != "ping", within=READ_S
    )
    state: dict[str, Any] = frame.json()
    if framing == "trpc":
        assert frame.event is None and state["type"] == "SESSION_SNAPSHOT", frame
    else:
        assert frame.event == "SESSION_SNAPSHOT", frame
    return state


def auth(world: World, path: str) -> str:
    return f"Bearer {world.token_for(path)}"


def trpc_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """An HTTP error with tRPC's JSON body: {"error": {"message", "code", "data": {...}}}."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json"), response.headers
    error: dict[str, Any] = response.json()["error"]
    assert isinstance(error["code"], int) and error["message"]
    assert error["data"]["code"] == code, error
    assert error["data"]["httpStatus"] == status
    return error


def subscribe(
    http: httpx.AsyncClient,
    path: str,
    input_: Any = None,
    *,
    token: str | None = None,
    last_event_id: str | None = None,
    query: dict[str, str] | None = None,
) -> Any:
    params = dict(query or {})
    if input_ is not None:
        params["input"] = encoded(input_)
    return open_stream(
        http, f"/trpc/{path}", token=token, last_event_id=last_event_id, params=params
    )


BOTH = pytest.mark.parametrize("path", [STAFF, CLIENT], ids=["onSessionEvent", "onRoomEvent"])


# --- the input --------------------------------------------------------------------------------


DEEP = "[" * 10_000 + "]" * 10_000
WIDE = {"junk": list(range(3_000))}

# Inputs no call can take, the same for both subscriptions: (input, the error's code). In a
# string input, KEY stands for the subscription's own member (`"sessionId": 1` or `"roomCode":
# "x"`), so that only what the case is about is wrong.
BAD_INPUTS: dict[str, tuple[Any, str]] = {
    "missing": (None, "BAD_REQUEST"),
    "empty": ("", "BAD_REQUEST"),
    "not JSON": ("{KEY, ", "PARSE_ERROR"),
    "truncated": ("{KEY", "PARSE_ERROR"),
    "bare word": ("x", "PARSE_ERROR"),
    "array": ([1, 2], "BAD_REQUEST"),
    "JSON string": ('"sessionId"', "BAD_REQUEST"),
    "number": ("7", "BAD_REQUEST"),
    "null": ("null", "BAD_REQUEST"),
    "true": ("true", "BAD_REQUEST"),
    "nested huge": (WIDE, "BAD_REQUEST"),
    "10k brackets": (DEEP, "BAD_REQUEST"),
    "10k brackets as a member": ('{KEY, "junk": ' + DEEP + "}", "BAD_REQUEST"),
    "trailing garbage": ("{KEY} x", "PARSE_ERROR"),
    "two values": ("{KEY}{KEY}", "PARSE_ERROR"),
}


def member(path: str) -> str:
    return '"sessionId": 1' if path == STAFF else '"roomCode": "x"'


@BOTH
@pytest.mark.parametrize("case", list(BAD_INPUTS))
async def test_input_no_call_can_take_is_a_serialized_error_inside_the_stream(
    http: httpx.AsyncClient, world: World, path: str, case: str
) -> None:
    raw, code = BAD_INPUTS[case]
    if isinstance(raw, str):
        raw = raw.replace("KEY", member(path))
    elif isinstance(raw, dict):
        raw = {**world.input_for(path), **raw}
    async with subscribe(http, path, raw, token=world.token_for(path)) as stream:
        shape = await serialized_error(stream, path)
    assert shape["data"]["code"] == code, shape


@BOTH
async def test_input_that_is_not_utf8_is_a_typed_error(
    http: httpx.AsyncClient, world: World, path: str
) -> None:
    # The raw byte 0xff, percent-encoded inside a JSON string: no text, so no valid input.
    url = f"/trpc/{path}?input=%7B" + quote(member(path)) + "%2C%22x%22%3A%22%FF%22%7D"
    request = http.build_request("GET", url, headers={"authorization": auth(world, path)})
    async with asyncio.timeout(READ_S):
        response = await http.send(request, stream=True)
    try:
        shape = await serialized_error(EventStream(response), path)
    finally:
        await response.aclose()
    assert shape["data"]["code"] == "BAD_REQUEST"


@BOTH
async def test_an_unknown_field_is_a_bad_request_naming_it(
    http: httpx.AsyncClient, world: World, path: str
) -> None:
    input_ = world.input_for(path, bogus=1)
    async with subscribe(http, path, input_, token=world.token_for(path)) as stream:
        shape = await serialized_error(stream, path)
    assert shape["data"]["code"] == "BAD_REQUEST"
    assert "bogus" in shape["message"]


@pytest.mark.parametrize(
    "session_id",
    [-1, 0, 2**63, 2**64 + 1, 10**400, 1.5, 1e308, "1", "one", True, False, None, [1], {"id": 1}],
    ids=repr,
)
async def test_a_session_id_that_is_no_id_is_a_bad_request(
    http: httpx.AsyncClient, world: World, session_id: Any
) -> None:
    input_ = {"sessionId": session_id}  # json writes 10**400 whole, as an attacker would
    async with subscribe(http, STAFF, input_, token=world.staff_token) as stream:
        shape = await serialized_error(stream, STAFF)
    assert shape["data"]["code"] == "BAD_REQUEST", shape
    assert shape["data"]["issues"][0]["path"] == "$.sessionId", shape


@pytest.mark.parametrize("session_id", [2**53, 987_654])
async def test_a_session_id_of_no_session_is_not_found(
    http: httpx.AsyncClient, world: World, session_id: int
) -> None:
    async with subscribe(http, STAFF, {"sessionId": session_id}, token=world.staff_token) as s:
        shape = await serialized_error(s, STAFF)
    assert shape["data"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("room_code", "code"),
    [
        ("", "BAD_REQUEST"),
        ("x" * 40_000, "BAD_REQUEST"),
        ("x" * 65, "BAD_REQUEST"),
        ("Salle-é-🎥", "NOT_FOUND"),
        ("\u202etxt.exe", "NOT_FOUND"),
        ("ROOM\u0000", "NOT_FOUND"),
        ("\u0000", "NOT_FOUND"),
        ("a/b", "NOT_FOUND"),
        ("../../etc/passwd", "NOT_FOUND"),
        ("%00", "NOT_FOUND"),
        (" ", "NOT_FOUND"),
        ("' OR 1=1 --", "NOT_FOUND"),
    ],
    ids=[
        "empty",
        "40KB",
        "65",
        "non-ASCII",
        "bidi",
        "NUL after",
        "NUL",
        "slash",
        "dots",
        "percent",
        "space",
        "quote",
    ],
)
async def test_a_room_code_of_no_room_is_a_typed_error(
    http: httpx.AsyncClient, world: World, room_code: str, code: str
) -> None:
    async with subscribe(http, CLIENT, {"roomCode": room_code}, token=world.client_token) as s:
        shape = await serialized_error(s, CLIENT)
    assert shape["data"]["code"] == code, shape


# --- lastEventId: never an error (DESIGN.md 5) -------------------------------------------------

GARBAGE_IDS: list[Any] = [
    "abc",
    "",
    "-1",
    "\u00b2",
    "\u0000",
    "9" * 400,
    -1,
    2**63,
    10**400,
    1.5,
    1e308,
    True,
    {"seq": 1},
    [1],
]


@BOTH
@pytest.mark.parametrize("given", GARBAGE_IDS, ids=repr)
async def test_a_garbage_last_event_id_in_the_input_gets_a_reset_snapshot(
    http: httpx.AsyncClient, world: World, path: str, given: Any
) -> None:
    input_ = world.input_for(path, lastEventId=given)
    async with subscribe(http, path, input_, token=world.token_for(path)) as stream:
        state = await snapshot_of(stream, framing="trpc")
    # An empty id is no id (EventSource sends none rather than an empty one): a plain snapshot.
    assert state.get("reset") is (None if given == "" else True), state


HEADER_IDS = ["abc", "-1", "1.5", "9" * 400, "{}", "\u00b2"]


@BOTH
@pytest.mark.parametrize("where", ["header", "query"])
@pytest.mark.parametrize("given", HEADER_IDS, ids=repr)
@pytest.mark.parametrize("framing", ["trpc", "sse"])
async def test_a_garbage_last_event_id_header_or_query_gets_a_reset_snapshot(
    http: httpx.AsyncClient, world: World, path: str, where: str, given: str, framing: str
) -> None:
    headers: dict[str, str | bytes] = {"authorization": auth(world, path)}
    query = {}
    if where == "header":
        headers["last-event-id"] = given.encode()  # a header is bytes: '\u00b2' goes as UTF-8
    else:
        query["lastEventId"] = given
    url = f"/trpc/{path}" if framing == "trpc" else world.sse_path(path)
    if framing == "trpc":
        query["input"] = json.dumps(world.input_for(path))
    request = http.build_request("GET", url, params=query, headers=headers)
    async with asyncio.timeout(READ_S):
        response = await http.send(request, stream=True)
    try:
        state = await snapshot_of(EventStream(response), framing=framing)
    finally:
        await response.aclose()
    assert state["reset"] is True, state


@BOTH
async def test_a_last_event_id_nested_past_what_json_reading_allows_is_a_parse_error(
    http: httpx.AsyncClient, world: World, path: str
) -> None:
    raw = json.dumps(world.input_for(path))[:-1] + ', "lastEventId": ' + "[" * 3_000
    raw += "]" * 3_000 + "}"
    async with subscribe(http, path, raw, token=world.token_for(path)) as stream:
        shape = await serialized_error(stream, path)
    assert shape["data"]["code"] == "PARSE_ERROR"


@BOTH
async def test_garbage_in_every_place_at_once_still_gets_a_reset_snapshot(
    http: httpx.AsyncClient, world: World, path: str
) -> None:
    input_ = world.input_for(path, lastEventId={"x": [1]})
    query = {"lastEventId": "nope"}
    async with subscribe(
        http, path, input_, token=world.token_for(path), last_event_id="zzz", query=query
    ) as stream:
        state = await snapshot_of(stream, framing="trpc")
    assert state["reset"] is True


# --- credentials ------------------------------------------------------------------------------


def none_alg_token(role: str = "STAFF") -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {"sub": "2", "role": role, "clientId": 1, "exp": int(time.time()) + 600}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


BAD_AUTHORIZATIONS: dict[str, str | bytes] = {
    "garbage": "garbage",
    "Bearer alone": "Bearer",
    "Bearer garbage": "Bearer not.a.jwt",
    "Basic": "Basic dXNlcjpwYXNz",
    "none alg": "Bearer " + none_alg_token(),
    "none alg client": "Bearer " + none_alg_token("CLIENT"),
    "two dots": "Bearer ..",
    "huge": "Bearer " + "a" * 8_000,
    "latin-1 bytes": b"Bearer \xff\xfe",
}


@BOTH
@pytest.mark.parametrize("authorization", list(BAD_AUTHORIZATIONS))
async def test_a_bad_authorization_header_is_unauthorized(
    http: httpx.AsyncClient, world: World, path: str, authorization: str
) -> None:
    headers = {"authorization": BAD_AUTHORIZATIONS[authorization]}
    params = {"input": json.dumps(world.input_for(path))}
    request = http.build_request("GET", f"/trpc/{path}", params=params, headers=headers)
    sse = http.build_request("GET", world.sse_path(path), headers=headers)
    async with asyncio.timeout(READ_S):
        response = await http.send(request, stream=True)
        try:
            shape = await serialized_error(EventStream(response), path)
        finally:
            await response.aclose()
        refused = await http.send(sse)
    assert shape["data"]["code"] == "UNAUTHORIZED", shape
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["data"]["code"] == "UNAUTHORIZED"


def bad_ticket(world: World, path: str, which: str) -> str:
    other = CLIENT if path == STAFF else STAFF
    match which:
        case "garbage":
            return "garbage"
        case "empty JWT":
            return "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"
        case "expired":
            return world.expired_ticket(path)
        case "another stream's":
            return world.ticket_for(other)
        case "a bearer token":
            return world.token_for(path)
        case "huge":
            return "t" * 50_000
    raise AssertionError(which)


TICKETS = ["garbage", "empty JWT", "expired", "another stream's", "a bearer token", "huge"]


@BOTH
@pytest.mark.parametrize("which", TICKETS)
@pytest.mark.parametrize("where", ["?ticket=", "connectionParams", "sse"])
async def test_a_bad_ticket_is_unauthorized(
    http: httpx.AsyncClient, world: World, path: str, which: str, where: str
) -> None:
    ticket = bad_ticket(world, path, which)
    if where == "sse":
        async with asyncio.timeout(READ_S):
            refused = await http.get(world.sse_path(path), params={"ticket": ticket})
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["data"]["code"] == "UNAUTHORIZED"
        return
    query = (
        {"ticket": ticket}
        if where == "?ticket="
        else {"connectionParams": json.dumps({"ticket": ticket})}
    )
    async with subscribe(http, path, world.input_for(path), query=query) as stream:
        shape = await serialized_error(stream, path)
    assert shape["data"]["code"] == "UNAUTHORIZED", shape


@BOTH
@pytest.mark.parametrize(
    "params",
    [
        "{not json",
        "[]",
        '"token"',
        "1",
        "true",
        '{"token": 7}',
        '{"token": null}',
        '{"token": ["a"]}',
        '{"ticket": {"a": 1}}',
        '{"a": 1.5}',
        "[" * 10_000 + "]" * 10_000,
        '{"a":' * 3_000 + '"x"' + "}" * 3_000,
    ],
    ids=lambda p: p[:20],
)
async def test_unreadable_connection_params_are_a_parse_error_before_the_stream(
    http: httpx.AsyncClient, world: World, path: str, params: str
) -> None:
    query = {"input": json.dumps(world.input_for(path)), "connectionParams": params}
    async with asyncio.timeout(READ_S):
        response = await http.get(f"/trpc/{path}", params=query)
    trpc_error(response, 400, "PARSE_ERROR")


@BOTH
@pytest.mark.parametrize(
    "params",
    ["null", "{}", json.dumps({f"k{i}": "v" * 100 for i in range(300)}), '{"token": ""}'],
    ids=["null", "empty", "huge", "empty token"],
)
async def test_connection_params_without_credentials_leave_the_header_to_authenticate(
    http: httpx.AsyncClient, world: World, path: str, params: str
) -> None:
    query = {"connectionParams": params}
    async with subscribe(
        http, path, world.input_for(path), token=world.token_for(path), query=query
    ) as stream:
        state = await snapshot_of(stream, framing="trpc")
    assert "reset" not in state


@BOTH
async def test_a_garbage_token_in_connection_params_is_unauthorized(
    http: httpx.AsyncClient, world: World, path: str
) -> None:
    query = {"connectionParams": json.dumps({"token": "garbage"})}
    async with subscribe(http, path, world.input_for(path), query=query) as stream:
        shape = await serialized_error(stream, path)
    assert shape["data"]["code"] == "UNAUTHORIZED"


# --- the request's shape: repeated parameters, verbs, batches ---------------------------------


@BOTH
async def test_a_repeated_parameter_takes_its_first_value(
    http: httpx.AsyncClient, world: World, path: str
) -> None:
    good = json.dumps(world.input_for(path))
    query = [
        ("input", good),
        ("input", "{garbage"),
        ("ticket", world.ticket_for(path)),
        ("ticket", "garbage"),
        ("lastEventId", "abc"),
        ("lastEventId", "1"),
        ("connectionParams", "null"),
        ("connectionParams", "{bad"),
    ]
    request = http.build_request("GET", f"/trpc/{path}", params=query)
    async with asyncio.timeout(READ_S):
        response = await http.send(request, stream=True)
    try:
        state = await snapshot_of(EventStream(response), framing="trpc")
    finally:
        await response.aclose()
    assert state["reset"] is True  # "abc", the first lastEventId


@BOTH
async def test_a_repeated_bad_parameter_is_refused_by_its_first_value(
    http: httpx.AsyncClient, world: World, path: str
) -> None:
    query = [("input", "{garbage"), ("input", json.dumps(world.input_for(path)))]
    headers = {"authorization": auth(world, path)}
    request = http.build_request("GET", f"/trpc/{path}", params=query, headers=headers)
    async with asyncio.timeout(READ_S):
        response = await http.send(request, stream=True)
    try:
        shape = await serialized_error(EventStream(response), path)
    finally:
        await response.aclose()
    assert shape["data"]["code"] == "PARSE_ERROR"


@BOTH
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_a_subscription_by_another_verb_is_method_not_supported(
    http: httpx.AsyncClient, world: World, path: str, method: str
) -> None:
    input_ = json.dumps(world.input_for(path))
    async with asyncio.timeout(READ_S):
        response = await http.request(
            method,
            f"/trpc/{path}",
            params={"input": input_},
            content=input_,
            headers={"authorization": auth(world, path)},
        )
    trpc_error(response, 405, "METHOD_NOT_SUPPORTED")
    assert response.headers["allow"] == "GET"


@BOTH
@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
async def test_head_and_options_answer_without_a_body_or_a_stream(
    http: httpx.AsyncClient, world: World, path: str, method: str
) -> None:
    input_ = json.dumps(world.input_for(path))
    for url in (f"/trpc/{path}", world.sse_path(path)):
        async with asyncio.timeout(READ_S):
            response = await http.request(
                method, url, params={"input": input_}, headers={"authorization": auth(world, path)}
            )
        assert response.status_code < 500, (url, response.status_code)
        assert "event-stream" not in response.headers.get("content-type", "")
        if response.content:  # OPTIONS on an SSE route: refused as any other verb
            assert response.json()["error"]["data"]["code"] == "BAD_REQUEST", response.text


@BOTH
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_an_sse_stream_by_another_verb_is_refused(
    http: httpx.AsyncClient, world: World, path: str, method: str
) -> None:
    async with asyncio.timeout(READ_S):
        response = await http.request(
            method, world.sse_path(path), headers={"authorization": auth(world, path)}
        )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("paths", "code"),
    [
        (f"{STAFF},{CLIENT}", "BAD_REQUEST"),
        (f"{STAFF},{STAFF},{STAFF}", "BAD_REQUEST"),
        (f"{STAFF},liveShopping.getSession", "BAD_REQUEST"),
        (f"{STAFF},liveShopping.nothing", "NOT_FOUND"),
        (",".join([STAFF] * 500), "PAYLOAD_TOO_LARGE"),
        (f"{STAFF},", "BAD_REQUEST"),
    ],
    ids=["two subscriptions", "thrice", "with a query", "with an unknown", "500", "empty"],
)
@pytest.mark.parametrize("jsonl", [False, True], ids=["json", "jsonl"])
async def test_subscriptions_in_a_batch_are_refused_with_tRPC_errors(
    http: httpx.AsyncClient, world: World, paths: str, code: str, jsonl: bool
) -> None:
    inputs = json.dumps({str(i): world.input_for(STAFF) for i in range(paths.count(",") + 1)})
    headers = {"authorization": f"Bearer {world.staff_token}"}
    if jsonl:
        headers["trpc-accept"] = "application/jsonl"
    async with asyncio.timeout(READ_S):
        response = await http.get(
            f"/trpc/{paths}", params={"batch": "1", "input": inputs}, headers=headers
        )
    assert response.status_code < 500, response.text
    assert "event-stream" not in response.headers.get("content-type", "")
    codes = {error["data"]["code"] for error in _errors_in(response)}
    assert code in codes, response.text[:500]


def _errors_in(response: httpx.Response) -> list[dict[str, Any]]:
    """The tRPC errors of an answer: one, a batch of them, or JSON lines that hold them."""
    text = response.text
    if response.headers["content-type"].startswith("application/jsonl") or "\n" in text.strip():
        found = []
        for line in text.splitlines():
            found += [e for e in _dicts_in(json.loads(line)) if "message" in e and "data" in e]
        return found
    document = response.json()
    items = document if isinstance(document, list) else [document]
    return [item["error"] for item in items if "error" in item]


def _dicts_in(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _dicts_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _dicts_in(item)


# --- the path and the connection: raw HTTP -----------------------------------------------------


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


async def raw_request(server: Server, head: bytes, *, within: float = READ_S) -> RawAnswer:
    """Send `head` as is (no client normalises it) and read the answer: up to its end, or for
    an event stream that opened, up to its first frame. A hang fails."""
    host, port = server.base_url.removeprefix("http://").split(":")
    async with asyncio.timeout(within):
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(head)
            await writer.drain()
            status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode().splitlines()
            headers = {}
            for line in filter(None, lines):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "event-stream" in headers.get("content-type", ""):
                body = await reader.readuntil(b"\n\n")  # it opened: its first frame will do
            elif "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            else:
                body = await reader.read()
                if headers.get("transfer-encoding") == "chunked":
                    body = dechunked(body)
        finally:
            writer.close()
    return RawAnswer(int(status_line.split()[1]), headers, body)


def dechunked(body: bytes) -> bytes:
    whole = b""
    while body:
        size, _, body = body.partition(b"\r\n")
        length = int(size, 16)
        whole, body = whole + body[:length], body[length + 2 :]
    return whole


def get_head(target: str, *extra: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "host: 127.0.0.1", "connection: close", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


PATH_TRICKS = [
    "/trpc/liveShopping%2EonSessionEvent",
    "/trpc/liveShopping.onSessionEvent%00",
    "/trpc/liveShopping.onSessionEvent%20",
    "/trpc/liveShopping.onSessionEvent%2F",
    "/trpc/liveShopping%2FonSessionEvent",
    "/trpc/liveShopping.onSessionEvent/",
    "/trpc/liveShopping.onSessionEvent/..",
    "/trpc/..%2Fliveshopping.onSessionEvent",
    "/trpc/%2e%2e/healthz",
    "/trpc/LIVESHOPPING.ONSESSIONEVENT",
    "/trpc/liveShopping.onSessionEvent%ZZ",
    "/trpc/liveShopping.onSessionEvent%",
    "/trpc/%C0%AE%C0%AE",
    "/trpc/%FF%FE",
    "/trpc/%E2%80%AEliveShopping.onSessionEvent",
    "/trpc/liveShopping.onSessionEvent;x=1",
    "/trpc//liveShopping.onSessionEvent",
    "/api/sse/live-shopping/%31",
    "/api/sse/live-shopping/1%00",
    "/api/sse/live-shopping/-1",
    "/api/sse/live-shopping/0",
    "/api/sse/live-shopping/1.5",
    "/api/sse/live-shopping/9223372036854775808",
    "/api/sse/live-shopping/%EF%BC%91",
    "/api/sse/live-shopping/1/extra",
    "/api/sse/vip/live-shopping/a%2Fb",
    "/api/sse/vip/live-shopping/%00",
    "/api/sse/vip/live-shopping/%FF",
    "/api/sse/vip/live-shopping/" + "x" * 5_000,
    "/api/sse/vip/live-shopping/",
    "/api/sse/vip/live-shopping/%2e%2e",
    "/api/sse//live-shopping/1",
]


@pytest.mark.parametrize("target", PATH_TRICKS, ids=lambda t: t[:60])
async def test_percent_encoding_tricks_in_the_path_never_crash_or_hang(
    server: Server, world: World, target: str
) -> None:
    staff = target.startswith("/trpc/") or "/vip/" not in target
    token = world.staff_token if staff else world.client_token
    if target.startswith("/trpc/"):
        target += "?input=" + quote(json.dumps({"sessionId": world.session_id}))
    answer = await raw_request(
        server, get_head(target, f"authorization: Bearer {token}", "accept: text/event-stream")
    )
    assert answer.status < 500, answer
    if answer.status == 200:
        # Only a path that names the stream after decoding opens it, and then it is the stream.
        assert answer.headers["content-type"].startswith("text/event-stream"), answer
    else:
        assert answer.headers.get("content-type", "").startswith("application/json"), answer
        assert json.loads(answer.body), answer


@pytest.mark.parametrize(
    "target",
    [
        f"/trpc/{STAFF}",
        f"/trpc/{CLIENT}",
        "/api/sse/live-shopping/1",
        "/api/sse/vip/live-shopping/x",
    ],
)
async def test_a_websocket_upgrade_on_a_stream_is_refused(
    server: Server, world: World, target: str
) -> None:
    answer = await raw_request(
        server,
        get_head(
            target + "?input=" + quote(json.dumps({"sessionId": world.session_id})),
            "upgrade: websocket",
            "connection: Upgrade",
            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
            "sec-websocket-version: 13",
            f"authorization: Bearer {world.staff_token}",
        ).replace(b"connection: close\r\n", b""),
    )
    assert answer.status != 101, answer
    assert 400 <= answer.status < 500, answer


@pytest.mark.parametrize("name", ["input", "connectionParams", "ticket", "lastEventId"])
async def test_a_100_kb_query_is_refused_by_the_http_server_itself(
    server: Server, world: World, name: str
) -> None:
    # Past what uvicorn reads of a request line: its own 400, before the app sees anything.
    value = quote(json.dumps({"roomCode": "x" * 100_000}))
    answer = await raw_request(server, get_head(f"/trpc/{CLIENT}?{name}={value}"))
    assert answer.status == 400, answer


async def test_an_unknown_subscription_like_path_is_not_found_in_tRPC_shape(
    http: httpx.AsyncClient, world: World
) -> None:
    async with asyncio.timeout(READ_S):
        response = await http.get("/trpc/liveShopping.onNothing", params={"input": "{"})
    trpc_error(response, 404, "NOT_FOUND")


def test_the_server_log_holds_no_traceback_after_all_of_it(server: Server) -> None:
    log = server.log_text()
    assert "Traceback" not in log, log[-4000:]
