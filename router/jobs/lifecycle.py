"""One log line per event in a job's life, so an operator can follow a render by its id.

Events (the ``event`` field): ``routed`` (a provider was chosen, and why), ``created`` (the job
is stored and answered), ``failover`` (the render moves to another provider, and the reason),
``completed``, ``failed`` (``outcome`` is the failure's class, the job's error code) and
``moderated`` (``outcome`` is the stage: input, prompt or output). Each line carries the job
id, the provider and the outcome as fields (``router.logs``), and the request id: the current
request's, or for the poller's lines the id of the request that created the job.

Lines are INFO; nothing is formatted when INFO is off. Prompts are never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from router.records.job import Job

log = logging.getLogger("sora_proxy.jobs")


def _emit(
    event: str,
    job_id: str,
    provider: str,
    outcome: str,
    message: str,
    *args: object,
    request_id: str | None = None,
) -> None:
    if log.isEnabledFor(logging.INFO):
        fields = {"event": event, "job_id": job_id, "provider": provider, "outcome": outcome}
        if request_id is not None:
            fields["request_id"] = request_id
        log.info(message, *args, extra=fields)


def routed(job_id: str, provider: str, why: Callable[[], str], request_id: str | None) -> None:
    """A create or re-submission is being sent to ``provider``; ``why()`` is the strategy's
    reasoning (``Selector.why``) plus any candidates already passed over, worked out only when
    the line is written."""
    if log.isEnabledFor(logging.INFO):
        _emit(
            "routed",
            job_id,
            provider,
            "sent",
            "routed to %s: %s",
            provider,
            why(),
            request_id=request_id,
        )


def created(job: Job) -> None:
    attempt = job.current
    _emit(
        "created",
        job.id,
        attempt.provider,
        attempt.state.value,
        "job created (%s %s %ds) on %s",
        job.model,
        job.size,
        job.seconds,
        attempt.provider,
        request_id=job.request_id,
    )


def failover(job_id: str, reason: str, source: str, target: str, request_id: str | None) -> None:
    _emit(
        "failover",
        job_id,
        target,
        reason,
        "failover from %s to %s (%s)",
        source,
        target,
        reason,
        request_id=request_id,
    )


def settled(job: Job, outcome: str) -> None:
    """The job finished: ``completed``, ``moderated`` (output stage) or failed with its class."""
    attempt = job.current
    if outcome == "completed":
        _emit(
            "completed",
            job.id,
            attempt.provider,
            "completed",
            "job completed after %d attempt(s)",
            len(job.attempts),
            request_id=job.request_id,
        )
    elif outcome == "moderated":
        moderated(job.id, attempt.provider, "output", job.request_id)
    else:
        code = job.error_code or "failed"
        _emit(
            "failed",
            job.id,
            attempt.provider,
            code,
            "job failed: %s (%s)",
            code,
            job.error_message,
            request_id=job.request_id,
        )


def moderated(job_id: str, provider: str, stage: str, request_id: str | None) -> None:
    _emit(
        "moderated",
        job_id,
        provider,
        stage,
        "moderated by %s at the %s stage",
        provider,
        stage,
        request_id=request_id,
    )
