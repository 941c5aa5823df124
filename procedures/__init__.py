"""The RPC surface, one module per namespace; importing this package registers them all."""

from procedures import (
    catalog,
    clients,
    live_shopping,
    orders,
    subscriptions,
    system,
    vip_portal,
)

__all__ = [
    "catalog",
    "clients",
    "live_shopping",
    "orders",
    "subscriptions",
    "system",
    "vip_portal",
]
