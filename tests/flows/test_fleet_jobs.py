"""Issue 17, the jobs of a fleet: three instances (apps in this process, each on its own loopback
port) on one real Redis share every job. A job made through one is polled, seen, listed,
downloaded, cancelled and deleted through any other; one ``Idempotency-Key`` sent to all three at
once makes one render; each job is read from its upstream once per poll interval whatever the
number of instances (one instance holds a provider's poll lease); and when the lease holder
stops, another takes its jobs over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import openai
import pytest

from router import appkeys as keys
from router.config.model import StoreConfig
from router.fleet.redis_leases import lease_key
from router.jobs.sweep import SWEEP_MIN_JOBS
from router.jobs.tracking import LEASE_PREFIX, PlannedTracking
from router.store.redis_client import connect
from tests.clock import ManualClock
from tests.conftest import (
    ALICE,
    BOB,
    ProxyFactory,
    RunningProxy,
    SimulatorFactory,
    created_in_batches,
    upstream_provider,
    wait_for,
)
from tests.flows.test_fleet_coordination import LINK_SECRET
from tests.redis_rig import RedisServer

AUTH = {"Authorization": f"Bearer {ALICE}"}


async def fleet_of(
    proxy_factory: ProxyFactory,
    redis_server: RedisServer,
    providers: list[dict[str, Any]],
    size: int,
    clock: Callable[[], float] = time.time,
    **store: Any,
) -> list[RunningProxy]:
    settings = {"backend": "redis", "url": redis_server.url, "lease_ttl": 1.0, **store}
    return [
        await proxy_factory(
            providers, clock=clock, store=settings, server={"link_secret": LINK_SECRET}
        )
        for _ in range(size)
    ]


async def completed(proxy: RunningProxy, video_id: str, within: float = 30.0) -> None:
    async def done() -> bool:
        video = await proxy.client().videos.retrieve(video_id)
        assert video.status != "failed", video.error
        return video.status == "completed"

    await wait_for(done, within=within)


async def test_a_job_made_through_one_instance_lives_on_every_instance(
    redis_server: RedisServer, proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    sim = await simulators(render_seconds=0.5, video_bytes=50_000)
    one, two, three = await fleet_of(
        proxy_factory, redis_server, [upstream_provider("a", "openai", sim)], size=3
    )
    video = await one.client().videos.create(model="sora-2", prompt="a lighthouse")

    await completed(two, video.id)
    listed = await three.client().videos.list()
    assert [v.id for v in listed.data] == [video.id]
    assert (await two.client().videos.retrieve(video.id)).status == "completed"
    content = await three.client().videos.download_content(video.id)
    assert len(content.content) == 50_000
    with pytest.raises(openai.NotFoundError):  # tenancy holds on every instance
        await two.client(BOB).videos.retrieve(video.id)

    await three.client().videos.delete(video.id)

    async def gone_everywhere() -> bool:
        for proxy in (one, two, three):
            try:
                await proxy.client().videos.retrieve(video.id)
            except openai.NotFoundError:
                continue
            return False
        return True

    await wait_for(gone_everywhere)
    assert sim.stats.creates_received == 1


async def test_a_signed_relay_link_minted_by_one_instance_works_through_another(
    redis_server: RedisServer, proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    sim = await simulators(render_seconds=0.3, video_bytes=20_000)
    one, two = await fleet_of(
        proxy_factory, redis_server, [upstream_provider("r", "relay", sim)], size=2
    )
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{one.url}/v2/videos/generations",
            json={"model": "sora-2", "prompt": "a kite"},
            headers=AUTH,
        ) as answer:
            task_id = (await answer.json())["task_id"]
        output: list[str] = []

        async def finished() -> bool:
            async with http.get(f"{one.url}/v2/videos/generations/{task_id}", headers=AUTH) as r:
                task = await r.json()
            if task["status"] == "SUCCESS":
                output.append(task["data"]["output"])
            return bool(output)

        await wait_for(finished, within=30)
        link = output[0].replace(one.url, two.url)
        assert link.startswith(two.url)
        async with http.get(link) as fetched:  # no key: the signature is the credential
            assert fetched.status == 200
            assert len(await fetched.read()) == 20_000


async def test_one_idempotency_key_through_three_instances_at_once_makes_one_job(
    redis_server: RedisServer, proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    sim = await simulators(render_seconds=3600)
    proxies = await fleet_of(
        proxy_factory, redis_server, [upstream_provider("a", "openai", sim)], size=3
    )
    headers = {**AUTH, "Idempotency-Key": "one-render-please"}
    body = {"model": "sora-2", "prompt": "a lighthouse", "seconds": "4"}
    async with aiohttp.ClientSession() as http:

        async def create(proxy: RunningProxy) -> str:
            async with http.post(f"{proxy.url}/v1/videos", json=body, headers=headers) as r:
                assert r.status == 200, await r.text()
                return str((await r.json())["id"])

        ids = await asyncio.gather(*(create(p) for p in proxies))
    assert len(set(ids)) == 1
    assert sim.stats.creates_received == 1


async def test_a_cancel_through_another_instance_settles_the_job_for_all(
    redis_server: RedisServer, proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    sim = await simulators(render_seconds=3600)
    one, two = await fleet_of(
        proxy_factory, redis_server, [upstream_provider("a", "openai", sim)], size=2
    )
    video = await one.client().videos.create(model="sora-2", prompt="a slow render")
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{two.url}/v1/videos/{video.id}/cancel", headers=AUTH) as answer,
    ):
        assert answer.status == 200
        assert (await answer.json())["error"]["code"] == "cancelled"

    async def cancelled_everywhere() -> bool:
        seen = [await p.client().videos.retrieve(video.id) for p in (one, two)]
        return all(v.status == "failed" for v in seen)

    await wait_for(cancelled_everywhere)


@pytest.mark.parametrize(
    "jobs",
    [
        12,  # fewer than a sweep's minimum: a status read a job
        204,  # issue 17's 200 (12 batches of 17): list pages read them
    ],
)
async def test_each_job_is_read_once_per_interval_whatever_the_number_of_instances(
    redis_server: RedisServer,
    proxy_factory: ProxyFactory,
    simulators: SimulatorFactory,
    jobs: int,
) -> None:
    """On one clock shared by the instances and the simulator, every advance of one poll
    interval makes every job due once; the upstream reads that refresh them all are counted
    per interval, with one instance and then with three. The lease outlives the test's clock
    (30 s against three intervals of 0.5 s), so it never changes hands mid-count."""
    clock = ManualClock(time.time())
    interval = 0.5
    sim = await simulators(clock=clock, render_seconds=10 * interval)  # +10% an interval
    providers = [upstream_provider("a", "openai", sim, poll_interval=interval)]

    async def instances(size: int) -> list[RunningProxy]:
        return await fleet_of(proxy_factory, redis_server, providers, size, clock, lease_ttl=30.0)

    (first,) = await instances(1)
    ids = await created_in_batches(first, jobs, batch=12)
    progress = dict.fromkeys(ids, 0)
    running = [first]

    async def reads_in_one_interval() -> tuple[int, int]:
        """Upstream status reads, one by one and by list page, between advancing the clock
        one interval and every job showing the progress of that read and planned again.

        A job's new progress is stored before its next read is planned (at the clock's now
        plus one interval): advancing the clock in between would plan that read one interval
        too late, so the interval ends only once no instance holds a job any more."""
        gets, lists = sim.stats.gets, sim.stats.lists
        clock.advance(interval)

        async def all_refreshed_and_planned() -> bool:
            found = await first.app[keys.STORE].read_many(ids)
            refreshed = len(found) == jobs and all(job.progress > progress[job.id] for job in found)
            return refreshed and not any(_tracking(proxy).held for proxy in running)

        await wait_for(all_refreshed_and_planned, within=30)
        for job in await first.app[keys.STORE].read_many(ids):
            progress[job.id] = job.progress
        return sim.stats.gets - gets, sim.stats.lists - lists

    alone = await reads_in_one_interval()
    others = await instances(2)
    running += others
    fleet = [await reads_in_one_interval() for _ in range(2)]  # the second counts late reads

    print(f"{jobs} jobs, status reads an interval: one instance {alone}, three {fleet}")
    # one by one (fewer than a sweep's minimum): exactly once an interval each; by list
    # pages: as many pages with three instances as with one, not three times as many
    assert alone == ((jobs, 0) if jobs < SWEEP_MIN_JOBS else (0, alone[1]))
    assert fleet == [alone, alone], (alone, fleet)
    holders = [p for p in (first, *others) if _tracking(p).held or _holds_lease(p)]
    assert len(holders) == 1


async def test_due_jobs_beyond_one_batch_are_all_read_within_an_interval(
    redis_server: RedisServer, proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    """Issue 21: the held batch does not cap refreshes at one batch per interval. Three
    batches of jobs fall due at once; each batch's roster is read as soon as it is full, not
    one sweep per interval (before, the second batch waited a whole interval on its roster)."""
    clock = ManualClock(time.time())
    sim = await simulators(clock=clock, render_seconds=1000.0)
    interval, batch = 120.0, SWEEP_MIN_JOBS + 10
    providers = [upstream_provider("a", "openai", sim, poll_interval=interval)]
    proxy = await proxy_factory(
        providers,
        clock=clock,
        store={"backend": "redis", "url": redis_server.url, "poll_batch": batch},
        server={"link_secret": LINK_SECRET},
    )
    client = proxy.client()
    videos = await asyncio.gather(
        *(client.videos.create(model="sora-2", prompt=f"take {n}") for n in range(3 * batch))
    )
    clock.advance(interval)  # every job's first read is due now (planned one interval on)
    pages = sim.stats.lists

    async def all_read() -> bool:
        jobs = await proxy.app[keys.STORE].read_many([video.id for video in videos])
        return len(jobs) == len(videos) and all(job.progress > 0 for job in jobs)

    await wait_for(all_read, within=interval / 6)  # GATHER (half of it) would be late too
    assert sim.stats.lists - pages >= 3  # a sweep a batch
    assert sim.stats.gets == 0  # every one of them read by a list page

    async def let_go() -> bool:  # each read job is planned again and no longer held
        return not _tracking(proxy).held

    await wait_for(let_go)


async def test_when_the_lease_holder_stops_another_instance_finishes_its_jobs(
    redis_server: RedisServer, proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    sim = await simulators(render_seconds=2.0)
    providers = [upstream_provider("a", "openai", sim, poll_interval=0.2)]
    proxies = await fleet_of(proxy_factory, redis_server, providers, size=2)
    videos = [
        await proxies[0].client().videos.create(model="sora-2", prompt=f"take {n}")
        for n in range(4)
    ]
    client = connect(StoreConfig(backend="redis", url=redis_server.url))
    try:

        async def leased() -> bool:
            return await client.get(lease_key(LEASE_PREFIX + "a")) is not None

        await wait_for(leased)
        holder = next(p for p in proxies if _holds_lease(p))
        survivor = next(p for p in proxies if p is not holder)
        await holder.stop()
        for video in videos:
            await completed(survivor, video.id)
    finally:
        await client.aclose()
    assert sim.stats.creates_received == 4  # nothing rendered twice


def _tracking(proxy: RunningProxy) -> PlannedTracking:
    tracking = proxy.app[keys.POLLER]._tracking
    assert isinstance(tracking, PlannedTracking)
    return tracking


def _holds_lease(proxy: RunningProxy) -> bool:
    return bool(_tracking(proxy)._leased)


async def test_a_provider_whose_poll_rpm_is_spent_costs_redis_next_to_nothing(
    redis_server: RedisServer, proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    sim = await simulators(render_seconds=3600)
    providers = [upstream_provider("a", "openai", sim, poll_interval=0.2, poll_rpm=6)]
    (proxy,) = await fleet_of(proxy_factory, redis_server, providers, size=1)
    for n in range(30):
        await proxy.client().videos.create(model="sora-2", prompt=f"take {n}")
    client = connect(StoreConfig(backend="redis", url=redis_server.url))
    try:

        async def spent() -> bool:  # 6 reads a minute: spent within the first second or two
            return sim.stats.gets >= 6

        await wait_for(spent)

        async def commands() -> int:
            info = await client.info("stats")
            return int(info["total_commands_processed"])

        before = await commands()
        await asyncio.sleep(3.0)  # a window of real time, measured
        used = await commands() - before
    finally:
        await client.aclose()
    print(f"Redis commands in 3 s with poll_rpm spent: {used}")
    assert used < 60, used  # not a limiter script and a replan per job every tick (129)
    assert sim.stats.gets <= 7
