"""The two subscriptions (DESIGN.md 2.2): a live session's events for staff and for its client,
served by app/events as the SSE routes of DESIGN.md 5 serve them, in tRPC's SSE framing.

Each event's data is typed per event type (app/events/schema.py): `SessionEvent` for staff,
`RoomEvent` for the client, each a union of Structs told apart by their `type`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from app.domain.actors import STAFF_ROLES, Role
from app.events.schema import RoomEvent, SessionEvent
from app.events.streams import client_stream, staff_stream
from app.rpc.registry import Feature, Input, Namespace, Subscribe
from app.rpc.types import Id

staff = Namespace("liveShopping", feature=Feature.LIVE_SHOPPING)
client = Namespace("vipPortalLiveShopping", feature=Feature.LIVE_SHOPPING)

RoomCode = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
# The id of the last event the caller has, as the stream sent it (`id:`); httpSubscriptionLink
# puts it here on reconnect. Any value is taken: one replay cannot serve gets a reset snapshot.
LastEventId = str | int | None


def _given(last_event_id: str | int | None) -> str | None:
    return None if last_event_id is None else str(last_event_id)


class SessionEvents(Input):
    session_id: Id
    last_event_id: LastEventId = None


class RoomEvents(Input):
    room_code: RoomCode
    last_event_id: LastEventId = None


@staff.subscription("onSessionEvent", roles=STAFF_ROLES)
def on_session_event(params: SessionEvents) -> Subscribe[SessionEvent]:
    """Every event of a session, in full (a snapshot first, or a replay after lastEventId)."""
    return Subscribe(staff_stream(params.session_id), _given(params.last_event_id))


@client.subscription("onRoomEvent", roles=[Role.CLIENT])
def on_room_event(params: RoomEvents) -> Subscribe[RoomEvent]:
    """Every event of the room's session as its client sees it (no cost, notes or credit)."""
    return Subscribe(client_stream(params.room_code), _given(params.last_event_id))
