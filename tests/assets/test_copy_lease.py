"""Exactly one instance of a fleet copies each job: the copy is leased (``copy:<job id>``).

Two instances on one Redis and one asset directory are both asked to copy one completed job;
the upstream serves its content once. An instance that died holding the lease (a lease taken
here and never renewed) is taken over once the lease lapses; a copy whose lease was taken from
it stops and is finished once the lease is free again.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from router import appkeys as keys
from router.assets.copier import lease_name
from router.fleet.redis_leases import RedisLeases, lease_key
from router.records.job import CopyState
from tests.assets.helpers import copied, sha256, upstream_bytes
from tests.conftest import (
    ALICE,
    ProxyFactory,
    SimulatorFactory,
    finished_job,
    stored_job,
    upstream_provider,
    wait_for,
)
from tests.redis_rig import RedisServer

LEASE = 0.6  # seconds: short, so a lapse is quick and a long copy renews several times
VARIANTS = ("video", "thumbnail", "spritesheet")  # what the openai kind serves: one read each


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A client of the fleet's Redis for the test's own leases."""
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def fleet_sections(redis_server: RedisServer, assets: Path, **more: Any) -> dict[str, Any]:
    """One Redis, one asset directory, short copy leases."""
    return {
        "store": {"backend": "redis", "url": redis_server.url},
        "server": {"link_secret": "lease-test-link-secret-0123456789"},
        "assets": {"path": str(assets), "copy_lease": LEASE, "thumbnails": False, **more},
    }


async def test_two_instances_asked_to_copy_one_job_read_the_upstream_once(
    proxy_factory: ProxyFactory,
    simulators: SimulatorFactory,
    redis_server: RedisServer,
    redis_client: Redis,
    tmp_path: Path,
) -> None:
    sim = await simulators(video_bytes=3 << 20)
    providers = [upstream_provider("up", "openai", sim)]
    # 3 MiB at 1 MiB/s (after a one-second burst): a copy that outlives several leases
    sections = fleet_sections(redis_server, tmp_path / "shared", copy_bandwidth=1 << 20)
    first = await proxy_factory(providers, **sections)
    video = await first.client().videos.create(prompt="one copy for the fleet")
    job = await finished_job(first, video.id)
    await first.app[keys.STORE].flush()
    probe = RedisLeases(redis_client, "probe", time.time)

    second = await proxy_factory(providers, **sections)  # same job store file: it resumes
    assert stored_job(second, job.id).copy is CopyState.PENDING  # asked to copy it too
    assert await probe.holder(lease_name(job.id)) == first.app[keys.INSTANCE]
    assert stored_job(first, job.id).copy is CopyState.PENDING  # while the first copies

    mine, theirs = await copied(first, job.id), await copied(second, job.id, within=20.0)
    assert mine.copy is theirs.copy is CopyState.STORED
    upstream_id = job.current.upstream_id
    for variant in VARIANTS:
        want = sha256(upstream_bytes(sim, upstream_id, variant))
        assert [p.stored_asset(variant).sha256 for p in (mine, theirs)] == [want, want]  # type: ignore[union-attr]
    assert sim.stats.content_downloads == len(VARIANTS)
    assert await probe.holder(lease_name(job.id)) is None  # released when done
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{second.url}/v1/videos/{job.id}/content",
            headers={"Authorization": f"Bearer {ALICE}", "Range": "bytes=10-19"},
        ) as r,
    ):
        assert r.status == 206
        assert await r.read() == upstream_bytes(sim, upstream_id, "video")[10:20]


async def test_a_copy_whose_holder_died_is_taken_over_when_its_lease_lapses(
    proxy_factory: ProxyFactory,
    simulators: SimulatorFactory,
    redis_server: RedisServer,
    redis_client: Redis,
    tmp_path: Path,
) -> None:
    sim = await simulators(video_bytes=100_000, render_seconds=1.0)
    providers = [upstream_provider("up", "openai", sim)]
    proxy = await proxy_factory(providers, **fleet_sections(redis_server, tmp_path / "assets"))
    video = await proxy.client().videos.create(prompt="the copier died")
    dead = RedisLeases(redis_client, "a-dead-instance", time.time)
    held_for = 2.0
    assert await dead.acquire(lease_name(video.id), held_for)  # and never renews it
    lapses_at = time.time() + held_for

    job = await finished_job(proxy, video.id)
    assert stored_job(proxy, job.id).copy is CopyState.PENDING
    done = await copied(proxy, job.id)
    assert done.copy is CopyState.STORED
    assert done.stored_asset("video").stored_at >= lapses_at  # type: ignore[union-attr]
    assert sim.stats.content_downloads == len(VARIANTS)


async def test_a_copy_that_loses_its_lease_stops_and_is_finished_once_it_is_free(
    proxy_factory: ProxyFactory,
    simulators: SimulatorFactory,
    redis_server: RedisServer,
    redis_client: Redis,
    tmp_path: Path,
) -> None:
    sim = await simulators(video_bytes=4 << 20)
    providers = [upstream_provider("up", "openai", sim)]
    assets = tmp_path / "assets"
    sections = fleet_sections(redis_server, assets, copy_bandwidth=1 << 20)
    proxy = await proxy_factory(providers, **sections)
    video = await proxy.client().videos.create(prompt="a lease taken away")
    job = await finished_job(proxy, video.id)
    client = redis_client
    name = lease_name(job.id)

    async def copying() -> bool:
        return await RedisLeases(client, "probe", time.time).holder(name) is not None

    await wait_for(copying)
    await client.delete(lease_key(name))  # another instance took it (its holder seemed dead)
    thief = RedisLeases(client, "another-instance", time.time)
    assert await thief.acquire(name, 1.5)

    done = await copied(proxy, job.id, within=20.0)
    assert done.copy is CopyState.STORED
    video_sha = sha256(upstream_bytes(sim, job.current.upstream_id, "video"))
    assert done.stored_asset("video").sha256 == video_sha  # type: ignore[union-attr]
    assert sim.stats.content_downloads > len(VARIANTS)  # the stopped try, then the whole one
    assert not [f for f in (assets / ".partial").rglob("*") if f.is_file() and f.stat().st_size]
