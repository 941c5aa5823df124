"""The demo data set: a few staff, clients, products and batches (idempotent)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from app.db.engine import Database
from app.db.models import Batch, Client, Product, Role, User

D = Decimal

STAFF = [(1, Role.ADMIN), (2, Role.STAFF), (3, Role.STAFF)]
CLIENTS = [
    ("Maison Laurent", D("50000.00"), D("-10")),
    ("Harbor & Pine Boutique", D("12000.00"), D("0")),
    ("Studio Okafor", None, D("-5")),
]
PRODUCTS = [
    ("Silk Wrap Dress", "SWD-001", "Apparel", D("420.00"), [("SWD-001-A", D("24"), D("96.50"))]),
    (
        "Cashmere Overcoat",
        "CO-114",
        "Outerwear",
        D("1290.00"),
        [("CO-114-A", D("8"), D("310.00")), ("CO-114-B", D("5"), D("318.00"))],
    ),
    ("Leather Tote", "LT-220", "Accessories", D("685.00"), [("LT-220-A", D("15"), D("142.00"))]),
    ("Saffron Threads", "SAF-50G", "Pantry", D("38.50"), [("SAF-50G-1", D("12.5"), D("9.10"))]),
    (
        "Gold Hoop Earrings",
        "GHE-18K",
        "Jewellery",
        D("975.00"),
        [("GHE-18K-A", D("6"), D("402.00"))],
    ),
]


async def seed_demo(database_url: str) -> bool:
    """Load the demo set once; returns False when it was already there."""
    db = Database(database_url)
    try:
        async with db.write_sessions() as session:
            if await session.scalar(select(Product.id).where(Product.sku == "SWD-001")):
                return False
            clients = [
                Client(name=name, credit_limit=limit, price_adjustment_percent=adj)
                for name, limit, adj in CLIENTS
            ]
            session.add_all(clients)
            await session.flush()
            for user_id, role in STAFF:
                if await session.get(User, user_id) is None:
                    session.add(User(id=user_id, role=role))
            for index, client in enumerate(clients):
                user_id = 100 + index + 1
                if await session.get(User, user_id) is None:
                    session.add(User(id=user_id, role=Role.CLIENT, client_id=client.id))
            for name, sku, category, price, batches in PRODUCTS:
                product = Product(name=name, sku=sku, category=category, list_price=price)
                session.add(product)
                await session.flush()
                for code, qty, cogs in batches:
                    session.add(
                        Batch(product_id=product.id, code=code, on_hand_qty=qty, unit_cogs=cogs)
                    )
            await session.commit()
            return True
    finally:
        await db.dispose()
