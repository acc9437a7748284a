"""Retention: copies go when ``assets.retention`` says, or oldest first over ``max_bytes``.

A sweep (at start, every ``sweep_interval``, and after each copy when ``max_bytes`` is set)
lists the backend's objects, so it sees what is really stored, also what other instances
sharing a bucket wrote:

* a copy whose job's ``expires_at`` has passed is removed, and the job's copy becomes
  ``EXPIRED`` with that ``expires_at`` kept (content then answers 404 ``content_expired``
  naming when);
* while the total is over ``max_bytes``, whole jobs are evicted, the oldest copy first, and
  their ``expires_at`` becomes the moment of eviction, so the Video object tells the truth;
* objects of jobs that no longer exist (deleted during their copy) are removed.

``forget`` removes a job's copy now (``DELETE /v1/videos/{id}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable

from monitoring.metrics import Metrics
from router.assets.base import CONTENT_TYPES, AssetStore, StoredObject, asset_key, job_of
from router.config.model import AssetsConfig
from router.fleet.bus import raise_if_cancelling
from router.records.job import CopyState, Job
from router.store.base import JobStore

log = logging.getLogger(__name__)


class Retention:
    def __init__(
        self,
        *,
        assets: AssetStore,
        jobs: JobStore,
        config: AssetsConfig,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self._assets = assets
        self._jobs = jobs
        self._config = config
        self._metrics = metrics
        self._clock = clock
        self._wake = asyncio.Event()

    async def sweep(self) -> None:
        """Remove expired copies, then evict oldest first while over ``max_bytes``."""
        by_job: dict[str, list[StoredObject]] = defaultdict(list)
        async for found in self._assets.objects():
            job_id = job_of(found.key)
            if job_id is not None:
                by_job[job_id].append(found)
        now = self._clock()
        jobs = {job.id: job for job in await self._jobs.read_many(list(by_job))}
        kept: list[tuple[float, str, int]] = []  # (stored at, job id, bytes)
        for job_id, objects in by_job.items():
            job = jobs.get(job_id)
            if job is None or job.copy in (CopyState.EXPIRED, CopyState.LOST):
                await self._remove(objects)  # left over: its job is gone or gave its copy up
                continue
            if (
                job.copy is CopyState.STORED
                and job.expires_at is not None
                and job.expires_at <= now
            ):
                await self._expire(job, job.expires_at, "age")
                continue
            stored_at = min((a.stored_at for a in job.stored), default=now)
            kept.append((stored_at, job_id, sum(o.size for o in objects)))
        total = sum(size for _, _, size in kept)
        limit = self._config.max_bytes
        if limit is not None and total > limit:
            for _, job_id, size in sorted(kept):
                job = jobs[job_id]
                if job.copy is not CopyState.STORED:
                    continue  # still being copied: not evictable yet
                await self._expire(job, now, "size")
                total -= size
                if total <= limit:
                    break
        self._metrics.asset_bytes.set(total)
        self._metrics.asset_sweeps.inc()

    async def forget(self, job: Job) -> None:
        """Remove ``job``'s copy (every variant, whether recorded or not)."""
        had_copy = bool(job.stored)
        await self._delete_objects(job)
        if had_copy:
            self._metrics.asset_evictions.labels("deleted").inc()

    def stored(self, size: int) -> None:
        """A copy of ``size`` bytes just finished: counted in the gauge at once, and swept for
        soon only under ``max_bytes``, which it may have passed. A sweep lists every stored
        object and reads their jobs, so one after every copy was work that grew with the
        store for each finished job (~14% of the loop under creates with copies on, issue 21);
        copies past their ``retention`` wait for the next interval's sweep."""
        self._metrics.asset_bytes.inc(size)
        if self._config.max_bytes is not None:
            self._wake.set()

    async def run(self) -> None:
        """Sweep now, then every ``sweep_interval`` or when woken; until cancelled."""
        while True:
            raise_if_cancelling()  # a cancel redis-py swallowed in the last sweep
            try:
                await self.sweep()
            except Exception:  # a backend outage must not end retention for good
                raise_if_cancelling()
                log.exception("asset retention sweep failed")
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that meets
            # a wake-up, and shutdown would then wait out a whole interval
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._config.sweep_interval):
                    await self._wake.wait()
            self._wake.clear()

    async def _expire(self, job: Job, expired_at: float, reason: str) -> None:
        """Mark the copy expired, then remove it: a job never names objects that are gone
        (objects left by a failed removal go at the next sweep, their job being expired)."""
        version = job.version
        job.settle_copy(CopyState.EXPIRED, expired_at, None)
        if not await self._jobs.amend(job, expected_version=version):
            log.info(
                "job %s: changed during the retention sweep; looked at again next time", job.id
            )
            return
        await self._delete_objects(job)
        self._metrics.asset_evictions.labels(reason).inc()
        log.info("job %s: stored copy removed (%s)", job.id, reason)

    async def _delete_objects(self, job: Job) -> None:
        for variant in CONTENT_TYPES:
            await self._assets.delete(asset_key(job.id, variant))

    async def _remove(self, objects: list[StoredObject]) -> None:
        for found in objects:
            await self._assets.delete(found.key)
