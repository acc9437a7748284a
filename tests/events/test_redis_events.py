"""Tests for router.events.redis beyond the contract: a reader that loses its connection."""

from __future__ import annotations

import asyncio

from router.config.model import StoreConfig
from router.events.redis import RedisJobEvents
from router.records.event import JobChanged
from router.store.redis_client import connect
from tests.redis_rig import RedisServer, ask


async def test_a_reader_that_lost_its_connection_resumes_where_it_left_off(
    redis_server: RedisServer,
) -> None:
    config = StoreConfig(backend="redis", url=redis_server.url, timeout=5.0)
    reading, writing = connect(config), connect(config)
    events = RedisJobEvents(reading, block=0.2)
    await events.start()
    try:
        async with events.subscribe() as subscription:
            first = JobChanged("video_r", 1, "queued", 0)
            await RedisJobEvents(writing).publish(first)
            assert await asyncio.wait_for(anext(subscription), 5) == first

            # every connection of the reading client drops; the stream keeps what comes next
            await asyncio.to_thread(ask, redis_server.port, "CLIENT", "KILL", "TYPE", "normal")
            missed = [JobChanged("video_r", v, "in_progress", 10 * v) for v in (2, 3)]
            await writing.aclose()
            writing = connect(config)  # the old one's connection went too
            for event in missed:
                await RedisJobEvents(writing).publish(event)

            got = [await asyncio.wait_for(anext(subscription), 5) for _ in missed]
        assert got == missed
    finally:
        await events.close()
        await reading.aclose()
        await writing.aclose()
