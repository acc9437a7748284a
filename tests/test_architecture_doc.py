"""docs/architecture.md names only modules that exist, and the README links it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("router", "providers", "monitoring")
# `router/api/openai.py` or `jobs/poller` (a room and a module, relative to router/)
ROOMS = "api|runtime|assets|jobs|routing|limits|fleet|events|store|access|records|config"
PATH = re.compile(rf"`((?:router|providers|monitoring)/[\w/]+(?:\.py)?|(?:{ROOMS})/[a-z_]+)`")
MODULE = re.compile(r"^[\w.]+\.(py|yml)$")


def map_modules() -> list[Path]:
    """Every file of the map block, from the indented tree under its package heading."""
    block = DOC.read_text().split("## The map", 1)[1].split("```")[1]
    found: list[Path] = []
    trail: list[tuple[int, str]] = []
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        names = line.strip().split("  ")[0]
        if names.endswith("/") or MODULE.match(names.split(",")[0].strip()):
            trail = [(i, n) for i, n in trail if i < indent]
        if names.endswith("/"):
            trail.append((indent, names.rstrip("/")))
            continue
        files = [name.strip() for name in names.split(",")]
        if not all(MODULE.match(name) for name in files):
            continue  # a description running on from the line above
        folder = ROOT.joinpath(*(n for _, n in trail))
        found.extend(folder / name for name in files)
    return found


def test_every_module_on_the_map_exists() -> None:
    modules = map_modules()
    assert len(modules) > 50
    missing = [str(m.relative_to(ROOT)) for m in modules if not m.exists()]
    assert missing == []


def test_every_module_on_disk_is_on_the_map() -> None:
    on_map = {m.resolve() for m in map_modules()}
    on_disk = {
        p.resolve()
        for package in PACKAGES
        for p in (ROOT / package).rglob("*")
        if (p.suffix == ".py" and p.name != "__init__.py") or p.suffix == ".yml"
    }
    assert sorted(str(p.relative_to(ROOT)) for p in on_disk - on_map) == []


def test_every_path_named_in_the_prose_exists() -> None:
    for name in PATH.findall(DOC.read_text()):
        if name.startswith(PACKAGES):
            candidates = [ROOT / name, ROOT / f"{name}.py"]
        else:  # a room-relative name such as jobs/poller
            candidates = [ROOT / "router" / name, ROOT / "router" / f"{name}.py"]
        assert any(c.exists() for c in candidates), name


def test_the_readme_links_it() -> None:
    assert "(docs/architecture.md)" in (ROOT / "README.md").read_text()
