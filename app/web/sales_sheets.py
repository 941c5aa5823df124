"""The client-facing, printable sales sheet at its unguessable share link."""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request, Response, get

from app.domain.errors import NotFound
from app.domain.sales_sheets import sales_sheet_by_token
from app.runtime import Services

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:56rem;color:#222}
table{border-collapse:collapse;width:100%}th,td{padding:.4rem .6rem;border-bottom:1px solid #ddd}
td.n,th.n{text-align:right}tfoot td{font-weight:600}.muted{color:#777}
@media print{body{margin:0}}
"""


@get("/sales-sheets/{token:str}")
async def sales_sheet_page(request: Request[Any, Any, Any]) -> Response[str]:
    services: Services = request.app.state.services
    if not services.settings.live_shopping_enabled:
        # Sales sheets are part of live shopping: with the feature off no link opens one, and
        # the page does not tell a real link from a made-up one.
        return _not_found()
    token: str = request.path_params["token"]
    async with services.db.read_sessions() as db:
        try:
            sheet = await sales_sheet_by_token(db, token[:64])
        except NotFound:
            return _not_found()
    return Response(
        render(sheet.snapshot),
        media_type="text/html",
        headers={"cache-control": "private, no-store", "referrer-policy": "no-referrer"},
    )


def _not_found() -> Response[str]:
    return Response(
        _page("Not found", "<p>This sales sheet link is not valid.</p>"),
        status_code=404,
        media_type="text/html",
    )


def render(snapshot: dict[str, Any]) -> str:
    rows = "".join(
        "<tr><td>{name}{sample}<div class=muted>{code}</div></td><td class=n>{qty}</td>"
        "<td class=n>{list}</td><td class=n>{price}</td><td class=n>{disc} ({pct}%)</td>"
        "<td class=n>{sub}</td></tr>".format(
            name=escape(line["productName"]),
            sample=" <em>(sample)</em>" if line["isSample"] else "",
            code=escape(line["batchCode"]),
            qty=escape(line["quantity"]),
            list=escape(line["listPrice"]),
            price=escape(line["sessionPrice"]),
            disc=escape(line["discountPerUnit"]),
            pct=escape(line["discountPercent"]),
            sub=escape(line["subtotal"]),
        )
        for line in snapshot["lines"]
    )
    body = (
        f"<h1>{escape(snapshot.get('title') or 'Your selection')}</h1>"
        f"<p>Prepared for {escape(snapshot['clientName'])} · "
        f"<span class=muted>{escape(snapshot['generatedAt'])}</span></p>"
        "<table><thead><tr><th>Item</th><th class=n>Qty</th><th class=n>List price</th>"
        "<th class=n>Your price</th><th class=n>Discount / unit</th><th class=n>Subtotal</th>"
        f"</tr></thead><tbody>{rows}</tbody><tfoot>"
        f"<tr><td colspan=5>Retail value</td><td class=n>{escape(snapshot['listTotal'])}</td></tr>"
        f"<tr><td colspan=5>You save ({escape(snapshot['discountPercent'])}%)</td>"
        f"<td class=n>{escape(snapshot['discountTotal'])}</td></tr>"
        f"<tr><td colspan=5>Total</td><td class=n>{escape(snapshot['total'])}</td></tr>"
        "</tfoot></table>"
    )
    return _page(snapshot.get("title") or "Sales sheet", body)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style><body>{body}</body></html>"
    )
