"""Leases: which instance does a piece of work (polling one provider's jobs), for how long.

A lease is held by one owner (an instance id) until it expires; the holder renews it while it
is alive, so when an instance dies its leases lapse and another instance acquires them, with
no one deciding that it died. ``acquire`` succeeds when the lease is free, lapsed, or already
the caller's (then it renews). Time is the injected clock's.

``LocalLeases`` keeps a table in process memory (one process, or tests with several owners on
one table); ``router.fleet.redis_leases.RedisLeases`` keeps it in Redis for a fleet. Both pass
``tests/contract/test_leases.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Leases(Protocol):
    owner: str

    async def acquire(self, name: str, ttl: float) -> bool: ...

    async def renew(self, name: str, ttl: float) -> bool:
        """Extend the caller's lease; False when it lapsed or another owner holds it."""
        ...

    async def release(self, name: str) -> None:
        """Give the lease up now (only if the caller holds it)."""
        ...

    async def holder(self, name: str) -> str | None: ...


LeaseTable = dict[str, tuple[str, float]]  # name -> (owner, expiry)


class LocalLeases:
    __slots__ = ("_clock", "_table", "owner")

    def __init__(self, table: LeaseTable, owner: str, clock: Callable[[], float]) -> None:
        self._table = table
        self.owner = owner
        self._clock = clock

    async def acquire(self, name: str, ttl: float) -> bool:
        now = self._clock()
        held = self._table.get(name)
        if held is not None and held[0] != self.owner and held[1] > now:
            return False
        self._table[name] = (self.owner, now + ttl)
        return True

    async def renew(self, name: str, ttl: float) -> bool:
        now = self._clock()
        held = self._table.get(name)
        if held is None or held[0] != self.owner or held[1] <= now:
            return False
        self._table[name] = (self.owner, now + ttl)
        return True

    async def release(self, name: str) -> None:
        held = self._table.get(name)
        if held is not None and held[0] == self.owner:
            del self._table[name]

    async def holder(self, name: str) -> str | None:
        held = self._table.get(name)
        return held[0] if held is not None and held[1] > self._clock() else None
