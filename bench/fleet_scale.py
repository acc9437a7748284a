"""Jobs in flight on the Redis backend, up to a million: memory, upstream reads, client polls.

One proxy (``store.backend: redis``, one process) on its own Redis, one provider with a
``poll_rpm``, one simulator that lists (the OpenAI dialect, so the proxy refreshes up to a
page of jobs per call: ``router.jobs.sweep``). Each step tops the jobs in flight up to its
size by seeding (``bench.seed``: the store's own insert and poll plan, pipelined; the
simulator gets the matching renders through ``/bench/seed``), then watches two windows, as
``bench.scale`` does for SQLite, each the poll interval rounded up to whole minutes (the
window ``poll_rpm`` counts over: a limiter may spend a minute's reads in its first second, so a
shorter window could see several times ``poll_rpm / 60`` without anything being wrong):

* quiet: no clients. Upstream calls (status reads plus list pages, counted by the simulator)
  must stay within what the configuration allows: ``poll_rpm`` a minute, and never more than
  one read per job per ``poll_interval``.
* loaded: 32 wrk connections polling random in-flight jobs (up to ``_POLLED_JOBS`` of them,
  so the poll cache, 10k jobs, holds most of them). Its p99 is the client-poll latency under
  load; the upstream calls must not rise.

Before the first seed, ``creates`` jobs are created through the proxy, as the traffic a serving
proxy has (a fleet sweeps a provider's list once its poll plan holds ``SWEEP_MIN_JOBS`` jobs,
whoever created them: ``PlannedTracking.in_flight``).

Memory: Redis's ``used_memory`` over the empty server per job in flight, and the proxy's peak
RSS over both windows, which must be bounded by the poll cache rather than grow with the jobs
(the first step against the last). The simulator renders in 50 poll intervals, so every read
sees progress move and is a store write too (the worst case for the store).
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from bench.client import Api
from bench.measure import Measured, measure, with_rss_peak
from bench.redis_server import RedisCounters, RedisServer
from bench.report import Row, at_most, below
from bench.seed import job_id, seed_jobs
from bench.stack import Route, Server, Stack, Upstream
from bench.wrk import Load

__all__ = ["ScaleSettings", "run_scale"]

MIB = 2**20
_MODEL = "bench-scale"
_PROVIDER = f"up-0-{_MODEL}"  # bench.stack names providers so
_POLLED_JOBS = 10_000  # wrk picks among at most this many ids (its Lua table stays small)
_BOUND_SLACK = 1.1  # calls may exceed the bound by this factor at the windows' edges
_P99_LIMIT_MS = 20.0
_RSS_GROWTH_LIMIT_MIB = 64.0  # first step to last: what a bounded poll cache may add
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScaleSettings:
    sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    poll_interval: float = 30.0  # the provider's, seconds; also each window's length
    poll_rpm: int = 600  # the provider's status reads (list pages included) a minute; 0: none
    connections: int = 32
    creates: int = 100  # jobs created through the proxy before the first seed


@dataclass(frozen=True, slots=True, kw_only=True)
class _Window:
    seconds: float
    gets: int  # upstream status reads
    lists: int  # upstream list pages
    cpu: float  # proxy CPU seconds
    redis: RedisCounters
    rss_peak: int

    @property
    def calls_per_s(self) -> float:
        return (self.gets + self.lists) / self.seconds

    @property
    def refreshed_per_s(self) -> float:
        """Stored changes a second: every store write appends one ``JobChanged`` (``XADD``),
        and with renders this slow each read of a job moves its progress, so this is the jobs
        whose status was read (by a status read or a list page) and stored."""
        return self.redis.by_command.get("xadd", 0) / self.seconds

    def to_json(self) -> dict[str, Any]:
        s = self.seconds
        return {
            "seconds": round(s, 2),
            "upstream_calls_per_s": round(self.calls_per_s, 2),
            "upstream_gets_per_s": round(self.gets / s, 2),
            "upstream_lists_per_s": round(self.lists / s, 2),
            "jobs_refreshed_per_s": round(self.refreshed_per_s, 2),
            "proxy_cpu_util": round(self.cpu / s, 3),
            "proxy_rss_peak_mib": round(self.rss_peak / MIB, 1),
            "redis_round_trips_per_s": round(self.redis.reads / s, 1),
            "redis_commands_per_s": round(self.redis.commands / s, 1),
            "redis_cpu_util": round(self.redis.cpu / s, 3),
            "redis_by_command_per_s": {
                k: round(v / s, 1) for k, v in self.redis.by_command.items() if v
            },
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class _Step:
    jobs: int
    seeded: int  # jobs this step added
    seed_seconds: float
    redis_bytes: int  # used_memory over the empty server
    quiet: _Window
    loaded: _Window
    polled: Measured
    bound: float  # upstream calls per second the configuration allows
    interval: float  # the provider's poll interval

    def to_json(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "seed_seconds": round(self.seed_seconds, 1),
            "redis_used_memory_mib": round(self.redis_bytes / MIB, 1),
            "redis_bytes_per_job": round(self.redis_bytes / self.jobs),
            "bound_calls_per_s": round(self.bound, 2),
            "quiet": self.quiet.to_json(),
            "loaded": {**self.loaded.to_json(), "client_poll": self.polled.to_json()},
        }

    @property
    def rss_peak(self) -> int:
        return max(self.quiet.rss_peak, self.loaded.rss_peak)

    def rows(self) -> list[Row]:
        row = functools.partial(Row, scenario=f"redis scale {self.jobs:,}")
        quiet = self.quiet

        def bounded(window: str, calls_per_s: float) -> Row:
            return row(
                metric=f"upstream calls/s, {window}",
                proxy=calls_per_s,
                reference=self.bound,
                target="<= configured",
                check=at_most(_BOUND_SLACK),
            )

        p99 = self.polled.wrk.p99_ms
        return [
            row(metric="Redis bytes per job", proxy=self.redis_bytes / self.jobs),
            row(metric="proxy RSS MiB", proxy=self.rss_peak / MIB),
            row(metric="client poll p99 ms (32 conns)", proxy=p99, target="< 20 ms",
                check=below(_P99_LIMIT_MS)),
            row(metric="client poll req/s", proxy=self.polled.wrk.rps),
            bounded("no clients", quiet.calls_per_s),
            row(metric="upstream list pages/s, no clients", proxy=quiet.lists / quiet.seconds),
            row(metric="jobs refreshed/s, no clients", proxy=quiet.refreshed_per_s,
                reference=self.jobs / self.interval),
            bounded("32 clients", self.loaded.calls_per_s),
            row(metric="proxy core busy %, no clients", proxy=100 * quiet.cpu / quiet.seconds),
            row(metric="Redis round trips/s, no clients", proxy=quiet.redis.reads / quiet.seconds),
            row(metric="seeded jobs/s", proxy=self.seeded / max(self.seed_seconds, 1e-9)),
        ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Scene:
    proxy: Server
    upstream: Upstream
    redis: RedisServer

    async def watch(self, work: Awaitable[_T]) -> tuple[_Window, _T]:
        """Run ``work``; what it cost the proxy, the upstream and Redis meanwhile."""
        stats, counters = await self.upstream.stats(), await self.redis.counters()
        cpu, started = self.proxy.process.cpu_seconds(), time.monotonic()
        result, peak = await with_rss_peak(self.proxy, work)
        seconds = time.monotonic() - started
        after = await self.upstream.stats()
        window = _Window(
            seconds=seconds,
            gets=after["gets"] - stats["gets"],
            lists=after["lists"] - stats["lists"],
            cpu=self.proxy.process.cpu_seconds() - cpu,
            redis=await self.redis.counters() - counters,
            rss_peak=peak,
        )
        return window, result


async def run_scale(stack: Stack, settings: ScaleSettings) -> tuple[list[Row], dict[str, Any]]:
    interval = settings.poll_interval
    window = 60 * math.ceil(interval / 60)
    async with RedisServer(stack.workdir, "redis-scale") as redis:
        empty = await redis.used_memory()
        upstream = await stack.upstream(
            "upstream-scale", render_seconds=50 * interval, video_bytes=65536
        )
        proxy = await stack.proxy(
            "proxy-scale",
            [Route(_MODEL, upstream, interval)],
            redis_url=redis.url,
            provider={"poll_rpm": settings.poll_rpm or None},
        )
        scene = _Scene(proxy, upstream, redis)
        paths = stack.workdir / "scale-paths.txt"
        steps: list[_Step] = []
        async with Api(proxy.url, stack.key) as api:
            await api.create_many(_MODEL, settings.creates, settings.connections)
        new = range(0)
        for size in settings.sizes:
            started, new = time.monotonic(), range(new.stop, size)
            await upstream.seed(new, _MODEL)
            await seed_jobs(
                redis.client, new, model=_MODEL, provider=_PROVIDER, poll_interval=interval
            )
            seeded = time.monotonic() - started
            used = await redis.used_memory()
            quiet, _ = await scene.watch(asyncio.sleep(window))
            sample = random.sample(range(size), min(size, _POLLED_JOBS))
            paths.write_text("".join(f"/v1/videos/{job_id(i)}\n" for i in sample))
            load = Load(
                url=proxy.url + "/", key=stack.key, paths=paths, connections=settings.connections
            )
            loaded, polled = await scene.watch(measure(proxy, load, window))
            steps.append(
                _Step(
                    jobs=size + settings.creates,
                    seeded=len(new),
                    seed_seconds=seeded,
                    redis_bytes=used - empty,
                    quiet=quiet,
                    loaded=loaded,
                    polled=polled,
                    bound=_bound(settings, size + settings.creates),
                    interval=interval,
                )
            )
    found = [row for step in steps for row in step.rows()]
    if len(steps) > 1:  # does the proxy's memory follow the poll cache, or the jobs?
        first, last = steps[0], steps[-1]
        growth = last.rss_peak - first.rss_peak
        row = functools.partial(Row, scenario=f"redis scale {first.jobs:,} -> {last.jobs:,}")
        found += [
            row(metric="proxy RSS growth MiB", proxy=growth / MIB, target="< 64 MiB",
                check=below(_RSS_GROWTH_LIMIT_MIB)),
            row(metric="proxy RSS bytes per added job", proxy=growth / (last.jobs - first.jobs)),
        ]  # fmt: skip
    settings_used = {
        "poll_interval_s": interval,
        "window_s": window,
        "poll_rpm": settings.poll_rpm,
        "created_through_the_proxy": settings.creates,
    }
    return found, {**settings_used, "steps": [step.to_json() for step in steps]}


def _bound(settings: ScaleSettings, jobs: int) -> float:
    """Upstream calls a second the configuration allows: one read per job per poll interval,
    and ``poll_rpm`` a minute when set."""
    per_job = jobs / settings.poll_interval
    return min(per_job, settings.poll_rpm / 60) if settings.poll_rpm else per_job
