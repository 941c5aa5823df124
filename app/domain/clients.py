"""VIP clients: credit limit and price adjustment."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Client
from app.domain.errors import NotFound


async def get_client(session: AsyncSession, client_id: int) -> Client:
    client = await session.get(Client, client_id)
    if client is None:
        raise NotFound("Client", client_id)
    return client


async def create_client(
    session: AsyncSession,
    *,
    name: str,
    credit_limit: Decimal | None,
    price_adjustment_percent: Decimal,
) -> Client:
    client = Client(
        name=name, credit_limit=credit_limit, price_adjustment_percent=price_adjustment_percent
    )
    session.add(client)
    await session.flush()
    return client


async def update_client(
    session: AsyncSession,
    client_id: int,
    *,
    name: str | None = None,
    credit_limit: Decimal | None = None,
    clear_credit_limit: bool = False,
    price_adjustment_percent: Decimal | None = None,
) -> Client:
    client = await get_client(session, client_id)
    if name is not None:
        client.name = name
    if clear_credit_limit:
        client.credit_limit = None
    elif credit_limit is not None:
        client.credit_limit = credit_limit
    if price_adjustment_percent is not None:
        client.price_adjustment_percent = price_adjustment_percent
    await session.flush()
    return client


async def list_clients(session: AsyncSession, *, limit: int, offset: int) -> Sequence[Client]:
    stmt = select(Client).order_by(Client.id).limit(limit).offset(offset)
    return (await session.scalars(stmt)).all()
