"""tRPC subscriptions (`GET /trpc/<subscription>`, DESIGN.md 2.2) served by the stream core.

What is tRPC's here is only how the request says what it wants: the input (`?input=`, with
`lastEventId` in it once httpSubscriptionLink has seen an event), the `Last-Event-ID` header of
an EventSource that reconnects by itself (it wins over the input, as in @trpc/server), and the
credentials: the Authorization header, `?ticket=`, or `connectionParams` (httpSubscriptionLink's
`?connectionParams=<json>`, with `token` a bearer token or `ticket` a stream ticket).
The stream itself, its access rules, replay and framing, are app/events/sse.py's and
app/events/framing.py's.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar.types import Receive, Send

from app.events import sse
from app.events.framing import TrpcFraming
from app.events.wire import Wire
from app.rpc.dispatch import decode_params
from app.rpc.errors import ErrorCode, RpcError
from app.rpc.registry import Procedure, Subscribe
from app.runtime import Services

_connection_params = msgspec.json.Decoder(dict[str, str] | None)
_input_members = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encoder = msgspec.json.Encoder()
# What a `lastEventId` of a type no id has (a float, an object) stands for: an id that replay
# cannot serve, so the stream opens with a reset snapshot (DESIGN.md 5), as for "abc".
UNREADABLE_ID = "unreadable"
# With pings due every heartbeat, a client that hears nothing for this many heartbeats has lost
# its connection without being told (a dead peer, a proxy that dropped it): it reconnects.
INACTIVITY_HEARTBEATS = 3


def connection_params(raw: str | None) -> dict[str, str]:
    """httpSubscriptionLink's `connectionParams`: a JSON object of strings (PARSE_ERROR else),
    refused before the stream starts, as @trpc/server refuses it (getRequestInfo). JSON `null`
    is no params, as there."""
    if raw is None:
        return {}
    try:
        return _connection_params.decode(raw) or {}
    except (msgspec.DecodeError, RecursionError) as exc:
        raise RpcError(
            ErrorCode.PARSE_ERROR, f"connectionParams must be a JSON object of strings: {exc}"
        ) from None


@dataclass(frozen=True, slots=True)
class SubscriptionRequest:
    """What a tRPC subscription request says, read from its URL and headers."""

    raw_input: bytes | None  # `?input=`
    authorization: str | None = None  # the Authorization header
    ticket: str | None = None  # `?ticket=`
    last_event_id: str | None = None  # the Last-Event-ID header, else `?lastEventId=`
    connection_params: dict[str, str] = field(default_factory=dict)


def serve_subscription(
    services: Services,
    procedure: Procedure,
    request: SubscriptionRequest,
    receive: Receive,
    send: Send,
    wire: Wire | None = None,
) -> Awaitable[None]:
    """Streaming `procedure`'s events to one tRPC client (`wire`: see app/events/wire.py).

    Not a coroutine itself, so that no frame of it (nor the request it read) lives as long as
    the stream.
    """
    framing = _framing(procedure.name, INACTIVITY_HEARTBEATS * services.settings.heartbeat_ms)
    try:
        subscribe = _subscribe(procedure, request.raw_input)
    except RpcError as error:  # the input: an error of the call, inside the stream
        return sse.send_whole(send, framing.refusal(error))
    params = request.connection_params
    token = params.get("token")
    credentials = sse.Credentials(
        authorization=request.authorization or (f"Bearer {token}" if token else None),
        ticket=request.ticket or params.get("ticket"),
    )
    # EventSource's own reconnect keeps the URL it had (so the input's id is older) and sends
    # the newest id it saw as the header.
    last_event_id = request.last_event_id or subscribe.last_event_id
    return sse.serve(
        services, receive, send, subscribe.stream, framing, credentials, last_event_id, wire
    )


@functools.lru_cache(maxsize=64)
def _framing(path: str, inactivity_ms: int) -> TrpcFraming:
    """One framing per subscription and setting, shared by its streams (it holds no state)."""
    return TrpcFraming(path, inactivity_ms=inactivity_ms)


def _subscribe(procedure: Procedure, raw_input: bytes | None) -> Subscribe[Any]:
    """The stream the input names (RpcError if it names none).

    A malformed Last-Event-ID never refuses a stream (DESIGN.md 5), and the input's is no
    exception: one of a type no id has is left out of the input, and stands for an id that
    replay cannot serve.
    """
    opener = procedure.opener
    assert opener is not None
    try:
        return opener(decode_params(procedure, raw_input))
    except RpcError as error:
        if raw_input is None or not _is_about_last_event_id(error):
            raise
    subscribe = opener(decode_params(procedure, _without_last_event_id(raw_input)))
    return dataclasses.replace(subscribe, last_event_id=UNREADABLE_ID)


def _is_about_last_event_id(error: RpcError) -> bool:
    return error.code is ErrorCode.INVALID_PARAMS and any(
        issue.path == "$.lastEventId" for issue in error.issues or ()
    )


def _without_last_event_id(raw_input: bytes) -> bytes:
    try:
        members = _input_members.decode(raw_input)
    except (msgspec.DecodeError, RecursionError) as exc:  # msgspec: "nested too deeply"
        raise RpcError(ErrorCode.PARSE_ERROR, f"Params are not valid JSON: {exc}") from None
    members.pop("lastEventId", None)
    return _encoder.encode(members)
