"""Memory per job in Redis: ``INFO memory`` before and after storing N jobs in flight.

A fresh Redis; jobs go in through ``RedisJobStore.insert`` (pipelined, ``bench.seed``): the job
hash with its JSON record, its entry in the shard's unsettled set, its owner's sorted set and
its provider's render holders, and one ``JobChanged`` in the shard's event stream. Then each
gets its poll-plan entry (``RedisPlan.plan``) and Redis is read again, so the two costs show
apart. Sizes are cumulative (10k, then 90k more for 100k, ...), each figure is bytes over the
empty server divided by the jobs stored.

The event streams are capped (``EVENTS_MAXLEN`` entries a shard, ~160k in all): below that
every job still has its event in memory, above it the streams stop growing, so the figure per
job at 10k carries ~100 bytes that 1M does not.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.redis_server import RedisServer
from bench.report import Row
from bench.seed import seed_jobs

__all__ = ["measure_memory"]

_SEEDED: dict[str, Any] = {"model": "bench-memory", "provider": "up-0", "poll_interval": 30.0}


async def measure_memory(workdir: Path, sizes: Sequence[int]) -> tuple[list[Row], dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    rows: list[Row] = []
    async with RedisServer(workdir, "redis-memory") as redis:
        empty = await redis.used_memory()
        done = 0
        for size in sizes:
            started = time.monotonic()
            new = range(done, size)
            await seed_jobs(redis.client, new, plan=False, **_SEEDED)
            stored = await redis.used_memory()
            seeded = time.monotonic() - started
            await seed_jobs(redis.client, new, store=False, **_SEEDED)
            planned = await redis.used_memory()
            done = size
            step = {
                "jobs": size,
                "used_memory_mib": round(planned / 2**20, 1),
                "bytes_per_job_store": round((stored - empty) / size),
                "bytes_per_job_store_and_plan": round((planned - empty) / size),
                "seed_jobs_per_s": round(len(new) / seeded),
            }
            steps.append(step)
            row = functools.partial(Row, scenario=f"Redis memory, {size:,} jobs")
            rows += [
                row(metric="bytes per job (store)", proxy=step["bytes_per_job_store"]),
                row(
                    metric="bytes per job (+ poll plan)", proxy=step["bytes_per_job_store_and_plan"]
                ),
            ]
    return rows, {"empty_used_memory_bytes": empty, "steps": steps}
