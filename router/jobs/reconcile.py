"""Reconciling an unanswered create: did the provider take the render after all?

An ``UNKNOWN`` attempt's create was sent and its answer never came, so the render may or may
not exist upstream. Sending it again could render (and bill) twice, so the poller asks here
instead, once per poll interval: ``find`` on the attempt's provider lists the renders it made
around the send time that match prompt, upstream model, size and seconds. A match says nothing
about who sent it (upstream times are whole seconds, and two tenants may send the same prompt
at once, each with a private reference image), so a render is claimed (``FOUND``) only when
exactly one render matches that no stored job holds (``JobStore.render_holder``) and no other
unknown attempt on that provider could own it (``rivals``), and the job wins the render's
claim in the store (``JobStore.claim_render``: another instance may be claiming it too).
Any ambiguity is no claim for anyone: the attempt is treated as not listed. Until
``routing.reconcile_window`` has passed since the send (injected clock), absence means
``WAIT``. After it, a definite "not there" means the create never arrived (``RESUBMIT``:
another provider may take it), while a provider that cannot be searched (``Unsearchable``:
the relay dialect has no list) may be rendering it, so the job fails (``FAIL``) rather than
risk a second render. A ``find`` that errors is ``RETRY``: tried again like a failed read.

The poller acts on the verdict; nothing here changes a job.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass

from providers.base import ProviderError, RenderRequest, Unsearchable, UpstreamJob
from router.limits.local import Limits
from router.records.job import AttemptState, Job
from router.routing.pool import PoolEntry
from router.store.base import JobStore

log = logging.getLogger(__name__)

UNCONFIRMED_CODE = "submit_unconfirmed"


class Verdict(enum.Enum):
    FOUND = "found"  # ``match`` is the attempt's render
    WAIT = "wait"  # not listed yet; look again next interval
    RETRY = "retry"  # the search failed (``error``); try again, backing off
    RESUBMIT = "resubmit"  # not listed within the window: the create never arrived
    FAIL = "fail"  # cannot be searched and the window is over: fail, never send again


@dataclass(slots=True, frozen=True)
class Finding:
    verdict: Verdict
    match: UpstreamJob | None = None
    error: ProviderError | None = None
    message: str = ""


async def reconcile(
    job: Job,
    entry: PoolEntry,
    *,
    store: JobStore,
    limits: Limits,
    window: float,
    clock: Callable[[], float],
) -> Finding:
    """Look for the render of ``job``'s unanswered create on ``entry``."""
    attempt = job.current
    found: list[UpstreamJob] | None = None  # None: the provider cannot tell
    model = entry.config.models.get(job.model)
    try:
        if model is None:  # the provider no longer serves the model: nothing to match on
            raise Unsearchable("find: model no longer configured", provider=attempt.provider)
        request = RenderRequest(model.upstream_model, job.prompt, job.size, job.seconds)
        async with limits.read_slots(attempt.provider):
            found = await entry.adapter.find(request, attempt.submitted_at)
    except Unsearchable as exc:
        log.debug(
            "job %s: %s cannot tell whether it has the render (%r)", job.id, exc.provider, exc
        )
    except ProviderError as exc:
        return Finding(Verdict.RETRY, error=exc)
    free = [
        s for s in found or () if await store.render_holder(attempt.provider, s.upstream_id) is None
    ]
    if (
        len(free) == 1
        and not await rivals(job, store)
        and await store.claim_render(attempt.provider, free[0].upstream_id, job.id)
    ):
        return Finding(Verdict.FOUND, match=free[0])
    if free:
        log.info(
            "job %s: %d renders on %s match its unanswered create and other creates wait for "
            "one like it: claiming none",
            job.id,
            len(free),
            attempt.provider,
        )
    if clock() - attempt.submitted_at < window:
        return Finding(Verdict.WAIT)
    if found is None:
        return Finding(
            Verdict.FAIL,
            message="The provider did not answer the create and cannot be searched: the render "
            f"may have started there, but it could not be confirmed within {window:g}s, so it "
            "was not sent anywhere else.",
        )
    return Finding(
        Verdict.RESUBMIT,
        message=f"The provider did not answer the create and did not list it within {window:g}s.",
    )


async def rivals(job: Job, store: JobStore) -> bool:
    """Whether another job's unanswered create on the same provider asked for the same render,
    so a matching render could be either's. A scan of the unsettled jobs (every shard's on
    redis), made only when a render matches."""
    attempt = job.current
    wanted = (job.model, job.prompt, job.size, job.seconds)
    return any(
        other.id != job.id
        and other.current.state is AttemptState.UNKNOWN
        and other.current.provider == attempt.provider
        and (other.model, other.prompt, other.size, other.seconds) == wanted
        for other in await store.unsettled()
    )
