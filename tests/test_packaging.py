"""The wheel a release would build holds every module of the three packages, subpackages
included (a package list instead of discovery once dropped them silently), and the LICENSE
that pyproject.toml declares."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("router", "providers", "monitoring")


def test_the_wheel_holds_every_module(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*")
        if path.suffix in (".py", ".yml") and "__pycache__" not in path.parts
    }
    assert len(wanted) > 70  # the three packages and their subpackages
    assert wanted - shipped == set()
    licence = [name for name in shipped if name.endswith(".dist-info/licenses/LICENSE")]
    assert licence, "the wheel carries no LICENSE"  # setuptools picks LICENSE up by its name


def test_the_licence_file_matches_pyproject() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert declared == {"text": "MIT"}
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
