"""`clients.*`: VIP clients with credit limit and price adjustment (staff)."""

from __future__ import annotations

from decimal import Decimal

from app.db.models import Client
from app.domain import clients
from app.domain.actors import STAFF_ROLES
from app.rpc.context import CallContext
from app.rpc.paging import Limit, Offset
from app.rpc.registry import Input, Namespace, Output
from app.rpc.types import Id, IdResult, MoneyIn, Name, PercentIn

ns = Namespace("clients")


class ClientView(Output):
    id: int
    name: str
    credit_limit: Decimal | None
    price_adjustment_percent: Decimal

    @classmethod
    def of(cls, c: Client) -> ClientView:
        return cls(
            id=c.id,
            name=c.name,
            credit_limit=c.credit_limit,
            price_adjustment_percent=c.price_adjustment_percent,
        )


class CreateClient(Input):
    name: Name
    credit_limit: MoneyIn | None = None
    price_adjustment_percent: PercentIn = Decimal(0)


class UpdateClient(Input):
    client_id: Id
    name: Name | None = None
    credit_limit: MoneyIn | None = None
    clear_credit_limit: bool = False
    price_adjustment_percent: PercentIn | None = None


class GetClient(Input):
    client_id: Id


class ListClients(Input):
    limit: Limit = 50
    offset: Offset = 0


@ns.mutation("create", roles=STAFF_ROLES)
async def create_client(ctx: CallContext, params: CreateClient) -> IdResult:
    """Register a VIP client. A null credit limit means unlimited."""
    client = await clients.create_client(
        ctx.db,
        name=params.name,
        credit_limit=params.credit_limit,
        price_adjustment_percent=params.price_adjustment_percent,
    )
    return IdResult(id=client.id)


@ns.mutation("update", roles=STAFF_ROLES)
async def update_client(ctx: CallContext, params: UpdateClient) -> ClientView:
    """Change a client's name, credit limit (or clear it) or price adjustment."""
    client = await clients.update_client(
        ctx.db,
        params.client_id,
        name=params.name,
        credit_limit=params.credit_limit,
        clear_credit_limit=params.clear_credit_limit,
        price_adjustment_percent=params.price_adjustment_percent,
    )
    return ClientView.of(client)


@ns.query("get", roles=STAFF_ROLES)
async def get_client(ctx: CallContext, params: GetClient) -> ClientView:
    """One client."""
    return ClientView.of(await clients.get_client(ctx.db, params.client_id))


@ns.query("list", roles=STAFF_ROLES)
async def list_clients(ctx: CallContext, params: ListClients) -> list[ClientView]:
    """Clients by id."""
    rows = await clients.list_clients(ctx.db, limit=params.limit, offset=params.offset)
    return [ClientView.of(c) for c in rows]
