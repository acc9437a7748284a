"""An upstream that answers the create itself with a finished render (``completed`` at once):
no status read will ever come, so the job is settled as it is stored. Before, such a job was
dropped by the poller unsettled: the key's render slot was never freed (a key with
``max_concurrent: 1`` got one create, then 429 for good), and the job got no finished-jobs
count and no copy. On both store backends."""

from __future__ import annotations

import openai
import pytest
from openai.types import Video

from router import appkeys as keys
from tests.conftest import (
    ALICE,
    ProxyFactory,
    SimulatorFactory,
    upstream_provider,
    wait_for,
)
from tests.flows.test_fleet_coordination import on_backend
from tests.redis_rig import RedisServer


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_a_render_finished_at_create_frees_its_slot_and_is_counted_and_copied(
    redis_server: RedisServer,
    proxy_factory: ProxyFactory,
    simulators: SimulatorFactory,
    backend: str,
) -> None:
    sim = await simulators(render_seconds=0, video_bytes=10_000)
    proxy = await proxy_factory(
        [upstream_provider("instant", "openai", sim)],
        **on_backend(backend, redis_server.url),
        keys=[{"name": "alice", "key": ALICE, "max_concurrent": 1}],
    )
    client = proxy.client()
    videos: list[Video] = []

    async def created() -> bool:  # on redis the slot's release reaches Redis a moment later
        try:
            videos.append(await client.videos.create(model="sora-2", prompt="take"))
        except openai.RateLimitError:
            assert backend == "redis", "one process frees the slot before it answers"
            return False
        return True

    for _ in range(3):
        await wait_for(created, within=5.0)

    assert [v.status for v in videos] == ["completed"] * 3  # one slot, freed each time
    finished = proxy.app[keys.METRICS].jobs_finished.labels("instant", "sora-2", "completed")
    assert finished._value.get() == 3

    async def copied() -> bool:
        content = await client.videos.download_content(videos[-1].id)
        job = await proxy.app[keys.STORE].read(videos[-1].id)
        return len(content.content) == 10_000 and job is not None and bool(job.stored)

    await wait_for(copied)
