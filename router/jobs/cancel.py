"""Cancelling a render in flight (``POST /v1/videos/{id}/cancel``, an extension of ours).

OpenAI's Videos API has no cancel; fal, Replicate and Ark do. A cancel stops the render
upstream where the provider's wire format can (``Provider.cancels``; best effort: a failed
upstream cancel is logged and the job is cancelled here regardless, since the client asked),
then settles the job ``failed`` with code ``cancelled`` through the poller, which closes its
holds: the key's render slot is freed and its budget reservation refunded (a cancelled render
costs nothing), and the job counts as finished with outcome ``cancelled``. The settle is
compare-and-set over the job as stored (``JobStore.update``), re-read on a conflict, so a render
that completed meanwhile (here or on another instance) stays completed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from providers.base import ProviderError
from router.errors import InvalidRequest, Unavailable
from router.jobs.poller import Poller
from router.records.job import Job
from router.routing.selection import Selector
from router.store.base import JobStore

log = logging.getLogger(__name__)

CANCELLED = "cancelled"  # the job's error code
TRIES = 5  # compare-and-set rounds against writers racing the cancel (a poller's fold)


async def cancel(
    job: Job,
    *,
    selector: Selector,
    store: JobStore,
    poller: Poller,
    clock: Callable[[], float],
) -> Job:
    """Stop ``job`` (queued or in progress) upstream where possible and settle it cancelled;
    the job as stored afterwards (cancelled, or whatever it settled as meanwhile)."""
    if job.state.finished:
        raise InvalidRequest(
            f"Video '{job.id}' is already {job.state.value}; only a queued or in-progress "
            "video can be cancelled.",
            param="video_id",
            code="video_finished",
        )
    attempt = job.current
    entry = selector.configured(attempt.provider)
    if entry is not None and entry.adapter.cancels and attempt.upstream_id:
        try:
            await entry.adapter.cancel(attempt.upstream_id)
        except ProviderError as exc:
            log.warning("job %s: upstream cancel on %s failed (%r)", job.id, entry.name, exc)
    for _ in range(TRIES):
        stored = await store.read(job.id)
        if stored is None or stored.state.finished:  # deleted, or it settled meanwhile
            return stored or job
        version = stored.version
        stored.fail(CANCELLED, "The render was cancelled by the client.", clock())
        if await store.update(stored, expected_version=version):
            await poller.settle(stored)
            log.info("job %s: cancelled on %s", job.id, attempt.provider)
            return stored
    raise Unavailable("The video kept changing while it was being cancelled; try again.")
