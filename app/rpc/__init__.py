"""The RPC surface: procedure registry, JSON-RPC endpoint, tRPC adapter, discovery."""
