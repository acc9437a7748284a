"""Issue 21: a create on Redis in fewer round trips. ``RedisJobStore.insert`` writes the job, its
owner's list, its idempotency record, its render's holder and (in a fleet) its first planned
read in one script on one Redis, and per slot on a Cluster; both plan the read with the job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis, RedisCluster

from router.config.model import StoreConfig
from router.fleet.redis_plan import RedisPlan
from router.records.job import Job
from router.store.base import IdempotencyClaim
from router.store.redis import RedisJobStore
from router.store.redis_client import RedisClient, connect
from tests.contract.test_job_store import new_job
from tests.redis_rig import RedisServer

DUE = 5000.0  # when each new job's first read is planned (a wall-clock second)


def planned(job: Job) -> float | None:
    return None if job.state.finished else DUE


@pytest.fixture(params=["redis", "cluster"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[RedisClient]:
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        config = StoreConfig(backend="redis", url=server.url)
    else:
        url: str = request.getfixturevalue("redis_cluster_url")
        config = StoreConfig(backend="redis", url=url, cluster=True)
    redis = connect(config)
    try:
        yield redis
    finally:
        await redis.aclose()


async def test_an_inserted_job_is_planned_listed_and_holds_its_render(client: RedisClient) -> None:
    store = RedisJobStore(client, first_read=planned)
    job = new_job()
    claim = IdempotencyClaim(job.owner, "key-1", "print")
    await store.claim_key(claim, job.id)
    await store.insert(job, None, claim)

    plan = RedisPlan(client)
    assert await plan.take("p", DUE - 1, 10, 60.0) == []  # not due before its first read
    assert await plan.take("p", DUE, 10, 60.0) == [job.id]
    listed, more = await store.page(job.owner, after=None, limit=10, order="asc")
    assert [j.id for j in listed] == [job.id] and not more
    assert await store.render_holder("p", job.current.upstream_id) == job.id
    record = await store.claim_key(claim, "video_other")
    assert record.job_id == job.id  # the key names the inserted job, not a later claimant


async def test_a_second_insert_of_one_id_writes_nothing_anywhere(client: RedisClient) -> None:
    store = RedisJobStore(client, first_read=planned)
    job = new_job()
    await store.insert(job)
    plan = RedisPlan(client)
    assert await plan.take("p", DUE, 10, 60.0) == [job.id]  # pushed on an hour by the take

    impostor = new_job(owner="mallory")
    impostor.id = job.id
    with pytest.raises(ValueError, match="already stored"):
        await store.insert(impostor)

    if not isinstance(client, RedisCluster):  # a Cluster plans first, in its own round trip
        assert await plan.take("p", DUE, 10, 60.0) == []  # one script: not planned again
    assert (await store.page("mallory", after=None, limit=10, order="asc")) == ([], False)
    assert await store.render_holder("p", impostor.current.upstream_id) is None


async def test_a_create_on_one_redis_is_one_round_trip(redis_server: RedisServer) -> None:
    client = Redis.from_url(redis_server.url)  # no health-check pings between commands
    try:
        store = RedisJobStore(client, first_read=planned)
        await store.insert(new_job())  # loads the script (EVALSHA, NOSCRIPT, EVAL)

        async def reads() -> int:
            return int((await client.info("stats"))["total_reads_processed"])

        first = await reads()
        idle = await reads() - first  # what asking costs by itself
        before = await reads()
        job = new_job()
        await store.insert(job, None, IdempotencyClaim(job.owner, "k", "f"))
        assert await reads() - before - idle == 1
    finally:
        await client.aclose()
