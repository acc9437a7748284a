"""``JobEvents`` for a fleet: one Redis stream per job shard, read by every process.

``publish`` appends to the stream of the job's shard (``router.store.redis_keys``); the Redis
job store appends there itself, inside the script that writes the job, so a stored change and
its event are one atomic step. Each process runs readers that ``XREAD`` the streams from where
they left off and hand each entry to its local subscribers (``Fanout``), so every subscriber
in the fleet sees every event once, in stream order.

Streams rather than pub/sub: a reader that lost its connection (Redis restarting, a network
blip) resumes after the last entry it read instead of silently missing what was published
meanwhile, as long as the stream still holds it (``EVENTS_MAXLEN`` per shard). Reads block at
most ``block`` seconds, kept below the client's socket timeout. On one server a single reader
reads all shards in one command; on a cluster, whose shards live in different slots, there is
one reader per shard.

It must not decide anything about jobs; it carries events.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import cast

from redis.asyncio import RedisCluster
from redis.exceptions import RedisError

from router.events.base import DEFAULT_LIMIT, Fanout, Subscription
from router.records.event import JobChanged
from router.store.redis_client import RedisClient
from router.store.redis_keys import (
    EVENTS_MAXLEN,
    SHARDS,
    decode_event,
    encode_event,
    events_key,
    shard_of,
)

__all__ = ["RedisJobEvents"]

log = logging.getLogger(__name__)

# what XREAD answers (RESP2, bytes): per stream, its new entries as (id, fields)
_Entries = list[tuple[bytes, dict[bytes, bytes]]]
_XReadReply = list[tuple[bytes, _Entries]]
_BATCH = 500  # entries one XREAD returns at most
_BACKOFF = (0.05, 2.0)  # seconds between reads after a failure: first, at most (doubling)


class RedisJobEvents:
    """Job events shared through Redis streams; ``start`` before use, ``close`` at shutdown."""

    __slots__ = ("_block_ms", "_client", "_closing", "_fanout", "_last", "_readers")

    def __init__(self, client: RedisClient, *, block: float = 1.0) -> None:
        self._client = client
        self._block_ms = max(1, int(block * 1000))
        self._fanout = Fanout()
        self._last: dict[str, bytes] = {}  # stream key -> id of the last entry read
        self._readers: list[asyncio.Task[None]] = []
        self._closing = False

    async def start(self) -> None:
        """Read from the present end of every stream: what is published from now on."""
        keys = [events_key(shard) for shard in range(SHARDS)]
        for key in keys:
            newest = cast(_Entries, await self._client.xrevrange(key, count=1))
            self._last[key] = newest[0][0] if newest else b"0-0"
        groups = [[key] for key in keys] if isinstance(self._client, RedisCluster) else [keys]
        self._readers = [
            asyncio.create_task(self._read(group), name=f"job events {group[0]}")
            for group in groups
        ]

    async def publish(self, event: JobChanged) -> None:
        await self._client.xadd(
            events_key(shard_of(event.id)),
            encode_event(event),
            maxlen=EVENTS_MAXLEN,
            approximate=True,
        )

    def subscribe(self, *, job_id: str | None = None, limit: int = DEFAULT_LIMIT) -> Subscription:
        return self._fanout.subscribe(job_id, limit)

    async def close(self) -> None:
        """Stop the readers and end every subscription."""
        self._closing = True
        for reader in self._readers:
            reader.cancel()
        # redis-py may turn the cancellation of a command in flight into a connection error
        await asyncio.gather(*self._readers, return_exceptions=True)
        self._readers = []
        self._fanout.close()

    async def _read(self, keys: list[str]) -> None:
        backoff = 0.0
        while not self._closing:
            try:
                replies = await self._client.xread(
                    {key: self._last[key] for key in keys}, count=_BATCH, block=self._block_ms
                )
            except (RedisError, OSError) as exc:
                if not backoff:
                    log.warning("job events: reading %s failed (%r); retrying", keys[0], exc)
                backoff = min(max(backoff * 2, _BACKOFF[0]), _BACKOFF[1])
                # jitter: the fleet's readers do not all come back in the same instant
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                continue
            if backoff:
                log.info("job events: reading %s again", keys[0])
                backoff = 0.0
            for key, entries in cast(_XReadReply, replies or []):
                for entry_id, fields in entries:
                    self._fanout.deliver(decode_event(fields))
                    self._last[key.decode()] = entry_id
