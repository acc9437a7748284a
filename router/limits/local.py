"""Limits: per client key (rate, renders in flight, daily budget, models) and per provider
(create rate, renders in flight, status-read rate and concurrency).

Rates count on a sliding window: at most ``rpm`` events in any 60 s of the injected clock. This
is deliberately not aiolimiter's leaky bucket: a bucket of 3 per minute admits a 4th create 20 s
after a burst of three, and an upstream that counts "3 in any minute" answers that one with
429. The window is a deque of at most ``rpm`` timestamps, so a check costs O(1) amortised.

Renders in flight and budget are held by a ``Hold``: ``admit`` takes the key's rate and
concurrency slot before anything is sent; ``assign`` adds a provider's slot and reserves the
render's cost (price x seconds at that provider) against the key's budget, synchronously, so
concurrent creates cannot both take the last slot or the last dollar; ``reassign`` moves a
hold when a create fails over or a job is re-submitted elsewhere; ``release`` gives everything
back when a create fails; ``bind`` ties a hold to its job; ``finish`` closes it when the job
settles: a completed render's cost moves from reserved to the day's spend, a failed one's is
released (failed renders cost nothing). Days are UTC days of the injected clock.

``restore`` rebuilds holds and today's spend from the job store after a restart, so a restart
cannot reset a key's budget or concurrency. ``configure`` applies a reloaded config and keeps
the counters of keys and providers that stay.

``admit``, ``assign`` and ``take_read`` are coroutines because a fleet's limits
(``router.limits.fleet``) ask Redis there; here they finish without suspending. A hold's
``token`` is the id its job will get, so a fleet can find the hold from the job anywhere.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from router.config.model import ClientKeyConfig, Config, ProviderConfig
from router.errors import TooManyRequests
from router.limits.counters import Wakeup
from router.records.job import Job, JobState, new_job_id
from router.store.base import JobStore, owned_since

WINDOW = 60.0  # seconds: rpm means events in any window this long
DAY = 86400.0


class RateWindow:
    """At most ``limit`` events in any ``period`` seconds."""

    __slots__ = ("_stamps", "limit", "period")

    def __init__(self, limit: int, period: float = WINDOW) -> None:
        self.limit = limit
        self.period = period
        self._stamps: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Seconds until an event fits (0: it fits now)."""
        stamps = self._stamps
        while stamps and stamps[0] <= now - self.period:
            stamps.popleft()
        if len(stamps) < self.limit:
            return 0.0
        return stamps[0] + self.period - now

    def take(self, now: float) -> float:
        """Record an event if it fits and return 0, else the seconds until one fits."""
        wait = self.wait(now)
        if wait == 0.0:
            self._stamps.append(now)
        return wait

    def resized(self, limit: int) -> RateWindow:
        """The same recent events under a new limit (config reload)."""
        window = RateWindow(limit, self.period)
        window._stamps = self._stamps
        return window


def _window(limit: int | None, old: RateWindow | None) -> RateWindow | None:
    if limit is None:
        return None
    return RateWindow(limit) if old is None else old.resized(limit)


@dataclass(slots=True)
class KeyUsage:
    config: ClientKeyConfig
    rate: RateWindow | None
    in_flight: int = 0
    reserved: float = 0.0  # USD held by renders in flight
    spent: float = 0.0  # USD of renders completed on ``day``
    day: int = 0
    renders: dict[str, Hold] = field(default_factory=dict)  # by job id, oldest first

    def committed(self, now: float) -> float:
        """Spent today plus reserved by renders in flight."""
        today = int(now // DAY)
        if today != self.day:
            self.day, self.spent = today, 0.0
        return self.spent + self.reserved


@dataclass(slots=True)
class ProviderUsage:
    config: ProviderConfig
    creates: RateWindow | None
    reads: RateWindow | None
    read_slots: asyncio.Semaphore
    in_flight: int = 0

    def has_room(self, now: float) -> bool:
        cap = self.config.max_concurrent
        if cap is not None and self.in_flight >= cap:
            return False
        return self.creates is None or self.creates.wait(now) == 0.0


class Assigned(Enum):
    """What ``assign`` made of a hold."""

    OK = "ok"
    FULL = "full"  # the provider is at its renders in flight or create rate
    OVER_BUDGET = "over_budget"  # the key's daily budget cannot take the cost


@dataclass(slots=True)
class Hold:
    """What one render holds: its key's slot and, once assigned, a provider slot and a cost."""

    key: str
    token: str = ""  # the id of the job this render becomes
    provider: str | None = None
    cost: float = 0.0
    open: bool = True
    since: float = 0.0  # when its job was created (injected clock), once bound


class Limits:
    __slots__ = ("_clock", "_freed", "_holds", "_keys", "_providers", "queued")

    def __init__(self, config: Config, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._keys: dict[str, KeyUsage] = {}
        self._providers: dict[str, ProviderUsage] = {}
        self._holds: dict[str, Hold] = {}  # job id -> its hold
        self._freed = Wakeup()  # woken when a provider slot frees
        self.queued = 0  # creates waiting in the admission queue
        self.configure(config)

    def configure(self, config: Config) -> None:
        """Take the limits of ``config``; counters of keys and providers that stay are kept."""
        keys: dict[str, KeyUsage] = {}
        for key in config.keys:
            old = self._keys.get(key.name)
            usage = KeyUsage(key, _window(key.rpm, old.rate if old else None))
            if old is not None:
                usage.in_flight, usage.reserved = old.in_flight, old.reserved
                usage.spent, usage.day = old.spent, old.day
                usage.renders = old.renders
            keys[key.name] = usage
        # Keys removed from the config keep their counters while their renders finish.
        for name, old in self._keys.items():
            if name not in keys and old.in_flight:
                keys[name] = old
        self._keys = keys
        for provider in config.providers:
            previous = self._providers.get(provider.name)
            if previous is None:
                self._providers[provider.name] = ProviderUsage(
                    provider,
                    _window(provider.rpm, None),
                    _window(provider.poll_rpm, None),
                    asyncio.Semaphore(provider.poll_max_concurrent),
                )
                continue
            previous.creates = _window(provider.rpm, previous.creates)
            previous.reads = _window(provider.poll_rpm, previous.reads)
            if provider.poll_max_concurrent != previous.config.poll_max_concurrent:
                previous.read_slots = asyncio.Semaphore(provider.poll_max_concurrent)
            previous.config = provider
        self._wake()

    # -- client keys -------------------------------------------------------------------------

    async def admit(self, key: str, job_id: str | None = None) -> Hold:
        """Take ``key``'s rate and concurrency slot for one new render (of job ``job_id``, or a
        new id), or raise 429."""
        usage = self._keys[key]
        cap = usage.config.max_concurrent
        if cap is not None and usage.in_flight >= cap:
            raise TooManyRequests(
                f"This key already has {cap} renders in flight (max_concurrent); "
                "retry when one finishes.",
                retry_after=1.0,
            )
        if usage.rate is not None:
            wait = usage.rate.take(self._clock())
            if wait:
                raise TooManyRequests(
                    f"This key is limited to {usage.rate.limit} creates per minute (rpm).",
                    retry_after=wait,
                )
        usage.in_flight += 1
        return Hold(key, job_id or new_job_id())

    def budgeted(self, key: str) -> bool:
        usage = self._keys.get(key)
        return usage is not None and usage.config.daily_budget_usd is not None

    def affordable(self, key: str, cost: float) -> bool:
        usage = self._keys.get(key)
        if usage is None:  # removed by a reload while its renders finish
            return True
        budget = usage.config.daily_budget_usd
        return budget is None or usage.committed(self._clock()) + cost <= budget + 1e-9

    def over_budget(self, key: str) -> TooManyRequests:
        """The 429 for a render that no candidate can do within ``key``'s daily budget."""
        usage = self._keys[key]
        now = self._clock()
        return TooManyRequests(
            f"This render would take the key over its daily budget of "
            f"${usage.config.daily_budget_usd:.2f} (${usage.committed(now):.2f} spent or "
            "reserved today).",
            retry_after=math.ceil((now // DAY + 1) * DAY - now),
            code="insufficient_quota",
        )

    # -- providers ---------------------------------------------------------------------------

    def has_room(self, provider: str) -> bool:
        usage = self._providers.get(provider)
        return usage is None or usage.has_room(self._clock())

    def room_in(self, providers: Iterable[str]) -> float:
        """Seconds until one of ``providers`` frees a create slot by rate (inf: only a finishing
        render can free one)."""
        now = self._clock()
        soonest = math.inf
        for name in providers:
            usage = self._providers.get(name)
            if usage is None:
                return 0.0
            cap = usage.config.max_concurrent
            if cap is not None and usage.in_flight >= cap:
                continue
            soonest = min(soonest, usage.creates.wait(now) if usage.creates else 0.0)
        return soonest

    async def wait_for_room(self, longest: float) -> None:
        """Return when a provider slot frees or after ``longest`` seconds, whichever is first."""
        await self._freed.wait(longest)

    async def take_read(self, provider: str) -> float:
        """Count a status read against the provider's ``poll_rpm``; 0 or seconds to wait."""
        usage = self._providers.get(provider)
        if usage is None or usage.reads is None:
            return 0.0
        return usage.reads.take(self._clock())

    def read_slots(self, provider: str) -> asyncio.Semaphore:
        return self._providers[provider].read_slots

    def read_concurrency(self, provider: str) -> int:
        """How many status reads ``provider`` may have in flight (its poll lane's workers)."""
        usage = self._providers.get(provider)
        return usage.config.poll_max_concurrent if usage is not None else 1

    # -- holds -------------------------------------------------------------------------------

    async def assign(self, hold: Hold, provider: str, cost: float) -> Assigned:
        """Move ``hold`` to ``provider`` with ``cost`` reserved; the hold is unchanged unless
        ``Assigned.OK``."""
        usage = self._providers.get(provider)
        now = self._clock()
        if usage is not None and not usage.has_room(now):
            return Assigned.FULL
        if not self.affordable(hold.key, cost - hold.cost):
            return Assigned.OVER_BUDGET
        self._drop_provider(hold)
        if usage is not None:
            usage.in_flight += 1
            if usage.creates is not None:
                usage.creates.take(now)
        key = self._keys.get(hold.key)
        if key is not None:
            key.reserved += cost - hold.cost
        hold.provider, hold.cost = provider, cost
        return Assigned.OK

    def release(self, hold: Hold) -> None:
        """Give back everything ``hold`` took (nothing was rendered)."""
        if not hold.open:
            return
        hold.open = False
        self._drop_provider(hold)
        key = self._keys.get(hold.key)
        if key is not None:
            key.in_flight -= 1
            key.reserved -= hold.cost
        hold.cost = 0.0

    def bind(self, hold: Hold, job_id: str) -> None:
        hold.since = self._clock()
        self._holds[job_id] = hold
        usage = self._keys.get(hold.key)
        if usage is not None:
            usage.renders[job_id] = hold

    def oldest_render(self, key: str) -> Hold | None:
        """The hold of ``key``'s oldest render in flight, when the key is at its
        ``max_concurrent`` (what a client waits for before its next create fits)."""
        usage = self._keys.get(key)
        if usage is None or usage.config.max_concurrent is None:
            return None
        if usage.in_flight < usage.config.max_concurrent or not usage.renders:
            return None
        return next(iter(usage.renders.values()))

    def hold_of(self, job_id: str) -> Hold | None:
        return self._holds.get(job_id)

    def attempt_ended(self, job_id: str) -> None:
        """The job's current attempt finished; its provider slot frees, the key's stays."""
        hold = self._holds.get(job_id)
        if hold is not None:
            self._drop_provider(hold)

    def finish(self, job: Job) -> None:
        """Close the hold of a settled job: settle its cost if completed, else release it."""
        hold = self._holds.pop(job.id, None)
        if hold is None:
            return
        owner = self._keys.get(hold.key)
        if owner is not None:
            owner.renders.pop(job.id, None)
        if job.state is JobState.COMPLETED:
            key = self._keys.get(hold.key)
            if key is not None:
                key.committed(self._clock())  # roll the day over before adding
                key.spent += hold.cost
                key.reserved -= hold.cost
            hold.cost = 0.0
        self.release(hold)

    def restore(self, unfinished: Iterable[Job], completed_today: Iterable[Job]) -> None:
        """Rebuild holds and spend from the store after a restart."""
        now = self._clock()
        for job in completed_today:
            key = self._keys.get(job.owner)
            if key is not None:
                key.committed(now)
                key.spent += job.cost_usd
        for job in unfinished:
            hold = Hold(
                job.owner,
                job.id,
                cost=job.price_per_second * job.rendered_seconds,
                since=job.created_at,
            )
            key = self._keys.get(job.owner)
            if key is not None:
                key.in_flight += 1
                key.reserved += hold.cost
                key.renders[job.id] = hold
            if not job.current.state.finished:
                usage = self._providers.get(job.current.provider)
                if usage is not None:
                    usage.in_flight += 1
                    hold.provider = job.current.provider
            self._holds[job.id] = hold

    def usage(self, key: str) -> KeyUsage | None:
        return self._keys.get(key)

    def rendering(self, provider: str) -> int:
        """Renders in flight on ``provider``: accepted (or being submitted), not finished."""
        usage = self._providers.get(provider)
        return 0 if usage is None else usage.in_flight

    def _drop_provider(self, hold: Hold) -> None:
        if hold.provider is None:
            return
        usage = self._providers.get(hold.provider)
        hold.provider = None
        if usage is not None:
            usage.in_flight -= 1
            self._wake()

    def _wake(self) -> None:
        self._freed.wake()


async def completed_today(store: JobStore, config: Config, now: float) -> list[Job]:
    """Budgeted keys' renders completed on the current UTC day, newest first per key.

    A job completes within ``job_deadline`` of its creation, so each key's list is walked back
    only that far before midnight.
    """
    midnight = now // DAY * DAY
    oldest = midnight - config.routing.job_deadline
    return [
        job
        for key in config.keys
        if key.daily_budget_usd is not None
        async for job in owned_since(store, key.name, oldest)
        if job.state is JobState.COMPLETED
        and job.completed_at is not None
        and job.completed_at >= midnight
    ]
