"""Exactly one instance of a fleet copies each job: the copy is leased (``copy:<job id>``).

Two instances on one Redis and one asset directory are both asked to copy one completed job;
the upstream serves its content once. An instance that died holding the lease (a lease taken
here and never renewed) is taken over once the lease lapses; a copy whose lease was taken from
it stops and is finished once the lease is free again.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from router import appkeys as keys
from router.assets.copier import lease_name
from router.fleet.redis_leases import RedisLeases, lease_key
from router.records.job import CopyState
from tests.assets.helpers import copied, sha256, upstream_bytes
from tests.conftest import (
    ProxyFactory,
    SimulatorFactory,
    finished_job,
    read_job,
    upstream_provider,
    wait_for,
)
from tests.redis_rig import RedisServer

LEASE = 0.6  # seconds: short, so a lapse is quick and a long copy renews several times
VARIANTS = ("video", "thumbnail", "spritesheet")  # what the openai kind serves: one read each


@dataclass(frozen=True, slots=True)
class Fleet:
    """What a lease test starts instances with: one Redis (and a client of it for the test's
    own leases), one asset directory."""

    make: ProxyFactory
    simulators: SimulatorFactory
    redis_url: str
    redis: Redis
    assets: Path

    def sections(self, **assets: Any) -> dict[str, Any]:
        """Config sections of an instance: short copy leases, and ``assets`` settings."""
        return {
            "store": {"backend": "redis", "url": self.redis_url},
            "server": {"link_secret": "lease-test-link-secret-0123456789"},
            "assets": {
                "path": str(self.assets), "copy_lease": LEASE, "thumbnails": False, **assets,
            },
        }  # fmt: skip

    def leases(self, owner: str) -> RedisLeases:
        return RedisLeases(self.redis, owner, time.time)


@pytest.fixture
async def fleet(
    proxy_factory: ProxyFactory,
    simulators: SimulatorFactory,
    redis_server: RedisServer,
    tmp_path: Path,
) -> AsyncIterator[Fleet]:
    client = Redis.from_url(redis_server.url)
    yield Fleet(proxy_factory, simulators, redis_server.url, client, tmp_path / "assets")
    await client.aclose()


async def test_two_instances_asked_to_copy_one_job_read_the_upstream_once(fleet: Fleet) -> None:
    sim = await fleet.simulators(video_bytes=3 << 20)
    providers = [upstream_provider("up", "openai", sim)]
    # 3 MiB at 512 KiB/s (after a one-second burst): ~5 s, a copy that outlives several leases
    # and the second instance's start
    sections = fleet.sections(copy_bandwidth=1 << 19)
    first = await fleet.make(providers, **sections)
    video = await first.client().videos.create(prompt="one copy for the fleet")
    job = await finished_job(first, video.id)
    probe = fleet.leases("probe")

    second = await fleet.make(providers, **sections)  # the fleet's jobs: it resumes the copy
    assert (await read_job(second, job.id)).copy is CopyState.PENDING  # asked to copy it too
    assert await probe.holder(lease_name(job.id)) == first.app[keys.INSTANCE]
    assert (await read_job(first, job.id)).copy is CopyState.PENDING  # while the first copies

    mine, theirs = await copied(first, job.id), await copied(second, job.id, within=20.0)
    assert mine.copy is theirs.copy is CopyState.STORED
    upstream_id = job.current.upstream_id
    for variant in VARIANTS:
        want = sha256(upstream_bytes(sim, upstream_id, variant))
        assert [p.stored_asset(variant).sha256 for p in (mine, theirs)] == [want, want]  # type: ignore[union-attr]
    assert sim.stats.content_downloads == len(VARIANTS)
    assert await probe.holder(lease_name(job.id)) is None  # released when done


async def test_a_copy_whose_holder_died_is_taken_over_when_its_lease_lapses(
    fleet: Fleet,
) -> None:
    sim = await fleet.simulators(video_bytes=100_000, render_seconds=1.0)
    providers = [upstream_provider("up", "openai", sim)]
    proxy = await fleet.make(providers, **fleet.sections())
    video = await proxy.client().videos.create(prompt="the copier died")
    dead = fleet.leases("a-dead-instance")
    held_for = 2.0
    assert await dead.acquire(lease_name(video.id), held_for)  # and never renews it
    lapses_at = time.time() + held_for

    job = await finished_job(proxy, video.id)

    async def pending() -> bool:  # marked as soon as a worker takes it, lease or not
        return (await read_job(proxy, job.id)).copy is CopyState.PENDING

    await wait_for(pending)
    done = await copied(proxy, job.id)
    assert done.copy is CopyState.STORED
    assert done.stored_asset("video").stored_at >= lapses_at  # type: ignore[union-attr]
    assert sim.stats.content_downloads == len(VARIANTS)


async def test_a_copy_that_loses_its_lease_stops_and_is_finished_once_it_is_free(
    fleet: Fleet,
) -> None:
    sim = await fleet.simulators(video_bytes=4 << 20)
    providers = [upstream_provider("up", "openai", sim)]
    proxy = await fleet.make(providers, **fleet.sections(copy_bandwidth=1 << 20))
    video = await proxy.client().videos.create(prompt="a lease taken away")
    job = await finished_job(proxy, video.id)
    name = lease_name(job.id)

    async def copying() -> bool:
        return await fleet.leases("probe").holder(name) is not None

    await wait_for(copying)
    await fleet.redis.delete(lease_key(name))  # another instance took it (its holder seemed dead)
    thief = fleet.leases("another-instance")
    assert await thief.acquire(name, 1.5)

    done = await copied(proxy, job.id, within=20.0)
    assert done.copy is CopyState.STORED
    video_sha = sha256(upstream_bytes(sim, job.current.upstream_id, "video"))
    assert done.stored_asset("video").sha256 == video_sha  # type: ignore[union-attr]
    assert sim.stats.content_downloads > len(VARIANTS)  # the stopped try, then the whole one
    partial = fleet.assets / ".partial"
    assert not [f for f in partial.rglob("*") if f.is_file() and f.stat().st_size]
