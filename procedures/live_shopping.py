"""`liveShopping.*`: the staff console of a live session."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import msgspec

from app.db.models import SessionStatus
from app.domain import live_shopping as use
from app.domain.actors import STAFF_ROLES
from app.domain.credit import CreditLevel
from app.domain.inventory import search_inventory
from app.domain.sessions import SessionFilter, list_sessions, session_for_staff
from app.domain.timeline import Page, Timeline, staff_timeline
from app.domain.views import Cart, SessionView
from app.events.streams import staff_stream_key, staff_stream_path
from app.rpc.context import CallContext
from app.rpc.paging import Limit, Offset
from app.rpc.registry import Feature, Input, Namespace, Output
from app.rpc.types import AwareDateTime, Id, MoneyIn, QuantityIn
from procedures.stream_tickets import StreamTicket, stream_ticket

ns = Namespace("liveShopping", feature=Feature.LIVE_SHOPPING)

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Notes = Annotated[str, msgspec.Meta(max_length=10_000)]
Query = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
PaymentTerms = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


def limits(ctx: CallContext) -> use.Limits:
    return use.Limits(
        max_cart_items=ctx.settings.max_cart_items,
        session_timeout_mins=ctx.settings.session_timeout_mins,
    )


class CreateSession(Input):
    client_id: Id
    title: Title | None = None
    scheduled_at: AwareDateTime | None = None
    internal_notes: Notes | None = None


class SessionCreated(Output):
    session_id: int
    room_code: str


class SessionRef(Input):
    session_id: Id


class ListSessions(Input):
    status: SessionStatus | None = None
    client_id: Id | None = None
    host_user_id: Id | None = None
    created_from: AwareDateTime | None = None
    created_to: AwareDateTime | None = None
    limit: Limit = 50
    offset: Offset = 0


class SessionWithCart(Output):
    session: SessionView
    cart: Cart


class SessionOnly(Output):
    session: SessionView


class UpdateSession(Input):
    """Omitted fields stay as they are; null clears a title or the notes."""

    session_id: Id
    title: Title | msgspec.UnsetType | None = msgspec.UNSET
    scheduled_at: AwareDateTime | msgspec.UnsetType = msgspec.UNSET
    internal_notes: Notes | msgspec.UnsetType | None = msgspec.UNSET


class ExtendHolds(Input):
    session_id: Id
    # Bounded again by the session's own timeout (1 to LIVE_SHOPPING_SESSION_TIMEOUT_MINS).
    minutes: Annotated[int, msgspec.Meta(ge=1, le=10_080)]


class RespondToCheckout(Input):
    session_id: Id
    accept: bool
    message: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class GetTimeline(Input):
    session_id: Id
    cursor: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)] = 0
    limit: Limit = 50


class UpdateSessionStatus(Input):
    session_id: Id
    status: SessionStatus


class AddToCart(Input):
    session_id: Id
    batch_id: Id
    quantity: QuantityIn
    is_sample: bool = False


class UpdateCartQuantity(Input):
    session_id: Id
    cart_item_id: Id
    quantity: QuantityIn


class RemoveFromCart(Input):
    session_id: Id
    cart_item_id: Id


class SetOverridePrice(Input):
    session_id: Id
    product_id: Id
    override_price: MoneyIn | None


class HighlightProduct(Input):
    session_id: Id
    batch_id: Id | None


class ToggleCartItemSample(Input):
    session_id: Id
    cart_item_id: Id
    is_sample: bool


class CreditStatusOut(Output):
    credit_limit: Decimal | None
    open_orders: Decimal
    cart_total: Decimal
    exposure: Decimal
    available: Decimal | None
    utilization: Decimal | None
    level: CreditLevel


class SalesSheetOut(Output):
    sales_sheet_id: int
    share_url: str


class EndSession(Input):
    session_id: Id
    convert_to_order: bool
    bypass_credit_check: bool = False
    generate_sales_sheet: bool = False
    payment_terms: PaymentTerms | None = None


class EndSessionOut(Output, omit_defaults=True):
    status: SessionStatus
    order_id: int | None = None
    sales_sheet_id: int | None = None
    share_url: str | None = None


class SearchInventory(Input):
    query: Query | None = None
    limit: Limit = 50


class StockOut(Output):
    batch_id: int
    product_id: int
    product_name: str
    sku: str
    code: str
    available: Decimal
    list_price: Decimal
    unit_cogs: Decimal


@ns.mutation("createSession", roles=STAFF_ROLES)
async def create_session(ctx: CallContext, params: CreateSession) -> SessionCreated:
    """Open a session for a client: SCHEDULED when scheduledAt is in the future, else ACTIVE."""
    live = await use.open_session(
        ctx.db,
        ctx.actor,
        client_id=params.client_id,
        title=params.title,
        scheduled_at=params.scheduled_at,
        internal_notes=params.internal_notes,
        limits=limits(ctx),
    )
    return SessionCreated(session_id=live.id, room_code=live.room_code)


@ns.query("listSessions", roles=STAFF_ROLES)
async def list_sessions_(ctx: CallContext, params: ListSessions) -> list[SessionView]:
    """Sessions, newest first, filtered by status, client, host and creation time."""
    filters = SessionFilter(
        status=params.status,
        client_id=params.client_id,
        host_user_id=params.host_user_id,
        created_from=params.created_from,
        created_to=params.created_to,
    )
    rows = await list_sessions(ctx.db, filters, limit=params.limit, offset=params.offset)
    return await use.sessions_page(ctx.db, rows)


@ns.query("getSession", roles=STAFF_ROLES)
async def get_session(ctx: CallContext, params: SessionRef) -> SessionWithCart:
    """A session with its cart and totals."""
    session, cart = await use.get_for_staff(ctx.db, ctx.actor, params.session_id)
    return SessionWithCart(session=session, cart=cart)


@ns.mutation("updateSessionStatus", roles=STAFF_ROLES)
async def update_session_status(ctx: CallContext, params: UpdateSessionStatus) -> SessionOnly:
    """Start, pause, resume, end or cancel (guarded by the status machine)."""
    session = await use.set_status(ctx.db, ctx.actor, params.session_id, params.status)
    return SessionOnly(session=session)


@ns.mutation("cancelSession", roles=STAFF_ROLES)
async def cancel_session(ctx: CallContext, params: SessionRef) -> SessionOnly:
    """Cancel a session; its holds are released."""
    return SessionOnly(session=await use.cancel_session(ctx.db, ctx.actor, params.session_id))


@ns.mutation("addToCart", roles=STAFF_ROLES)
async def add_to_cart(ctx: CallContext, params: AddToCart) -> Cart:
    """Add a batch to the cart, within net availability.

    Merges into the host's line of that batch and sample flag, never into a client's line.
    """
    return await use.staff_add_to_cart(
        ctx.db,
        ctx.actor,
        params.session_id,
        batch_id=params.batch_id,
        quantity=params.quantity,
        is_sample=params.is_sample,
        limits=limits(ctx),
    )


@ns.mutation("updateCartQuantity", roles=STAFF_ROLES)
async def update_cart_quantity(ctx: CallContext, params: UpdateCartQuantity) -> Cart:
    """Set a line's quantity, within net availability."""
    return await use.staff_update_quantity(
        ctx.db,
        ctx.actor,
        params.session_id,
        cart_item_id=params.cart_item_id,
        quantity=params.quantity,
    )


@ns.mutation("removeFromCart", roles=STAFF_ROLES)
async def remove_from_cart(ctx: CallContext, params: RemoveFromCart) -> Cart:
    """Remove a line; its hold is released."""
    return await use.staff_remove_from_cart(
        ctx.db, ctx.actor, params.session_id, cart_item_id=params.cart_item_id
    )


@ns.mutation("setOverridePrice", roles=STAFF_ROLES)
async def set_override_price(ctx: CallContext, params: SetOverridePrice) -> Cart:
    """Set a session price for a product (null clears) and re-price its lines."""
    return await use.set_override_price(
        ctx.db,
        ctx.actor,
        params.session_id,
        product_id=params.product_id,
        price=params.override_price,
    )


@ns.mutation("highlightProduct", roles=STAFF_ROLES)
async def highlight_product(ctx: CallContext, params: HighlightProduct) -> Cart:
    """Showcase a batch to the client (null clears); it need not be in the cart."""
    return await use.highlight_product(
        ctx.db, ctx.actor, params.session_id, batch_id=params.batch_id
    )


@ns.mutation("toggleCartItemSample", roles=STAFF_ROLES)
async def toggle_cart_item_sample(ctx: CallContext, params: ToggleCartItemSample) -> Cart:
    """Mark a line as a sample (held, not billed) or back.

    A line that then matches another (same batch, side and flag) merges into it.
    """
    return await use.toggle_sample(
        ctx.db,
        ctx.actor,
        params.session_id,
        cart_item_id=params.cart_item_id,
        is_sample=params.is_sample,
    )


@ns.query("checkCreditStatus", roles=STAFF_ROLES)
async def check_credit_status(ctx: CallContext, params: SessionRef) -> CreditStatusOut:
    """Client credit: limit, exposure (open unpaid orders + this cart), level."""
    status = await use.check_credit(ctx.db, ctx.actor, params.session_id)
    return CreditStatusOut(
        credit_limit=status.credit_limit,
        open_orders=status.open_orders,
        cart_total=status.cart_total,
        exposure=status.exposure,
        available=status.available,
        utilization=status.utilization,
        level=status.level,
    )


@ns.mutation("generateSalesSheet", roles=STAFF_ROLES)
async def generate_sales_sheet(ctx: CallContext, params: SessionRef) -> SalesSheetOut:
    """Snapshot the cart as a sales sheet the client can open at its share link."""
    sheet = await use.make_sales_sheet(ctx.db, ctx.actor, params.session_id, base_url=ctx.base_url)
    return SalesSheetOut(sales_sheet_id=sheet.id, share_url=sheet.share_url)


@ns.mutation("endSession", roles=STAFF_ROLES)
async def end_session(ctx: CallContext, params: EndSession) -> EndSessionOut:
    """End the session, optionally converting its cart into an order in one transaction."""
    done = await use.end_session(
        ctx.db,
        ctx.actor,
        params.session_id,
        convert_to_order=params.convert_to_order,
        bypass_credit_check=params.bypass_credit_check,
        payment_terms=params.payment_terms,
        with_sales_sheet=params.generate_sales_sheet,
        base_url=ctx.base_url,
    )
    sheet = done.sales_sheet
    return EndSessionOut(
        status=done.status,
        order_id=done.order_id,
        sales_sheet_id=sheet.id if sheet else None,
        share_url=sheet.share_url if sheet else None,
    )


@ns.query("searchInventory", roles=STAFF_ROLES)
async def search_inventory_(ctx: CallContext, params: SearchInventory) -> list[StockOut]:
    """Batches matching a product name, SKU or batch code, with net availability and cost."""
    rows = await search_inventory(ctx.db, query=params.query, limit=params.limit)
    return [
        StockOut(
            batch_id=x.batch.id,
            product_id=x.product.id,
            product_name=x.product.name,
            sku=x.product.sku,
            code=x.batch.code,
            available=x.available,
            list_price=x.product.list_price,
            unit_cogs=x.batch.unit_cogs,
        )
        for x in rows
    ]


@ns.query("createStreamTicket", roles=STAFF_ROLES)
async def create_stream_ticket(ctx: CallContext, params: SessionRef) -> StreamTicket:
    """A 60-second ticket that opens this session's staff stream (`?ticket=`), for EventSource."""
    await session_for_staff(ctx.db, ctx.actor, params.session_id)
    return stream_ticket(
        ctx,
        key=staff_stream_key(params.session_id),
        path=staff_stream_path(params.session_id),
    )


@ns.mutation("updateSession", roles=STAFF_ROLES)
async def update_session(ctx: CallContext, params: UpdateSession) -> SessionOnly:
    """Change the title, the schedule (only while SCHEDULED) or the internal notes."""
    edit = use.SessionEdit(
        title=params.title,
        scheduled_at=params.scheduled_at,
        internal_notes=params.internal_notes,
    )
    return SessionOnly(session=await use.update_session(ctx.db, ctx.actor, params.session_id, edit))


@ns.mutation("extendHolds", roles=STAFF_ROLES)
async def extend_holds(ctx: CallContext, params: ExtendHolds) -> SessionOnly:
    """Push the hold deadline to max(deadline, now) + minutes (1 to the session's timeout)."""
    session = await use.extend_holds(ctx.db, ctx.actor, params.session_id, minutes=params.minutes)
    return SessionOnly(session=session)


@ns.mutation("respondToCheckout", roles=STAFF_ROLES)
async def respond_to_checkout(ctx: CallContext, params: RespondToCheckout) -> SessionOnly:
    """Accept or decline the client's pending checkout request, once, with a message."""
    session = await use.respond_to_checkout(
        ctx.db, ctx.actor, params.session_id, accept=params.accept, message=params.message
    )
    return SessionOnly(session=session)


@ns.query("getTimeline", roles=STAFF_ROLES)
async def get_timeline(ctx: CallContext, params: GetTimeline) -> Timeline:
    """Who did what when, oldest first, with before and after for quantities and prices."""
    page = Page(cursor=params.cursor, limit=params.limit)
    return await staff_timeline(ctx.db, ctx.actor, params.session_id, page)
