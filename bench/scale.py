"""Jobs in flight at scale: memory, client-poll latency, upstream calls, SQLite writes.

A fresh proxy, one provider, one simulator process on core 1. The simulator renders so slowly
(50 poll intervals) that no job finishes during the run, yet every status read sees progress
move by two points: each read changes its job, so each is also a store write. That is the
worst case for the store, and the load a real fleet of renders gives a proxy.

Each step tops the jobs in flight up to its size (creates through the proxy, many at once),
then watches two windows of one poll interval each:

* quiet: no client traffic; the upstream calls in it (status reads plus list pages) must stay
  within N / poll_interval (each job is due once per interval, and every job was created
  before the window opened); with list sweeps (``router.jobs.sweep``) a page refreshes up to 100
  jobs, so the calls are about N / 100 / poll_interval;
* loaded: 32 wrk connections polling random in-flight jobs; the upstream calls must not rise,
  since client polls are answered from memory. Its p99 is the client-poll latency under load.

Upstream calls are counted by the simulator (``gets`` and ``lists``); SQLite writes by
``StoreProbe``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench.client import Api
from bench.measure import Measured, measure, with_rss_peak
from bench.profile import Hotspot, profile
from bench.report import Row, at_most, below
from bench.stack import Route, Server, Stack, Upstream
from bench.store_probe import StoreCounters, StoreProbe
from bench.wrk import Load

__all__ = ["ScaleSettings", "run_scale"]

MIB = 2**20
_RSS_LIMIT_MIB = 500.0  # issue 7, at 100k jobs in flight
_P99_LIMIT_MS = 20.0
_BOUND_SLACK = 1.1  # calls may exceed N / interval by this factor at the windows' edges
_POLLED_JOBS = 10_000  # wrk picks among at most this many ids (its Lua table stays small)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScaleSettings:
    sizes: tuple[int, ...] = (1000, 10000)
    poll_interval: float = 30.0  # the provider's, seconds; also each window's length
    connections: int = 32
    create_concurrency: int = 64
    profile_to: Path | None = None  # profile client polls at the largest size into FILE.txt


@dataclass(frozen=True, slots=True, kw_only=True)
class _Window:
    """What happened while one piece of work ran."""

    seconds: float
    gets: int  # upstream status reads the simulator answered
    lists: int  # upstream list pages the simulator answered (sweeps; probes too)
    store: StoreCounters
    cpu: float  # proxy CPU seconds

    @property
    def calls(self) -> int:
        return self.gets + self.lists

    def to_json(self) -> dict[str, Any]:
        s = self.seconds
        found = {
            "seconds": round(s, 2),
            "upstream_calls_per_s": round(self.calls / s, 1),
            "upstream_gets_per_s": round(self.gets / s, 1),
            "upstream_lists_per_s": round(self.lists / s, 1),
            "proxy_cpu_util": round(self.cpu / s, 3),
            "sqlite_commits_per_s": round(self.store.commits / s, 1),
            "sqlite_kib_written_per_s": round(self.store.bytes_written / s / 1024, 1),
            "sqlite_file_growth_kib": round(self.store.file_bytes / 1024, 1),
        }
        if self.calls:
            found["proxy_cpu_us_per_call"] = round(self.cpu / self.calls * 1e6, 1)
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class _Step:
    jobs: int
    added: int
    interval: float
    filling: _Window
    quiet: _Window
    loaded: _Window
    polled: Measured  # the client polls of the loaded window
    rss_peak: int  # over both windows

    @property
    def bound(self) -> float:
        """Upstream calls per second the configuration allows: each job once per interval."""
        return self.jobs / self.interval

    def to_json(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "rss_mib": round(self.rss_peak / MIB, 1),
            "bound_calls_per_s": round(self.bound, 1),
            "filling": {
                **self.filling.to_json(),
                "creates_per_s": round(self.added / self.filling.seconds, 1),
            },
            "quiet": self.quiet.to_json(),
            "loaded": {**self.loaded.to_json(), "client_poll": self.polled.to_json()},
        }

    def rows(self) -> list[Row]:
        row = functools.partial(Row, scenario=f"scale {self.jobs:,}")
        quiet, loaded, within = self.quiet, self.loaded, at_most(_BOUND_SLACK)
        rss = row(metric="proxy RSS MiB", proxy=self.rss_peak / MIB)
        if self.jobs >= 100_000:  # issue 7 sets the memory target at 100k jobs
            rss = dataclasses.replace(
                rss, target=f"< {_RSS_LIMIT_MIB:.0f} MiB", check=below(_RSS_LIMIT_MIB)
            )
        return [
            rss,
            row(
                metric="client poll p99 ms (32 conns)",
                proxy=self.polled.wrk.p99_ms,
                target=f"< {_P99_LIMIT_MS:.0f} ms",
                check=below(_P99_LIMIT_MS),
            ),
            row(metric="client poll req/s", proxy=self.polled.wrk.rps),
            row(
                metric="upstream calls/s, no clients",
                proxy=quiet.calls / quiet.seconds,
                reference=self.bound,
                target="<= jobs / poll_interval",
                check=within,
            ),
            row(metric="upstream list pages/s, no clients", proxy=quiet.lists / quiet.seconds),
            row(
                metric="upstream calls/s, 32 clients",
                proxy=loaded.calls / loaded.seconds,
                reference=self.bound,
                target="<= jobs / poll_interval",
                check=within,
            ),
            row(metric="upstream list pages/s, 32 clients", proxy=loaded.lists / loaded.seconds),
            row(metric="proxy core busy %, no clients", proxy=100 * quiet.cpu / quiet.seconds),
            row(metric="SQLite commits/s, no clients", proxy=quiet.store.commits / quiet.seconds),
            row(
                metric="SQLite KiB/s written, no clients",
                proxy=quiet.store.bytes_written / quiet.seconds / 1024,
            ),
            row(metric="creates/s while filling", proxy=self.added / self.filling.seconds),
        ]


@dataclass(frozen=True, slots=True)
class _Scene:
    """The scale phase's processes and the probe on the proxy's store."""

    proxy: Server
    upstream: Upstream
    probe: StoreProbe

    async def watch(self, work: Awaitable[_T]) -> tuple[_Window, _T]:
        """Run ``work``; what it cost the proxy, the upstream and the store meanwhile."""
        before, store = await self.upstream.stats(), self.probe.read()
        cpu, started = self.proxy.process.cpu_seconds(), time.monotonic()
        result = await work
        after = await self.upstream.stats()
        window = _Window(
            seconds=time.monotonic() - started,
            gets=after["gets"] - before["gets"],
            lists=after["lists"] - before["lists"],
            store=self.probe.read() - store,
            cpu=self.proxy.process.cpu_seconds() - cpu,
        )
        return window, result


async def run_scale(stack: Stack, settings: ScaleSettings) -> tuple[list[Row], dict[str, Any]]:
    interval = settings.poll_interval
    upstream = await stack.upstream(
        "upstream-scale", render_seconds=50 * interval, video_bytes=65536
    )
    proxy = await stack.proxy("proxy-scale", [Route("bench-scale", upstream, interval)])
    scene = _Scene(proxy, upstream, StoreProbe(stack.workdir / "proxy-scale.db", proxy.process))
    base_rss = proxy.process.rss_bytes()
    paths = stack.workdir / "scale-paths.txt"
    ids: list[str] = []
    steps: list[_Step] = []
    async with Api(proxy.url, stack.key) as api:
        for size in settings.sizes:
            added = size - len(ids)
            filling, new = await scene.watch(
                api.create_many("bench-scale", added, settings.create_concurrency)
            )
            ids += new
            quiet, (_, quiet_rss) = await scene.watch(with_rss_peak(proxy, asyncio.sleep(interval)))
            sample = random.sample(ids, min(len(ids), _POLLED_JOBS))
            paths.write_text("".join(f"/v1/videos/{i}\n" for i in sample))
            load = Load(
                url=proxy.url + "/", key=stack.key, paths=paths, connections=settings.connections
            )
            loaded, polled = await scene.watch(measure(proxy, load, interval))
            steps.append(
                _Step(
                    jobs=len(ids),
                    added=added,
                    interval=interval,
                    filling=filling,
                    quiet=quiet,
                    loaded=loaded,
                    polled=polled,
                    rss_peak=max(quiet_rss, polled.rss_peak),
                )
            )
        hotspots: dict[str, list[Hotspot]] = {}
        if settings.profile_to is not None:
            out = settings.profile_to.with_name(settings.profile_to.name + ".txt")
            hotspots = await profile(proxy, load, min(interval, 10.0), out)
    rows = [row for step in steps for row in step.rows()] + _growth_rows(steps)
    details = {
        "profile_client_poll_at_largest": hotspots,
        "poll_interval_s": interval,
        "render_seconds": 50 * interval,
        "base_rss_mib": round(base_rss / MIB, 1),
        "steps": [step.to_json() for step in steps],
    }
    return rows, details


def _growth_rows(steps: list[_Step]) -> list[Row]:
    """Memory per job between the first and the last step, and what it makes of 100k jobs."""
    if len(steps) < 2:
        return []
    first, last = steps[0], steps[-1]
    per_job = (last.rss_peak - first.rss_peak) / (last.jobs - first.jobs)
    row = functools.partial(Row, scenario="scale growth")
    rows = [row(metric="RSS KiB per job in flight", proxy=per_job / 1024)]
    if last.jobs < 100_000:
        projected = (last.rss_peak + per_job * (100_000 - last.jobs)) / MIB
        rows.append(
            row(
                metric="RSS MiB at 100k, projected",
                proxy=projected,
                target=f"< {_RSS_LIMIT_MIB:.0f} MiB",
                check=below(_RSS_LIMIT_MIB),
            )
        )
    return rows
