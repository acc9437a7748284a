"""A copy finished after a client polled the job is served from the store, on both backends.

On the redis backend a client poll puts the job's view in the instance's poll cache
(``router.jobs.views``), which drops a view only on a newer job event. The copier's writes
(``JobStore.amend``) announced nothing, so the cached view never learned the copy was whole:
every download went on streaming from the upstream (and would fail once the upstream's link
expired), while the copy sat unused in the store.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from router import appkeys as keys
from router.records.job import CopyState
from tests.assets.helpers import copied, sha256, upstream_bytes
from tests.conftest import ALICE, ProxyFactory, SimulatorFactory, finished_job, upstream_provider
from tests.flows.test_fleet_coordination import on_backend
from tests.redis_rig import RedisServer


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_a_copy_finished_after_a_poll_is_what_downloads_come_from(
    redis_server: RedisServer,
    proxy_factory: ProxyFactory,
    simulators: SimulatorFactory,
    tmp_path: Path,
    backend: str,
) -> None:
    sim = await simulators(video_bytes=400_000)
    proxy = await proxy_factory(
        [upstream_provider("up", "openai", sim)],
        **on_backend(backend, redis_server.url),
        # ~1.5 s per copy after its first 128 KiB: the poll below comes first
        assets={"path": str(tmp_path / "assets"), "copy_bandwidth": 1 << 17},
    )
    client = proxy.client()
    video = await client.videos.create(prompt="a harbour at noon")
    await finished_job(proxy, video.id)

    polled = await client.videos.retrieve(video.id)  # the view the instance now holds
    cached = proxy.app[keys.VIEWS].get(video.id)
    assert polled.status == "completed"
    assert cached is not None and cached.copy in (CopyState.NONE, CopyState.PENDING)
    job = await copied(proxy, video.id)
    assert job.copy is CopyState.STORED
    downloads = sim.stats.content_downloads

    url = f"{proxy.url}/v1/videos/{video.id}/content"
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers={"Authorization": f"Bearer {ALICE}"}) as reply,
    ):
        body = await reply.read()
        etag = reply.headers.get("ETag")

    expected = upstream_bytes(sim, job.current.upstream_id, "video")
    assert reply.status == 200 and body == expected
    assert etag == f'"{sha256(expected)}"'  # the store's answer: only it knows the digest
    assert sim.stats.content_downloads == downloads  # the upstream was not asked again
