"""Generates the typed clients in clients/ from the registry (placeholder until landed)."""

from __future__ import annotations


def generate(*, check: bool) -> int:
    print("gen-client: client generation lands in a following commit; nothing generated")
    return 0
