"""The durability contract of the Redis store: with ``appendonly yes`` and ``appendfsync
always``, every job whose insert returned (acknowledged) survives ``kill -9`` of Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.exceptions import RedisError

from router.config.model import StoreConfig
from router.store.redis import RedisJobStore
from router.store.redis_client import connect
from tests.contract.test_job_store import new_job
from tests.redis_rig import RedisServer, start_server

DURABLE = ("--appendonly", "yes", "--appendfsync", "always")


async def test_acknowledged_jobs_survive_kill_9_of_redis(tmp_path: Path) -> None:
    server = start_server(tmp_path / "redis", *DURABLE)
    config = StoreConfig(backend="redis", url=server.url, timeout=5.0)
    try:
        client = connect(config)
        store = RedisJobStore(client)
        acknowledged = []
        for _ in range(50):
            job = new_job()
            await store.insert(job)  # returned: acknowledged to the client
            acknowledged.append(job)
        await client.aclose()

        server.kill()  # SIGKILL: no shutdown save
        await asyncio.to_thread(server.start)  # same port, same directory, same AOF

        client = connect(config)
        again = RedisJobStore(client)
        found = [await again.read(job.id) for job in acknowledged]
        listed, _ = await again.page("alice", after=None, limit=100, order="asc")
        await client.aclose()
    finally:
        server.stop()
    assert all(
        f is not None and f.to_record() == j.to_record()
        for f, j in zip(found, acknowledged, strict=True)
    )
    assert {job.id for job in listed} == {job.id for job in acknowledged}


async def test_with_redis_down_an_insert_fails_and_the_store_recovers_by_itself(
    redis_server: RedisServer,
) -> None:
    client = connect(StoreConfig(backend="redis", url=redis_server.url, timeout=0.5))
    store = RedisJobStore(client)
    try:
        await store.insert(new_job())
        redis_server.kill()
        job = new_job()

        with pytest.raises((RedisError, OSError)):  # never a silent acknowledgement
            await store.insert(job)
        assert not store.writable and not await store.probe_write()  # /readyz: store_writes

        await asyncio.to_thread(redis_server.start)
        assert await store.probe_write() and store.writable
        await store.insert(job)  # the same client, reconnected by itself
        assert await store.read(job.id) is not None
    finally:
        await client.aclose()
