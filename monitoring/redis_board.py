"""The health board in Redis: one record for a whole fleet, changed by one Lua script per report.

A report is a batch of events (what an instance saw since its last report went out,
``monitoring.board_sync``), folded in order as one call per event would fold them, in one round
trip whatever the batch's size. One call per event fell behind a busy instance (a successful
create is an event), and the backlog went on costing a round trip per event long after the load
that made it: bench.fleet's downloads paid 0.4-0.8 each for the creates measured before them.

The script decides ejections exactly as ``monitoring.outlier.OutlierDetector`` does (the
contract suite runs one sequence of events through both), but over every instance's outcomes,
so ``min_volume`` is reached as fast as with one instance and all instances eject together.
Every key carries the hash tag ``{health}``: the ejected-share check reads all providers'
entries in one script, so they must share a slot of a Redis Cluster (a few hundred bytes per
provider). After each report the script publishes the name of each provider it changed on
``HEALTH_CHANNEL``; instances re-read the board when they hear it (``monitoring.board_sync``).

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

# ARGV: the settings (ARGV[1..8]) and the channel (ARGV[9]), then five per event in order:
# change, provider, ok, at, render. One call folds a batch of events as that many calls
# would, one after the other, and publishes each provider it changed once.
_REPORT = """
local window, consecutive_failures = tonumber(ARGV[1]), tonumber(ARGV[2])
local failure_rate, min_volume = tonumber(ARGV[3]), tonumber(ARGV[4])
local base, longest, share = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local success_window, channel = tonumber(ARGV[8]), ARGV[9]
local prefix = 'sora:{health}:'

local function ejected(provider)
  return redis.call('HEXISTS', prefix .. 'p:' .. provider, 'ejected_until') == 1
end

local function record(name, success, at)
  local entry, outcomes = prefix .. 'p:' .. name, prefix .. 'o:' .. name
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

local function fold(change, name, ok, at_text, render)
  local at, entry = tonumber(at_text), prefix .. 'p:' .. name
  if change == 'outcome' then
    if render then
      local renders = prefix .. 'r:' .. name
      redis.call('RPUSH', renders, ok and '1' or '0')
      redis.call('LTRIM', renders, -success_window, -1)
    end
    record(name, ok, at)
  elseif change == 'probe' then
    local until_ = redis.call('HGET', entry, 'ejected_until')
    if not until_ then
      if not ok then record(name, false, at) end
    elseif ok and at >= tonumber(until_) then
      redis.call('HDEL', entry, 'ejected_until')
      redis.call('HSET', entry, 'consecutive', 0)
      redis.call('DEL', prefix .. 'o:' .. name)
    end
  elseif change == 'cooldown' then
    local old = tonumber(redis.call('HGET', entry, 'cooling_until') or '0')
    if at > old then redis.call('HSET', entry, 'cooling_until', at_text) end
  elseif change == 'drain' then
    redis.call('HSET', entry, 'drained', ok and '1' or '0')
  end
end

local changed, names = {}, {}
for i = 10, #ARGV, 5 do
  local name = ARGV[i + 1]
  if not changed[name] then  -- tracked before its first event (the ejected share counts it)
    redis.call('SADD', KEYS[1], name)
    changed[name] = true
    table.insert(names, name)
  end
  fold(ARGV[i], name, ARGV[i + 2] == '1', ARGV[i + 3], ARGV[i + 4] == '1')
end
for _, name in ipairs(names) do redis.call('PUBLISH', channel, name) end
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

    async def report(self, *events: HealthEvent) -> None:
        args: list[str | float] = [*self._settings_args, HEALTH_CHANNEL]
        for event in events:
            ok = event.drained if event.change is Change.DRAIN else event.ok
            args += (
                event.change.value,
                event.provider,
                "1" if ok else "0",
                repr(event.at),
                "1" if event.render else "0",
            )
        if events:
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
