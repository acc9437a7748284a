"""The rooms' import contracts (``[tool.importlinter]`` in pyproject.toml) hold, and catch a
wrong import wherever it is planted, subpackages included."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("router", "providers", "monitoring")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the packages under ``root``, with ``root`` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")]
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        # a provider reaching up into the router
        ("providers/openai.py", "import router.app", "providers <- monitoring <- router"),
        # monitoring reaching up into the router, two levels down
        ("monitoring/health.py", "import router.jobs.poller", "providers <- monitoring <- router"),
        # the store (state) reaching up into a client dialect (api)
        ("router/store/sqlite.py", "import router.api.openai", "router: entry points"),
        # the job model (vocabulary) reaching up into a service
        ("router/records/job.py", "import router.jobs.dispatch", "router: entry points"),
        # the simulator borrowing an adapter
        ("providers/simulator/jobs.py", "import providers.http", "the simulator plays"),
    ],
)
def test_a_planted_wrong_import_is_caught(
    tree_copy: Path, module: str, planted: str, contract: str
) -> None:
    path = tree_copy / module
    text = path.read_text()
    head, sep, rest = text.partition("from __future__ import annotations\n")
    path.write_text(head + sep + planted + "\n" + rest)
    result = lint_imports(tree_copy)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken
    assert planted.split()[-1] in broken
