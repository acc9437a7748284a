"""One measured wrk run against one server, and the proxy-versus-floor comparison of runs.

A run records what wrk saw (throughput, latency percentiles), what the server spent (CPU
seconds from /proc, so CPU per request), and its peak RSS, sampled while the load runs. The
server's share of its core tells whether it was the limit: near 100% it was; well below, the
generator or the upstream on the other core was, and the throughput ratio says little (the
CPU-per-request ratio still holds).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from bench.stack import Server
from bench.wrk import Load, WrkResult, run_wrk

__all__ = ["Measured", "Paired", "measure", "paired", "with_rss_peak"]

_T = TypeVar("_T")
_RSS_SAMPLE_SECONDS = 0.05
_WARM_UP_SECONDS = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Measured:
    wrk: WrkResult
    server_cpu: float  # CPU seconds the server used during the run
    rss_peak: int  # bytes
    switches: int  # context switches of the server's threads during the run
    faults: int  # minor page faults of the server during the run

    @property
    def cpu_us_per_request(self) -> float:
        return self.server_cpu / max(self.wrk.requests, 1) * 1e6

    @property
    def switches_per_request(self) -> float:
        return self.switches / max(self.wrk.requests, 1)

    @property
    def faults_per_request(self) -> float:
        return self.faults / max(self.wrk.requests, 1)

    @property
    def server_util(self) -> float:
        """Share of its core the server kept busy (1.0: it was the bottleneck)."""
        return self.server_cpu / self.wrk.seconds

    def to_json(self) -> dict[str, Any]:
        w = self.wrk
        return {
            "requests": w.requests,
            "seconds": round(w.seconds, 3),
            "rps": round(w.rps, 1),
            "mb_per_s": round(w.bytes / w.seconds / 1e6, 2),
            "p50_ms": w.p50_ms,
            "p90_ms": w.p90_ms,
            "p99_ms": w.p99_ms,
            "max_ms": w.max_ms,
            "errors": w.errors,
            "server_cpu_s": round(self.server_cpu, 3),
            "cpu_us_per_request": round(self.cpu_us_per_request, 1),
            "context_switches_per_request": round(self.switches_per_request, 3),
            "minor_faults_per_request": round(self.faults_per_request, 1),
            "server_util": round(self.server_util, 3),
            "generator_util": round(w.generator_util, 3),
            "rss_peak_mb": round(self.rss_peak / 2**20, 1),
        }


async def measure(server: Server, load: Load, seconds: float) -> Measured:
    """Drive ``server`` with ``load`` for ``seconds``; fails if any request failed."""
    process = server.process
    before, switched, faulted = (
        process.cpu_seconds(),
        process.context_switches(),
        process.minor_faults(),
    )
    result, peak = await with_rss_peak(server, run_wrk(load, seconds))
    used = process.cpu_seconds() - before
    switches = process.context_switches() - switched
    faults = process.minor_faults() - faulted
    if result.errors:
        raise RuntimeError(f"{process.name}: {result.errors} failed requests under {load}")
    return Measured(wrk=result, server_cpu=used, rss_peak=peak, switches=switches, faults=faults)


async def with_rss_peak(server: Server, work: Awaitable[_T]) -> tuple[_T, int]:
    """Await ``work`` while sampling the server's RSS; its result and the peak seen."""
    peak = server.process.rss_bytes()
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.wait({task}, timeout=_RSS_SAMPLE_SECONDS)
        peak = max(peak, server.process.rss_bytes())
    return task.result(), peak


@dataclass(frozen=True, slots=True)
class Paired:
    """The proxy and its floor, run in alternation: every round, and the round that counts."""

    rounds: list[tuple[Measured, Measured]]  # (proxy, floor), in the order they ran

    @property
    def ratios(self) -> list[float]:
        return [proxy.wrk.rps / floor.wrk.rps for proxy, floor in self.rounds]

    @property
    def median(self) -> tuple[Measured, Measured]:
        """The round with the median throughput ratio (rounds are odd in number)."""
        ratios = self.ratios
        order = sorted(range(len(ratios)), key=ratios.__getitem__)
        return self.rounds[order[len(order) // 2]]

    def to_json(self) -> dict[str, Any]:
        proxy, floor = self.median
        return {
            "proxy": proxy.to_json(),
            "floor": floor.to_json(),
            "ratios": [round(r, 3) for r in self.ratios],
            "rounds": [{"proxy": p.to_json(), "floor": f.to_json()} for p, f in self.rounds],
        }


async def paired(
    proxy: tuple[Server, Load], floor: tuple[Server, Load], *, seconds: float, rounds: int
) -> Paired:
    """After a warm-up of each, ``rounds`` rounds of one proxy run then one floor run.

    A shared machine drifts by tens of percent within a minute (the same floor measured 2,300
    and 3,100 creates/s a few seconds apart), and a run of the proxy next to a run of its
    floor sees nearly the same machine, so the ratio of each round is what is compared, and
    the median round is reported: the fastest run of each side, taken from different moments,
    measured the drift as often as the code.
    """
    if rounds < 1 or rounds % 2 == 0:
        raise ValueError(f"rounds must be odd, for a median round: {rounds}")
    for _, load in (proxy, floor):
        await run_wrk(load, _WARM_UP_SECONDS)
    done = [(await measure(*proxy, seconds), await measure(*floor, seconds)) for _ in range(rounds)]
    return Paired(done)
