"""Cleanup context: the process's Redis client, when ``store.backend`` is redis.

Built before everything that shares state through Redis (health, the job store, limits) and
closed after them. Start-up pings once, so a wrong ``store.url`` or a Redis that is not there
stops the proxy at start with a clear message instead of failing the first request. Nothing is
stored in ``keys.REDIS`` on the sqlite backend. While it runs, ``keys.REDIS_LIVENESS`` pings
Redis every second so ``/readyz`` turns false while Redis cannot be reached, and true again by
itself when it can.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from redis.exceptions import RedisError

from router import appkeys as keys
from router.store.redis_client import connect
from router.store.redis_liveness import RedisLiveness

log = logging.getLogger(__name__)


class RedisUnavailable(RuntimeError):
    """Start-up could not reach the Redis that ``store.url`` names."""


async def redis_context(app: web.Application) -> AsyncIterator[None]:
    store = app[keys.CONFIG].current.store
    if store.backend != "redis":
        yield
        return
    client = connect(store)
    try:
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            # the class name only: an error text may repeat the URL and so its password
            raise RedisUnavailable(
                f"store.url: Redis does not answer ({type(exc).__name__})"
            ) from None
        app[keys.REDIS] = client
        liveness = app[keys.REDIS_LIVENESS] = RedisLiveness(client)
        pinging = asyncio.create_task(liveness.run(), name="redis liveness")
        try:
            yield
        finally:
            pinging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinging
    finally:
        await client.aclose()
