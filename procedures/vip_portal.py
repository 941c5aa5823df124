"""`vipPortalLiveShopping.*`: what a VIP client can do in its own sessions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import msgspec

from app.domain import live_shopping as use
from app.domain.actors import Role
from app.domain.inventory import search_inventory
from app.domain.sessions import session_for_client
from app.domain.timeline import Page, Timeline, client_timeline
from app.domain.views import ClientCart, ClientSessionView
from app.events.streams import client_stream_key, client_stream_path
from app.rpc.context import CallContext
from app.rpc.paging import Limit
from app.rpc.registry import Feature, Input, Namespace, NoInput, Output
from app.rpc.types import Id, QuantityIn
from procedures.stream_tickets import StreamTicket, stream_ticket

ns = Namespace("vipPortalLiveShopping", feature=Feature.LIVE_SHOPPING)
CLIENT = [Role.CLIENT]

RoomCode = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Query = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class RoomRef(Input):
    room_code: RoomCode


class ActiveSession(Output):
    session: ClientSessionView | None


class ClientSessionWithCart(Output):
    session: ClientSessionView
    cart: ClientCart


class ClientAddToCart(Input):
    room_code: RoomCode
    batch_id: Id
    quantity: QuantityIn


class ClientUpdateCartQuantity(Input):
    room_code: RoomCode
    cart_item_id: Id
    quantity: QuantityIn


class ClientRemoveFromCart(Input):
    room_code: RoomCode
    cart_item_id: Id


class CheckoutRequested(Output):
    requested_at: datetime


class ClientGetTimeline(Input):
    room_code: RoomCode
    cursor: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)] = 0
    limit: Limit = 50


class ClientSearchInventory(Input):
    query: Query | None = None
    limit: Limit = 50


class ClientStock(Output):
    batch_id: int
    product_id: int
    product_name: str
    code: str
    available: Decimal
    list_price: Decimal


@ns.query("getActiveSession", roles=CLIENT)
async def get_active_session(ctx: CallContext, params: NoInput) -> ActiveSession:
    """The client's newest open session, or null."""
    return ActiveSession(session=await use.client_active_session(ctx.db, ctx.actor))


@ns.query("getSessionByRoomCode", roles=CLIENT)
async def get_session_by_room_code(ctx: CallContext, params: RoomRef) -> ClientSessionWithCart:
    """Join a session by its room code (only the client's own)."""
    session, cart = await use.client_join(ctx.db, ctx.actor, params.room_code)
    return ClientSessionWithCart(session=session, cart=cart)


@ns.mutation("addToCart", roles=CLIENT)
async def add_to_cart(ctx: CallContext, params: ClientAddToCart) -> ClientCart:
    """Add a batch to the shared cart while the session is ACTIVE.

    Merges only into the client's own line of that batch, never into the host's.
    """
    return await use.client_add_to_cart(
        ctx.db,
        ctx.actor,
        params.room_code,
        batch_id=params.batch_id,
        quantity=params.quantity,
        limits=use.Limits(max_cart_items=ctx.settings.max_cart_items),
    )


@ns.mutation("updateCartQuantity", roles=CLIENT)
async def update_cart_quantity(ctx: CallContext, params: ClientUpdateCartQuantity) -> ClientCart:
    """Change the quantity of a line the client added."""
    return await use.client_update_quantity(
        ctx.db,
        ctx.actor,
        params.room_code,
        cart_item_id=params.cart_item_id,
        quantity=params.quantity,
    )


@ns.mutation("removeFromCart", roles=CLIENT)
async def remove_from_cart(ctx: CallContext, params: ClientRemoveFromCart) -> ClientCart:
    """Remove a line the client added."""
    return await use.client_remove_from_cart(
        ctx.db, ctx.actor, params.room_code, cart_item_id=params.cart_item_id
    )


@ns.mutation("requestCheckout", roles=CLIENT)
async def request_checkout(ctx: CallContext, params: RoomRef) -> CheckoutRequested:
    """Ask the host to convert the cart (not empty) into an order.

    Asking again while the request is pending changes nothing and returns its time.
    """
    return CheckoutRequested(
        requested_at=await use.request_checkout(ctx.db, ctx.actor, params.room_code)
    )


@ns.query("searchInventory", roles=CLIENT)
async def search_inventory_(ctx: CallContext, params: ClientSearchInventory) -> list[ClientStock]:
    """Products and batches with what is free to buy; no cost or internal fields."""
    rows = await search_inventory(ctx.db, query=params.query, limit=params.limit)
    return [
        ClientStock(
            batch_id=x.batch.id,
            product_id=x.product.id,
            product_name=x.product.name,
            code=x.batch.code,
            available=max(x.available, Decimal(0)),
            list_price=x.product.list_price,
        )
        for x in rows
    ]


@ns.query("createStreamTicket", roles=CLIENT)
async def create_stream_ticket(ctx: CallContext, params: RoomRef) -> StreamTicket:
    """A 60-second ticket that opens this room's client stream (`?ticket=`), for EventSource."""
    await session_for_client(ctx.db, ctx.actor, params.room_code)
    return stream_ticket(
        ctx,
        key=client_stream_key(params.room_code),
        path=client_stream_path(params.room_code),
    )


@ns.query("getTimeline", roles=CLIENT)
async def get_timeline(ctx: CallContext, params: ClientGetTimeline) -> Timeline:
    """The session's story as the client may see it: no notes, cost or credit."""
    page = Page(cursor=params.cursor, limit=params.limit)
    return await client_timeline(ctx.db, ctx.actor, params.room_code, page)
