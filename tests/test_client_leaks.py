"""Nothing a client receives carries cost, internal notes or credit data (DESIGN.md 3 and 5).

Two nets: a realistic session drives every vipPortalLiveShopping.* procedure and every client
projection in the outbox, and each body is searched for forbidden keys and for the secret
values themselves; and the client output types are walked statically, so a forbidden field
added to a client view fails here even before any test exercises it.

What an event changed (`change` in events, subject/before/after in timeline entries) is free
form, so the static walk cannot see into it: the keys a client may find there are listed
instead (CHANGE_KEYS), and every one the driven session produces must be on that list.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from sqlalchemy import select

import procedures  # noqa: F401 - importing registers every procedure
from app.config import Settings
from app.db.engine import Database
from app.db.models import SessionEvent
from app.domain.announce import ClientEvent
from app.domain.timeline import TimelineEntry
from app.domain.views import Change
from app.rpc.registry import REGISTRY, Kind
from tests.conftest import Rpc, RpcFailure

FORBIDDEN_KEY = re.compile(r"cost|cogs|internal|notes|credit|exposure|limit|margin", re.IGNORECASE)
CLIENT_NAMESPACE = "vipPortalLiveShopping"

# Secret values chosen so they cannot appear by accident (four-digit integer parts never occur
# in timestamps, UUID room codes or share tokens).
INTERNAL_NOTES = "Pays late; floor is cost plus 5%, do not go lower"
LATER_NOTES = "Asked twice for the staff discount: refuse politely"
COAT_COGS = "7319.53"
SCARF_COGS = "1873.41"
CREDIT_LIMIT = "1234567.89"
SECRETS = (INTERNAL_NOTES, LATER_NOTES, COAT_COGS, SCARF_COGS, CREDIT_LIMIT)

# Every key a client may find inside what an event changed; a new one needs a decision here.
CHANGE_KEYS = frozenset(
    {
        # subjects
        "cartItemId",
        "batchId",
        "productId",
        "productName",
        "isSample",
        "addedByRole",
        "orderId",
        "salesSheetId",
        # before and after
        "status",
        "quantity",
        "unitPrice",
        "overridePrice",
        "mergedInto",
        "title",
        "scheduledAt",
        "requestedAt",
        "accepted",
        "message",
        "holdsExpireAt",
        "minutes",
        "total",
        "shareUrl",
    }
)


def keys_in(value: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    """Every (path, key) of every object nested anywhere in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path, key
            yield from keys_in(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from keys_in(item, f"{path}[{index}]")


def forbidden_keys(value: Any) -> list[str]:
    return [f"{path}.{key}" for path, key in keys_in(value) if FORBIDDEN_KEY.search(key)]


def secrets_in(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def changed_keys(changes: list[dict[str, Any]]) -> set[str]:
    """The keys inside the subjects, befores and afters of events or timeline entries."""
    return {
        key
        for change in changes
        for part in ("subject", "before", "after")
        for key in (change.get(part) or {})
    }


class ClientChannel:
    """Calls client procedures with a CLIENT token and keeps every raw body it receives."""

    def __init__(self, rpc: Rpc, token: str) -> None:
        self.rpc = rpc
        self.token = token
        self.bodies: list[tuple[str, str]] = []

    @property
    def methods(self) -> set[str]:
        return {method for method, _ in self.bodies}

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": len(self.bodies) + 1, "method": method}
        if params is not None:
            body["params"] = params
        response = await self.rpc.post(body, self.token)
        self.bodies.append((method, response.text))
        payload = response.json()
        if "error" in payload:
            raise RpcFailure(response.status_code, payload["error"])
        return payload["result"]

    async def refused(self, method: str, params: dict[str, Any]) -> str:
        with pytest.raises(RpcFailure) as failure:
            await self.call(method, params)
        return failure.value.code


async def client_events(database_url: str, session_id: int) -> list[SessionEvent]:
    db = Database(database_url)
    try:
        async with db.read_sessions() as session:
            rows = await session.scalars(
                select(SessionEvent)
                .where(SessionEvent.session_id == session_id)
                .order_by(SessionEvent.seq)
            )
            return list(rows.all())
    finally:
        await db.dispose()


async def drive_a_session(rpc: Rpc) -> tuple[int, ClientChannel, list[str]]:
    """Highlight, adds by both sides, an override, a sample, a checkout request, conversion.

    Returns the session id, the client's channel with every body it received, and the sales
    sheet share URLs the client was given.
    """
    coat = await rpc.admin(
        "catalog.createProduct", {"name": "Merino Coat", "sku": "MC-1", "listPrice": "9000.00"}
    )
    scarf = await rpc.admin(
        "catalog.createProduct", {"name": "Silk Scarf", "sku": "SS-1", "listPrice": "2500.00"}
    )
    coat_batch = await rpc.admin(
        "catalog.createBatch",
        {"productId": coat["id"], "code": "MC-1-A", "onHandQty": "20", "unitCogs": COAT_COGS},
    )
    scarf_batch = await rpc.admin(
        "catalog.createBatch",
        {"productId": scarf["id"], "code": "SS-1-A", "onHandQty": "20", "unitCogs": SCARF_COGS},
    )
    spare_batch = await rpc.admin(
        "catalog.createBatch",
        {"productId": scarf["id"], "code": "SS-1-B", "onHandQty": "20", "unitCogs": SCARF_COGS},
    )
    ada = await rpc.staff(
        "clients.create",
        {"name": "Ada", "creditLimit": CREDIT_LIMIT, "priceAdjustmentPercent": "-10"},
    )
    created = await rpc.staff(
        "liveShopping.createSession",
        {"clientId": ada["id"], "title": "Autumn preview", "internalNotes": INTERNAL_NOTES},
    )
    session_id, room = created["sessionId"], created["roomCode"]
    client = ClientChannel(rpc, rpc.tokens.client(ada["id"]))

    await client.call("vipPortalLiveShopping.getActiveSession")
    await client.call("vipPortalLiveShopping.getSessionByRoomCode", {"roomCode": room})
    await client.call("vipPortalLiveShopping.searchInventory", {})
    await client.call("vipPortalLiveShopping.searchInventory", {"query": "Merino"})

    await rpc.staff(
        "liveShopping.highlightProduct", {"sessionId": session_id, "batchId": coat_batch["id"]}
    )
    cart = await rpc.staff(
        "liveShopping.addToCart",
        {"sessionId": session_id, "batchId": coat_batch["id"], "quantity": "2"},
    )
    host_line = cart["items"][0]["id"]
    cart = await client.call(
        "vipPortalLiveShopping.addToCart",
        {"roomCode": room, "batchId": scarf_batch["id"], "quantity": "1"},
    )
    scarf_line = next(x["id"] for x in cart["items"] if x["batchId"] == scarf_batch["id"])
    await client.call(
        "vipPortalLiveShopping.updateCartQuantity",
        {"roomCode": room, "cartItemId": scarf_line, "quantity": "1.5"},
    )
    cart = await client.call(
        "vipPortalLiveShopping.addToCart",
        {"roomCode": room, "batchId": spare_batch["id"], "quantity": "1"},
    )
    spare_line = next(x["id"] for x in cart["items"] if x["batchId"] == spare_batch["id"])
    await client.call(
        "vipPortalLiveShopping.removeFromCart", {"roomCode": room, "cartItemId": spare_line}
    )
    await rpc.staff(
        "liveShopping.setOverridePrice",
        {"sessionId": session_id, "productId": coat["id"], "overridePrice": "8500.00"},
    )
    await rpc.staff(
        "liveShopping.toggleCartItemSample",
        {"sessionId": session_id, "cartItemId": scarf_line, "isSample": True},
    )
    # Refusals are bodies too: their error data must not leak either.
    too_many = {"roomCode": room, "batchId": coat_batch["id"], "quantity": "500"}
    assert await client.refused("vipPortalLiveShopping.addToCart", too_many) == (
        "PRECONDITION_FAILED"
    )
    not_mine = {"roomCode": room, "cartItemId": host_line, "quantity": "1"}
    assert await client.refused("vipPortalLiveShopping.updateCartQuantity", not_mine) == (
        "FORBIDDEN"
    )
    await client.call("vipPortalLiveShopping.getSessionByRoomCode", {"roomCode": room})
    await client.call("vipPortalLiveShopping.createStreamTicket", {"roomCode": room})
    # Notes alone (staff only), then a new title with new notes (the client sees the title).
    await rpc.staff("liveShopping.updateSession", {"sessionId": session_id, "internalNotes": ""})
    await rpc.staff(
        "liveShopping.updateSession",
        {"sessionId": session_id, "title": "Private preview", "internalNotes": LATER_NOTES},
    )
    await rpc.staff("liveShopping.extendHolds", {"sessionId": session_id, "minutes": 20})
    await client.call("vipPortalLiveShopping.requestCheckout", {"roomCode": room})
    await rpc.staff(
        "liveShopping.respondToCheckout",
        {"sessionId": session_id, "accept": False, "message": "One more look at the belts"},
    )
    await client.call("vipPortalLiveShopping.requestCheckout", {"roomCode": room})
    await rpc.staff("liveShopping.respondToCheckout", {"sessionId": session_id, "accept": True})
    await client.call("vipPortalLiveShopping.getTimeline", {"roomCode": room, "limit": 3})

    await rpc.staff("liveShopping.checkCreditStatus", {"sessionId": session_id})
    sheet = await rpc.staff("liveShopping.generateSalesSheet", {"sessionId": session_id})
    ended = await rpc.staff(
        "liveShopping.endSession",
        {"sessionId": session_id, "convertToOrder": True, "generateSalesSheet": True},
    )
    assert ended["status"] == "CONVERTED"

    await client.call("vipPortalLiveShopping.getSessionByRoomCode", {"roomCode": room})
    await client.call("vipPortalLiveShopping.getActiveSession")
    await client.call("vipPortalLiveShopping.getTimeline", {"roomCode": room})
    assert await client.refused("vipPortalLiveShopping.requestCheckout", {"roomCode": room}) == (
        "PRECONDITION_FAILED"
    )
    return session_id, client, [sheet["shareUrl"], ended["shareUrl"]]


async def test_nothing_a_client_receives_carries_cost_notes_or_credit(rpc: Rpc) -> None:
    _, client, share_urls = await drive_a_session(rpc)
    every_client_procedure = {
        p.name
        for p in REGISTRY
        if p.namespace == CLIENT_NAMESPACE and p.kind is not Kind.SUBSCRIPTION  # not on /rpc
    }
    assert client.methods == every_client_procedure, "drive every client procedure here"

    for method, body in client.bodies:
        assert forbidden_keys(json.loads(body)) == [], method
        assert secrets_in(body) == [], method
    for url in share_urls:
        page = await rpc.http.get(url)
        assert page.status_code == 200
        assert "Merino Coat" in page.text
        assert secrets_in(page.text) == [], url

    # The scan sees real data: the client did get the session, its prices and the highlight.
    seen = "".join(body for _, body in client.bodies)
    assert "Autumn preview" in seen
    assert '"unitPrice":"8500.00"' in seen
    assert '"highlight":{' in seen
    # ...and, once they existed, its order and the sales sheet's absolute link (DESIGN 3).
    assert re.search(r'"orderId":\d+', seen)
    assert f'"shareUrl":"{share_urls[-1]}"' in seen
    assert share_urls[-1].startswith("http")
    # ...and the new depth: the deadline, the answer to its request, the renaming.
    assert '"holdsExpireAt":"' in seen
    assert '"message":"One more look at the belts"' in seen
    assert '"type":"SESSION_UPDATED"' in seen and '"Private preview"' in seen


async def test_the_clients_timeline_tells_the_story_without_what_staff_keep_to_themselves(
    rpc: Rpc,
) -> None:
    session_id, client, _ = await drive_a_session(rpc)
    session = await rpc.staff("liveShopping.getSession", {"sessionId": session_id})
    room = session["session"]["roomCode"]

    timeline = await client.call("vipPortalLiveShopping.getTimeline", {"roomCode": room})
    staff = await rpc.staff("liveShopping.getTimeline", {"sessionId": session_id})

    hidden = [
        e for e in staff["entries"] if e["seq"] not in {c["seq"] for c in timeline["entries"]}
    ]
    assert [(e["type"], e["after"]) for e in hidden] == [("SESSION_UPDATED", {"internalNotes": ""})]
    assert INTERNAL_NOTES in json.dumps(staff)  # the staff timeline does carry the secrets
    assert secrets_in(json.dumps(timeline)) == []
    assert forbidden_keys(timeline) == []
    assert changed_keys(timeline["entries"]) <= CHANGE_KEYS


async def test_no_client_projection_in_the_outbox_carries_cost_notes_or_credit(
    rpc: Rpc, settings: Settings
) -> None:
    session_id, _, _ = await drive_a_session(rpc)
    events = await client_events(settings.database_url, session_id)
    assert {e.type for e in events} >= {
        "SESSION_STATUS",
        "HIGHLIGHTED",
        "CART_UPDATED",
        "PRICE_CHANGED",
        "CHECKOUT_REQUESTED",
        "SESSION_CONVERTED",
        "SALES_SHEET_READY",
        "SESSION_UPDATED",
        "HOLDS_EXTENDED",
        "CHECKOUT_ANSWERED",
    }
    for event in events:
        projection = event.payload["client"]
        assert forbidden_keys(projection) == [], (event.seq, event.type)
        assert secrets_in(json.dumps(projection)) == [], (event.seq, event.type)
        assert changed_keys([projection["change"] or {}]) <= CHANGE_KEYS, event.type
    # A change of internal notes alone reaches the client as a staff-only event with no change.
    notes_only = [e for e in events if e.payload["client"].get("staffOnly")]
    assert [(e.type, e.payload["client"]["change"]) for e in notes_only] == [
        ("SESSION_UPDATED", None)
    ]

    # The projections are real snapshots, and the staff payloads of the same events do carry
    # the secrets, so the search above would find a leak.
    assert any(e.payload["client"]["cart"]["items"] for e in events)
    assert any(e.payload["client"]["session"]["shareUrl"] for e in events)
    assert any(e.payload["client"]["session"]["orderId"] for e in events)
    staff = json.dumps([e.payload["staff"] for e in events])
    assert INTERNAL_NOTES in staff
    assert COAT_COGS in staff


# --- static: the client output types themselves --------------------------------------------


# The free-form parts a client type may hold: what an event changed. Their keys are checked on
# real data instead (CHANGE_KEYS).
FREE_FORM = {
    (Change, "subject"),
    (Change, "before"),
    (Change, "after"),
    (TimelineEntry, "subject"),
    (TimelineEntry, "before"),
    (TimelineEntry, "after"),
}


def field_names(tp: Any) -> Iterator[str]:
    """Every field name (Python and wire) reachable from a type, failing on untyped parts."""
    seen: set[type] = set()

    def walk(info: msgspec.inspect.Type) -> Iterator[str]:
        if isinstance(info, msgspec.inspect.StructType):
            if info.cls in seen:
                return
            seen.add(info.cls)
            for f in info.fields:
                yield f.name
                yield f.encode_name
                if (info.cls, f.name) not in FREE_FORM:
                    yield from walk(f.type)
        elif isinstance(info, msgspec.inspect.UnionType):
            for member in info.types:
                yield from walk(member)
        elif isinstance(
            info,
            msgspec.inspect.ListType | msgspec.inspect.SetType | msgspec.inspect.VarTupleType,
        ):
            yield from walk(info.item_type)
        elif isinstance(info, msgspec.inspect.AnyType | msgspec.inspect.DictType):
            # A free-form part could carry anything; a client type must say what it holds.
            raise AssertionError(f"untyped part in a client type: {info}")

    yield from walk(msgspec.inspect.type_info(tp))


CLIENT_OUTPUTS = {p.name: p.output_type for p in REGISTRY if p.namespace == CLIENT_NAMESPACE}
CLIENT_OUTPUTS["outbox client projection"] = ClientEvent


@pytest.mark.parametrize("name", sorted(CLIENT_OUTPUTS))
def test_no_client_output_type_declares_a_forbidden_field(name: str) -> None:
    names = set(field_names(CLIENT_OUTPUTS[name]))
    assert names, "the walk found no fields at all"
    assert sorted(n for n in names if FORBIDDEN_KEY.search(n)) == []


def test_the_static_walk_finds_forbidden_fields_in_staff_types() -> None:
    staff = REGISTRY.get("liveShopping.getSession")
    credit = REGISTRY.get("liveShopping.checkCreditStatus")
    assert staff is not None and credit is not None
    assert {"internal_notes", "unitCogs"} <= set(field_names(staff.output_type))
    assert "creditLimit" in set(field_names(credit.output_type))
