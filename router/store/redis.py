"""The fleet's ``JobStore``: jobs in Redis (or a Redis Cluster), compare-and-set by version.

Layout (``router.store.redis_keys``): a job is a hash (version, JSON record, owner, its
idempotency key) in its shard's slot, next to its input reference, the shard's set of
unsettled jobs and the shard's event stream. One Lua script per change (insert, update,
delete) checks the version, writes, keeps the unsettled set, and appends the ``JobChanged`` in
one atomic step, so a stored change is announced exactly once and two writers cannot both
win. The writes a change brings in other slots (the owner's sorted set paging
``GET /v1/videos``, the idempotency record, the provider's render holders, and in a fleet the
new job's first read in the poll plan, ``first_read``) are single-key commands. On one Redis
they run inside the change's script, after its checks: a create is one round trip, and the
job, its plan entry and its owner's list are written together or not at all. On a Cluster a
script touches one slot, so they go in one pipeline after the script (redis-py sends it to
each master), the plan entry in one before it: a crash in between leaves a stored job missing
from its owner's list or its render unclaimed, or a plan entry for a job that does not exist
(dropped when it comes due), never a listed job that is not stored nor one nobody polls.

Idempotency records are claimed with ``SET NX`` and a TTL before the upstream call: a claim
lives ``CLAIM_TTL`` until the job is inserted, then ``IDEMPOTENCY_TTL``, so a process that dies
mid-create frees its key after a while instead of holding it for a day.

Every write notes whether it got through (``writable``, ``router.store.base.WriteHealth``): a
Redis that refuses writes (MISCONF after a failed snapshot, OOM at ``maxmemory``, READONLY on
a replica) or cannot be reached turns it false until a write works again; ``probe_write`` sets
a throwaway key in every shard, so on a cluster it asks every master.

Every read returns a fresh copy; nothing is cached here (the poll cache sits in front).
It must not decide anything about jobs: it keeps what it is given.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from redis.asyncio import RedisCluster
from redis.exceptions import RedisError

from providers.base import InputReference
from router import jsonio
from router.records.event import JobChanged
from router.records.job import Job
from router.store.base import (
    IDEMPOTENCY_TTL,
    IdempotencyClaim,
    IdempotencyRecord,
    check_page,
)
from router.store.redis_client import RedisClient
from router.store.redis_keys import (
    EVENTS_MAXLEN,
    SHARDS,
    events_key,
    holders_key,
    idempotency_key,
    input_key,
    job_key,
    owner_key,
    plan_key,
    probe_key,
    shard_of,
    unsettled_key,
)

__all__ = ["CLAIM_TTL", "RedisJobStore"]

CLAIM_TTL = 600.0  # seconds a claimed key waits for its job's insert (placement takes less)
PROBE_TTL_MS = 60_000  # how long a write probe's throwaway key lives

log = logging.getLogger(__name__)
_P = ParamSpec("_P")
_T = TypeVar("_T")

# The writes in other slots that a change carries on one Redis (see the module docstring):
# from KEYS[k] on, one key each, and from ARGV[a] on, three arguments each (the command, then
# its two values), so the scripts stay the same whichever writes a change brings.
_ALSO = """
local function also(k, a)
  while a <= #ARGV do
    local command, x, y = ARGV[a], ARGV[a + 1], ARGV[a + 2]
    if command == 'zadd' then redis.call('ZADD', KEYS[k], x, y)
    elseif command == 'hsetnx' then redis.call('HSETNX', KEYS[k], x, y)
    else redis.call('SET', KEYS[k], x, 'PX', y) end
    k, a = k + 1, a + 3
  end
end
"""
# Both scripts take ARGV[1] = job id, ARGV[2] = a script's own argument (the idempotency key
# name for insert, the expected version for update), then what ``_written`` lists: version,
# body, settled, status, progress, maxlen (ARGV[3..8]). Insert then takes its owner, the count
# n of the input's fields and those (ARGV[9..10+n]). KEYS: job, input (insert only),
# unsettled, events; then the writes in other slots (``_ALSO``).
_INSERT = (
    _ALSO
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[3], 'b', ARGV[4], 'o', ARGV[9], 'k', ARGV[2])
if ARGV[5] == '0' then redis.call('SADD', KEYS[3], ARGV[1]) end
local n = tonumber(ARGV[10])
if n > 0 then redis.call('HSET', KEYS[2], unpack(ARGV, 11, 10 + n)) end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[8], '*',
    'id', ARGV[1], 'v', ARGV[3], 's', ARGV[6], 'p', ARGV[7])
also(5, 11 + n)
return 1
"""
)
# Settled jobs are out of the unsettled set: their last update was final.
_UPDATE = (
    _ALSO
    + """
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[3], 'b', ARGV[4])
if ARGV[5] == '1' then redis.call('SREM', KEYS[2], ARGV[1]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*',
    'id', ARGV[1], 'v', ARGV[3], 's', ARGV[6], 'p', ARGV[7])
also(4, 9)
return 1
"""
)
# KEYS: job, events. ARGV: id, expected version, then what ``_written`` lists (ARGV[3..8]).
# Bookkeeping of a job whose status stays what it was (its copy), announced like any change:
# every instance's poll cache (``router.jobs.views``) drops its older view on the event, else
# it kept serving content from the upstream after the copy was whole, or a copy retention
# had removed.
_AMEND = """
local found = redis.call('HMGET', KEYS[1], 'v', 'b')
if not found[1] or found[1] ~= ARGV[2] then return 0 end
if cjson.decode(found[2])['state'] ~= ARGV[6] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[3], 'b', ARGV[4])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*',
    'id', ARGV[1], 'v', ARGV[3], 's', ARGV[6], 'p', ARGV[7])
return 1
"""
# KEYS: job, input, unsettled, events. ARGV: id, maxlen. Returns the body and key name.
_DELETE = """
local found = redis.call('HMGET', KEYS[1], 'v', 'b', 'k')
if not found[1] then return false end
local record = cjson.decode(found[2])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[2], '*',
    'id', ARGV[1], 'v', tonumber(found[1]) + 1, 's', 'deleted', 'p', record['progress'])
return {found[2], found[3]}
"""
# KEYS: one key. ARGV: the value it must hold to be deleted
_DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_HDEL_IF = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
    return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


def _noted(
    write: Callable[Concatenate[RedisJobStore, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[RedisJobStore, _P], Coroutine[Any, Any, _T]]:
    """A write whose outcome sets ``writable``: a Redis error (a refusal or a lost connection)
    turns it false, a success true."""

    @functools.wraps(write)
    async def noted(store: RedisJobStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            result = await write(store, *args, **kwargs)
        except (RedisError, OSError) as exc:
            store._refused(exc)
            raise
        store._wrote()
        return result

    return noted


class RedisJobStore:
    """Jobs shared by every process on one Redis; see the module docstring."""

    __slots__ = (
        "_amend",
        "_client",
        "_clock",
        "_cluster",
        "_delete",
        "_delete_if",
        "_first_read",
        "_hdel_if",
        "_insert",
        "_update",
        "_writable",
    )

    def __init__(
        self,
        client: RedisClient,
        *,
        clock: Callable[[], float] = time.time,
        first_read: Callable[[Job], float | None] | None = None,
    ) -> None:
        """``first_read`` says when a new job's first status read is due in the fleet's poll
        plan (its provider's shard; None: not planned); without it no insert plans a read."""
        self._client = client
        self._clock = clock  # stamps idempotency records (their expiry is Redis's own TTL)
        self._first_read = first_read
        self._cluster = isinstance(client, RedisCluster)  # scripts keep to one slot
        self._insert = client.register_script(_INSERT)
        self._update = client.register_script(_UPDATE)
        self._amend = client.register_script(_AMEND)
        self._delete = client.register_script(_DELETE)
        self._delete_if = client.register_script(_DELETE_IF)
        self._hdel_if = client.register_script(_HDEL_IF)
        self._writable = True

    @property
    def writable(self) -> bool:
        return self._writable

    async def probe_write(self) -> bool:
        with contextlib.suppress(RedisError, OSError):  # _noted took note: it is the answer
            await self._probe()
        return self._writable

    @_noted
    async def _probe(self) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for shard in range(SHARDS):
                pipe.set(probe_key(shard), repr(self._clock()), px=PROBE_TTL_MS)
            await pipe.execute()

    def _refused(self, exc: BaseException) -> None:
        if self._writable:
            log.warning("job store: redis refuses writes (%s); creates answer 503", _named(exc))
        self._writable = False

    def _wrote(self) -> None:
        if not self._writable:
            log.warning("job store: redis takes writes again")
        self._writable = True

    async def read(self, job_id: str) -> Job | None:
        body = cast(bytes | None, await self._client.hget(job_key(job_id), "b"))
        return None if body is None else _job(body)

    async def read_many(self, job_ids: list[str]) -> list[Job]:
        return await self._many(job_ids)

    async def page(
        self, owner: str, *, after: str | None, limit: int, order: str
    ) -> tuple[list[Job], bool]:
        check_page(limit, order)
        key, desc = owner_key(owner), order == "desc"
        start = 0
        if after is not None:
            rank = cast(
                int | None,
                await (self._client.zrevrank if desc else self._client.zrank)(key, after),
            )
            if rank is None:  # not this owner's: never reveal whether it exists
                return [], False
            start = rank + 1
        ids = cast(
            list[bytes],
            await self._client.zrange(key, start, start + limit, desc=desc),
        )
        jobs = await self._many([job_id.decode() for job_id in ids[:limit]])
        return jobs, len(ids) > limit

    async def unsettled(self) -> list[Job]:
        ids: list[str] = []
        for shard in range(SHARDS):
            members = cast(set[bytes], await self._client.smembers(unsettled_key(shard)))
            ids.extend(member.decode() for member in members)
        return await self._many(ids)

    @_noted
    async def insert(
        self,
        job: Job,
        input_reference: InputReference | None = None,
        idempotency: IdempotencyClaim | None = None,
    ) -> None:
        if idempotency is not None and idempotency.owner != job.owner:
            raise ValueError(f"job {job.id}: idempotency claim of another owner")
        key_name = "" if idempotency is None else idempotency_key(job.owner, idempotency.key)
        fields: list[bytes | str | int | float] = []
        if (ref := input_reference) is not None:
            meta = jsonio.dumps([ref.filename, ref.content_type, ref.url, ref.data is not None])
            fields = ["meta", meta, "data", ref.data or b""]
        before: list[_Write] = []
        due = None if self._first_read is None else self._first_read(job)
        if due is not None:
            before.append(("zadd", plan_key(job.current.provider), repr(due), job.id))
        after: list[_Write] = [("zadd", owner_key(job.owner), repr(job.created_at), job.id)]
        if idempotency is not None:
            record = _record_value(idempotency, job.id, self._clock())
            after.append(("set", key_name, record, int(IDEMPOTENCY_TTL * 1000)))
        after.extend(_claims(job))
        keys = [job_key(job.id), input_key(job.id), _unsettled(job), _events(job)]
        args = [job.id, key_name, *_written(job), job.owner, len(fields), *fields]
        if self._cluster:  # the plan entry first, then the job, then what its slot cannot hold
            await self._send(before)
            stored = await self._insert(keys=keys, args=args)
            if stored:
                await self._send(after)
        else:
            keys, args = _with(keys, args, before + after)
            stored = await self._insert(keys=keys, args=args)
        if not stored:
            raise ValueError(f"job {job.id} is already stored")

    @_noted
    async def update(self, job: Job, *, expected_version: int) -> bool:
        keys = [job_key(job.id), _unsettled(job), _events(job)]
        args = [job.id, str(expected_version), *_written(job)]
        if not self._cluster:
            keys, args = _with(keys, args, _claims(job))
            return bool(await self._update(keys=keys, args=args))
        stored = await self._update(keys=keys, args=args)
        if stored:
            await self._send(_claims(job))
        return bool(stored)

    @_noted
    async def amend(self, job: Job, *, expected_version: int) -> bool:
        args = [job.id, str(expected_version), *_written(job)]
        return bool(await self._amend(keys=[job_key(job.id), _events(job)], args=args))

    @_noted
    async def delete(self, job_id: str) -> None:
        found = cast(
            list[bytes] | None,
            await self._delete(
                keys=[
                    job_key(job_id),
                    input_key(job_id),
                    unsettled_key(shard_of(job_id)),
                    events_key(shard_of(job_id)),
                ],
                args=[job_id, EVENTS_MAXLEN],
            ),
        )
        if found is None:
            return
        job = _job(found[0])
        await self._client.zrem(owner_key(job.owner), job_id)
        for attempt in job.attempts:
            if attempt.upstream_id:
                await self._hdel_if(
                    keys=[holders_key(attempt.provider)], args=[attempt.upstream_id, job_id]
                )
        if found[1]:
            record = await self._client.get(found[1])
            if record is not None and jsonio.loads(record)[1] == job_id:
                await self._delete_if(keys=[found[1]], args=[record])

    async def input_reference(self, job_id: str) -> InputReference | None:
        fields = cast(dict[bytes, bytes], await self._client.hgetall(input_key(job_id)))
        if not fields:
            return None
        filename, content_type, url, has_data = jsonio.loads(fields[b"meta"])
        data = fields[b"data"] if has_data else None
        return InputReference(data=data, filename=filename, content_type=content_type, url=url)

    @_noted
    async def claim_key(self, claim: IdempotencyClaim, job_id: str) -> IdempotencyRecord:
        name = idempotency_key(claim.owner, claim.key)
        value = _record_value(claim, job_id, self._clock())
        if await self._client.set(name, value, nx=True, px=int(CLAIM_TTL * 1000)):
            return _record(claim, value)
        existing = cast(bytes | None, await self._client.get(name))
        if existing is None:  # expired or released in between: claim again
            return await self.claim_key(claim, job_id)
        return _record(claim, existing)

    @_noted
    async def release_key(self, claim: IdempotencyClaim, job_id: str) -> None:
        name = idempotency_key(claim.owner, claim.key)
        existing = await self._client.get(name)
        if existing is not None and jsonio.loads(existing)[1] == job_id:
            await self._delete_if(keys=[name], args=[existing])

    @_noted
    async def claim_render(self, provider: str, upstream_id: str, job_id: str) -> bool:
        key = holders_key(provider)
        if await self._client.hsetnx(key, upstream_id, job_id):
            return True
        return await self.render_holder(provider, upstream_id) == job_id

    async def render_holder(self, provider: str, upstream_id: str) -> str | None:
        holder = cast(bytes | None, await self._client.hget(holders_key(provider), upstream_id))
        return None if holder is None else holder.decode()

    async def _many(self, ids: list[str]) -> list[Job]:
        """The stored jobs of ``ids``, in order; ids deleted meanwhile are left out."""
        if not ids:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(job_key(job_id), "b")
            bodies = cast(list[bytes | None], await pipe.execute())
        return [_job(body) for body in bodies if body is not None]

    async def _send(self, writes: list[_Write]) -> None:
        """``writes`` (single keys, any slots) in one pipeline: on a Cluster, one round trip
        to each master they reach."""
        if not writes:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for command, key, x, y in writes:
                if command == "zadd":
                    pipe.zadd(key, {str(y): float(x)})
                elif command == "hsetnx":
                    pipe.hsetnx(key, str(x), y)
                else:
                    pipe.set(key, x, px=int(y))
            await pipe.execute()


def _named(exc: BaseException) -> str:
    """An error's class and Redis's first word (MISCONF, OOM, READONLY), never more of its text."""
    word = str(exc).split(" ", 1)[0]
    return f"{type(exc).__name__}: {word}" if word.isupper() else type(exc).__name__


def _job(body: bytes) -> Job:
    return Job.from_record(jsonio.loads(body))


def _unsettled(job: Job) -> str:
    return unsettled_key(shard_of(job.id))


def _events(job: Job) -> str:
    return events_key(shard_of(job.id))


def _written(job: Job) -> list[bytes | str | int]:
    """Version, body, settled, status, progress, maxlen: what the scripts write of a job."""
    event = JobChanged.of(job)
    settled = "1" if job.state.finished else "0"
    body = jsonio.dumps(job.to_record())
    return [str(job.version), body, settled, event.status, event.progress, EVENTS_MAXLEN]


# A single-key write a change brings in another slot: command (zadd, hsetnx, set), key, and
# its two values (score and member; field and value; value and milliseconds to live).
_Write = tuple[str, str, bytes | str | int, bytes | str | int]


def _claims(job: Job) -> list[_Write]:
    """Each confirmed attempt's render, held by ``job`` unless another job holds it already
    (an ``UNKNOWN`` attempt has no upstream id yet)."""
    return [
        ("hsetnx", holders_key(attempt.provider), attempt.upstream_id, job.id)
        for attempt in job.attempts
        if attempt.upstream_id
    ]


def _with(keys: list[str], args: list[Any], writes: list[_Write]) -> tuple[list[str], list[Any]]:
    """A script call's keys and arguments with ``writes`` after them (``_ALSO``)."""
    return (
        keys + [key for _, key, _, _ in writes],
        args + [value for command, _, x, y in writes for value in (command, x, y)],
    )


def _record_value(claim: IdempotencyClaim, job_id: str, now: float) -> bytes:
    return jsonio.dumps([claim.fingerprint, job_id, now])


def _record(claim: IdempotencyClaim, value: bytes) -> IdempotencyRecord:
    fingerprint, job_id, created_at = jsonio.loads(value)
    return IdempotencyRecord(claim.owner, claim.key, fingerprint, job_id, created_at)
