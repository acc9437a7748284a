"""Two instances share one bucket (acceptance 3): a copy one instance made serves from the
other, after the upstream forgot the render, and the other's retention leaves it alone."""

from __future__ import annotations

import secrets

import aiohttp

from router import appkeys as keys
from router.records.job import CopyState
from tests.assets.helpers import copied, upstream_bytes
from tests.conftest import (
    ALICE,
    ProxyFactory,
    SimulatorFactory,
    finished_job,
    local_store,
    upstream_provider,
)
from tests.contract.seaweed import SeaweedS3


async def test_a_copy_made_by_one_instance_serves_from_another(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory, seaweed: SeaweedS3
) -> None:
    sim = await simulators(video_bytes=200_000)
    providers = [upstream_provider("up", "openai", sim)]
    shared = seaweed.section(f"fleet-{secrets.token_hex(4)}/")
    first = await proxy_factory(providers, assets=shared)
    video = await first.client().videos.create(prompt="two lighthouses")
    job = await copied(first, (await finished_job(first, video.id)).id)
    assert job.copy is CopyState.STORED
    await local_store(first.app).flush()

    second = await proxy_factory(providers, assets=shared)  # same job store file, same bucket
    del sim.jobs[job.current.upstream_id]
    await second.app[keys.RETENTION].sweep()
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{second.url}/v1/videos/{job.id}/content",
            headers={"Authorization": f"Bearer {ALICE}", "Range": "bytes=1000-"},
        ) as r,
    ):
        assert r.status == 206
        assert await r.read() == upstream_bytes(sim, job.current.upstream_id, "video")[1000:]
    assert second.app[keys.METRICS].content_answers.labels("store")._value.get() == 1
