"""The copier's edges: copies cut short by a shutdown resume at the next start, the byte-rate
limit holds, leftovers of deleted jobs are swept, HEAD answers without a body."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from router import appkeys as keys
from router.assets.base import asset_key
from router.assets.throttle import Throttle
from router.records.job import CopyState
from tests.assets.helpers import copied, upstream_bytes
from tests.conftest import (
    ALICE,
    ProxyFactory,
    SimulatorFactory,
    finished_job,
    stored_job,
    upstream_provider,
    wait_for,
)

AUTH = {"Authorization": f"Bearer {ALICE}"}


async def test_a_copy_cut_short_by_a_shutdown_is_finished_by_the_next_start(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory, tmp_path: Path
) -> None:
    sim = await simulators(video_bytes=8 << 20)
    providers = [upstream_provider("up", "openai", sim)]
    slow = await proxy_factory(providers, assets={"copy_bandwidth": 1 << 20, "thumbnails": False})
    video = await slow.client().videos.create(prompt="a long take")
    job = await finished_job(slow, video.id)
    partial = tmp_path / "assets" / ".partial"

    async def copying() -> bool:
        return any(f.is_file() and f.stat().st_size > 0 for f in partial.rglob("*"))

    await wait_for(copying)
    assert slow.app[keys.COPIER].waiting == 0  # taken by a worker, not waiting
    assert stored_job(slow, job.id).copy is CopyState.PENDING
    await slow.stop()

    again = await proxy_factory(providers, assets={"thumbnails": False})
    done = await copied(again, job.id)
    assert done.copy is CopyState.STORED
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{again.url}/v1/videos/{job.id}/content", headers=AUTH) as r,
    ):
        assert await r.read() == upstream_bytes(sim, job.current.upstream_id, "video")


async def test_head_answers_the_length_without_a_body(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    sim = await simulators(video_bytes=50_000)
    proxy = await proxy_factory([upstream_provider("up", "openai", sim)])
    video = await proxy.client().videos.create(prompt="a pebble")
    job = await copied(proxy, (await finished_job(proxy, video.id)).id)
    async with (
        aiohttp.ClientSession() as http,
        http.head(f"{proxy.url}/v1/videos/{job.id}/content", headers=AUTH) as r,
    ):
        assert r.status == 200
        assert r.headers["Content-Length"] == "50000"
        assert await r.read() == b""


async def test_objects_of_jobs_that_are_gone_are_swept(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory, tmp_path: Path
) -> None:
    sim = await simulators()
    proxy = await proxy_factory([upstream_provider("up", "openai", sim)])

    async def leftover() -> AsyncIterator[bytes]:
        yield b"a copy whose job was deleted while it was being made"

    key = asset_key("video_gone", "video")
    await proxy.app[keys.ASSETS].put(key, leftover(), "video/mp4")
    await proxy.app[keys.RETENTION].sweep()
    assert await proxy.app[keys.ASSETS].stat(key) is None
    assert not (tmp_path / "assets" / "videos" / "video_gone").exists()


async def test_the_throttle_holds_copies_to_their_byte_rate() -> None:
    throttle = Throttle(1_000_000)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await throttle.take(1_000_000)  # the first second's worth goes at once
    assert loop.time() - started < 0.1
    await throttle.take(200_000)  # then 200 kB at 1 MB/s: at least 0.2 s
    assert loop.time() - started >= 0.19
    await Throttle(None).take(10**12)  # no limit: never waits


async def test_with_copies_off_content_streams_from_the_provider(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory, tmp_path: Path
) -> None:
    sim = await simulators()
    proxy = await proxy_factory([upstream_provider("up", "openai", sim)], assets={"copy": False})
    video = await proxy.client().videos.create(prompt="a passing cloud")
    job = await finished_job(proxy, video.id)
    content = await proxy.client().videos.download_content(job.id)
    assert content.content == upstream_bytes(sim, job.current.upstream_id, "video")
    assert job.copy is CopyState.NONE and not (tmp_path / "assets" / "videos").exists()
    assert proxy.app[keys.METRICS].content_answers.labels("upstream")._value.get() == 1
