"""The background poller: asks each in-flight attempt's provider for news at its own pace.

Client polls never reach an upstream; they read the store, which this task keeps current.
Each job is due once per ``poll_interval`` of its provider, however often its client polls,
and status reads per provider stay under its ``poll_max_concurrent`` and ``poll_rpm``
(``router.limits.local``): a read that would exceed the rate is rescheduled for when it fits. A
failed status read is not a failed job: the job is polled again later, backing off (after
``Retry-After`` on a 429). A job whose upstream id is gone (404) has lost its render
(``upstream_job_missing``). A due job of a provider that can list, with many jobs in flight,
is read by a list sweep instead (``router.jobs.sweep``), which hands each status it lists to
``_fold``, exactly as a status read does; a job the sweep did not see is read by itself.

Post-acceptance failover: an attempt that failed for a provider reason, lost its render, or
made no progress for ``stall_timeout`` (measured on the injected clock) is closed and handed to
``resubmit`` (the dispatcher's), which starts a new attempt elsewhere under the same job id or
declines; then the job fails with the attempt's error. Output moderation goes the same way
but the retry policy keeps it terminal by default. A job past ``job_deadline`` fails with
``deadline_exceeded``. Render outcomes feed ``ProviderHealth``; moderation never does.

Reconciliation: an ``UNKNOWN`` attempt (its create was sent, the answer never came) is looked
for instead of read, once per poll interval; ``router.jobs.reconcile`` gives the verdict (found,
wait, retry, re-submit elsewhere, or fail without another send) and this module acts on it.

When a job is read next (after how much backoff), and by which of its provider's lane
workers, is ``router.jobs.schedule``'s business; timestamps written into jobs come from the injected
wall clock. Failovers run as tasks of their own (a re-submission may wait for admission), so a
worker is back on its lane at once.

Which jobs this process reads, and where their next read is written down, is
``router.jobs.tracking``'s: the store's own jobs and the local schedule on the sqlite backend,
the fleet's shared poll plan under a lease per provider on redis. Every write is
compare-and-set (``JobStore.update`` over the version this poller last read or stored): when
another writer got there first (a cancel, another instance after a lease changed hands) the
write is dropped, nothing is acted on, and the job is read afresh shortly (``CONFLICT_DELAY``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from monitoring.health import ProviderHealth
from monitoring.metrics import Metrics
from providers.base import ProviderError, RateLimited, Rejected, UpstreamJob
from router.jobs import lifecycle
from router.jobs.reconcile import UNCONFIRMED_CODE, Verdict, reconcile
from router.jobs.retry import AttemptFailure, RetryPolicy, RetryState
from router.jobs.schedule import Schedule
from router.jobs.sweep import Sweeps
from router.jobs.tracking import LocalTracking, Tracking
from router.limits.local import Limits
from router.records.job import AttemptState, Job, JobState
from router.routing.pool import PoolEntry, ProviderPool
from router.store.base import JobStore
from router.store.sqlite import SqliteJobStore

log = logging.getLogger(__name__)

MODERATION_CODE = "moderation_blocked"
CONFLICT_DELAY = 0.5  # seconds before a job another writer changed is read afresh

# made by the app once the schedule exists: the local one, or the fleet's (router.jobs.tracking)
TrackingFactory = Callable[[Schedule], Tracking]

Resubmit = Callable[[Job, AttemptFailure], Awaitable[bool]]


class Poller:
    def __init__(
        self,
        *,
        store: JobStore,
        pool: ProviderPool,
        clock: Callable[[], float],
        health: ProviderHealth,
        policy: RetryPolicy,
        metrics: Metrics,
        limits: Limits,
        tracking: TrackingFactory | None = None,
    ) -> None:
        """``tracking`` defaults to ``LocalTracking`` over ``store`` (which must then be the
        SQLite store)."""
        self._store: JobStore = store
        self._limits = limits
        self._pool = pool
        self._clock = clock
        self._health = health
        self._policy = policy
        self._metrics = metrics
        self.resubmit: Resubmit | None = None  # set by the dispatcher's owner once both exist
        # told of each job as it settles completed (the asset copier: router.assets.copier)
        self.completed: Callable[[Job], None] | None = None
        # job id -> the version this poller last read or stored: what its next write expects
        self._versions: dict[str, int] = {}
        self._schedule = Schedule(self._read, self._lane_of, limits.read_concurrency)
        if tracking is None:
            assert isinstance(store, SqliteJobStore), "LocalTracking needs the SQLite store"
            self._tracking: Tracking = LocalTracking(store, self._schedule, limits.rendering)
        else:
            self._tracking = tracking(self._schedule)
        self._sweeps = Sweeps(
            self._tracking, pool, limits, self._schedule, self._fold, self._backoff, self.track
        )

    def configure(self, policy: RetryPolicy) -> None:
        """Take reloaded routing settings (and providers' read concurrency)."""
        self._policy = policy
        self._schedule.restaff()
        self._sweeps.reset()

    async def track(self, job: Job, delay: float | None = None) -> None:
        """Poll ``job`` after ``delay`` seconds (default: its provider's poll interval)."""
        self._versions.pop(job.id, None)  # the next read starts from what is stored then
        await self._tracking.again(job, self._interval(job) if delay is None else delay)

    async def follow(self, job: Job) -> None:
        """A new ``job`` (or a new attempt) is stored: poll it (one process schedules its next
        read now, when it can be read; in a fleet the store's insert planned it, with the job:
        ``router.store.redis``); one its upstream answered finished (completed at once) is
        settled here, since no read of it will ever come."""
        if job.state.finished:
            await self._settled(job)
        elif not self._tracking.plans_ahead:
            await self.track(job)

    async def resume(self, jobs: list[Job]) -> None:
        """Pick up jobs that were in flight before a restart, spread over one interval each."""
        for index, job in enumerate(jobs):
            await self.track(job, self._interval(job) * index / max(len(jobs), 1))

    def start(self) -> None:
        self._schedule.start()
        self._tracking.start()

    async def stop(self) -> None:
        await self._tracking.stop()
        await self._schedule.stop()

    @property
    def scheduled(self) -> int:
        return self._schedule.scheduled + self._sweeps.waiting

    @property
    def sweeping(self) -> int:
        """Of ``scheduled``, the jobs waiting for or being read by a list sweep."""
        return self._sweeps.waiting

    def overdue(self) -> int:
        return self._schedule.overdue()

    def _lane_of(self, job_id: str) -> str | None:
        """The lane of a due job; None when finished or taken for a list sweep."""
        job = self._tracking.job(job_id)
        if job is None or job.state.finished or self._sweeps.take(job):
            return None
        return job.current.provider

    async def _read(self, job_id: str) -> None:
        job = self._tracking.job(job_id)
        if job is None or job.state.finished:
            return
        self._versions[job.id] = job.version
        attempt = job.current
        entry = self._pool.get(attempt.provider)
        if entry is None:
            await self._settle_failed(
                job, "provider_missing", "The provider of this render is gone."
            )
            return
        if attempt.state.finished:  # its failover was cut short (the instance died): go on
            await self._failover(job, AttemptFailure.PROVIDER, stored=True)
            return
        wait = await self._limits.take_read(attempt.provider)
        if wait:
            self._tracking.pause(attempt.provider, wait)
            await self.track(job, wait)
            return
        if attempt.state is AttemptState.UNKNOWN:
            await self._reconcile(job, entry)
            return
        try:
            async with self._limits.read_slots(attempt.provider):
                self._schedule.reading(job_id)
                seen = await entry.adapter.get(attempt.upstream_id)
        except ProviderError as exc:
            await self._read_failed(job, exc)
            return
        if await self._fold(job, seen):
            await self.track(job)

    async def _fold(self, job: Job, seen: UpstreamJob) -> bool:
        """Fold a status (read, or listed by a sweep) into ``job`` and act; True: poll on."""
        self._schedule.succeeded(job.id)
        if job.state.finished:  # settled while the read was out (a cancel): nothing to act on
            return False
        self._versions.setdefault(job.id, job.version)
        attempt = job.current
        now = self._clock()
        was_queued = attempt.state is AttemptState.QUEUED
        if job.observe(seen, now) and not await self._write(job):
            return False
        if was_queued and attempt.state is not AttemptState.QUEUED:
            self._metrics.queued(attempt.provider, now - attempt.submitted_at)
        return await self._observed(job, now)

    async def _observed(self, job: Job, now: float) -> bool:
        """Act on what the current attempt's upstream last said: settle or fail over (False),
        or poll on (True: the caller schedules the next read)."""
        attempt = job.current
        if attempt.state is AttemptState.FAILED:
            moderated = attempt.error_code == MODERATION_CODE
            if moderated:
                self._metrics.moderated(attempt.provider, "output")
            else:
                self._health.rendered(attempt.provider, False)
            failure = AttemptFailure.MODERATION if moderated else AttemptFailure.PROVIDER
            await self._failover(job, failure, stored=True)
        elif job.state.finished:
            self._health.rendered(attempt.provider, True, now - attempt.submitted_at)
            await self._settled(job)
        elif await self._stalled(job, now):
            self._health.rendered(attempt.provider, False)
            job.abandon("stalled", f"No progress for {self._policy.stall_timeout:g}s.", now)
            await self._failover(job, AttemptFailure.STALLED)
        elif RetryState(self._policy, len(job.attempts), job.created_at).past_deadline(now):
            await self._settle_failed(job, "deadline_exceeded", "The render took too long.")
        else:
            return True
        return False

    async def _write(self, job: Job) -> bool:
        """Store ``job`` over the version this poller last read or stored. False: another
        writer changed it first; the change is dropped and the job read afresh soon."""
        expected = self._versions.get(job.id, job.version)
        if await self._store.update(job, expected_version=expected):
            self._versions[job.id] = job.version
            return True
        self._versions.pop(job.id, None)
        log.info("job %s: changed elsewhere meanwhile; reading it afresh", job.id)
        await self._tracking.again(job, CONFLICT_DELAY)
        return False

    async def _reconcile(self, job: Job, entry: PoolEntry) -> None:
        """Look for the ``UNKNOWN`` attempt's render upstream (``jobs.reconcile``) and act."""
        attempt = job.current
        now = self._clock()
        if RetryState(self._policy, len(job.attempts), job.created_at).past_deadline(now):
            await self._settle_failed(job, "deadline_exceeded", "The render took too long.")
            return
        self._schedule.reading(job.id)
        finding = await reconcile(
            job,
            entry,
            store=self._store,
            limits=self._limits,
            window=self._policy.reconcile_window,
            clock=self._clock,
        )
        verdict = finding.verdict
        if verdict is Verdict.RETRY:
            assert finding.error is not None
            await self._retry_later(job, finding.error)
            return
        self._schedule.succeeded(job.id)
        now = self._clock()
        if verdict is Verdict.FOUND:
            assert finding.match is not None
            job.confirm(finding.match.upstream_id)
            job.observe(finding.match, now)
            if not await self._write(job):
                return
            log.info(
                "job %s: unanswered create found on %s as %s",
                job.id,
                attempt.provider,
                finding.match.upstream_id,
            )
            if await self._observed(job, now):
                await self.track(job)
        elif verdict is Verdict.WAIT:
            await self.track(job)
        elif verdict is Verdict.FAIL:
            await self._settle_failed(job, UNCONFIRMED_CODE, finding.message)
        else:
            log.warning("job %s: unanswered create not found on %s", job.id, attempt.provider)
            job.abandon(UNCONFIRMED_CODE, finding.message, now)
            await self._failover(job, AttemptFailure.UNCONFIRMED)

    async def _stalled(self, job: Job, now: float) -> bool:
        """No progress on the current attempt for ``stall_timeout`` (injected clock)."""
        mark = f"{len(job.attempts)}:{job.current.progress}"
        since = await self._tracking.since(job, mark, now)
        return now - since >= self._policy.stall_timeout

    async def _failover(self, job: Job, failure: AttemptFailure, *, stored: bool = False) -> None:
        """Store the closed attempt (unless ``stored``: the write that closed it is done) and
        hand the job to ``resubmit`` on a task of its own."""
        if not stored and not await self._write(job):
            return
        self._limits.attempt_ended(job.id)
        self._schedule.spawn(self._resubmit(job, failure), f"failover {job.id}")

    async def _resubmit(self, job: Job, failure: AttemptFailure) -> None:
        """Start a new attempt elsewhere and store it; settle the job failed when
        ``resubmit`` declines."""
        left = job.current.provider
        if self.resubmit is not None and await self.resubmit(job, failure):
            if not await self._write(job):
                log.warning(
                    "job %s: changed elsewhere during its failover; the new render %s on %s "
                    "is not tracked",
                    job.id,
                    job.current.upstream_id or "(unanswered)",
                    job.current.provider,
                )
                return
            log.info(
                "job %s: attempt %d on %s (%s)",
                job.id,
                len(job.attempts),
                job.current.provider,
                job.current.state.value,
            )
            await self._tracking.done(job, left)
            if job.state.finished:  # the new provider answered finished at once
                await self._settled(job)
            else:
                await self.track(job)
            return
        attempt = job.current
        await self._settle_failed(
            job,
            attempt.error_code or "render_failed",
            attempt.error_message or "The provider failed to render the video.",
        )

    async def _read_failed(self, job: Job, exc: ProviderError) -> None:
        if not (isinstance(exc, Rejected) and exc.status == 404):
            await self._retry_later(job, exc)
            return
        upstream_id = job.current.upstream_id
        log.warning("job %s: provider %s lost upstream job %s", job.id, exc.provider, upstream_id)
        self._health.rendered(exc.provider, False)
        job.abandon("upstream_job_missing", "The provider lost this render.", self._clock())
        await self._failover(job, AttemptFailure.PROVIDER)

    async def _retry_later(self, job: Job, exc: ProviderError) -> None:
        """A failed read (status or ``find``): try again, backing off, after any Retry-After."""
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
        delay = await self._backoff(job, retry_after)
        log.info("job %s: upstream read failed (%r); next try in %.1fs", job.id, exc, delay)

    async def _backoff(self, job: Job, retry_after: float | None) -> float:
        """Read ``job`` again after a failed read, backing off (``Schedule.backoff``)."""
        delay = self._schedule.backoff(job.id, self._interval(job), retry_after)
        await self.track(job, delay)
        return delay

    async def _settle_failed(self, job: Job, code: str, message: str) -> None:
        if job.fail(code, message, self._clock()) and await self._write(job):
            await self._settled(job)

    async def settle(self, job: Job) -> None:
        """A job settled outside the poller (a cancel): close its holds and count it."""
        await self._settled(job)

    async def _settled(self, job: Job) -> None:
        self._limits.finish(job)
        self._schedule.succeeded(job.id)
        self._versions.pop(job.id, None)
        await self._tracking.done(job, job.current.provider)
        attempt = job.current
        completed = job.state is JobState.COMPLETED
        outcome = _outcome(job)
        lifecycle.settled(job, outcome)
        self._metrics.settled(
            provider=attempt.provider,
            model=job.model,
            key=job.owner,
            outcome=outcome,
            attempts=len(job.attempts),
            job_seconds=(job.completed_at or self._clock()) - job.created_at,
            render_seconds=(attempt.finished_at or 0.0) - attempt.submitted_at
            if completed
            else None,
            video_seconds=job.rendered_seconds,
            cost_usd=job.cost_usd,
        )
        if completed and self.completed is not None:
            self.completed(job)

    def _interval(self, job: Job) -> float:
        return self._pool.poll_interval(job.current.provider)


def _outcome(job: Job) -> str:
    """The bounded outcome word of a finished job for ``sora_proxy_jobs_finished_total``."""
    if job.state is JobState.COMPLETED:
        return "completed"
    if job.error_code == MODERATION_CODE:
        return "moderated"
    if job.error_code == "cancelled":
        return "cancelled"
    return "deadline_exceeded" if job.error_code == "deadline_exceeded" else "failed"
