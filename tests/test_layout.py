"""The import direction of architecture.md holds: providers <- monitoring <- router."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"providers": {"router", "monitoring"}, "monitoring": {"router"}}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_never_import_higher_ones(package: str) -> None:
    modules = sorted((ROOT / package).glob("*.py"))
    assert modules
    for module in modules:
        wrong = imported_packages(module) & FORBIDDEN[package]
        assert not wrong, f"{module.relative_to(ROOT)} imports {wrong}"
