"""``JobViews``: the in-process cache of job views that client polls read, for a shared store.

A client polls ``GET /v1/videos/{id}`` every second or two for minutes; with the store in Redis
each poll would be a round trip. ``get`` answers from memory without an await; ``read`` falls
back to the store on a miss and remembers what it read. The cache is kept current by the job
events: a ``JobChanged`` newer than the cached view drops it (the next poll reads the store
once), a deletion drops it too. It holds at most ``size`` jobs, least recently polled first
out. A subscription that fell behind (``SubscriptionLagged``) empties the cache, since any view
may have missed a change, and subscribes again.

Callers can rely on: a view is never older than the newest event this process has seen for
its job; a job read from the store while a newer event was already in is returned but not
cached. The SQLite store needs none of this: its jobs are in memory already, so
``StoredViews`` answers from the store's own objects behind the same two methods (``Views``),
which is what the API reads through.

It must not write jobs nor decide anything about them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import Protocol

from router.events.base import JobEvents, SubscriptionLagged
from router.records.event import DELETED
from router.records.job import Job
from router.store.base import JobStore
from router.store.sqlite import SqliteJobStore

__all__ = ["DEFAULT_SIZE", "JobViews", "StoredViews", "Views"]

log = logging.getLogger(__name__)

DEFAULT_SIZE = 10_000  # jobs cached at most: the jobs being polled by clients right now


class Views(Protocol):
    def get(self, job_id: str) -> Job | None:
        """The job from memory, without an await; None: not in memory (``read`` it)."""
        ...

    async def read(self, job_id: str) -> Job | None:
        """The job, from memory or the store; None: no such job."""
        ...


class StoredViews:
    """The SQLite store's own jobs: every job is in memory, so ``get`` is the whole answer."""

    __slots__ = ("_store", "get")

    def __init__(self, store: SqliteJobStore) -> None:
        self._store = store
        self.get = store.get

    async def read(self, job_id: str) -> Job | None:
        return self._store.get(job_id)


class JobViews:
    """A bounded cache of jobs as stored, fed by ``events``; ``start`` before use."""

    __slots__ = ("_events", "_latest", "_listener", "_size", "_store", "_views")

    def __init__(self, store: JobStore, events: JobEvents, *, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self._store = store
        self._events = events
        self._size = size
        self._views: collections.OrderedDict[str, Job] = collections.OrderedDict()
        # the newest version an event named, per job (bounded like the views)
        self._latest: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._listener: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._views)

    def get(self, job_id: str) -> Job | None:
        """The cached view of ``job_id``, or None (not cached: ``read`` it)."""
        job = self._views.get(job_id)
        if job is not None:
            self._views.move_to_end(job_id)
        return job

    async def read(self, job_id: str) -> Job | None:
        """The cached view, else the stored job (remembered unless an event is newer)."""
        job = self.get(job_id)
        if job is not None:
            return job
        job = await self._store.read(job_id)
        if job is not None and self._latest.get(job_id, -1) <= job.version:
            self._views[job_id] = job
            if len(self._views) > self._size:
                self._views.popitem(last=False)
        return job

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="job views")

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _listen(self) -> None:
        while True:
            try:
                async with self._events.subscribe() as changes:
                    async for event in changes:
                        self._latest[event.id] = event.version
                        self._latest.move_to_end(event.id)
                        if len(self._latest) > self._size:
                            self._latest.popitem(last=False)
                        cached = self._views.get(event.id)
                        if cached is not None and (
                            event.status == DELETED or cached.version < event.version
                        ):
                            del self._views[event.id]
                return  # the events were closed: shutdown
            except SubscriptionLagged:
                log.warning("job views: fell behind the job events; starting empty")
                self._views.clear()
