"""``Counters`` in Redis: the same windows, holds and reservations, shared by every instance.

Each operation is one Lua script over the keys of one name, so it is atomic however many
instances race for the last slot, and every key of a name carries the name as its hash tag
(``sora:{key:alice}:holds``), so each script touches one slot of a Redis Cluster. Stamps and
expiries come from the caller's injected clock (instances agree on wall time within NTP, far
below a window); scripts never read the server's clock, so tests move a manual clock.

Keys of a name: ``stamps`` (sorted set: event -> time), ``holds`` (sorted set: token ->
expiry), ``reserved`` (hash: token -> USD), ``spent:<day>`` (USD completed that UTC day, kept
two days) and ``settled:<day>`` (the tokens whose spend is in it, so a render settled twice
is spent once). Expired holds are dropped with their reservations by the next script that reads
them, and every key expires by itself once nothing renews it. A release that drops a hold
publishes the name on ``FREED_CHANNEL`` from inside the script; ``freed`` waiters on every
instance wake on it through the bus.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Collection

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from router.fleet.bus import Bus
from router.limits.counters import BUDGET_SLACK, DAY, HOLD_TTL, Wakeup

FREED_CHANNEL = "sora:freed"
SPENT_TTL = 2 * int(DAY)  # seconds a day's spend is kept (today's, and yesterday's at midnight)

# Drop holds whose expiry has passed, with their reservations. KEYS[1] holds, KEYS[2] reserved.
_PURGE = """
local function purge(holds, reserved, now)
  local gone = redis.call('ZRANGEBYSCORE', holds, '-inf', now)
  for _, token in ipairs(gone) do
    redis.call('ZREM', holds, token)
    redis.call('HDEL', reserved, token)
  end
end
local function reserved_sum(reserved)
  local sum = 0
  for _, value in ipairs(redis.call('HVALS', reserved)) do sum = sum + tonumber(value) end
  return sum
end
"""

_TAKE = """
local limit, period, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local n = redis.call('ZCARD', KEYS[1])
if n < limit then
  if ARGV[5] == '1' then
    redis.call('ZADD', KEYS[1], now, ARGV[4])
    redis.call('PEXPIRE', KEYS[1], math.ceil(period * 1000))
  end
  return '0'
end
local at = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
return tostring(tonumber(at[2]) + period - now)
"""

_HOLD = (
    _PURGE
    + """
local token, cap, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
purge(KEYS[1], KEYS[2], now)
if cap >= 0 and not redis.call('ZSCORE', KEYS[1], token)
    and redis.call('ZCARD', KEYS[1]) >= cap then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, token)
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 1000))
return 1
"""
)

_HOLDING = (
    _PURGE
    + """
purge(KEYS[1], KEYS[2], tonumber(ARGV[1]))
return redis.call('ZCARD', KEYS[1])
"""
)

_RENEW = """
local expiry, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i]) end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 1000))
  redis.call('PEXPIRE', KEYS[2], math.ceil(ttl * 1000))
end
return 1
"""

_RESERVE = (
    _PURGE
    + """
local token, amount, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now, ttl, slack = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
purge(KEYS[1], KEYS[2], now)
local spent = tonumber(redis.call('GET', KEYS[3]) or '0')
local mine = tonumber(redis.call('HGET', KEYS[2], token) or '0')
if spent + reserved_sum(KEYS[2]) - mine + amount > budget + slack then return 0 end
redis.call('HSET', KEYS[2], token, ARGV[2])
redis.call('PEXPIRE', KEYS[2], math.ceil(ttl * 1000))
return 1
"""
)

_COMMITTED = (
    _PURGE
    + """
purge(KEYS[1], KEYS[2], tonumber(ARGV[1]))
local spent = tonumber(redis.call('GET', KEYS[3]) or '0')
return tostring(spent + reserved_sum(KEYS[2]))
"""
)

_RELEASE = """
local token = ARGV[1]
redis.call('HDEL', KEYS[2], token)
if tonumber(ARGV[2]) > 0 and redis.call('SADD', KEYS[4], token) == 1 then
  redis.call('INCRBYFLOAT', KEYS[3], ARGV[2])
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[3]))
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[3]))
end
if redis.call('ZREM', KEYS[1], token) == 1 then
  redis.call('PUBLISH', ARGV[4], ARGV[5])
end
return 1
"""


def _keys(name: str) -> tuple[str, str]:
    prefix = f"sora:{{{name}}}:"
    return prefix + "holds", prefix + "reserved"


class RedisCounters:
    """Fleet-wide counters on one Redis (or Cluster) through ``client``."""

    __slots__ = (
        "_client",
        "_clock",
        "_committed",
        "_events",
        "_freed",
        "_hold",
        "_holding",
        "_release",
        "_renew",
        "_reserve",
        "_stamp_ids",
        "_take",
        "hold_ttl",
    )

    def __init__(
        self,
        client: Redis | RedisCluster,
        bus: Bus,
        clock: Callable[[], float],
        hold_ttl: float = HOLD_TTL,
    ) -> None:
        """Listens for frees on ``bus`` (its owner starts it)."""
        self._client = client
        self._clock = clock
        self.hold_ttl = hold_ttl
        self._take = client.register_script(_TAKE)
        self._hold = client.register_script(_HOLD)
        self._holding = client.register_script(_HOLDING)
        self._renew = client.register_script(_RENEW)
        self._reserve = client.register_script(_RESERVE)
        self._committed = client.register_script(_COMMITTED)
        self._release = client.register_script(_RELEASE)
        # Window members must be unique across the fleet: this process's id and a counter.
        self._stamp_ids = itertools.count()
        self._events = f"{os.getpid()}.{os.urandom(4).hex()}"
        self._freed = Wakeup()
        bus.listen(FREED_CHANNEL, lambda name: self._freed.wake())

    def _day_key(self, name: str, now: float) -> str:
        return f"sora:{{{name}}}:spent:{int(now // DAY)}"

    async def take(self, name: str, limit: int, period: float) -> float:
        return await self._window(name, limit, period, count=True)

    async def room(self, name: str, limit: int, period: float) -> float:
        return await self._window(name, limit, period, count=False)

    async def _window(self, name: str, limit: int, period: float, *, count: bool) -> float:
        member = f"{self._events}.{next(self._stamp_ids)}"
        args: list[str | float] = [
            limit,
            period,
            repr(self._clock()),
            member,
            "1" if count else "0",
        ]
        wait = await self._take(keys=[f"sora:{{{name}}}:stamps"], args=args)
        return max(float(wait), 0.0)

    async def hold(self, name: str, token: str, cap: int | None) -> bool:
        args: list[str | float] = [
            token,
            -1 if cap is None else cap,
            repr(self._clock()),
            self.hold_ttl,
        ]
        return bool(await self._hold(keys=list(_keys(name)), args=args))

    async def holding(self, name: str) -> int:
        return int(await self._holding(keys=list(_keys(name)), args=[repr(self._clock())]))

    async def renew(self, name: str, tokens: Collection[str]) -> None:
        if tokens:
            until = repr(self._clock() + self.hold_ttl)
            await self._renew(keys=list(_keys(name)), args=[until, self.hold_ttl, *tokens])

    async def reserve(self, name: str, token: str, amount: float, budget: float) -> bool:
        now = self._clock()
        keys = [*_keys(name), self._day_key(name, now)]
        args: list[str | float] = [
            token,
            repr(amount),
            repr(budget),
            repr(now),
            self.hold_ttl,
            BUDGET_SLACK,
        ]
        return bool(await self._reserve(keys=keys, args=args))

    async def committed(self, name: str) -> float:
        now = self._clock()
        keys = [*_keys(name), self._day_key(name, now)]
        return float(await self._committed(keys=keys, args=[repr(now)]))

    async def release(self, name: str, token: str, *, spend: float = 0.0) -> None:
        day = self._day_key(name, self._clock())
        keys = [*_keys(name), day, day.replace(":spent:", ":settled:")]
        args: list[str | float] = [token, repr(spend), SPENT_TTL, FREED_CHANNEL, name]
        await self._release(keys=keys, args=args)

    async def freed(self, longest: float) -> None:
        await self._freed.wait(longest)
