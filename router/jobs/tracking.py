"""Which jobs this process polls, the copy of each it may change, and where each job's next read
is written down: the seam between the poller and the store backend.

``LocalTracking`` (the sqlite backend: one process owns every job) hands the poller the
store's own in-memory job and keeps due times on the process's ``Schedule``; a restart resumes
every unsettled job from the store (``Poller.resume``).

``PlannedTracking`` (the redis backend: a fleet) keeps due times in the shared ``PollPlan``
(``router.fleet.plan``), sharded by provider. Each shard is read by the instance holding its
lease (``router.fleet.leases``, renewed every third of ``store.lease_ttl``), whichever instance
created the jobs: so each job is read from its upstream once per ``poll_interval`` however many
instances run, and a provider's list sweep still covers a page of its jobs per call. The lease
holder takes what is due in batches of at most ``store.poll_batch`` (one ``take`` and one
``read_many`` round trip each); a taken job's plan entry is pushed ``2 x lease_ttl`` on, so when
the holder dies mid-read its jobs come due again for the instance that takes the lease over,
with no scan. The jobs taken are this process's ``held`` copies until their next read is
planned (``again``) or they leave the provider (``done``): memory is bounded by the batch, not
by the number of jobs in flight; a job a list sweep read is planned again at once rather than
kept on the sweep's roster, so the batch holds only jobs that are due; and a roster is read
as soon as it holds a page (or a batch) of members rather than once an interval
(``router.jobs.sweep``), so the batch does not cap refreshes at ``poll_batch`` an interval.
While a provider's ``poll_rpm`` is spent (``pause``) its jobs are not taken. Stall timers
live in the plan too (``since``), so a takeover does not restart them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from router.fleet.bus import raise_if_cancelling
from router.fleet.leases import Leases
from router.fleet.plan import PollPlan
from router.jobs.schedule import Schedule
from router.records.job import Job
from router.store.base import JobStore
from router.store.sqlite import SqliteJobStore

log = logging.getLogger(__name__)

LEASE_PREFIX = "poll:"  # a shard's lease name: poll:<provider>
TICK = 0.1  # seconds between looks at the plan (how late a due read may start)
SIZE_AGE = 1.0  # seconds a shard's size counts for (``in_flight``) before it is asked again


class Tracking(Protocol):
    plans_ahead: bool  # a new job's first read is planned with its insert (a fleet's store)

    @property
    def batch(self) -> int | None:
        """The most jobs this process holds at once (None: every job in flight is here)."""
        ...

    def full(self) -> bool:
        """This process holds ``batch`` jobs: no more join it until some of them are read."""
        ...

    def job(self, job_id: str) -> Job | None:
        """The job this process is polling under ``job_id`` (None: not here, or gone)."""
        ...

    async def again(self, job: Job, delay: float) -> None:
        """Read ``job`` (on its current provider) again ``delay`` seconds from now."""
        ...

    async def done(self, job: Job, provider: str) -> None:
        """``job`` is no longer polled on ``provider`` (settled, or moved elsewhere)."""
        ...

    async def since(self, job: Job, mark: str, now: float) -> float:
        """Since when ``job`` has shown progress ``mark`` (``now`` when it is new)."""
        ...

    def in_flight(self, provider: str) -> int:
        """Renders of ``provider`` in flight that this process reads (a fleet: the provider's
        share of the plan): enough of them (``router.jobs.sweep``) and they are read by list
        sweeps."""
        ...

    def pause(self, provider: str, seconds: float) -> None:
        """``provider``'s status reads are spent for ``seconds`` (its ``poll_rpm``): take no
        more of its jobs meanwhile."""
        ...

    def start(self) -> None: ...
    async def stop(self) -> None: ...


class LocalTracking:
    """One process: the store's jobs, the schedule's timers, stall marks in memory."""

    __slots__ = ("_marks", "_rendering", "_schedule", "_store")

    plans_ahead = False
    batch = None

    def __init__(
        self, store: SqliteJobStore, schedule: Schedule, rendering: Callable[[str], int]
    ) -> None:
        """``rendering`` counts a provider's renders in flight (every one is this process's)."""
        self._store = store
        self._schedule = schedule
        self._rendering = rendering
        self._marks: dict[str, tuple[str, float]] = {}

    def full(self) -> bool:
        return False

    def job(self, job_id: str) -> Job | None:
        return self._store.get(job_id)

    async def again(self, job: Job, delay: float) -> None:
        self._schedule.add(job.id, delay)

    async def done(self, job: Job, provider: str) -> None:
        self._marks.pop(job.id, None)

    async def since(self, job: Job, mark: str, now: float) -> float:
        seen = self._marks.get(job.id)
        if seen is not None and seen[0] == mark:
            return seen[1]
        self._marks[job.id] = (mark, now)
        return now

    def in_flight(self, provider: str) -> int:
        return self._rendering(provider)

    def pause(self, provider: str, seconds: float) -> None:
        """Nothing to pause: each job was rescheduled for when its read fits."""

    def start(self) -> None:
        """Nothing to run: the schedule is the poller's."""

    async def stop(self) -> None:
        """Nothing to stop: the schedule is the poller's."""


class PlannedTracking:
    """A fleet: the shared plan, the shards whose lease this process holds, held copies."""

    __slots__ = (
        "_batch",
        "_clock",
        "_leased",
        "_leases",
        "_paused",
        "_plan",
        "_providers",
        "_refused",
        "_schedule",
        "_sizes",
        "_store",
        "_task",
        "_ttl",
        "held",
    )

    plans_ahead = True

    def __init__(
        self,
        *,
        store: JobStore,
        plan: PollPlan,
        leases: Leases,
        schedule: Schedule,
        clock: Callable[[], float],
        providers: Callable[[], Iterable[str]],
        lease_ttl: float,
        batch: int,
    ) -> None:
        """``providers`` names the shards to read (the configured providers, after reloads);
        ``clock`` is the wall clock the plan's due times are on."""
        self._store = store
        self._plan = plan
        self._leases = leases
        self._schedule = schedule
        self._clock = clock
        self._providers = providers
        self._ttl = lease_ttl
        self._batch = batch
        self._leased: dict[str, float] = {}  # provider -> loop time the lease is renewed after
        self._refused: dict[str, float] = {}  # provider -> loop time to ask for its lease again
        self._paused: dict[str, float] = {}  # provider -> loop time its reads may go on
        self._sizes: dict[str, tuple[int, float]] = {}  # provider -> plan size, loop time read
        self._task: asyncio.Task[None] | None = None
        self.held: dict[str, Job] = {}

    @property
    def batch(self) -> int:
        return self._batch

    def full(self) -> bool:
        return len(self.held) >= self._batch

    def job(self, job_id: str) -> Job | None:
        return self.held.get(job_id)

    async def again(self, job: Job, delay: float) -> None:
        await self._plan.plan(job.current.provider, job.id, self._clock() + delay)
        self.held.pop(job.id, None)

    async def done(self, job: Job, provider: str) -> None:
        await self._plan.forget(provider, job.id)
        if job.state.finished or job.current.provider != provider:
            self.held.pop(job.id, None)

    async def since(self, job: Job, mark: str, now: float) -> float:
        return await self._plan.progress(job.current.provider, job.id, mark, now)

    def in_flight(self, provider: str) -> int:
        """The provider's jobs in the plan (fleet-wide, as of a take at most ``SIZE_AGE``
        ago): the fleet's other instances admitted most of them, and how many this instance
        holds right now rises and falls with each sweep."""
        return self._sizes.get(provider, (0, 0.0))[0]

    def pause(self, provider: str, seconds: float) -> None:
        self._paused[provider] = asyncio.get_running_loop().time() + seconds

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="poll-plan")

    async def stop(self) -> None:
        """Stop taking work, plan what is held as due now and give the leases up, so another
        instance goes on at once rather than after the leases lapse."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        now = self._clock()
        try:
            for job in list(self.held.values()):
                if not job.state.finished:
                    await self._plan.plan(job.current.provider, job.id, now)
            for provider in list(self._leased):
                await self._leases.release(LEASE_PREFIX + provider)
        except Exception as exc:  # Redis gone at shutdown: the leases lapse by themselves
            log.warning("poll plan: could not hand work back at shutdown (%r)", exc)
        self.held.clear()
        self._leased.clear()

    async def _run(self) -> None:
        while True:
            raise_if_cancelling()  # a cancel redis-py swallowed without an error
            try:
                now = asyncio.get_running_loop().time()
                for provider in self._providers():
                    if self._paused.get(provider, 0.0) > now:
                        continue  # its poll_rpm is spent: taking jobs would only replan them
                    if await self._leased_here(provider):
                        await self._take(provider)
            except Exception as exc:  # Redis down or slow: try again next tick
                raise_if_cancelling()  # unless it was a cancel redis-py turned into an error
                log.warning("poll plan: could not take due jobs (%r)", exc)
            await asyncio.sleep(TICK)

    async def _leased_here(self, provider: str) -> bool:
        """Whether this process holds ``provider``'s lease (acquired or renewed when a third of
        its life has passed)."""
        now = asyncio.get_running_loop().time()
        renew_after = self._leased.get(provider)
        if renew_after is not None and now < renew_after:
            return True
        if now < self._refused.get(provider, 0.0):
            return False  # another instance holds it: ask again a third of a lease later
        if await self._leases.acquire(LEASE_PREFIX + provider, self._ttl):
            self._leased[provider] = now + self._ttl / 3
            return True
        self._leased.pop(provider, None)
        self._refused[provider] = now + self._ttl / 3
        return False

    async def _take(self, provider: str) -> None:
        room = self._batch - len(self.held)
        if room <= 0:
            return
        ids = await self._plan.take(provider, self._clock(), room, 2 * self._ttl)
        fresh = [job_id for job_id in ids if job_id not in self.held]
        if not fresh:
            return
        now = asyncio.get_running_loop().time()
        if now - self._sizes.get(provider, (0, -SIZE_AGE))[1] >= SIZE_AGE:
            self._sizes[provider] = (await self._plan.size(provider), now)
        found = {job.id: job for job in await self._store.read_many(fresh)}
        for job_id in fresh:
            job = found.get(job_id)
            if job is None or job.state.finished or job.current.provider != provider:
                await self._plan.forget(provider, job_id)  # gone, settled or moved on
                continue
            self.held[job_id] = job
            self._schedule.add(job_id, 0.0)
