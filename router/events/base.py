"""The ``JobEvents`` seam and what every implementation shares: subscriptions and fan-out.

``JobEvents.publish`` hands a ``JobChanged`` to every subscriber in every process that shares
the store; ``subscribe`` starts listening at once, for every job or one: every event published
after the call is delivered (one published just before may be too, when it was still on its
way, so a listener that read a job from the store skips events at or below that version).
Events of one job arrive in the order they were published; events of different jobs may
interleave differently for different subscribers. The in-process implementation
(``router.events.local``) serves the SQLite store; ``router.events.redis`` serves a fleet.

A subscriber that does not keep up is dropped rather than allowed to grow memory without
bound: past ``limit`` undelivered events its iteration raises ``SubscriptionLagged``, and it
re-reads what it needs from the store and subscribes again.

``Fanout`` delivers within one process: a publish with nobody listening costs two lookups.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Protocol

from router.records.event import JobChanged

__all__ = ["DEFAULT_LIMIT", "Fanout", "JobEvents", "Subscription", "SubscriptionLagged"]

DEFAULT_LIMIT = 10_000  # undelivered events a subscriber may fall behind by


class SubscriptionLagged(Exception):
    """The subscriber fell more than its limit behind and was dropped; events were missed."""


class JobEvents(Protocol):
    """Where stored job changes are announced (one event per change) and listened to."""

    async def publish(self, event: JobChanged) -> None: ...
    def subscribe(
        self, *, job_id: str | None = None, limit: int = DEFAULT_LIMIT
    ) -> Subscription: ...


class Subscription:
    """Events for one listener, as an async iterator; ``close`` (or leaving ``async with``)
    ends the iteration and stops delivery."""

    __slots__ = ("_closed", "_fanout", "_lagged", "_limit", "_queue", "_ready", "job_id")

    def __init__(self, fanout: Fanout, job_id: str | None, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.job_id = job_id
        self._fanout = fanout
        self._limit = limit
        self._queue: collections.deque[JobChanged] = collections.deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._lagged = False

    def put(self, event: JobChanged) -> None:
        """Queue ``event`` (called by ``Fanout``); past the limit, drop this subscriber."""
        if len(self._queue) >= self._limit:
            self._lagged = True
            self.close()
            return
        self._queue.append(event)
        self._ready.set()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._fanout.remove(self)
            self._ready.set()

    def __aiter__(self) -> AsyncIterator[JobChanged]:
        return self

    async def __anext__(self) -> JobChanged:
        while not self._queue:
            if self._lagged:
                raise SubscriptionLagged(f"more than {self._limit} events behind")
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        if self._lagged:
            self._queue.clear()
            raise SubscriptionLagged(f"more than {self._limit} events behind")
        return self._queue.popleft()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class Fanout:
    """The subscriptions of one process, for every job and by job id."""

    __slots__ = ("_all", "_by_job")

    def __init__(self) -> None:
        self._all: set[Subscription] = set()
        self._by_job: dict[str, set[Subscription]] = {}

    def subscribe(self, job_id: str | None, limit: int) -> Subscription:
        subscription = Subscription(self, job_id, limit)
        if job_id is None:
            self._all.add(subscription)
        else:
            self._by_job.setdefault(job_id, set()).add(subscription)
        return subscription

    def remove(self, subscription: Subscription) -> None:
        job_id = subscription.job_id
        if job_id is None:
            self._all.discard(subscription)
            return
        listeners = self._by_job.get(job_id)
        if listeners is not None:
            listeners.discard(subscription)
            if not listeners:
                del self._by_job[job_id]

    def deliver(self, event: JobChanged) -> None:
        """Hand ``event`` to every matching subscriber of this process."""
        if self._all:
            for subscription in list(self._all):  # put() may close (and remove) one
                subscription.put(event)
        listeners = self._by_job.get(event.id)
        if listeners:
            for subscription in list(listeners):
                subscription.put(event)

    def close(self) -> None:
        """End every subscription (their iterations stop)."""
        for subscription in [*self._all, *(s for group in self._by_job.values() for s in group)]:
            subscription.close()
