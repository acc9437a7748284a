"""The background poller: asks each in-flight attempt's provider for news at its own pace.

Client polls never reach an upstream; they read the store, which this task keeps current.
Each job is due once per ``poll_interval`` of its provider, however often its client polls,
and status reads per provider stay under its ``poll_max_concurrent`` and ``poll_rpm``
(``router.limits``): a read that would exceed the rate is rescheduled for when it fits. A
failed status read is not a failed job: the job is polled again later (after ``Retry-After``
on a 429). A job whose upstream id is gone (404) has lost its render
(``upstream_job_missing``).

Post-acceptance failover: an attempt that failed for a provider reason, lost its render, or
made no progress for ``stall_timeout`` (measured on the injected clock) is closed and handed to
``resubmit`` (the dispatcher's), which starts a new attempt elsewhere under the same job id or
declines; then the job fails with the attempt's error. Output moderation goes the same way
but the retry policy keeps it terminal by default. A job past ``job_deadline`` fails with
``deadline_exceeded``. Render outcomes feed ``ProviderHealth``; moderation never does.

Reconciliation: an ``UNKNOWN`` attempt (its create was sent, the answer never came) is looked
for instead of read: once per poll interval, ``find`` on its provider. The nearest match that
no other unfinished job holds is claimed (``Job.confirm``) and polled from then on. Only a
definite "not there" ``reconcile_window`` after the send (injected clock) closes the attempt
``submit_unconfirmed`` and hands it to ``resubmit``, which never picks a provider tried before;
a failed ``find`` is tried again like a failed read. A provider that cannot tell
(``Unsearchable``, e.g. the relay dialect) gets the window too, then the job fails
``submit_unconfirmed`` without another attempt: the render may be running there.

Jobs are scheduled on a heap keyed by the loop's monotonic clock; timestamps written into
jobs come from the injected wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable

from monitoring.health import ProviderHealth
from monitoring.metrics import Metrics
from providers.base import (
    Provider,
    ProviderError,
    RateLimited,
    Rejected,
    RenderRequest,
    Unsearchable,
    UpstreamJob,
)
from router.config import ProviderModel
from router.jobs import AttemptState, Job, JobState
from router.limits import Limits
from router.pool import ProviderPool
from router.retry import AttemptFailure, RetryPolicy, RetryState
from router.store import JobStore

log = logging.getLogger(__name__)

ERROR_BACKOFF_CAP = 60.0  # seconds; failed status reads back off up to this
OVERDUE_GRACE = 1.0  # seconds; a poll not started this long after it was due is overdue
MODERATION_CODE = "moderation_blocked"
UNCONFIRMED_CODE = "submit_unconfirmed"

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
    ) -> None:
        self._store = store
        self._limits = limits
        self._pool = pool
        self._clock = clock
        self._health = health
        self._policy = policy
        self._metrics = metrics
        self.resubmit: Resubmit | None = None  # set by the dispatcher's owner once both exist
        self._progress: dict[str, tuple[int, int, float]] = {}  # job -> (attempt, progress, since)
        self._due: list[tuple[float, int, str]] = []
        self._sequence = itertools.count()
        self._wake = asyncio.Event()
        self._errors: dict[str, int] = {}  # job id -> consecutive failed reads
        self._inflight: set[asyncio.Task[None]] = set()
        self._waiting: dict[str, float] = {}  # job id -> when its started poll was due
        self._runner: asyncio.Task[None] | None = None

    def configure(self, policy: RetryPolicy) -> None:
        self._policy = policy

    def track(self, job: Job, delay: float | None = None) -> None:
        """Poll ``job`` after ``delay`` seconds (default: its provider's poll interval)."""
        if delay is None:
            delay = self._interval(job)
        loop = asyncio.get_running_loop()
        heapq.heappush(self._due, (loop.time() + delay, next(self._sequence), job.id))
        self._wake.set()

    def resume(self, jobs: list[Job]) -> None:
        """Pick up jobs that were in flight before a restart, spread over one interval each."""
        for index, job in enumerate(jobs):
            self.track(job, self._interval(job) * index / max(len(jobs), 1))

    def start(self) -> None:
        self._runner = asyncio.get_running_loop().create_task(self._run(), name="poller")

    async def stop(self) -> None:
        tasks = [t for t in (self._runner, *self._inflight) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight.clear()
        self._runner = None

    @property
    def scheduled(self) -> int:
        return len(self._due) + len(self._waiting)

    def overdue(self) -> int:
        """Polls not started (or still waiting for a read slot) ``OVERDUE_GRACE`` after due."""
        late = asyncio.get_running_loop().time() - OVERDUE_GRACE
        return sum(1 for due, _, _ in self._due if due < late) + sum(
            1 for due in self._waiting.values() if due < late
        )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            while self._due and self._due[0][0] <= now:
                due, _, job_id = heapq.heappop(self._due)
                self._waiting[job_id] = due
                task = loop.create_task(self._poll(job_id))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            self._wake.clear()
            timeout = self._due[0][0] - now if self._due else None
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # lands as the wake-up fires, and then stop() would wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _poll(self, job_id: str) -> None:
        try:
            await self._read(job_id)
        finally:
            self._waiting.pop(job_id, None)

    async def _read(self, job_id: str) -> None:
        job = self._store.get(job_id)
        if job is None or job.state.finished:
            return
        attempt = job.current
        entry = self._pool.get(attempt.provider)
        if entry is None:
            self._settle_failed(job, "provider_missing", "The provider of this render is gone.")
            return
        wait = self._limits.take_read(attempt.provider)
        if wait:
            self.track(job, wait)
            return
        if attempt.state is AttemptState.UNKNOWN:
            await self._reconcile(job, entry.adapter, entry.config.models.get(job.model))
            return
        try:
            async with self._limits.read_slots(attempt.provider):
                self._waiting.pop(job_id, None)
                seen = await entry.adapter.get(attempt.upstream_id)
        except ProviderError as exc:
            await self._read_failed(job, exc)
            return
        self._errors.pop(job.id, None)
        now = self._clock()
        was_queued = attempt.state is AttemptState.QUEUED
        if job.observe(seen, now):
            self._store.save(job)
        if was_queued and attempt.state is not AttemptState.QUEUED:
            self._metrics.queued(attempt.provider, now - attempt.submitted_at)
        await self._observed(job, now)

    async def _observed(self, job: Job, now: float) -> None:
        """Act on what the current attempt's upstream last said: settle, fail over, or poll on."""
        attempt = job.current
        if attempt.state is AttemptState.FAILED:
            moderated = attempt.error_code == MODERATION_CODE
            if moderated:
                self._metrics.moderated(attempt.provider, "output")
            else:
                self._health.rendered(attempt.provider, False)
            await self._failover(
                job, AttemptFailure.MODERATION if moderated else AttemptFailure.PROVIDER
            )
        elif job.state.finished:
            self._health.rendered(attempt.provider, True, now - attempt.submitted_at)
            self._settled(job)
        elif self._stalled(job, now):
            self._health.rendered(attempt.provider, False)
            job.abandon("stalled", f"No progress for {self._policy.stall_timeout:g}s.", now)
            await self._failover(job, AttemptFailure.STALLED)
        elif RetryState(self._policy, len(job.attempts), job.created_at).past_deadline(now):
            self._settle_failed(job, "deadline_exceeded", "The render took too long.")
        else:
            self.track(job)

    async def _reconcile(self, job: Job, adapter: Provider, model: ProviderModel | None) -> None:
        """Look for the ``UNKNOWN`` attempt's render upstream; claim it, wait, or give it up."""
        attempt = job.current
        now = self._clock()
        if RetryState(self._policy, len(job.attempts), job.created_at).past_deadline(now):
            self._settle_failed(job, "deadline_exceeded", "The render took too long.")
            return
        found: list[UpstreamJob] | None = None  # None: the provider cannot tell
        try:
            if model is None:  # the provider no longer serves the model: nothing to match on
                raise Unsearchable("find: model no longer configured", provider=attempt.provider)
            request = RenderRequest(model.upstream_model, job.prompt, job.size, job.seconds)
            async with self._limits.read_slots(attempt.provider):
                self._waiting.pop(job.id, None)
                found = await adapter.find(request, attempt.submitted_at)
        except Unsearchable as exc:
            log.debug(
                "job %s: %s cannot tell whether it has the render (%r)", job.id, exc.provider, exc
            )
        except ProviderError as exc:
            self._retry_later(job, exc)
            return
        self._errors.pop(job.id, None)
        now = self._clock()
        claimed = self._claimed(attempt.provider) if found else set()
        match = next((seen for seen in found or () if seen.upstream_id not in claimed), None)
        if match is not None:
            job.confirm(match.upstream_id)
            job.observe(match, now)
            self._store.save(job)
            log.info(
                "job %s: unanswered create found on %s as %s",
                job.id,
                attempt.provider,
                match.upstream_id,
            )
            await self._observed(job, now)
            return
        if now - attempt.submitted_at < self._policy.reconcile_window:
            self.track(job)
            return
        window = f"{self._policy.reconcile_window:g}s"
        if found is None:
            self._settle_failed(
                job,
                UNCONFIRMED_CODE,
                f"The provider did not answer the create and cannot be searched: the render may "
                f"have started there, but it could not be confirmed within {window}, so it was "
                "not sent anywhere else.",
            )
            return
        log.warning("job %s: unanswered create not found on %s", job.id, attempt.provider)
        job.abandon(
            UNCONFIRMED_CODE,
            f"The provider did not answer the create and did not list it within {window}.",
            now,
        )
        await self._failover(job, AttemptFailure.UNCONFIRMED)

    def _claimed(self, provider: str) -> set[str]:
        """Upstream ids on ``provider`` that unfinished jobs already hold (not to be claimed)."""
        return {
            a.upstream_id
            for job in self._store.unfinished()
            for a in job.attempts
            if a.provider == provider and a.upstream_id
        }

    def _stalled(self, job: Job, now: float) -> bool:
        """No progress on the current attempt for ``stall_timeout`` (injected clock)."""
        mark = (len(job.attempts), job.current.progress)
        seen = self._progress.get(job.id)
        if seen is None or seen[:2] != mark:
            self._progress[job.id] = (*mark, now)
            return False
        return now - seen[2] >= self._policy.stall_timeout

    async def _failover(self, job: Job, failure: AttemptFailure) -> None:
        """Hand a closed attempt to ``resubmit``; settle the job failed when it declines."""
        self._store.save(job)
        self._limits.attempt_ended(job.id)
        if self.resubmit is not None and await self.resubmit(job, failure):
            return
        attempt = job.current
        self._settle_failed(
            job,
            attempt.error_code or "render_failed",
            attempt.error_message or "The provider failed to render the video.",
        )

    async def _read_failed(self, job: Job, exc: ProviderError) -> None:
        if isinstance(exc, Rejected) and exc.status == 404:
            log.warning(
                "job %s: provider %s lost upstream job %s",
                job.id,
                exc.provider,
                job.current.upstream_id,
            )
            self._health.rendered(exc.provider, False)
            job.abandon("upstream_job_missing", "The provider lost this render.", self._clock())
            await self._failover(job, AttemptFailure.PROVIDER)
            return
        self._retry_later(job, exc)

    def _retry_later(self, job: Job, exc: ProviderError) -> None:
        """A failed read (status or ``find``): try again, backing off, after any Retry-After."""
        failures = self._errors[job.id] = self._errors.get(job.id, 0) + 1
        delay = min(self._interval(job) * 2 ** min(failures - 1, 6), ERROR_BACKOFF_CAP)
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        log.info("job %s: upstream read failed (%r); next try in %.1fs", job.id, exc, delay)
        self.track(job, delay)

    def _settle_failed(self, job: Job, code: str, message: str) -> None:
        if job.fail(code, message, self._clock()):
            self._store.save(job)
            self._settled(job)

    def _settled(self, job: Job) -> None:
        self._limits.finish(job)
        self._errors.pop(job.id, None)
        self._progress.pop(job.id, None)
        attempt = job.current
        completed = job.state is JobState.COMPLETED
        self._metrics.settled(
            provider=attempt.provider,
            model=job.model,
            key=job.owner,
            outcome=_outcome(job),
            attempts=len(job.attempts),
            job_seconds=(job.completed_at or self._clock()) - job.created_at,
            render_seconds=(attempt.finished_at or 0.0) - attempt.submitted_at
            if completed
            else None,
            video_seconds=job.seconds,
            cost_usd=job.cost_usd,
        )

    def _interval(self, job: Job) -> float:
        entry = self._pool.get(job.current.provider)
        return entry.config.poll_interval if entry is not None else 5.0


def _outcome(job: Job) -> str:
    """The bounded outcome word of a finished job for ``sora_proxy_renders_total``."""
    if job.state is JobState.COMPLETED:
        return "completed"
    if job.error_code == MODERATION_CODE:
        return "moderated"
    return "expired" if job.error_code == "deadline_exceeded" else "failed"
