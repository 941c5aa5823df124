"""The RPC surface, one module per namespace; importing this package registers them all."""

from procedures import catalog, clients, orders, system

__all__ = ["catalog", "clients", "orders", "system"]
