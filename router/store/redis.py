"""The fleet's ``JobStore``: jobs in Redis (or a Redis Cluster), compare-and-set by version.

Layout (``router.store.redis_keys``): a job is a hash (version, JSON record, owner, its
idempotency key) in its shard's slot, next to its input reference, the shard's set of
unsettled jobs and the shard's event stream. One Lua script per change (insert, update,
delete) checks the version, writes, keeps the unsettled set, and appends the ``JobChanged`` in
one atomic step, so a stored change is announced exactly once and two writers cannot both
win. The owner's sorted set (paging ``GET /v1/videos``) and the provider's render holders are
single-key writes after the script: a crash in between leaves a stored job missing from its
owner's list or its render unclaimed, never a listed job that is not stored.

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

# Both scripts take ARGV[1] = job id, ARGV[2] = a script's own argument (the idempotency key
# name for insert, the expected version for update), then what ``_written`` lists: version,
# body, settled, status, progress, maxlen (ARGV[3..8]); insert takes its owner and the input's
# fields after those. KEYS: job, input (insert only), unsettled, events.
_INSERT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[3], 'b', ARGV[4], 'o', ARGV[9], 'k', ARGV[2])
if ARGV[5] == '0' then redis.call('SADD', KEYS[3], ARGV[1]) end
if #ARGV > 9 then redis.call('HSET', KEYS[2], unpack(ARGV, 10)) end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[8], '*',
    'id', ARGV[1], 'v', ARGV[3], 's', ARGV[6], 'p', ARGV[7])
return 1
"""
# Settled jobs are out of the unsettled set: their last update was final.
_UPDATE = """
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[3], 'b', ARGV[4])
if ARGV[5] == '1' then redis.call('SREM', KEYS[2], ARGV[1]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*',
    'id', ARGV[1], 'v', ARGV[3], 's', ARGV[6], 'p', ARGV[7])
return 1
"""
# KEYS: job. ARGV: expected version, new version, body, status. Bookkeeping of a job whose
# status stays what it was: no event (nothing a client watches moved).
_AMEND = """
local found = redis.call('HMGET', KEYS[1], 'v', 'b')
if not found[1] or found[1] ~= ARGV[1] then return 0 end
if cjson.decode(found[2])['state'] ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'b', ARGV[3])
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
        "_delete",
        "_delete_if",
        "_hdel_if",
        "_insert",
        "_update",
        "_writable",
    )

    def __init__(self, client: RedisClient, *, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._clock = clock  # stamps idempotency records (their expiry is Redis's own TTL)
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
        stored = await self._insert(
            keys=[job_key(job.id), input_key(job.id), _unsettled(job), _events(job)],
            args=[job.id, key_name, *_written(job), job.owner, *fields],
        )
        if not stored:
            raise ValueError(f"job {job.id} is already stored")
        await self._client.zadd(owner_key(job.owner), {job.id: job.created_at})
        if idempotency is not None:
            await self._record(idempotency, job.id, IDEMPOTENCY_TTL)
        await self._claim_renders(job)

    @_noted
    async def update(self, job: Job, *, expected_version: int) -> bool:
        stored = await self._update(
            keys=[job_key(job.id), _unsettled(job), _events(job)],
            args=[job.id, str(expected_version), *_written(job)],
        )
        if stored:
            await self._claim_renders(job)
        return bool(stored)

    @_noted
    async def amend(self, job: Job, *, expected_version: int) -> bool:
        body = jsonio.dumps(job.to_record())
        args: list[bytes | str] = [str(expected_version), str(job.version), body, job.state.value]
        return bool(await self._amend(keys=[job_key(job.id)], args=args))

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

    async def _record(self, claim: IdempotencyClaim, job_id: str, ttl: float) -> None:
        """The claim's record for ``job_id``, kept ``ttl`` from now."""
        value = _record_value(claim, job_id, self._clock())
        await self._client.set(idempotency_key(claim.owner, claim.key), value, px=int(ttl * 1000))

    async def _claim_renders(self, job: Job) -> None:
        for attempt in job.attempts:
            if attempt.upstream_id:  # an UNKNOWN attempt has none yet
                await self._client.hsetnx(
                    holders_key(attempt.provider), attempt.upstream_id, job.id
                )


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


def _record_value(claim: IdempotencyClaim, job_id: str, now: float) -> bytes:
    return jsonio.dumps([claim.fingerprint, job_id, now])


def _record(claim: IdempotencyClaim, value: bytes) -> IdempotencyRecord:
    fingerprint, job_id, created_at = jsonio.loads(value)
    return IdempotencyRecord(claim.owner, claim.key, fingerprint, job_id, created_at)
