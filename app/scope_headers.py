"""Reading a request's headers straight from its ASGI scope, where no framework request
object is made (the streams, the CORS layer, the served app's front door)."""

from __future__ import annotations

from litestar.types import Scope


def first_header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header `name` (lower case, as ASGI servers give names), if any."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None
