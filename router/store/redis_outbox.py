"""The webhook outbox of a fleet, in Redis: one outbox, one deliverer per event at a time.

Every key carries the hash tag ``{sora:outbox}``, so each script below touches one Cluster
slot (webhooks are a few events per settled job: one slot carries them easily):

* ``...:e:<event id>``: the event, a hash (job, type, url, owner, body, created, attempts,
  and how it ended);
* ``...:once:<digest of job, type, url>``: which event a job has for that target (``SET NX``
  inside the add script, so instances that both hear a job settle add one event);
* ``...:due``: a sorted set of the pending events by when each may be claimed next;
* ``...:claims``: a hash, event id -> token of the claim that holds it;
* ``...:pending``: a sorted set of the pending events by when each was made (depth and the
  oldest one's age in O(1)).

``claim`` re-scores what it takes to the lease's end and records its token in one script, so
two instances claiming at once never get the same event; one that dies leaves its events due
again when the lease lapses. Times are the callers' (the injected clock), as in
``router.fleet.redis_leases``. A finished event, and the record that it was made, are kept
``keep`` seconds on the server's clock (past ``webhooks.give_up_after``, so the start-up
backfill never makes a second event for a job), then leave by themselves.

It must not decide anything about deliveries: it keeps the queue.
"""

from __future__ import annotations

import hashlib
from typing import cast

from router.store.outbox import OutboxEvent, new_claim
from router.store.redis_client import RedisClient

__all__ = ["RedisWebhookOutbox"]

_TAG = "{sora:outbox}"
_DUE, _CLAIMS, _PENDING = f"{_TAG}:due", f"{_TAG}:claims", f"{_TAG}:pending"

# KEYS: once, event, due, pending. ARGV: id, created, keep (ms), then the event's field pairs.
_ADD = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[3]) then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
return 1
"""
# KEYS: due, claims. ARGV: now, until, limit, token. The ids taken.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  redis.call('HSET', KEYS[2], id, ARGV[4])
end
return due
"""
# KEYS: due, claims. ARGV: id, token, until.
_RENEW = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
return 1
"""
# KEYS: due, claims, event. ARGV: id, token, due at, error.
_FAILED = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'attempts', 1)
redis.call('HSET', KEYS[3], 'error', ARGV[4])
return 1
"""
# KEYS: due, claims, pending, event. ARGV: id, token ('' for anyone's), ending field, when,
# error, keep (ms), attempts to add. An ending needs the event pending (and the claim, given one).
_FINISH = """
if not redis.call('ZSCORE', KEYS[3], ARGV[1]) then return 0 end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[4], 'attempts', ARGV[7])
redis.call('HSET', KEYS[4], ARGV[3], ARGV[4], 'error', ARGV[5])
redis.call('PEXPIRE', KEYS[4], ARGV[6])
return 1
"""
_FIELDS = ("job", "type", "url", "owner", "body", "created", "attempts")


def _event_key(event_id: str) -> str:
    return f"{_TAG}:e:{event_id}"


def _once_key(event: OutboxEvent) -> str:
    digest = hashlib.sha256(f"{event.job_id}\0{event.type}\0{event.url}".encode()).hexdigest()
    return f"{_TAG}:once:{digest}"


class RedisWebhookOutbox:
    """The fleet's outbox; see the module docstring. ``keep``: seconds a finished event (and
    the record that its job had one) is kept."""

    __slots__ = ("_add", "_claim", "_client", "_failed", "_finish", "_keep_ms", "_renew")

    def __init__(self, client: RedisClient, *, keep: float) -> None:
        self._client = client
        self._keep_ms = max(1, int(keep * 1000))
        self._add = client.register_script(_ADD)
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._failed = client.register_script(_FAILED)
        self._finish = client.register_script(_FINISH)

    async def open(self) -> None:
        """Nothing to open: the process's Redis client is the app's."""

    async def add(self, event: OutboxEvent) -> bool:
        fields: list[str | bytes | int] = [
            "job", event.job_id, "type", event.type, "url", event.url, "owner", event.owner,
            "body", event.body, "created", repr(event.created_at), "attempts", event.attempts,
        ]  # fmt: skip
        added = await self._add(
            keys=[_once_key(event), _event_key(event.id), _DUE, _PENDING],
            args=[event.id, repr(event.created_at), self._keep_ms, *fields],
        )
        return bool(added)

    async def claim(self, now: float, lease: float, limit: int) -> list[OutboxEvent]:
        token = new_claim()
        taken = cast(
            list[bytes],
            await self._claim(
                keys=[_DUE, _CLAIMS], args=[repr(now), repr(now + lease), limit, token]
            ),
        )
        if not taken:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for event_id in taken:
                pipe.hmget(_event_key(event_id.decode()), _FIELDS)
            rows = cast(list[list[bytes | None]], await pipe.execute())
        return [
            _event(event_id.decode(), row, token)
            for event_id, row in zip(taken, rows, strict=True)
            if row[0] is not None  # gone: expired long after it ended (never while pending)
        ]

    async def renew(self, event: OutboxEvent, until: float) -> bool:
        renewed = await self._renew(keys=[_DUE, _CLAIMS], args=[event.id, event.claim, repr(until)])
        return bool(renewed)

    async def delivered(self, event: OutboxEvent, now: float) -> None:
        await self._end(event, "", "delivered_at", now, "", attempts=0)

    async def failed(self, event: OutboxEvent, due_at: float, error: str) -> bool:
        failed = await self._failed(
            keys=[_DUE, _CLAIMS, _event_key(event.id)],
            args=[event.id, event.claim, repr(due_at), error],
        )
        return bool(failed)

    async def gave_up(self, event: OutboxEvent, now: float, error: str) -> bool:
        return await self._end(event, event.claim, "gave_up_at", now, error, attempts=1)

    async def pending(self) -> tuple[int, float | None]:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zcard(_PENDING)
            pipe.zrange(_PENDING, 0, 0, withscores=True)
            depth, oldest = cast(tuple[int, list[tuple[bytes, float]]], await pipe.execute())
        return int(depth), (float(oldest[0][1]) if oldest else None)

    async def close(self) -> None:
        """Nothing to close: the app closes its Redis client."""

    async def _end(
        self, event: OutboxEvent, token: str, field: str, when: float, error: str, *, attempts: int
    ) -> bool:
        ended = await self._finish(
            keys=[_DUE, _CLAIMS, _PENDING, _event_key(event.id)],
            args=[event.id, token, field, repr(when), error, self._keep_ms, attempts],
        )
        return bool(ended)


def _event(event_id: str, row: list[bytes | None], token: str) -> OutboxEvent:
    job, kind, url, owner, body, created, attempts = (value or b"" for value in row)
    return OutboxEvent(
        id=event_id,
        job_id=job.decode(),
        type=kind.decode(),
        url=url.decode(),
        owner=owner.decode(),
        body=bytes(body),
        created_at=float(created),
        attempts=int(attempts),
        claim=token,
    )
