"""Either client dialect over any upstream kind, on simulated upstreams (issue 3, point 2).

Each case renders one video, then reads it and downloads it through both dialects: the SDK
(``/v1/videos``, with the key) and the relay task's signed ``data.output`` link (without).
"""

from __future__ import annotations

import openai
import pytest

from providers.simulator.server import Simulator
from tests.conftest import (
    BOB,
    ProxyFactory,
    RunningProxy,
    SimulatorFactory,
    local_store,
    upstream_provider,
)

DEPLOYMENT = "sora2-eastus"  # an Azure deployment name, as upstream_model


async def start(
    kind: str, simulators: SimulatorFactory, proxy_factory: ProxyFactory
) -> tuple[RunningProxy, Simulator]:
    """A proxy whose only provider is of ``kind``, on a simulator of its own."""
    if kind == "azure":
        sim = await simulators(deployments=[DEPLOYMENT])
        models = {"sora-2": {"price_per_second": 0.1, "upstream_model": DEPLOYMENT}}
        provider = upstream_provider("up", kind, sim, models=models)
    else:
        sim = await simulators()
        provider = upstream_provider("up", kind, sim)
    return await proxy_factory([provider]), sim


async def create_with_sdk(proxy: RunningProxy) -> str:
    video = await proxy.client().videos.create_and_poll(
        prompt="a red kite over the sea", model="sora-2", seconds="8", size="1280x720"
    )
    assert video.status == "completed" and video.progress == 100
    return video.id


async def create_with_relay(proxy: RunningProxy) -> str:
    relay = proxy.relay()
    task_id = await relay.create(
        prompt="make animate", model="sora-2", aspect_ratio="16:9", hd=False, duration="10"
    )
    assert (await relay.finish(task_id))["status"] == "SUCCESS"
    return task_id


@pytest.mark.parametrize(
    ("client", "kind"),
    [("sdk", "relay"), ("relay", "openai"), ("relay", "relay"), ("sdk", "azure")],
)
async def test_each_dialect_renders_on_each_kind_and_downloads_through_both(
    simulators: SimulatorFactory, proxy_factory: ProxyFactory, client: str, kind: str
) -> None:
    proxy, sim = await start(kind, simulators, proxy_factory)
    job_id = await (create_with_sdk if client == "sdk" else create_with_relay)(proxy)

    (upstream_job,) = sim.jobs.values()
    assert upstream_job.model == (DEPLOYMENT if kind == "azure" else "sora-2")
    assert upstream_job.size == "1280x720"
    job = local_store(proxy.app).get(job_id)
    assert job is not None and job.current.upstream_id == upstream_job.id != job_id

    # The same job, under the same id, in both dialects.
    sdk, relay = proxy.client(), proxy.relay()
    assert (await sdk.videos.retrieve(job_id)).status == "completed"
    task = await relay.task(job_id)
    assert (task["task_id"], task["status"], task["progress"]) == (job_id, "SUCCESS", "100%")

    by_sdk = (await sdk.videos.download_content(job_id)).content
    status, by_link = await relay.fetch(task["data"]["output"])
    assert status == 200
    assert by_sdk == by_link and len(by_link) == sim.settings.video_bytes
    assert by_link[4:8] == b"ftyp"
    status, head = await relay.fetch(task["data"]["output"], headers={"Range": "bytes=0-99"})
    assert (status, head) == (206, by_link[:100])

    # Tenancy is the dialect-independent owner check.
    with pytest.raises(openai.NotFoundError):
        await proxy.client(BOB).videos.retrieve(job_id)
    assert (await proxy.relay(BOB).get(job_id))[0] == 404


async def test_what_a_relay_upstream_cannot_do_is_a_clear_400(
    simulators: SimulatorFactory, proxy_factory: ProxyFactory
) -> None:
    proxy, _ = await start("relay", simulators, proxy_factory)
    video_id = await create_with_sdk(proxy)
    sdk = proxy.client()
    with pytest.raises(openai.BadRequestError) as remix:
        await sdk.videos.remix(video_id, prompt="at night")
    assert remix.value.code == "remix_not_supported"
    # (no thumbnail upstream: once copied, the proxy makes one, tests/assets/test_thumbnails.py)
    await sdk.videos.delete(video_id)  # the relay has no delete; the proxy forgets the job
    with pytest.raises(openai.NotFoundError):
        await sdk.videos.retrieve(video_id)
