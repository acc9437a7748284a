"""``PollPlan`` in Redis: per shard a sorted set of due times (``sora:{poll:<shard>}:due``)
and a hash of progress marks (``...:marks``, ``mark@since``), both under the shard's hash tag
so each script touches one slot of a Cluster (names in ``router.store.redis_keys``: the job
store writes a new job's first entry with its insert).

``take`` is one script (range by score, then re-score), so two instances taking from one shard
at once (a lease changing hands) never get the same job. Finding what is due costs
O(log n + taken), never a scan of the shard.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from router.store.redis_keys import plan_key, plan_marks_key

_TAKE = """
local now, limit, until_ = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)
for _, job in ipairs(due) do redis.call('ZADD', KEYS[1], until_, job) end
return due
"""

_PROGRESS = """
local seen = redis.call('HGET', KEYS[1], ARGV[1])
if seen then
  local mark, since = string.match(seen, '^(.*)@([^@]+)$')
  if mark == ARGV[2] then return since end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '@' .. ARGV[3])
return ARGV[3]
"""


def _keys(shard: str) -> tuple[str, str]:
    return plan_key(shard), plan_marks_key(shard)


class RedisPlan:
    __slots__ = ("_client", "_progress", "_take")

    def __init__(self, client: Redis | RedisCluster) -> None:
        self._client = client
        self._take = client.register_script(_TAKE)
        self._progress = client.register_script(_PROGRESS)

    async def plan(self, shard: str, job_id: str, due: float) -> None:
        await self._client.zadd(_keys(shard)[0], {job_id: due})

    async def take(self, shard: str, now: float, limit: int, hold_for: float) -> list[str]:
        args: list[str | float] = [repr(now), limit, repr(now + hold_for)]
        found = await self._take(keys=[_keys(shard)[0]], args=args)
        return [j.decode() if isinstance(j, bytes) else str(j) for j in found]

    async def forget(self, shard: str, job_id: str) -> None:
        due, marks = _keys(shard)
        # Two commands on one slot; a pipeline keeps it one round trip.
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zrem(due, job_id)
            pipe.hdel(marks, job_id)
            await pipe.execute()

    async def progress(self, shard: str, job_id: str, mark: str, now: float) -> float:
        since = await self._progress(keys=[_keys(shard)[1]], args=[job_id, mark, repr(now)])
        return float(since)

    async def size(self, shard: str) -> int:
        return int(await self._client.zcard(_keys(shard)[0]))
