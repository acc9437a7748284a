"""List sweeps: a provider's jobs in flight refreshed from its list of renders, up to 100 by
one upstream call, instead of a status read each.

Owns, per provider that can list (``Provider.lists``: openai and azure, never relay), the
roster of jobs its next sweep reads (upstream id -> job id) and the task that runs its sweeps.
A job joins when it falls due on the schedule (``take``, asked by the poller's ``lane_of``),
its attempt is confirmed (an ``UNKNOWN`` one is looked for with ``find`` instead), its last
read did not fail, and its provider has at least ``SWEEP_MIN_JOBS`` renders in flight here
(``Tracking.in_flight``). In one process a joined job stays on the roster, sweep after sweep,
until it settles, fails over or is not seen; in a fleet it is planned again after each sweep
(the poll plan, ``router.jobs.tracking``) and joins the next roster when it is due again.

When a roster is read depends on who keeps the jobs. In one process, sweeps of one provider
start at least one ``poll_interval`` apart (loop clock), each reading the roster as it stands;
jobs joining meanwhile wait for the next one. So a job is read once per sweep, never before it
fell due, and a provider's list costs one walk per interval. In a fleet a job joins a roster
only when the plan says it is due (once per interval), and it is held until its sweep, while
an instance holds at most ``Tracking.batch`` jobs. So a roster is read ``GATHER`` of an
interval after its first member joined, or at once when it holds a page of members (or a
batch) and the instance is full: nothing more can join before some are read, and waiting out
the interval there capped refreshes at ``poll_batch`` an interval whatever the number due.
Walks stay at most one per page of due jobs plus one per ``GATHER`` of an interval (every page
under ``poll_rpm``), and a job is still read at most once per interval.

A walk pages the list newest first and stops when every member was seen, a page reaches back
past the oldest member's send time less ``CLOCK_SKEW``, the list ends, or it has read
``SWEEP_SLACK`` pages per page of members (other renders share the list). Every page is a
status read to ``router.limits.local``: it takes a ``poll_rpm`` slot (a page that does not fit
ends the walk) and one of the provider's read slots.

A listed member goes to ``fold`` (the poller's: observe, save, settle, fail over, stall,
deadline), exactly what a status read gets. Members the walk did not see (older than the walk,
missing upstream, or after a failed page: 5xx, timeout, a reply that is not a list) are read
alone at once (``Schedule.read_now``): an individual status read in their lane, as if no sweep
existed, which is how a lost render (404) is still found. After a 429 page they count a failed
read each instead (the poller's backoff: ``Retry-After`` wins) and are read alone when
that is over, rather than all at once from an upstream that asked us to slow down. An upstream
that has no list after all (``Unsearchable``) is not swept again until ``reset`` (a reload).

A job is in one place at a time: the schedule (heap or lane), a roster, or the sweep reading
it; so no job is read twice in one interval by two paths. Nothing here changes a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from providers.base import CLOCK_SKEW, ProviderError, RateLimited, Unsearchable, UpstreamJob
from providers.http import LIST_PAGE
from router.fleet.bus import raise_if_cancelling
from router.jobs.schedule import Schedule
from router.jobs.tracking import Tracking
from router.limits.local import Limits
from router.records.job import AttemptState, Job
from router.routing.pool import ProviderPool

log = logging.getLogger(__name__)

SWEEP_MIN_JOBS = 20  # renders in flight on a provider before its jobs are swept
SWEEP_SLACK = 2  # pages a walk may read per page of members
# a fleet: share of a poll interval a roster short of a page gathers members before its sweep
GATHER = 0.5
# Seconds of folding between yields to the loop. A page is ~100 folds (with the store write):
# in one piece that stalls client polls for milliseconds; yielding after every few
# folds instead lets a loaded proxy starve the sweep (each yield waits out a whole loop pass of
# client requests).
FOLD_SLICE = 0.004

# fold a status into a job and act; True: poll on
Fold = Callable[[Job, UpstreamJob], Awaitable[bool]]
# a failed read of a job: plan its next read, backing off after any Retry-After; the delay
Backoff = Callable[[Job, float | None], Awaitable[float]]
Track = Callable[[Job], Awaitable[None]]  # plan a job's next read one poll interval on


class Roster:
    """The jobs one sweep reads: upstream id -> job id, the earliest send among them, and when
    the first of them joined."""

    __slots__ = ("joined", "members", "oldest")

    def __init__(self) -> None:
        self.members: dict[str, str] = {}
        self.oldest = math.inf  # unix seconds; a lower bound (members leaving never raise it)
        self.joined = math.inf  # loop time the first member joined

    def add(self, upstream_id: str, job_id: str, submitted_at: float) -> bool:
        """Add a member; False when another job already holds ``upstream_id``."""
        if self.members.setdefault(upstream_id, job_id) != job_id:
            return False
        self.oldest = min(self.oldest, submitted_at)
        if len(self.members) == 1:
            self.joined = asyncio.get_running_loop().time()
        return True


@dataclass(slots=True)
class _Lister:
    """One provider's sweeping: the next roster, the one being read, and its task."""

    roster: Roster = field(default_factory=Roster)
    reading: Roster | None = None
    next_at: float = 0.0  # one process: loop time before which no sweep starts
    full: asyncio.Event = field(default_factory=asyncio.Event)  # a fleet: sweep the roster now
    task: asyncio.Task[None] | None = None


class Sweeps:
    """The list sweeps of every provider that can list."""

    __slots__ = (
        "_backoff",
        "_fold",
        "_limits",
        "_listers",
        "_pool",
        "_schedule",
        "_track",
        "_tracking",
        "_unlisted",
    )

    def __init__(
        self,
        tracking: Tracking,
        pool: ProviderPool,
        limits: Limits,
        schedule: Schedule,
        fold: Fold,
        backoff: Backoff,
        track: Track,
    ) -> None:
        """``schedule`` runs the sweeps' tasks and reads unseen jobs alone (``read_now``);
        ``tracking`` has the jobs the rosters name."""
        self._tracking = tracking
        self._backoff = backoff
        self._track = track
        self._pool = pool
        self._limits = limits
        self._schedule = schedule
        self._fold = fold
        self._listers: dict[str, _Lister] = {}
        self._unlisted: set[str] = set()  # providers whose list turned out not to exist

    @property
    def waiting(self) -> int:
        """Jobs on a roster or being read by a sweep."""
        return sum(
            len(lister.roster.members) + len(lister.reading.members if lister.reading else ())
            for lister in self._listers.values()
        )

    def reset(self) -> None:
        """Try every provider's list again (a reload may have changed its upstream)."""
        self._unlisted.clear()

    def take(self, job: Job) -> bool:
        """Put ``job`` (fallen due) on its provider's roster; False: read it by itself."""
        attempt = job.current
        provider = attempt.provider
        if (
            attempt.state is AttemptState.UNKNOWN
            or attempt.state.finished
            or provider in self._unlisted
            or self._schedule.failing(job.id)
            or self._tracking.in_flight(provider) < SWEEP_MIN_JOBS
        ):
            return False
        entry = self._pool.get(provider)
        if entry is None or not entry.adapter.lists:
            return False
        lister = self._listers.get(provider)
        if lister is None:
            lister = self._listers[provider] = _Lister()
        roster = lister.roster
        if not roster.add(attempt.upstream_id, job.id, attempt.submitted_at):
            return False
        batch = self._tracking.batch
        if (
            batch is not None
            and len(roster.members) >= min(LIST_PAGE, batch)
            and self._tracking.full()
        ):
            lister.full.set()  # no more members come before some of these are read
        if lister.task is None:
            lister.task = self._schedule.spawn(self._run(provider, lister), f"sweep {provider}")
        return True

    async def _run(self, provider: str, lister: _Lister) -> None:
        """Sweep ``provider`` for as long as its roster has members, each sweep when its roster
        is due (``_gathered``)."""
        try:
            while lister.roster.members:
                raise_if_cancelling()  # a cancel redis-py swallowed in the last sweep
                await self._gathered(provider, lister)
                lister.full.clear()
                lister.reading, lister.roster = lister.roster, Roster()
                await self._sweep(provider, lister.reading, lister.roster)
                lister.reading = None
        finally:
            lister.task = None

    async def _gathered(self, provider: str, lister: _Lister) -> None:
        """Wait until ``lister``'s roster is to be read: one process, one poll interval after
        the last sweep started; a fleet, when the roster is full or ``GATHER`` of an interval
        after its first member joined (see the module docstring)."""
        loop = asyncio.get_running_loop()
        interval = self._pool.poll_interval(provider)
        if self._tracking.batch is None:
            wait = lister.next_at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            lister.next_at = loop.time() + interval
            return
        wait = lister.roster.joined + GATHER * interval - loop.time()
        if wait > 0 and not lister.full.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await lister.full.wait()

    async def _sweep(self, provider: str, taken: Roster, keep: Roster) -> None:
        """Walk ``provider``'s list for ``taken``'s members; those still polled join ``keep``,
        those not seen are read alone."""
        members = taken.members
        budget = SWEEP_SLACK * math.ceil(len(members) / LIST_PAGE) + 1
        cutoff = taken.oldest - CLOCK_SKEW
        entry = self._pool.get(provider)
        after: str | None = None
        slow_down: RateLimited | None = None
        try:
            for _ in range(budget):
                if (
                    not members
                    or entry is None
                    # found to have no list while these members waited for this sweep
                    or provider in self._unlisted
                    or await self._limits.take_read(provider)
                ):
                    break
                async with self._limits.read_slots(provider):
                    page = await entry.adapter.list_page(after)
                await self._fold_page(provider, page.jobs, members, keep)
                if page.next_after is None or (page.oldest is not None and page.oldest < cutoff):
                    break
                after = page.next_after
        except RateLimited as exc:
            log.info("provider %s: list sweep rate limited (%r); backing off", provider, exc)
            slow_down = exc
        except Unsearchable as exc:
            log.warning("provider %s has no list (%r); its jobs are read one by one", provider, exc)
            self._unlisted.add(provider)
        except ProviderError as exc:
            log.info("provider %s: list sweep failed (%r); reading the rest alone", provider, exc)
        except Exception:  # a surprise must not strand the members: they are read alone
            log.exception("provider %s: list sweep failed unexpectedly", provider)
        for job_id in members.values():
            if slow_down is None:
                self._schedule.read_now(job_id, provider)
            elif (job := self._tracking.job(job_id)) is not None:
                await self._backoff(job, slow_down.retry_after)
        members.clear()

    async def _fold_page(
        self, provider: str, listed: list[UpstreamJob], members: dict[str, str], keep: Roster
    ) -> None:
        """Fold the listed members in, yielding to client requests every ``FOLD_SLICE``."""
        loop = asyncio.get_running_loop()
        until = loop.time() + FOLD_SLICE
        for seen in listed:
            job_id = members.get(seen.upstream_id)
            if job_id is None:
                continue
            await self._seen(provider, job_id, seen, keep)
            del members[seen.upstream_id]
            if loop.time() > until:
                await asyncio.sleep(0)
                until = loop.time() + FOLD_SLICE

    async def _seen(self, provider: str, job_id: str, seen: UpstreamJob, keep: Roster) -> None:
        job = self._tracking.job(job_id)
        if job is None or job.state.finished:
            return
        attempt = job.current
        if (
            attempt.provider != provider
            or attempt.upstream_id != seen.upstream_id
            or attempt.state.finished
        ):
            return  # the job moved on (another attempt, a failover), which is polled on its own
        if not await self._fold(job, seen):
            return
        if self._tracking.plans_ahead:  # a fleet plans it again: the held batch stays small
            await self._track(job)
        elif not keep.add(seen.upstream_id, job.id, attempt.submitted_at):
            self._schedule.read_now(job.id, provider)
