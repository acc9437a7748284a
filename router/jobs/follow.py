"""``follow``: a job's states as it changes, from the job-events seam, for server-sent events.

A stream subscribes to the job's events first and reads the job from the store second, so no
change can fall between the two; then every ``JobChanged`` newer than what the stream last sent
is read through the store (the event only says that something changed; the store says what).
Events reach every instance of a fleet (``router.events.redis``), so a client connected to one
instance follows a job polled by another. Callers can rely on:

* each yielded job is newer (a higher ``version``) than the last one yielded and than
  ``after`` (a ``Last-Event-ID``): a reconnecting client gets the current state at once if it
  changed meanwhile (a state, not a log: it subsumes every change in between), then the rest;
* None is yielded after ``quiet`` seconds without a change (the stream's heartbeat);
* the iteration ends after the job settles (its final state yielded, unless ``after`` has it
  already), when it is deleted, or when the events end (shutdown);
* a subscription that falls behind (``SubscriptionLagged``) is replaced and the job re-read, so
  a slow client misses intermediate progress at worst, never the final state.

It must not write jobs nor decide anything about them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Protocol

from router.events.base import JobEvents, SubscriptionLagged
from router.records.event import DELETED
from router.records.job import Job

__all__ = ["LIMIT", "JobReader", "follow"]

log = logging.getLogger(__name__)

LIMIT = 256  # events one stream may fall behind by before it re-reads the store


class JobReader(Protocol):
    """All ``follow`` needs of a job store (``router.store.base.JobStore`` has it)."""

    async def read(self, job_id: str) -> Job | None: ...


async def follow(
    job_id: str, store: JobReader, events: JobEvents, *, after: int, quiet: float
) -> AsyncGenerator[Job | None, None]:
    """The states of ``job_id`` newer than version ``after``; see the module docstring."""
    while True:  # once per subscription: again after falling behind
        async with events.subscribe(job_id=job_id, limit=LIMIT) as changes:
            try:
                while True:  # read, send if newer, then wait for a newer change
                    job = await store.read(job_id)
                    if job is None:
                        return
                    if job.version > after:
                        after = job.version
                        yield job
                    if job.state.finished:
                        return
                    change = None
                    while change is None or change.version <= after:
                        try:
                            async with asyncio.timeout(quiet):
                                change = await anext(changes)
                        except TimeoutError:
                            yield None
                    if change.status == DELETED:
                        return
            except SubscriptionLagged:
                log.info("events of job %s: the stream fell behind; reading it again", job_id)
            except StopAsyncIteration:
                return
