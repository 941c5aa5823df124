"""Layers point down (STYLE 1): procedures -> app/domain -> app/db, never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"

# What each layer must never import: the layers above it, and the transports.
FORBIDDEN = {
    "db": ("app.domain", "app.rpc", "app.events", "app.web", "procedures", "litestar", "redis"),
    "domain": ("app.rpc", "app.events", "app.web", "procedures", "litestar", "redis"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_from_the_layers_above_it(layer: str) -> None:
    wrong = {
        f"{path.relative_to(APP.parent)} imports {name}"
        for path in sorted((APP / layer).glob("*.py"))
        for name in _imports(path)
        if name.startswith(FORBIDDEN[layer])
    }
    assert not wrong, sorted(wrong)
