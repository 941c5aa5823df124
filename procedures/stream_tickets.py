"""What both createStreamTicket procedures answer (staff and client streams differ only in key)."""

from __future__ import annotations

from app.rpc.context import CallContext
from app.rpc.registry import Output


class StreamTicket(Output):
    ticket: str
    expires_at: int
    stream_url: str


def stream_ticket(ctx: CallContext, *, key: str, path: str) -> StreamTicket:
    """A 60-second ticket for the stream at `path`, bound to `key`; the caller checked access."""
    ticket, expires_at = ctx.services.tokens.issue_stream_ticket(ctx.actor, key)
    url = f"{ctx.base_url}{path}?ticket={ticket}"
    return StreamTicket(ticket=ticket, expires_at=expires_at, stream_url=url)
