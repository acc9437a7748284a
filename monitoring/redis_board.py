"""The health board in Redis: one record for a whole fleet, changed by one Lua script per event.

The script decides ejections exactly as ``monitoring.outlier.OutlierDetector`` does (the
contract suite runs one sequence of events through both), but over every instance's outcomes,
so ``min_volume`` is reached as fast as with one instance and all instances eject together.
Every key carries the hash tag ``{health}``: the ejected-share check reads all providers'
entries in one script, so they must share a slot of a Redis Cluster (a few hundred bytes per
provider). After each change the script publishes the provider's name on ``HEALTH_CHANNEL``;
instances re-read the board when they hear it (``router.runtime.shared_health``).

Keys: ``sora:{health}:providers`` (set of tracked providers, the ejected share's denominator),
``sora:{health}:p:<name>`` (hash: consecutive, ejections, ejected_until, cooling_until,
drained), ``sora:{health}:o:<name>`` and ``sora:{health}:r:<name>`` (lists of '1'/'0': the
outlier window and the render outcomes).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from monitoring.board import Change, HealthEvent, SharedView
from monitoring.outlier import OutlierSettings

HEALTH_CHANNEL = "sora:health"
PROVIDERS_KEY = "sora:{health}:providers"

_REPORT = """
local change, name, ok, at = ARGV[1], ARGV[2], ARGV[3] == '1', tonumber(ARGV[4])
local window, consecutive_failures = tonumber(ARGV[6]), tonumber(ARGV[7])
local failure_rate, min_volume = tonumber(ARGV[8]), tonumber(ARGV[9])
local base, longest, share = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local success_window = tonumber(ARGV[13])
local prefix = 'sora:{health}:'
local entry, outcomes = prefix .. 'p:' .. name, prefix .. 'o:' .. name
redis.call('SADD', KEYS[1], name)

local function ejected(provider)
  return redis.call('HEXISTS', prefix .. 'p:' .. provider, 'ejected_until') == 1
end

local function record(success)
  redis.call('RPUSH', outcomes, success and '1' or '0')
  redis.call('LTRIM', outcomes, -window, -1)
  local consecutive = 0
  if success then
    redis.call('HSET', entry, 'consecutive', 0)
  else
    consecutive = redis.call('HINCRBY', entry, 'consecutive', 1)
  end
  if success or ejected(name) then return end
  local seen = redis.call('LRANGE', outcomes, 0, -1)
  local failures = 0
  for _, v in ipairs(seen) do if v == '0' then failures = failures + 1 end end
  local too_many = consecutive >= consecutive_failures
  local too_often = #seen >= min_volume and failures / #seen >= failure_rate
  if not (too_many or too_often) then return end
  local members = redis.call('SMEMBERS', KEYS[1])
  local out = 0
  for _, m in ipairs(members) do if ejected(m) then out = out + 1 end end
  if (out + 1) / #members > share then return end
  local n = redis.call('HINCRBY', entry, 'ejections', 1)
  redis.call('HSET', entry, 'ejected_until', tostring(at + math.min(base * n, longest)))
end

if change == 'outcome' then
  if ARGV[5] == '1' then
    local renders = prefix .. 'r:' .. name
    redis.call('RPUSH', renders, ok and '1' or '0')
    redis.call('LTRIM', renders, -success_window, -1)
  end
  record(ok)
elseif change == 'probe' then
  local until_ = redis.call('HGET', entry, 'ejected_until')
  if not until_ then
    if not ok then record(false) end
  elseif ok and at >= tonumber(until_) then
    redis.call('HDEL', entry, 'ejected_until')
    redis.call('HSET', entry, 'consecutive', 0)
    redis.call('DEL', outcomes)
  end
elseif change == 'cooldown' then
  local old = tonumber(redis.call('HGET', entry, 'cooling_until') or '0')
  if at > old then redis.call('HSET', entry, 'cooling_until', ARGV[4]) end
elseif change == 'drain' then
  redis.call('HSET', entry, 'drained', ARGV[3])
end
redis.call('PUBLISH', ARGV[14], name)
return 1
"""

_READ = """
local prefix = 'sora:{health}:'
local found = {}
for i = 1, #ARGV do
  local name = ARGV[i]
  local entry = prefix .. 'p:' .. name
  local fields = redis.call('HMGET', entry, 'consecutive', 'ejections', 'ejected_until',
                            'cooling_until', 'drained')
  local outcomes = table.concat(redis.call('LRANGE', prefix .. 'o:' .. name, 0, -1))
  local renders = table.concat(redis.call('LRANGE', prefix .. 'r:' .. name, 0, -1))
  for j = 1, 5 do table.insert(found, fields[j] or '') end
  table.insert(found, outcomes)
  table.insert(found, renders)
end
return found
"""

_FIELDS = 7  # per provider in the read script's answer


class RedisBoard:
    """The fleet's health board on one Redis (or Cluster) through ``client``."""

    __slots__ = ("_read", "_report", "_settings_args")

    def __init__(
        self, client: Redis | RedisCluster, settings: OutlierSettings, success_window: int
    ) -> None:
        self._report = client.register_script(_REPORT)
        self._read = client.register_script(_READ)
        s = settings
        self._settings_args: list[float] = [
            s.window,
            s.consecutive_failures,
            s.failure_rate,
            s.min_volume,
            s.base_ejection,
            s.max_ejection,
            s.max_ejected_share,
            success_window,
        ]

    async def report(self, event: HealthEvent) -> None:
        ok = event.drained if event.change is Change.DRAIN else event.ok
        args: list[str | float] = [
            event.change.value,
            event.provider,
            "1" if ok else "0",
            repr(event.at),
            "1" if event.render else "0",
            *self._settings_args,
            HEALTH_CHANNEL,
        ]
        await self._report(keys=[PROVIDERS_KEY], args=args)

    async def read(self, providers: Collection[str]) -> Mapping[str, SharedView]:
        names = list(providers)
        if not names:
            return {}
        raw = await self._read(keys=[PROVIDERS_KEY], args=names)
        values = [v.decode() if isinstance(v, bytes) else str(v) for v in raw]
        views: dict[str, SharedView] = {}
        for index, name in enumerate(names):
            consecutive, ejections, ejected_until, cooling_until, drained, outcomes, renders = (
                values[index * _FIELDS : (index + 1) * _FIELDS]
            )
            views[name] = SharedView(
                consecutive=int(consecutive or 0),
                outcomes=tuple(c == "1" for c in outcomes),
                renders=tuple(c == "1" for c in renders),
                ejections=int(ejections or 0),
                ejected_until=float(ejected_until) if ejected_until else None,
                cooling_until=float(cooling_until or 0.0),
                drained=drained == "1",
            )
        return views
