"""Limits that hold for a fleet: ``Limits`` whose decisions are taken on shared ``Counters``.

Key ``rpm``, ``max_concurrent`` and ``daily_budget_usd``, and provider ``rpm``,
``max_concurrent`` and ``poll_rpm`` are counted in Redis (``router.limits.redis_counters``),
so N instances admit what one would. Every hold's token is its job's id: whichever instance
settles the job releases the hold and adds the render's price to the day's spend. Holds live
``hold_ttl`` seconds unless renewed; each instance renews the holds of the renders it admitted
(or restored at start) every third of that, so the holds of an instance that dies lapse
instead of blocking its key or provider for good.

When Redis does not answer, a create is refused with 503 and ``Retry-After`` (never admitted
unchecked) and a status read waits ``RECHECK`` seconds. Admission waits (``wait_for_room``)
wake on a release anywhere in the fleet (the counters' bus notice), and re-check at least every
``RECHECK`` seconds (a lapsed hold makes no notice).
Releases and settlements are sent in the background (``release`` and ``finish`` are called from
synchronous code); ``settle`` waits for those in flight, at shutdown.

What stays per process: ``poll_max_concurrent`` (a semaphore around this process's status
reads: a fleet of N reads at most N times it at once; ``poll_rpm`` still bounds the rate),
and the local counts behind ``rendering`` (the in-flight gauge and the list-sweep threshold
describe this instance). Today's spend is not rebuilt at start: Redis keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from redis.exceptions import RedisError

from router.config.model import Config
from router.errors import TooManyRequests, Unavailable
from router.fleet.bus import raise_if_cancelling
from router.limits.counters import Counters
from router.limits.local import WINDOW, Assigned, Hold, Limits
from router.records.job import Job, JobState, new_job_id

log = logging.getLogger(__name__)

RECHECK = 1.0  # seconds: longest admission wait between looks at the shared counters


def key_name(key: str) -> str:
    return f"key:{key}"


def provider_name(provider: str) -> str:
    return f"provider:{provider}"


def reads_name(provider: str) -> str:
    return f"reads:{provider}"


@contextlib.contextmanager
def _shared_limits() -> Iterator[None]:
    """A create cannot be admitted without the shared counters: 503 with Retry-After."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise_if_cancelling()
        log.warning("limits: Redis did not answer (%r); refusing the create", exc)
        raise Unavailable(
            "The proxy's shared limits cannot be reached right now; retry shortly.",
            headers={"Retry-After": "1"},
        ) from None


class FleetLimits(Limits):
    __slots__ = ("_counters", "_live", "_room_at", "_sending")

    def __init__(self, config: Config, clock: Callable[[], float], counters: Counters) -> None:
        self._counters = counters
        self._live: dict[str, Hold] = {}  # token -> open holds admitted or restored here
        self._room_at: dict[str, float] = {}  # provider -> when its last refusal may be over
        self._sending: set[asyncio.Task[None]] = set()
        super().__init__(config, clock)

    # -- admission ---------------------------------------------------------------------------

    async def admit(self, key: str, job_id: str | None = None) -> Hold:
        with _shared_limits():
            return await self._admit(key, job_id or new_job_id())

    async def _admit(self, key: str, token: str) -> Hold:
        config = self._keys[key].config
        name = key_name(key)
        if not await self._counters.hold(name, token, config.max_concurrent):
            raise TooManyRequests(
                f"This key already has {config.max_concurrent} renders in flight "
                "(max_concurrent); retry when one finishes.",
                retry_after=1.0,
            )
        if config.rpm is not None:
            wait = await self._counters.take(name, config.rpm, WINDOW)
            if wait:
                await self._counters.release(name, token)
                raise TooManyRequests(
                    f"This key is limited to {config.rpm} creates per minute (rpm).",
                    retry_after=wait,
                )
        self._keys[key].in_flight += 1
        hold = self._live[token] = Hold(key, token)
        return hold

    async def assign(self, hold: Hold, provider: str, cost: float) -> Assigned:
        with _shared_limits():
            return await self._assign(hold, provider, cost)

    async def _assign(self, hold: Hold, provider: str, cost: float) -> Assigned:
        usage = self._providers.get(provider)
        config = usage.config if usage is not None else None
        rpm = config.rpm if config is not None else None
        name, token = provider_name(provider), hold.token
        counters = self._counters
        if rpm is not None and (wait := await counters.room(name, rpm, WINDOW)):
            return self._full(provider, wait)
        if hold.provider != provider and not await counters.hold(
            name, token, config.max_concurrent if config is not None else None
        ):
            return self._full(provider, RECHECK)
        budget = self._keys[hold.key].config.daily_budget_usd if hold.key in self._keys else None
        if budget is not None and not await counters.reserve(
            key_name(hold.key), token, cost, budget
        ):
            await self._undo_provider(hold, provider)
            return Assigned.OVER_BUDGET
        if rpm is not None and (wait := await counters.take(name, rpm, WINDOW)):
            await self._undo_provider(hold, provider)
            if budget is not None:
                await counters.reserve(key_name(hold.key), token, hold.cost, math.inf)
            return self._full(provider, wait)
        if hold.provider is not None and hold.provider != provider:
            self._send(counters.release(provider_name(hold.provider), token))
        self._drop_provider(hold)
        if usage is not None:
            usage.in_flight += 1
        key = self._keys.get(hold.key)
        if key is not None:
            key.reserved += cost - hold.cost
        hold.provider, hold.cost = provider, cost
        return Assigned.OK

    async def _undo_provider(self, hold: Hold, provider: str) -> None:
        if hold.provider != provider:
            await self._counters.release(provider_name(provider), hold.token)

    def _full(self, provider: str, wait: float) -> Assigned:
        self._room_at[provider] = self._clock() + wait
        return Assigned.FULL

    def has_room(self, provider: str) -> bool:
        """Every provider may be tried: ``assign`` asks the shared counters."""
        return True

    def room_in(self, providers: Iterable[str]) -> float:
        now = self._clock()
        waits = [self._room_at.get(name, now) - now for name in providers]
        return min(RECHECK, max(0.0, min(waits, default=0.0)))

    async def wait_for_room(self, longest: float) -> None:
        await self._counters.freed(min(longest, RECHECK))

    def over_budget(self, key: str) -> TooManyRequests:
        now = self._clock()
        budget = self._keys[key].config.daily_budget_usd or 0.0
        return TooManyRequests(
            f"This render would take the key over its daily budget of ${budget:.2f}.",
            retry_after=math.ceil((now // 86400 + 1) * 86400 - now),
            code="insufficient_quota",
        )

    async def take_read(self, provider: str) -> float:
        usage = self._providers.get(provider)
        if usage is None or usage.config.poll_rpm is None:
            return 0.0
        try:
            return await self._counters.take(reads_name(provider), usage.config.poll_rpm, WINDOW)
        except (RedisError, OSError) as exc:
            raise_if_cancelling()
            log.warning("limits: poll_rpm of %s not reachable (%r); reading later", provider, exc)
            return RECHECK

    # -- closing holds -----------------------------------------------------------------------

    def release(self, hold: Hold) -> None:
        if self._live.pop(hold.token, None) is not None:
            self._send(self._release_shared(hold.key, hold.token, hold.provider, 0.0))
        super().release(hold)

    def attempt_ended(self, job_id: str) -> None:
        hold = self._holds.get(job_id)
        if hold is not None and hold.provider is not None:
            self._send(self._counters.release(provider_name(hold.provider), hold.token))
        super().attempt_ended(job_id)

    def finish(self, job: Job) -> None:
        """Release the job's holds in the fleet and add a completed render's price to the
        day's spend, whichever instance admitted it."""
        hold = self._holds.get(job.id)
        if hold is not None:
            cost, provider = hold.cost, hold.provider
        else:
            cost, provider = job.price_per_second * job.seconds, job.current.provider
        self._live.pop(job.id, None)  # so the local release below sends nothing more
        spend = cost if job.state is JobState.COMPLETED else 0.0
        self._send(self._release_shared(job.owner, job.id, provider, spend))
        super().finish(job)

    async def _release_shared(
        self, key: str, token: str, provider: str | None, spend: float
    ) -> None:
        if provider is not None:
            await self._counters.release(provider_name(provider), token)
        await self._counters.release(key_name(key), token, spend=spend)

    def restore(self, unfinished: Iterable[Job], completed_today: Iterable[Job]) -> None:
        """Take back the holds of renders in flight (the counters already hold them, unless
        they lapsed while no instance ran); today's spend is Redis's already."""
        jobs = list(unfinished)
        super().restore(jobs, [])
        for job in jobs:
            hold = self._holds[job.id]
            self._live[job.id] = hold
            self._send(self._rehold(hold))

    async def _rehold(self, hold: Hold) -> None:
        await self._counters.hold(key_name(hold.key), hold.token, None)
        if hold.provider is not None:
            await self._counters.hold(provider_name(hold.provider), hold.token, None)
        if hold.cost:
            await self._counters.reserve(key_name(hold.key), hold.token, hold.cost, math.inf)

    # -- background --------------------------------------------------------------------------

    def _send(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._logged(work))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    @staticmethod
    async def _logged(work: Any) -> None:
        try:
            await work
        except (RedisError, OSError) as exc:
            raise_if_cancelling()
            # The hold lapses by itself after hold_ttl; nothing else to do.
            log.warning("limits: a release did not reach Redis (%r)", exc)

    async def settle(self) -> None:
        """Wait for the releases in flight (shutdown)."""
        while self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def renew(self) -> None:
        """Renew every hold this instance keeps alive, one call per counter name."""
        by_name: dict[str, list[str]] = {}
        for token, hold in self._live.items():
            by_name.setdefault(key_name(hold.key), []).append(token)
            if hold.provider is not None:
                by_name.setdefault(provider_name(hold.provider), []).append(token)
        for name, tokens in by_name.items():
            await self._counters.renew(name, tokens)

    async def keep_alive(self, interval: float) -> None:
        """Renew every ``interval`` seconds until cancelled."""
        while True:
            raise_if_cancelling()
            await asyncio.sleep(interval)
            try:
                await self.renew()
            except (RedisError, OSError) as exc:
                raise_if_cancelling()
                log.warning("limits: holds not renewed (%r); trying again", exc)
