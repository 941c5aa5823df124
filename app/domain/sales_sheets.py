"""Sales sheets: a frozen recap of a session showing list price, session price and discount."""

from __future__ import annotations

import secrets
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, cast

from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Client, LiveSession, SalesSheet
from app.domain.actors import Actor
from app.domain.cart import client_cart
from app.domain.decimals import CENT
from app.domain.errors import InvalidInput, NotFound
from app.domain.pricing import line_subtotal
from app.domain.sessions import utcnow

# The longest link the share_url column keeps.
SHARE_URL_MAX_LENGTH = cast(String, SalesSheet.__table__.c.share_url.type).length or 0


def share_link(base_url: str, token: str) -> str:
    """The absolute link of a sheet (the page is served at /sales-sheets/{token})."""
    link = f"{base_url}/sales-sheets/{token}"
    if len(link) > SHARE_URL_MAX_LENGTH:
        # Only an absurd Host header gets here; refused rather than failing at the database.
        raise InvalidInput(f"The host name is too long for a share link ({len(link)} characters)")
    return link


async def generate_sales_sheet(
    db: AsyncSession, actor: Actor, live: LiveSession, *, base_url: str
) -> SalesSheet:
    """Snapshot the cart as the client sees it, with the discount from retail per line.

    The absolute share link is made here, from the base URL of the request that made the
    sheet, and kept with it: the room view shows the link that was handed out.
    """
    cart = await client_cart(db, live.id)
    client = await db.get(Client, live.client_id)
    token = secrets.token_urlsafe(32)
    lines: list[dict[str, Any]] = []
    list_total = Decimal(0)
    session_total = Decimal(0)
    for item in cart.items:
        # A sample is given, not sold: 0.00 at list price too, so the lines add up to both
        # totals as they do on the order.
        list_subtotal = line_subtotal(item.quantity, item.list_price, is_sample=item.is_sample)
        list_total += list_subtotal
        session_total += item.subtotal
        lines.append(
            {
                "productName": item.product_name,
                "batchCode": item.batch_code,
                "quantity": str(item.quantity),
                "listPrice": str(item.list_price),
                "sessionPrice": str(item.unit_price),
                "discountPerUnit": str(item.list_price - item.unit_price),
                "discountPercent": _percent(item.list_price - item.unit_price, item.list_price),
                "listSubtotal": str(list_subtotal),
                "subtotal": str(item.subtotal),
                "isSample": item.is_sample,
            }
        )
    snapshot = {
        "sessionId": live.id,
        "title": live.title,
        "clientName": client.name if client else "",
        "generatedAt": utcnow().isoformat(),
        "lines": lines,
        "listTotal": str(list_total),
        "total": str(session_total),
        "discountTotal": str(list_total - session_total),
        "discountPercent": _percent(list_total - session_total, list_total),
    }
    sheet = SalesSheet(
        session_id=live.id,
        token=token,
        share_url=share_link(base_url, token),
        snapshot=snapshot,
        created_by_user_id=actor.user_id,
    )
    db.add(sheet)
    await db.flush()
    return sheet


def _percent(part: Decimal, whole: Decimal) -> str:
    if whole == 0:
        return "0.00"
    # Half-up like every other rounding shown to a client (the default would round half-even).
    return str((part * 100 / whole).quantize(CENT, rounding=ROUND_HALF_UP))


async def sales_sheet_by_token(db: AsyncSession, token: str) -> SalesSheet:
    sheet = await db.scalar(select(SalesSheet).where(SalesSheet.token == token))
    if sheet is None:
        raise NotFound("Sales sheet", "for that link")
    return sheet
