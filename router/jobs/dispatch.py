"""Submitting renders: pick candidates, send, fail over at submit, record the job.

A create goes to the candidates in order. A failure that proves the upstream did not take the
render (connect error, 5xx, 429, unusable provider) moves on to the next candidate before the
client hears anything. Moderation and other refusals are the client's answer, from the first
provider that gave them. A create that may have been accepted (sent, then a timeout, a broken
connection or a 2xx we cannot read) is never re-sent blindly: no other candidate gets it, and
the job is recorded with one ``UNKNOWN`` attempt on that provider, queued to the client, which
the poller reconciles through the provider's list (``Provider.find``). The limits hold stays
on that provider meanwhile, and the unanswered create is not a health signal.

The job is durable (``store.insert`` awaited) before the client gets its id.

``resubmit`` is the poller's post-acceptance failover: when an accepted attempt fails for a
provider reason or stalls, or an unknown one is not found upstream in time, the retry policy and
budget decide, and a new attempt goes to a provider not tried yet, under the same job id, with
the input reference (or an edit's uploaded video) re-read from the store; an unanswered
re-submission is an ``UNKNOWN`` attempt too. A remix, edit or extension of a job of ours
(``follow_up``) never moves: its source render is on one provider only.
Every submit outcome is reported to ``ProviderHealth``: a 429 cools the provider, moderation and
refusals are not health signals, everything else feeds outlier detection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import partial

from monitoring.metrics import Metrics
from providers.base import (
    BadUpstreamReply,
    ModerationBlocked,
    Operation,
    ProviderError,
    RateLimited,
    Rejected,
    RenderRequest,
    SourceVideo,
    UpstreamJob,
    UpstreamTimeout,
)
from router.config.model import RoutingConfig
from router.errors import (
    InvalidRequest,
    NotReady,
    RouterError,
    TooManyRequests,
    Unavailable,
    UpstreamFailed,
)
from router.jobs import lifecycle
from router.jobs.operations import Sender
from router.jobs.poller import Poller
from router.jobs.retry import (
    RATE_LIMITED,
    SUBMIT_FAILED,
    AttemptFailure,
    RetryBudget,
    RetryDecision,
    RetryPolicy,
    RetryState,
)
from router.limits.local import Assigned, Hold, Limits
from router.logs import REQUEST_ID
from router.records.job import Attempt, AttemptState, Job, JobState
from router.records.request import CreateRequest
from router.routing.selection import Candidate, Selector
from router.store.base import IdempotencyClaim, JobStore

log = logging.getLogger(__name__)
STORE_RETRY_AFTER = 5  # seconds a client is told to wait when the job store cannot write


@dataclass(slots=True)  # not frozen, see providers.base.RenderRequest
class _Placed:
    """Where a create went: the candidate that got it and its answer, or None when it was sent
    and never answered (the render may exist there); ``sent_at`` by the injected clock."""

    candidate: Candidate
    seen: UpstreamJob | None
    sent_at: float

    def attempt(self, now: float) -> Attempt:
        """The job's attempt for this create: ``UNKNOWN`` since the send, or known from now."""
        name = self.candidate.entry.name
        if self.seen is None:
            return Attempt(
                provider=name, upstream_id="", state=AttemptState.UNKNOWN, submitted_at=self.sent_at
            )
        return Attempt(provider=name, upstream_id=self.seen.upstream_id, submitted_at=now)


class Dispatcher:
    __slots__ = (
        "_budget",
        "_clock",
        "_limits",
        "_metrics",
        "_policy",
        "_poller",
        "_routing",
        "_selector",
        "_sender",
        "_store",
    )

    def __init__(
        self,
        *,
        selector: Selector,
        store: JobStore,
        poller: Poller,
        clock: Callable[[], float],
        policy: RetryPolicy,
        metrics: Metrics,
        limits: Limits,
        routing: RoutingConfig,
        sender: Sender | None = None,
    ) -> None:
        self._sender = sender or Sender(None)
        self._metrics = metrics
        self._limits = limits
        self._routing = routing
        self._selector = selector
        self._store = store
        self._poller = poller
        self._clock = clock
        self._policy = policy
        self._budget = RetryBudget()

    def configure(self, routing: RoutingConfig) -> None:
        """Take reloaded routing settings; renders in flight keep their attempts so far."""
        self._routing = routing
        self._policy = RetryPolicy.from_config(routing)

    async def create(
        self,
        owner: str,
        request: CreateRequest,
        idempotency: IdempotencyClaim | None = None,
        job_id: str | None = None,
        hold: Hold | None = None,
    ) -> Job:
        """Place a new render and store its job (with ``idempotency``'s record, if any) under
        ``job_id`` (the id its key was claimed for) or a new id; the key's hold carries the same
        id (``router.limits.local``).

        ``hold`` is the key's slot when the caller took it already (``admit``, on the request's
        headers, so a claimed ``job_id`` is its token); it is bound to the job, or released when
        no job comes of it.
        """
        if hold is None:
            hold = await self.admit(owner, job_id)
        elif job_id not in (None, hold.token):
            raise ValueError(f"job {job_id}: the hold admitted is for job {hold.token}")
        job_id = hold.token
        try:
            placed = await self._place(job_id, request, hold)
        except BaseException:
            self._limits.release(hold)
            raise
        self._budget.created(self._clock())
        job = self._new_job(job_id, owner, request, placed)
        try:
            await self._store.insert(job, request.kept_input, idempotency)
        except Exception:
            await self._unplace(job, placed, hold)
            raise Unavailable(
                "The proxy cannot store new videos right now; the render was not kept. "
                "Retry later.",
                code="store_unavailable",
                headers={"Retry-After": str(STORE_RETRY_AFTER)},
            ) from None
        self._limits.bind(hold, job.id)
        lifecycle.created(job)
        await self._poller.follow(job)
        return job

    async def _unplace(self, job: Job, placed: _Placed, hold: Hold) -> None:
        """Undo a placed render whose job could not be stored: give back the key's and the
        provider's slots and the budget reservation, and delete the render upstream (the client
        hears a 503 and will create again). A render that cannot be deleted (its create went
        unanswered, or the delete failed) is counted and logged with its upstream id."""
        self._limits.release(hold)
        name = placed.candidate.entry.name
        upstream_id = placed.seen.upstream_id if placed.seen is not None else ""
        log.error(
            "job %s: the job store failed, so the render on %s (%s) is given up",
            job.id,
            name,
            upstream_id or "create unanswered",
        )
        if upstream_id:
            try:
                await placed.candidate.entry.adapter.delete(upstream_id)
                return
            except ProviderError as exc:
                log.warning("job %s: deleting %s on %s failed: %r", job.id, upstream_id, name, exc)
        self._metrics.orphaned(name)
        log.error("orphaned render on %s: upstream id %s", name, upstream_id or "unknown")

    async def _place(self, job_id: str, request: CreateRequest, hold: Hold) -> _Placed:
        """Submit to the first candidate that takes it; wait in the admission queue while every
        usable provider is at its cap, up to ``routing.admission_wait``."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._routing.admission_wait
        queued = False
        try:
            while True:
                model, size, seconds = request.model, request.size, request.rendered_seconds
                needs = request.needs
                candidates = self._selector.candidates(model, size, seconds, needs=needs)
                if candidates:
                    try:
                        return await self._submit(job_id, candidates, request, hold)
                    except _NoRoom:
                        pass
                usable = self._selector.usable(model, size, seconds, needs=needs)
                if not usable:
                    if not self._selector.capable(model, size, seconds, needs):
                        raise self._unrenderable(request)
                    raise self._selector.unavailable(model, size, seconds)
                names = [c.entry.name for c in usable]
                remaining = give_up - loop.time()
                if remaining <= 0 or (
                    not queued and self._limits.queued >= self._routing.admission_queue
                ):
                    self._metrics.rejected("providers")
                    raise TooManyRequests(
                        "Every capable provider is at its configured limit; retry later.",
                        retry_after=min(self._limits.room_in(names), 60.0),
                    )
                if not queued:
                    queued = True
                    self._limits.queued += 1
                await self._limits.wait_for_room(min(remaining, self._limits.room_in(names)))
        finally:
            if queued:
                self._limits.queued -= 1

    async def resubmit(self, job: Job, failure: AttemptFailure) -> bool:
        """Start a new attempt of ``job`` elsewhere; False when policy, budget or providers say no.

        The caller (the poller) has already closed the failed attempt; on True it stores the
        new attempt and polls it, on False it settles the job.
        """
        now = self._clock()
        if job.remixed_from is not None or job.source_video_id is not None:
            return False  # its source render is on that provider alone
        state = RetryState(self._policy, len(job.attempts), job.created_at)
        if state.decide(failure, now) is RetryDecision.FAIL:
            return False
        tried = {a.provider for a in job.attempts}
        request = CreateRequest.of_job(job, None)
        candidates = self._selector.candidates(
            job.model, job.size, job.rendered_seconds, tried=tried, needs=request.needs
        )
        hold = self._limits.hold_of(job.id)
        if not candidates or hold is None or not self._budget.try_spend(now):
            return False
        request = CreateRequest.of_job(job, await self._store.input_reference(job.id))
        try:
            placed = await self._submit(
                job.id, candidates, request, hold, job.request_id, tried=tried
            )
        except (RouterError, _NoRoom) as exc:
            reason = exc.message if isinstance(exc, RouterError) else "every provider is full"
            log.warning("job %s: no provider took the re-submission (%s)", job.id, reason)
            return False
        candidate = placed.candidate
        self._metrics.failover(failure.value, job.current.provider, candidate.entry.name)
        lifecycle.failover(
            job.id, failure.value, job.current.provider, candidate.entry.name, job.request_id
        )
        submitted = self._clock()
        job.add_attempt(placed.attempt(submitted), candidate.price_per_second or 0.0)
        if placed.seen is not None:
            self._first_sight(job, placed.seen, submitted)
        return True

    async def _submit(
        self,
        job_id: str,
        candidates: list[Candidate],
        request: CreateRequest,
        hold: Hold,
        request_id: str | None = None,
        *,
        tried: Collection[str] = (),
    ) -> _Placed:
        """Create on the first candidate that takes it, failing over on provider errors.

        A candidate that filled up meanwhile, or whose price the key's budget cannot take, is
        skipped; when nothing was sent for the first reason ``_NoRoom`` asks the caller to
        wait, for the second the key is over budget. A create sent and never answered ends the
        walk there (``_Placed.seen`` is None), holding that provider's slot. ``request_id``
        names the creating request in log lines written outside it (a re-submission),
        ``tried`` the providers it had before.
        """
        health = self._selector.health
        loop = asyncio.get_running_loop()
        failures: list[ProviderError] = []
        passed: list[str] = []  # candidates passed over, with why, for the routed line
        over_budget = False
        for index, candidate in enumerate(candidates):
            name = candidate.entry.name
            cost = _cost(candidate, request.rendered_seconds, self._limits.budgeted(hold.key))
            verdict = (
                Assigned.OVER_BUDGET
                if cost is None
                else await self._limits.assign(hold, name, cost)
            )
            if verdict is not Assigned.OK:
                over_budget = over_budget or verdict is Assigned.OVER_BUDGET
                passed.append(
                    f"{name} over the key's budget"
                    if verdict is Assigned.OVER_BUDGET
                    else f"{name} full"
                )
                continue
            upstream = RenderRequest(
                model=candidate.upstream_model,
                prompt=request.prompt,
                size=request.size,
                seconds=request.rendered_seconds,
                input_reference=request.input_reference,
                operation=request.operation,
                source=request.source,
                watermark=request.watermark,
                private=request.private,
            )
            why = partial(self._why, candidates, request, passed, tried)
            lifecycle.routed(job_id, name, why, request_id)
            sent_at = self._clock()
            started = loop.time()
            try:
                seen = await self._sender.send(candidate.entry, upstream, request.characters)
            except ProviderError as exc:
                if _ambiguous(exc):
                    # It may be rendering there: another provider must not get it as well.
                    log.warning("create on %s went unanswered (%r); reconciling it", name, exc)
                    return _Placed(candidate, None, sent_at)
                if isinstance(exc, ModerationBlocked):
                    lifecycle.moderated(job_id, name, exc.stage.value, request_id)
                _raise_if_final(exc)
                if isinstance(exc, RateLimited):
                    health.cool(name, exc.retry_after)
                else:
                    health.submitted(name, False, loop.time() - started)
                log.warning("create on %s failed (%r); trying the next provider", name, exc)
                failures.append(exc)
                reason = RATE_LIMITED if isinstance(exc, RateLimited) else SUBMIT_FAILED
                passed.append(f"{name} {reason}")
                if index + 1 < len(candidates):
                    target = candidates[index + 1].entry.name
                    self._metrics.failover(reason, name, target)
                    lifecycle.failover(job_id, reason, name, target, request_id)
                continue
            health.submitted(name, True, loop.time() - started)
            return _Placed(candidate, seen, sent_at)
        if failures:
            error = _all_failed(failures)
            if isinstance(error, TooManyRequests):
                self._metrics.rejected("providers")
            raise error
        if over_budget:
            self._metrics.rejected("key_budget")
            raise self._limits.over_budget(hold.key)
        raise _NoRoom

    def _why(
        self,
        order: list[Candidate],
        request: CreateRequest,
        passed: list[str],
        tried: Collection[str],
    ) -> str:
        why = self._selector.why(
            order, request.model, request.size, request.rendered_seconds, tried
        )
        return f"{why}; passed over: {', '.join(passed)}" if passed else why

    async def remix(
        self,
        owner: str,
        source: Job,
        prompt: str,
        idempotency: IdempotencyClaim | None = None,
        job_id: str | None = None,
    ) -> Job:
        """A new job remixing ``source``, on the provider that holds the source render (under
        ``job_id``, or a new id)."""
        request = CreateRequest(
            source.model, prompt, source.size, source.seconds, operation=Operation.REMIX
        )
        return await self.follow_up(owner, source, request, idempotency, job_id)

    async def follow_up(
        self,
        owner: str,
        source: Job,
        request: CreateRequest,
        idempotency: IdempotencyClaim | None = None,
        job_id: str | None = None,
    ) -> Job:
        """A new job from ``source`` (remix, edit, extension) on the provider that holds the
        source render, the only one that can do it (under ``job_id``, or a new id).

        Such a render counts against the key's limits and the provider's like a create, at the
        source's price per second; with no room at that provider it is a 429 (no other can do
        it), and a provider kind without the operation is a 400.
        """
        verb = request.operation.value
        if source.state is not JobState.COMPLETED:
            raise NotReady(
                f"Only a completed video can be used for a {verb}.", param=_param(request)
            )
        entry = self._selector.rendering_provider(source)
        if not request.needs <= entry.adapter.features:
            raise InvalidRequest(
                f"The provider holding this video ({entry.adapter.kind} kind) cannot {verb} it.",
                param=_param(request),
                code=f"{verb}_not_supported",
            )
        hold = await self.admit(owner, job_id)
        try:
            cost = source.price_per_second * request.rendered_seconds
            verdict = await self._limits.assign(hold, entry.name, cost)
            if verdict is not Assigned.OK:
                if verdict is Assigned.OVER_BUDGET:
                    self._metrics.rejected("key_budget")
                    raise self._limits.over_budget(owner)
                self._metrics.rejected("providers")
                raise TooManyRequests(
                    "The provider holding this video is at its configured limit; retry later.",
                    retry_after=min(self._limits.room_in([entry.name]), 60.0),
                )
            offer = entry.config.models.get(source.model)
            upstream = RenderRequest(
                model=source.model if offer is None else offer.upstream_model,
                prompt=request.prompt,
                size=request.size,
                seconds=request.rendered_seconds,
                operation=request.operation,
                source=SourceVideo(upstream_id=source.current.upstream_id),
            )
            seen = await self._sender.send(entry, upstream)
        except ProviderError as exc:
            self._limits.release(hold)
            _raise_if_final(exc)
            raise _all_failed([exc]) from exc
        except BaseException:
            self._limits.release(hold)
            raise
        now = self._clock()
        job = Job(
            id=hold.token,
            owner=owner,
            model=source.model,
            prompt=request.prompt,
            size=request.size,
            seconds=request.seconds,
            created_at=now,
            remixed_from=source.id if request.operation is Operation.REMIX else None,
            price_per_second=source.price_per_second,
            attempts=[Attempt(provider=entry.name, upstream_id=seen.upstream_id, submitted_at=now)],
            operation=request.operation,
            source_video_id=None if request.operation is Operation.REMIX else source.id,
            segment_seconds=request.segment_seconds,
            extensions=request.extensions,
            callback_url=request.callback_url,
        )
        job.request_id = REQUEST_ID.get()
        self._first_sight(job, seen, now)
        self._limits.bind(hold, job.id)
        await self._store.insert(job, None, idempotency)
        lifecycle.created(job)
        await self._poller.follow(job)
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
            entry = self._selector.configured(attempt.provider)
            if entry is None or not attempt.upstream_id:  # never confirmed upstream
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

    async def admit(self, owner: str, job_id: str | None = None) -> Hold:
        """The key's slot for one more render (of job ``job_id``, or a new id), or its 429
        (counted as a key rejection). At its ``max_concurrent`` the ``Retry-After`` is when its
        oldest render should finish."""
        try:
            return await self._limits.admit(owner, job_id)
        except TooManyRequests as refusal:
            self._metrics.rejected("key")
            oldest = self._limits.oldest_render(owner)
            if oldest is None:
                raise
            raise TooManyRequests(refusal.message, retry_after=self._finishes_in(oldest)) from None

    def _finishes_in(self, hold: Hold) -> float:
        """Seconds until the render of ``hold`` should be done: its provider's expected submit
        plus render time (EWMAs) after its start, never sooner than that provider's poll
        interval (the proxy cannot see it finish sooner) nor later than the job deadline."""
        entry = self._selector.configured(hold.provider) if hold.provider else None
        if entry is None:
            return 1.0
        stats = self._selector.health.stats(entry.name)
        left = 0.0
        if stats.render_time is not None:
            expected = (stats.submit_latency or 0.0) + stats.render_time
            left = hold.since + expected - self._clock()
        floor = entry.config.poll_interval
        return min(max(left, floor), self._routing.job_deadline)

    def _first_sight(self, job: Job, seen: UpstreamJob, now: float) -> None:
        """Fold in the create's own answer; if it already says rendering, the queue wait was
        the submit itself (the poller records the wait of attempts it sees leave the queue)."""
        job.observe(seen, now)
        attempt = job.current
        if attempt.state is not AttemptState.QUEUED:
            self._metrics.queued(attempt.provider, now - attempt.submitted_at)

    def _new_job(self, job_id: str, owner: str, request: CreateRequest, placed: _Placed) -> Job:
        now = self._clock()
        job = Job(
            id=job_id,
            owner=owner,
            model=request.model,
            prompt=request.prompt,
            size=request.size,
            seconds=request.seconds,
            watermark=request.watermark,
            private=request.private,
            created_at=now,
            price_per_second=placed.candidate.price_per_second or 0.0,
            attempts=[placed.attempt(now)],
            request_id=REQUEST_ID.get(),
            operation=request.operation,
            segment_seconds=request.segment_seconds,
            extensions=request.extensions,
            characters=request.characters,
            callback_url=request.callback_url,
        )
        if placed.seen is not None:
            self._first_sight(job, placed.seen, now)
        return job

    def _unrenderable(self, request: CreateRequest) -> InvalidRequest:
        shape = (request.model, request.size, request.rendered_seconds)
        if request.needs and self._selector.capable(*shape):
            what = ", ".join(sorted(request.needs))
            return InvalidRequest(
                f"No provider that renders this video can take this request ({what}).",
                param=_param(request),
                code=f"{sorted(request.needs)[0]}_not_supported",
            )
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
            f"{request.rendered_seconds} seconds at {request.size} cannot be rendered for "
            f"'{request.model}'. Possible seconds: {', '.join(map(str, seconds))}.",
            param="seconds",
            code="invalid_value",
        )


def _param(request: CreateRequest) -> str:
    """The request field a refusal of this kind of render names."""
    if request.operation is Operation.REMIX:
        return "video_id"
    if request.operation is Operation.CREATE:
        return "characters"
    return "video"


class _NoRoom(Exception):
    """Every candidate filled up before anything was sent: wait in the admission queue."""


def _cost(candidate: Candidate, seconds: int, budgeted: bool) -> float | None:
    """USD reserved for a render on ``candidate``; None when a budgeted key meets no price."""
    price = candidate.price_per_second
    if price is None:
        return None if budgeted else 0.0
    return price * seconds


def _ambiguous(exc: ProviderError) -> bool:
    """Sent and never answered readably: the upstream may have taken it."""
    return (isinstance(exc, UpstreamTimeout) and exc.sent is not False) or isinstance(
        exc, BadUpstreamReply
    )


def _raise_if_final(exc: ProviderError) -> None:
    """Refusals go to the client as they are; an ambiguous remix must not be re-sent (creates
    never get here ambiguous: ``_submit`` keeps them as unknown attempts)."""
    if isinstance(exc, ModerationBlocked):
        raise InvalidRequest(exc.message, param=exc.param, code="moderation_blocked") from exc
    if isinstance(exc, Rejected):
        raise InvalidRequest(exc.message, param=exc.param, code=exc.code) from exc
    if _ambiguous(exc):
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
