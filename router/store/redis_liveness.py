"""``RedisLiveness``: whether this process can reach its Redis right now, for ``/readyz``.

A load balancer must stop sending creates to an instance that cannot store them. One ``PING``
every ``interval`` seconds (bounded by the client's ``store.timeout``) keeps ``up`` current;
a change either way is logged once. Nothing reconnects here: redis-py does that on the next
command, so ``up`` turns true again by itself as soon as a ping gets through.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from router.store.redis_client import RedisClient

__all__ = ["PING_INTERVAL", "RedisLiveness"]

log = logging.getLogger(__name__)

PING_INTERVAL = 1.0  # seconds between pings


class RedisLiveness:
    """``up`` is the outcome of the last ping; ``run`` pings until cancelled."""

    __slots__ = ("_client", "_interval", "up")

    def __init__(self, client: RedisClient, *, interval: float = PING_INTERVAL) -> None:
        self._client = client
        self._interval = interval
        self.up = True  # start-up pinged it

    async def check(self) -> bool:
        """Ping once; update and return ``up``."""
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            if self.up:
                log.warning("redis: unreachable (%s); /readyz is false", type(exc).__name__)
            self.up = False
        else:
            if not self.up:
                log.info("redis: reachable again; /readyz follows")
            self.up = True
        return self.up

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check()
            # redis-py can swallow a cancel in the middle of the ping (the connection drops)
            if (task := asyncio.current_task()) is not None and task.cancelling():
                raise asyncio.CancelledError
