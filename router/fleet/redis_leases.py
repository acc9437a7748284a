"""``Leases`` in Redis: one key per lease (``sora:{lease:<name>}``) holding ``owner expiry``.

Acquire, renew and release are Lua scripts that compare the owner before writing, so two
instances can never both believe they hold a lease, and a release by a lapsed holder cannot
drop its successor's lease. The expiry is the injected clock's; the key also gets a server-side
time to live a little longer than the lease, so a dead owner's key leaves by itself.
"""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

KEY_SLACK = 5.0  # seconds the key outlives its lease on the server's clock

_ACQUIRE = """
local now, ttl, me = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local held = redis.call('GET', KEYS[1])
if held then
  local owner, expiry = string.match(held, '^(.*) ([^ ]+)$')
  local mine = owner == me
  if ARGV[4] == '1' and (not mine or tonumber(expiry) <= now) then return 0 end
  if not mine and tonumber(expiry) > now then return 0 end
elseif ARGV[4] == '1' then
  return 0
end
redis.call('SET', KEYS[1], me .. ' ' .. tostring(now + ttl), 'PX',
           math.ceil((ttl + tonumber(ARGV[5])) * 1000))
return 1
"""

_RELEASE = """
local held = redis.call('GET', KEYS[1])
if held and string.match(held, '^(.*) [^ ]+$') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

_HOLDER = """
local held = redis.call('GET', KEYS[1])
if not held then return false end
local owner, expiry = string.match(held, '^(.*) ([^ ]+)$')
if tonumber(expiry) <= tonumber(ARGV[1]) then return false end
return owner
"""


def lease_key(name: str) -> str:
    return f"sora:{{lease:{name}}}"


class RedisLeases:
    __slots__ = ("_acquire", "_clock", "_holder", "_release", "owner")

    def __init__(
        self, client: Redis | RedisCluster, owner: str, clock: Callable[[], float]
    ) -> None:
        self.owner = owner
        self._clock = clock
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._holder = client.register_script(_HOLDER)

    async def acquire(self, name: str, ttl: float) -> bool:
        return await self._set(name, ttl, renewing=False)

    async def renew(self, name: str, ttl: float) -> bool:
        return await self._set(name, ttl, renewing=True)

    async def _set(self, name: str, ttl: float, *, renewing: bool) -> bool:
        args: list[str | float] = [
            repr(self._clock()),
            ttl,
            self.owner,
            "1" if renewing else "0",
            KEY_SLACK,
        ]
        return bool(await self._acquire(keys=[lease_key(name)], args=args))

    async def release(self, name: str) -> None:
        await self._release(keys=[lease_key(name)], args=[self.owner])

    async def holder(self, name: str) -> str | None:
        found = await self._holder(keys=[lease_key(name)], args=[repr(self._clock())])
        if found is None:
            return None
        return found.decode() if isinstance(found, bytes) else str(found)
