"""The load generator: wrk on core 1, one connection count, one duration, one JSON summary.

wrk rather than a Python client: an aiohttp client on one core tops out near what an aiohttp
server does on one core, so it would measure itself when the server is the floor. wrk is C,
spends a fraction of a core at these rates, and records every latency in a histogram whose
percentiles ``report.lua`` prints. Each run also reports how much CPU wrk itself used (from
``RUSAGE_CHILDREN``, wrk being the only child reaped meanwhile) so the report can show the
generator was not the limit.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import subprocess
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench.process import CLIENT_CORE

__all__ = ["Load", "WrkResult", "drive", "ensure_wrk", "run_wrk"]

_SCRIPT = Path(__file__).with_name("report.lua")


def ensure_wrk() -> str:
    """The wrk binary, installed from Debian's packages when missing (needs root)."""
    found = shutil.which("wrk")
    if found:
        return found
    install = ["apt-get", "install", "-y", "-qq", "wrk"]
    if subprocess.run(install, check=False).returncode != 0:
        # a fresh machine has no package lists yet
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(install, check=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and could not be installed")
    return found


def drive(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work``, a benchmark driver, on uvloop in this process pinned to core 1 beside wrk
    (installed first when missing); the servers it measures have core 0 to themselves."""
    os.sched_setaffinity(0, {CLIENT_CORE})
    ensure_wrk()
    uvloop.run(work)


@dataclass(frozen=True, slots=True, kw_only=True)
class Load:
    """What wrk sends: to ``url`` (or random ``paths`` of its server), with a Bearer key."""

    url: str
    key: str
    method: str = "GET"
    body: bytes | None = None
    paths: Path | None = None  # a file of paths, one a line
    connections: int = 32
    timeout: float = 5.0  # seconds a request may take before wrk counts it failed


@dataclass(frozen=True, slots=True, kw_only=True)
class WrkResult:
    requests: int
    seconds: float
    bytes: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    generator_cpu: float  # CPU seconds wrk used

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def generator_util(self) -> float:
        """Share of one core wrk kept busy."""
        return self.generator_cpu / self.seconds


async def run_wrk(load: Load, seconds: float) -> WrkResult:
    """Run wrk (one thread, ``load.connections`` connections) for ``seconds``."""
    env = {**os.environ, "BENCH_AUTH": f"Bearer {load.key}", "BENCH_METHOD": load.method}
    if load.body is not None:
        env["BENCH_BODY"] = load.body.decode()
    if load.paths is not None:
        env["BENCH_PATHS"] = str(load.paths)
    argv = [
        "taskset", "-c", str(CLIENT_CORE), ensure_wrk(), "-t1", f"-c{load.connections}",
        f"-d{seconds:g}s", f"--timeout={load.timeout:g}s", "-s", str(_SCRIPT), load.url,
    ]  # fmt: skip
    before = _children_cpu()
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    used = _children_cpu() - before
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.decode()}{out.decode()}")
    raw = orjson.loads(lines[-1])
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        bytes=raw["bytes"],
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors=raw["errors"],
        generator_cpu=used,
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
