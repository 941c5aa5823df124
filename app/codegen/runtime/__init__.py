"""The hand-written modules of the generated Python client, kept here so ruff and mypy check
them; `gen-client` copies each verbatim into the client package (they import only each other,
the standard library, msgspec, httpx, httpx-sse and stamina).
"""
