"""What limits are counted with: sliding rate windows, counted holds and budget reservations,
behind one small protocol (``Counters``) with an in-process implementation here and a Redis one
(``router.limits.redis_counters``) that holds for a whole fleet.

Every counter belongs to a *name* (a client key's or a provider's, e.g. ``key:alice``):

- ``take`` counts an event in the name's window of ``period`` seconds if fewer than ``limit``
  are in it (0), else says how long until one fits; ``room`` asks the same without counting.
- ``hold`` adds a token (a job id) to the name's holds unless ``cap`` are held; ``holding``
  counts them. A hold lives ``hold_ttl`` seconds unless ``renew``ed, so the holds of an
  instance that died expire instead of blocking the name for good.
- ``reserve`` sets the USD a held token reserves against ``budget`` for the day (false, nothing
  changed, when spent today plus reserved plus this would pass it); ``committed`` is that sum.
- ``release`` drops a token's hold and reservation and adds ``spend`` to the day's spend (a
  completed render's cost, named by the caller: a reservation may have lapsed with an instance
  that died, the render's price has not); a token's spend counts once a day however often it is
  released. Every release wakes ``freed`` waiters, anywhere in the
  fleet for the Redis implementation.

Days are UTC days of the injected clock; so are window stamps and hold expiries (tests move a
manual clock instead of sleeping).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

DAY = 86400.0
HOLD_TTL = 60.0  # seconds a hold lives without renewal
BUDGET_SLACK = 1e-9  # float sums of prices may land a hair above an exact budget


class Counters(Protocol):
    async def take(self, name: str, limit: int, period: float) -> float: ...
    async def room(self, name: str, limit: int, period: float) -> float: ...
    async def hold(self, name: str, token: str, cap: int | None) -> bool: ...
    async def holding(self, name: str) -> int: ...
    async def renew(self, name: str, tokens: Collection[str]) -> None: ...
    async def reserve(self, name: str, token: str, amount: float, budget: float) -> bool: ...
    async def committed(self, name: str) -> float: ...
    async def release(self, name: str, token: str, *, spend: float = 0.0) -> None: ...
    async def freed(self, longest: float) -> None:
        """Return at the next release (here or elsewhere) or after ``longest`` seconds."""
        ...


class Wakeup:
    """Wakes everyone waiting right now, once: each ``wake`` ends the current waits and the
    next ``wait`` starts on a fresh event (so a wake-up is never seen twice)."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def wake(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self, longest: float) -> None:
        """Return at the next ``wake`` or after ``longest`` seconds, whichever is first."""
        if self._event is None:
            self._event = asyncio.Event()
        event = self._event
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(longest):
                await event.wait()


def window_wait(stamps: list[float], limit: int, period: float, now: float) -> float:
    """Seconds until an event fits a full window holding ``stamps`` (ascending, all within
    ``period`` of ``now``, at least ``limit`` of them): until enough of the oldest leave."""
    return stamps[len(stamps) - limit] + period - now


@dataclass(slots=True)
class _Name:
    stamps: deque[float] = field(default_factory=deque)
    holds: dict[str, float] = field(default_factory=dict)  # token -> expiry
    reserved: dict[str, float] = field(default_factory=dict)  # token -> USD
    spent: float = 0.0
    settled: set[str] = field(default_factory=set)  # tokens in ``spent``
    day: int = 0


class LocalCounters:
    """One process's counters; every call completes without suspending."""

    __slots__ = ("_clock", "_freed", "_names", "hold_ttl")

    def __init__(self, clock: Callable[[], float], hold_ttl: float = HOLD_TTL) -> None:
        self._clock = clock
        self.hold_ttl = hold_ttl
        self._names: dict[str, _Name] = {}
        self._freed = Wakeup()

    def _name(self, name: str) -> _Name:
        found = self._names.get(name)
        if found is None:
            found = self._names[name] = _Name()
        return found

    def _expire(self, entry: _Name, now: float) -> None:
        gone = [token for token, until in entry.holds.items() if until <= now]
        for token in gone:
            del entry.holds[token]
            entry.reserved.pop(token, None)

    async def take(self, name: str, limit: int, period: float) -> float:
        now = self._clock()
        wait = await self.room(name, limit, period)
        if wait <= 0.0:
            self._names[name].stamps.append(now)
            return 0.0
        return wait

    async def room(self, name: str, limit: int, period: float) -> float:
        now = self._clock()
        stamps = self._name(name).stamps
        while stamps and stamps[0] <= now - period:
            stamps.popleft()
        if len(stamps) < limit:
            return 0.0
        return window_wait(list(stamps), limit, period, now)

    async def hold(self, name: str, token: str, cap: int | None) -> bool:
        now = self._clock()
        entry = self._name(name)
        self._expire(entry, now)
        if token not in entry.holds and cap is not None and len(entry.holds) >= cap:
            return False
        entry.holds[token] = now + self.hold_ttl
        return True

    async def holding(self, name: str) -> int:
        entry = self._name(name)
        self._expire(entry, self._clock())
        return len(entry.holds)

    async def renew(self, name: str, tokens: Collection[str]) -> None:
        until = self._clock() + self.hold_ttl
        holds = self._name(name).holds
        for token in tokens:
            if token in holds:
                holds[token] = until

    async def reserve(self, name: str, token: str, amount: float, budget: float) -> bool:
        entry = self._name(name)
        others = await self.committed(name) - entry.reserved.get(token, 0.0)
        if others + amount > budget + BUDGET_SLACK:
            return False
        entry.reserved[token] = amount
        return True

    async def committed(self, name: str) -> float:
        now = self._clock()
        entry = self._name(name)
        self._expire(entry, now)
        today = int(now // DAY)
        if entry.day != today:
            entry.day, entry.spent = today, 0.0
            entry.settled.clear()
        return entry.spent + sum(entry.reserved.values())

    async def release(self, name: str, token: str, *, spend: float = 0.0) -> None:
        entry = self._name(name)
        entry.reserved.pop(token, None)
        if spend:
            await self.committed(name)  # roll the day over before adding
            if token not in entry.settled:
                entry.settled.add(token)
                entry.spent += spend
        if entry.holds.pop(token, None) is not None:
            self._freed.wake()

    async def freed(self, longest: float) -> None:
        await self._freed.wait(longest)
