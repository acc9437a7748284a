"""When each in-flight job is read next, and who reads it: a heap of due times and, per
provider, a lane of due jobs drained by a fixed set of worker tasks.

A task per due read would cost a task creation each, and a burst of due jobs would all take
their first step in one loop iteration, holding client requests behind them. A lane bounds
the reads in flight per provider (its workers: the provider's ``poll_max_concurrent``) and
interleaves them with client traffic. Due times are on the loop's monotonic clock.

The schedule knows job ids, their lanes and nothing about what a read does: ``read`` (the
poller's) is called with each due job id by one of its lane's workers. ``lane_of`` may also
take a due job off the schedule's hands (a list sweep reads it, ``router.jobs.sweep``) by naming no
lane; whoever took it hands it back with ``add``, ``retry`` or ``read_now``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from router.fleet.bus import raise_if_cancelling

log = logging.getLogger(__name__)

OVERDUE_GRACE = 1.0  # seconds; a read not started this long after it fell due is overdue
ERROR_BACKOFF_CAP = 60.0  # seconds; failed reads back off up to this
# a backoff is shortened by up to this share at random, so jobs that failed together (an
# upstream outage) are not all read again at the same instant, by one instance or many
BACKOFF_JITTER = 0.2


class Schedule:
    __slots__ = (
        "_due",
        "_failures",
        "_jitter",
        "_lane_of",
        "_lanes",
        "_read",
        "_runner",
        "_sequence",
        "_tasks",
        "_waiting",
        "_wake",
        "_workers",
        "_workers_for",
    )

    def __init__(
        self,
        read: Callable[[str], Awaitable[None]],
        lane_of: Callable[[str], str | None],
        workers_for: Callable[[str], int],
        jitter: random.Random | None = None,
    ) -> None:
        """``lane_of`` names a due job's provider (None: nothing to read here, or it was taken
        for a sweep); ``workers_for`` says how many reads a provider may have in flight;
        ``jitter`` draws the backoffs' jitter (seed it for a repeatable run)."""
        self._jitter = jitter or random.Random()
        self._read = read
        self._lane_of = lane_of
        self._workers_for = workers_for
        self._due: list[tuple[float, int, str]] = []
        self._sequence = itertools.count()
        self._wake = asyncio.Event()
        self._lanes: dict[str, asyncio.Queue[str]] = {}
        self._workers: dict[str, int] = {}
        self._waiting: dict[str, float] = {}  # job id -> when it fell due; popped when read
        self._failures: dict[str, int] = {}  # job id -> failed reads in a row
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None

    def add(self, job_id: str, delay: float) -> None:
        entry = (asyncio.get_running_loop().time() + delay, next(self._sequence), job_id)
        heapq.heappush(self._due, entry)
        if self._due[0] is entry:  # a later one is covered by the runner's timer already
            self._wake.set()

    def backoff(self, job_id: str, interval: float, retry_after: float | None) -> float:
        """How long to wait before reading ``job_id`` again after a failed read: ``interval``
        doubled for each failure in a row (up to ``ERROR_BACKOFF_CAP``), less up to
        ``BACKOFF_JITTER`` of it at random, never before ``retry_after``. The caller plans the
        read (``router.jobs.tracking``)."""
        failures = self._failures[job_id] = self._failures.get(job_id, 0) + 1
        delay = min(interval * 2.0 ** min(failures - 1, 6), ERROR_BACKOFF_CAP)
        delay *= 1.0 - BACKOFF_JITTER * self._jitter.random()
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def succeeded(self, job_id: str) -> None:
        """A read of ``job_id`` worked, or it settled: the next failure backs off afresh."""
        self._failures.pop(job_id, None)

    def failing(self, job_id: str) -> bool:
        """Whether the last read of ``job_id`` failed."""
        return job_id in self._failures

    def read_now(self, job_id: str, provider: str) -> None:
        """Put ``job_id`` in ``provider``'s lane at once (it is due), past ``lane_of``."""
        self._waiting[job_id] = asyncio.get_running_loop().time()
        self._lane(provider).put_nowait(job_id)

    def reading(self, job_id: str) -> None:
        """The read of ``job_id`` has started (it no longer waits for a slot)."""
        self._waiting.pop(job_id, None)

    def restaff(self) -> None:
        """Give lanes more workers when their providers may now read more at once (reload);
        fewer are enforced by the providers' read slots."""
        for provider, lane in self._lanes.items():
            self._staff(provider, lane)

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``work`` as a task that ``stop`` cancels."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def start(self) -> None:
        self._runner = asyncio.get_running_loop().create_task(self._run(), name="schedule")

    async def stop(self) -> None:
        tasks = [t for t in (self._runner, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._lanes.clear()
        self._workers.clear()
        self._runner = None

    @property
    def scheduled(self) -> int:
        return len(self._due) + len(self._waiting)

    def overdue(self) -> int:
        """Reads not started ``OVERDUE_GRACE`` after they fell due (in a lane, or waiting for a
        read slot). The runner moves every due job to its lane at once, so the heap holds none
        worth counting, and a scrape never walks it."""
        late = asyncio.get_running_loop().time() - OVERDUE_GRACE
        return sum(1 for due in self._waiting.values() if due < late)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            while self._due and self._due[0][0] <= now:
                due, _, job_id = heapq.heappop(self._due)
                provider = self._lane_of(job_id)
                if provider is None:
                    continue
                self._waiting[job_id] = due
                self._lane(provider).put_nowait(job_id)
            self._wake.clear()
            timeout = self._due[0][0] - now if self._due else None
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # lands as the wake-up fires, and then stop() would wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _lane(self, provider: str) -> asyncio.Queue[str]:
        lane = self._lanes.get(provider)
        if lane is None:
            lane = self._lanes[provider] = asyncio.Queue()
            self._staff(provider, lane)
        return lane

    def _staff(self, provider: str, lane: asyncio.Queue[str]) -> None:
        have, wanted = self._workers.get(provider, 0), self._workers_for(provider)
        for _ in range(have, wanted):
            self.spawn(self._work(lane), f"poll {provider}")
        self._workers[provider] = max(have, wanted)

    async def _work(self, lane: asyncio.Queue[str]) -> None:
        while True:
            raise_if_cancelling()  # a cancel redis-py swallowed without an error in a read
            job_id = await lane.get()
            try:
                await self._read(job_id)
            except Exception:  # one job's surprise must not stop the lane
                # a cancel that redis-py turned into an error ends the worker all the same
                raise_if_cancelling()
                log.exception("job %s: read failed unexpectedly; reading it again later", job_id)
                self.add(job_id, 60.0)
            finally:
                self._waiting.pop(job_id, None)
