"""Submitting renders: pick candidates, send, fail over at submit, record the job.

A create goes to the candidates in order. A failure that proves the upstream did not take the
render (connect error, 5xx, 429, unusable provider) moves on to the next candidate before the
client hears anything. Moderation and other refusals are the client's answer, from the first
provider that gave them. A create that may have been accepted (the connection died after
sending) is never re-sent blindly: the client gets a 502 that says so.

The job is durable (``store.insert`` awaited) before the client gets its id.

``resubmit`` is the poller's post-acceptance failover: when an accepted attempt fails for a
provider reason or stalls, the retry policy and budget decide, and a new attempt goes to a
provider not tried yet, under the same job id, with the input reference re-read from the store.
Every submit outcome is reported to ``ProviderHealth``: a 429 cools the provider, moderation and
refusals are not health signals, everything else feeds outlier detection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from monitoring.metrics import Metrics
from providers.base import (
    BadUpstreamReply,
    InputReference,
    ModerationBlocked,
    ProviderError,
    RateLimited,
    Rejected,
    RenderRequest,
    UpstreamJob,
    UpstreamTimeout,
)
from router.errors import (
    InvalidRequest,
    NotReady,
    RouterError,
    TooManyRequests,
    Unavailable,
    UpstreamFailed,
)
from router.jobs import Attempt, AttemptState, Job, JobState, new_job_id
from router.poller import Poller
from router.retry import AttemptFailure, RetryBudget, RetryDecision, RetryPolicy, RetryState
from router.selection import Candidate, Selector
from router.store import JobStore

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class CreateRequest:
    """A validated create, in the client catalogue's terms."""

    model: str
    prompt: str
    size: str
    seconds: int
    input_reference: InputReference | None = None


class Dispatcher:
    __slots__ = ("_budget", "_clock", "_metrics", "_policy", "_poller", "_selector", "_store")

    def __init__(
        self,
        *,
        selector: Selector,
        store: JobStore,
        poller: Poller,
        clock: Callable[[], float],
        policy: RetryPolicy,
        metrics: Metrics,
    ) -> None:
        self._metrics = metrics
        self._selector = selector
        self._store = store
        self._poller = poller
        self._clock = clock
        self._policy = policy
        self._budget = RetryBudget()

    async def create(self, owner: str, request: CreateRequest) -> Job:
        candidates = self._selector.candidates(request.model, request.size, request.seconds)
        if not candidates:
            if not self._selector.capable(request.model, request.size, request.seconds):
                raise self._unrenderable(request)
            raise Unavailable("Every capable provider is cooling down or ejected; retry later.")
        candidate, seen = await self._submit(candidates, request, request.input_reference)
        self._budget.created(self._clock())
        job = self._new_job(owner, request, candidate, seen)
        await self._store.insert(job, request.input_reference)
        self._poller.track(job)
        return job

    async def resubmit(self, job: Job, failure: AttemptFailure) -> bool:
        """Start a new attempt of ``job`` elsewhere; False when policy, budget or providers say no.

        The caller has already closed the failed attempt; on False it settles the job.
        """
        now = self._clock()
        state = RetryState(self._policy, len(job.attempts), job.created_at)
        if state.decide(failure, now) is RetryDecision.FAIL:
            return False
        tried = {a.provider for a in job.attempts}
        candidates = self._selector.candidates(job.model, job.size, job.seconds, tried=tried)
        if not candidates or not self._budget.try_spend(now):
            return False
        reference = await self._store.input_reference(job.id)
        request = CreateRequest(job.model, job.prompt, job.size, job.seconds, reference)
        try:
            candidate, seen = await self._submit(candidates, request, reference)
        except RouterError as exc:
            log.warning("job %s: no provider took the re-submission (%s)", job.id, exc.message)
            return False
        self._metrics.failover(failure.value, job.current.provider, candidate.entry.name)
        submitted = self._clock()
        attempt = Attempt(
            provider=candidate.entry.name, upstream_id=seen.upstream_id, submitted_at=submitted
        )
        job.add_attempt(attempt, candidate.price_per_second or 0.0)
        self._first_sight(job, seen, submitted)
        self._store.save(job)
        log.info("job %s: attempt %d on %s", job.id, len(job.attempts), candidate.entry.name)
        self._poller.track(job)
        return True

    async def _submit(
        self,
        candidates: list[Candidate],
        request: CreateRequest,
        reference: InputReference | None,
    ) -> tuple[Candidate, UpstreamJob]:
        """Create on the first candidate that takes it, failing over on provider errors."""
        health = self._selector.health
        loop = asyncio.get_running_loop()
        failures: list[ProviderError] = []
        for index, candidate in enumerate(candidates):
            name = candidate.entry.name
            upstream = RenderRequest(
                model=candidate.upstream_model,
                prompt=request.prompt,
                size=request.size,
                seconds=request.seconds,
                input_reference=reference,
            )
            started = loop.time()
            try:
                seen = await candidate.entry.adapter.create(upstream)
            except ProviderError as exc:
                _raise_if_final(exc)
                if isinstance(exc, RateLimited):
                    health.cool(name, exc.retry_after)
                else:
                    health.submitted(name, False, loop.time() - started)
                log.warning("create on %s failed (%r); trying the next provider", name, exc)
                failures.append(exc)
                if index + 1 < len(candidates):
                    reason = "rate_limited" if isinstance(exc, RateLimited) else "submit_failed"
                    self._metrics.failover(reason, name, candidates[index + 1].entry.name)
                continue
            health.submitted(name, True, loop.time() - started)
            return candidate, seen
        error = _all_failed(failures)
        if isinstance(error, TooManyRequests):
            self._metrics.rejected("providers")
        raise error

    async def remix(self, owner: str, source: Job, prompt: str) -> Job:
        """A new job remixing ``source``, on the provider that holds the source render."""
        if source.state is not JobState.COMPLETED:
            raise NotReady("Only a completed video can be remixed.", param="video_id")
        entry = self._selector.holder(source)
        try:
            seen = await entry.adapter.remix(source.current.upstream_id, prompt)
        except ProviderError as exc:
            _raise_if_final(exc)
            raise _all_failed([exc]) from exc
        now = self._clock()
        job = Job(
            id=new_job_id(),
            owner=owner,
            model=source.model,
            prompt=prompt,
            size=source.size,
            seconds=source.seconds,
            created_at=now,
            remixed_from=source.id,
            price_per_second=source.price_per_second,
            attempts=[Attempt(provider=entry.name, upstream_id=seen.upstream_id, submitted_at=now)],
        )
        self._first_sight(job, seen, now)
        await self._store.insert(job)
        self._poller.track(job)
        return job

    async def delete(self, job: Job) -> None:
        """Forget a finished job here and, best effort, its renders upstream."""
        if not job.state.finished:
            raise InvalidRequest(
                "Only a completed or failed video can be deleted.",
                param="video_id",
                code="video_not_finished",
            )
        for attempt in job.attempts:
            entry = self._selector.pinned(attempt.provider)
            if entry is None:
                continue
            try:
                await entry.adapter.delete(attempt.upstream_id)
            except ProviderError as exc:
                log.info(
                    "job %s: upstream delete on %s failed (%r); forgetting it anyway",
                    job.id,
                    attempt.provider,
                    exc,
                )
        await self._store.delete(job.id)

    def _first_sight(self, job: Job, seen: UpstreamJob, now: float) -> None:
        """Fold in the create's own answer; if it already says rendering, the queue wait was
        the submit itself (the poller records the wait of attempts it sees leave the queue)."""
        job.observe(seen, now)
        attempt = job.current
        if attempt.state is not AttemptState.QUEUED:
            self._metrics.queued(attempt.provider, now - attempt.submitted_at)

    def _new_job(
        self, owner: str, request: CreateRequest, candidate: Candidate, seen: UpstreamJob
    ) -> Job:
        now = self._clock()
        job = Job(
            id=new_job_id(),
            owner=owner,
            model=request.model,
            prompt=request.prompt,
            size=request.size,
            seconds=request.seconds,
            created_at=now,
            price_per_second=candidate.price_per_second or 0.0,
            attempts=[
                Attempt(
                    provider=candidate.entry.name, upstream_id=seen.upstream_id, submitted_at=now
                )
            ],
        )
        self._first_sight(job, seen, now)
        return job

    def _unrenderable(self, request: CreateRequest) -> InvalidRequest:
        sizes, seconds = self._selector.renderable(request.model, request.size)
        if not sizes:
            return InvalidRequest(
                f"No provider currently serves the model '{request.model}'.",
                param="model",
                code="model_not_available",
            )
        if request.size not in sizes:
            return InvalidRequest(
                f"Size '{request.size}' cannot be rendered for '{request.model}'. "
                f"Possible sizes: {', '.join(sizes)}.",
                param="size",
                code="invalid_value",
            )
        return InvalidRequest(
            f"{request.seconds} seconds at {request.size} cannot be rendered for "
            f"'{request.model}'. Possible seconds: {', '.join(map(str, seconds))}.",
            param="seconds",
            code="invalid_value",
        )


def _raise_if_final(exc: ProviderError) -> None:
    """Refusals go to the client as they are; an ambiguous create must not be re-sent."""
    if isinstance(exc, ModerationBlocked):
        raise InvalidRequest(exc.message, param=exc.param, code="moderation_blocked") from exc
    if isinstance(exc, Rejected):
        raise InvalidRequest(exc.message, param=exc.param, code=exc.code) from exc
    ambiguous = isinstance(exc, UpstreamTimeout) and exc.sent is not False
    if ambiguous or isinstance(exc, BadUpstreamReply):
        raise UpstreamFailed(
            "The provider did not confirm the render in time; it may have started. "
            "Check your video list before retrying.",
            code="upstream_timeout",
        ) from exc


def _all_failed(failures: list[ProviderError]) -> RouterError:
    if failures and all(isinstance(f, RateLimited) for f in failures):
        waits = [f.retry_after for f in failures if f.retry_after is not None]
        return TooManyRequests(
            "Every capable provider is rate limited; retry later.",
            retry_after=min(waits) if waits else 1.0,
        )
    return UpstreamFailed(
        f"No provider accepted the render ({len(failures)} tried).", code="upstream_unavailable"
    )
