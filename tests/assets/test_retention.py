"""Retention by age and by size, DELETE, and what ``expires_at`` says (acceptance 4).

The proxy runs on a manual clock, so "a day later" is a number; the sweep is called directly
where the test needs it to have run.
"""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest

from router import appkeys as keys
from router.records.job import CopyState, Job
from tests.assets.helpers import copied
from tests.clock import ManualClock
from tests.conftest import (
    ALICE,
    ProxyFactory,
    RunningProxy,
    SimulatorFactory,
    finished_job,
    stored_job,
    upstream_provider,
    wait_for,
)

AUTH = {"Authorization": f"Bearer {ALICE}"}
VIDEO_BYTES = 100_000


async def _render(proxy: RunningProxy, prompt: str) -> Job:
    video = await proxy.client().videos.create(prompt=prompt)
    return await copied(proxy, (await finished_job(proxy, video.id)).id)


async def _content(proxy: RunningProxy, job_id: str) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{proxy.url}/v1/videos/{job_id}/content", headers=AUTH) as r,
    ):
        return r.status, (await r.json() if r.content_type == "application/json" else {})


@pytest.fixture
def clock() -> ManualClock:
    """Starts at the real time, as the simulator's clock does; moved only by the test."""
    return ManualClock(time.time())


async def test_copies_expire_after_retention_and_say_when(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory, clock: ManualClock, tmp_path: Path
) -> None:
    sim = await simulators(video_bytes=VIDEO_BYTES, asset_ttl=600)
    proxy = await proxy_factory(
        [upstream_provider("up", "openai", sim)],
        clock=clock,
        assets={"retention": 86400, "thumbnails": False},
    )
    job = await _render(proxy, "a paper boat")
    assert job.copy is CopyState.STORED
    stored_at = job.stored[0].stored_at
    assert job.expires_at == stored_at + 86400  # our copy's expiry, not the upstream's hour
    assert job.upstream_expires_at is not None and job.upstream_expires_at < job.expires_at
    video = await proxy.client().videos.retrieve(job.id)
    assert video.expires_at == int(stored_at + 86400)

    clock.advance(86399)
    await proxy.app[keys.RETENTION].sweep()
    assert (await _content(proxy, job.id))[0] == 200
    clock.advance(2)
    await proxy.app[keys.RETENTION].sweep()
    expired = stored_job(proxy, job.id)
    assert expired.copy is CopyState.EXPIRED and expired.stored == []
    assert not (tmp_path / "assets" / "videos" / job.id).exists()
    status, body = await _content(proxy, job.id)
    assert status == 404
    error = body["error"]
    assert isinstance(error, dict) and error["code"] == "content_expired"
    assert "expired at" in str(error["message"])
    video = await proxy.client().videos.retrieve(job.id)
    assert video.expires_at == int(stored_at + 86400)  # still when the copy went
    evictions = proxy.app[keys.METRICS].asset_evictions
    assert evictions.labels("age")._value.get() == 1


async def test_over_max_bytes_the_oldest_copies_go_first(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory, clock: ManualClock
) -> None:
    sim = await simulators(video_bytes=VIDEO_BYTES)
    proxy = await proxy_factory(
        [upstream_provider("up", "openai", sim)],
        clock=clock,
        assets={"max_bytes": 2 * VIDEO_BYTES + 30_000, "retention": 86400},
    )
    jobs = []
    for take in range(3):
        clock.advance(60)
        jobs.append(await _render(proxy, f"take {take}"))

    evictions = proxy.app[keys.METRICS].asset_evictions

    async def evicted() -> bool:  # the sweep a finished copy wakes
        # the job is marked first, then its objects go, then the eviction is counted
        marked = stored_job(proxy, jobs[0].id).copy is CopyState.EXPIRED
        return marked and evictions.labels("size")._value.get() == 1

    await wait_for(evicted)
    oldest, *rest = (stored_job(proxy, job.id) for job in jobs)
    assert oldest.expires_at == clock.now  # evicted now: the Video says so
    assert [j.copy for j in rest] == [CopyState.STORED, CopyState.STORED]
    assert (await _content(proxy, oldest.id))[0] == 404
    for job in rest:
        assert (await _content(proxy, job.id))[0] == 200
    stored = sum(a.size for j in rest for a in j.stored)
    assert proxy.app[keys.METRICS].asset_bytes._value.get() == stored <= 2 * VIDEO_BYTES + 30_000


async def test_delete_removes_our_copy(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory, tmp_path: Path
) -> None:
    sim = await simulators(video_bytes=VIDEO_BYTES)
    proxy = await proxy_factory([upstream_provider("up", "openai", sim)])
    job = await _render(proxy, "a sandcastle")
    assert (tmp_path / "assets" / "videos" / job.id / "video").exists()
    await proxy.client().videos.delete(job.id)
    assert not (tmp_path / "assets" / "videos" / job.id).exists()
    assert proxy.app[keys.METRICS].asset_evictions.labels("deleted")._value.get() == 1


@pytest.mark.parametrize("max_bytes", [None, 10 * VIDEO_BYTES])
async def test_a_finished_copy_lists_the_store_only_when_it_may_pass_max_bytes(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory, max_bytes: int | None
) -> None:
    """A sweep lists every stored object: after each copy only under ``max_bytes``. The bytes
    a copy adds are counted at once either way."""
    sim = await simulators(video_bytes=VIDEO_BYTES)
    proxy = await proxy_factory(
        [upstream_provider("up", "openai", sim)],
        assets={"max_bytes": max_bytes, "thumbnails": False},
    )
    metrics = proxy.app[keys.METRICS]

    def sweeps() -> float:
        return float(metrics.asset_sweeps._value.get())

    async def swept(times: int) -> bool:
        return sweeps() >= times

    await wait_for(lambda: swept(1))  # at start
    jobs = [await _render(proxy, f"take {take}") for take in range(2)]
    stored = sum(a.size for job in jobs for a in job.stored)

    assert metrics.asset_bytes._value.get() == stored
    if max_bytes is None:
        assert sweeps() == 1  # the interval's next sweep is a minute away
    else:
        await wait_for(lambda: swept(2))  # woken by a copy: nothing else sweeps this soon
        assert metrics.asset_bytes._value.get() == stored
