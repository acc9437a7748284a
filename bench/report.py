"""The result: one table on stdout, and everything measured as JSON under bench/results/.

A row compares the proxy with its reference (the floor measured in the same run, or a bound
the configuration sets) and, where issue 7 sets a target, says whether it holds. Rows without
a target are there to explain the others (CPU per request, what bound a run).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "Row",
    "at_least",
    "at_most",
    "below",
    "machine",
    "print_table",
    "results_stem",
    "write_json",
]

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    scenario: str
    metric: str
    proxy: float
    reference: float | None = None  # the floor, or the configured bound
    target: str = ""  # what issue 7 asks, in words; "" for explanatory rows
    check: Callable[[float, float | None], bool] | None = None  # (proxy, reference) -> holds?

    @property
    def ratio(self) -> float | None:
        return None if not self.reference else self.proxy / self.reference

    @property
    def ok(self) -> bool | None:
        return None if self.check is None else self.check(self.proxy, self.reference)

    def to_json(self) -> dict[str, Any]:
        found = {k: v for k, v in asdict(self).items() if k != "check"}
        return {**found, "ratio": self.ratio, "ok": self.ok}


def at_least(share: float) -> Callable[[float, float | None], bool]:
    """Holds when proxy >= share x reference."""
    return lambda proxy, reference: reference is not None and proxy >= share * reference


def at_most(share: float) -> Callable[[float, float | None], bool]:
    """Holds when proxy <= share x reference."""
    return lambda proxy, reference: reference is not None and proxy <= share * reference


def below(limit: float) -> Callable[[float, float | None], bool]:
    """Holds when the proxy's value is under ``limit``."""
    return lambda proxy, reference: proxy < limit


def print_table(rows: list[Row]) -> None:
    header = ("scenario", "metric", "proxy", "floor/bound", "ratio", "target", "result")
    cells = [header] + [
        (
            r.scenario,
            r.metric,
            _number(r.proxy),
            "" if r.reference is None else _number(r.reference),
            "" if r.ratio is None else f"{r.ratio:.2f}x",
            r.target,
            {True: "pass", False: "FAIL", None: ""}[r.ok],
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for index, row in enumerate(cells):
        print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("-+-".join("-" * width for width in widths))


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "nproc": os.cpu_count(),
        "cpu": _lscpu().get("Model name", platform.processor()),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "aiohttp": metadata.version("aiohttp"),
        "uvloop": metadata.version("uvloop"),
        "orjson": metadata.version("orjson"),
        "wrk": _output(["wrk", "-v"]).splitlines()[0],
    }


def results_stem() -> Path:
    """``bench/results/<UTC timestamp>``: this run's files start so (the folder is gitignored)."""
    RESULTS.mkdir(exist_ok=True)
    return RESULTS / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def write_json(path: Path, rows: list[Row], details: dict[str, Any]) -> None:
    document = {"machine": machine(), "rows": [r.to_json() for r in rows], **details}
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))


def _lscpu() -> dict[str, str]:
    lines = _output(["lscpu"]).splitlines()
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _output(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"
