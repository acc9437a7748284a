"""Jobs in flight written straight into the fleet's Redis, as a create would leave them.

A million creates through the proxy take the better part of an hour here (~1,000 a second on
its one core), so the scale runs seed instead: each job is what the create path stores after
the upstream accepted it (one attempt, queued, under an upstream id that the bench's simulator
was seeded with too: ``bench.upstream``'s ``/bench/seed``), written by the store's own code,
``RedisJobStore.insert``, with its entry in the poll plan (``RedisPlan.plan``, due within one
poll interval, spread evenly), so the proxy finds the jobs where its own creates put them.

Both objects are handed a redis-py pipeline instead of a client: their commands queue and go
out ``batch`` jobs per round trip, the Lua scripts included (the pipeline loads them once).
The seed is the store's code path; only the round trips are shared.

Ids are deterministic (``job_id(i)``, ``upstream_id(i)``), so the simulator and the store agree
without exchanging lists, and a later step of a run continues where the earlier one ended.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from bench.client import PROMPT
from router.fleet.redis_plan import RedisPlan
from router.records.job import Attempt, Job
from router.store.redis import RedisJobStore

__all__ = ["OWNER", "job_id", "seed_jobs", "seeded_job", "upstream_id"]

OWNER = "bench"  # the bench key's name (bench.stack's config)
_BATCH = 1000  # jobs per pipeline: ~3,000 commands, ~1 MB sent at once


def job_id(index: int) -> str:
    """The proxy's id of the ``index``-th seeded job: the shape ``new_job_id`` makes."""
    return f"video_{index:048x}"


def upstream_id(index: int) -> str:
    """The simulator's id of the render behind the ``index``-th seeded job."""
    return f"video_5eed{index:044x}"


def seeded_job(index: int, *, model: str, provider: str, now: float) -> Job:
    """The ``index``-th job as a JSON create of the bench leaves it once its upstream took it."""
    return Job(
        id=job_id(index),
        owner=OWNER,
        model=model,
        prompt=PROMPT,
        size="720x1280",
        seconds=4,
        created_at=now,
        price_per_second=0.1,
        attempts=[Attempt(provider=provider, upstream_id=upstream_id(index), submitted_at=now)],
        version=1,
    )


async def seed_jobs(
    client: Redis,
    indices: range,
    *,
    model: str,
    provider: str,
    poll_interval: float,
    store: bool = True,
    plan: bool = True,
    batch: int = _BATCH,
) -> None:
    """Store the jobs of ``indices`` through ``RedisJobStore`` (with ``store``) and put each in
    ``provider``'s poll plan, due at an even spread over the next ``poll_interval`` (with
    ``plan``)."""
    now = time.time()
    for start in range(indices.start, indices.stop, batch):
        chunk = range(start, min(start + batch, indices.stop))
        async with client.pipeline(transaction=False) as pipe:
            jobs, planner = RedisJobStore(pipe), RedisPlan(pipe)
            for index in chunk:
                job = seeded_job(index, model=model, provider=provider, now=now)
                if store:
                    await jobs.insert(job)
                if plan:
                    due = now + poll_interval * (index % 1000) / 1000
                    await planner.plan(provider, job.id, due)
            await pipe.execute()
