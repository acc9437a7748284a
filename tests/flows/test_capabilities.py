"""Requests go only to providers that can render them, models being data (issue 3, point 3).

A relay provider that renders 10 and 15 s and an OpenAI one that renders 4, 8 and 12 s, each
on its own simulator: which one received a create is read from its own stats.
"""

from __future__ import annotations

import openai
import pytest

from providers.simulator.server import Simulator
from tests.conftest import ProxyFactory, RunningProxy, SimulatorFactory, upstream_provider


@pytest.fixture
async def routed(
    simulators: SimulatorFactory, proxy_factory: ProxyFactory
) -> tuple[RunningProxy, Simulator, Simulator]:
    relay_sim, openai_sim = await simulators(), await simulators()
    relay = upstream_provider(
        "relay-long",
        "relay",
        relay_sim,
        models={
            "sora-2": {"price_per_second": 0.05, "seconds": [10, 15], "upstream_model": "sora2-r"}
        },
    )
    short = upstream_provider(
        "openai-short",
        "openai",
        openai_sim,
        models={"sora-2": {"price_per_second": 0.2, "seconds": [4, 8, 12], "sizes": ["720x1280"]}},
    )
    return await proxy_factory([relay, short]), relay_sim, openai_sim


async def test_each_length_reaches_only_the_provider_that_renders_it(
    routed: tuple[RunningProxy, Simulator, Simulator],
) -> None:
    proxy, relay_sim, openai_sim = routed
    relay = proxy.relay()
    for _ in range(3):
        await relay.create(prompt="long", model="sora-2", aspect_ratio="9:16", duration="10")
    assert (relay_sim.stats.creates_received, openai_sim.stats.creates_received) == (3, 0)
    assert {job.model for job in relay_sim.jobs.values()} == {"sora2-r"}  # upstream_model

    sdk = proxy.client()
    for _ in range(3):
        await sdk.videos.create(prompt="short", model="sora-2", seconds="8", size="720x1280")
    # cheaper, but it cannot render 8 s: the relay never saw these
    assert (relay_sim.stats.creates_received, openai_sim.stats.creates_received) == (3, 3)
    assert {job.seconds for job in openai_sim.jobs.values()} == {"8"}


async def test_a_request_nobody_can_render_is_a_400_naming_what_can_be(
    routed: tuple[RunningProxy, Simulator, Simulator],
) -> None:
    proxy, relay_sim, openai_sim = routed
    sdk = proxy.client()
    # 1280x720 only from the relay, which renders 10 and 15 s
    with pytest.raises(openai.BadRequestError) as too_short:
        await sdk.videos.create(prompt="x", model="sora-2", seconds="8", size="1280x720")
    assert too_short.value.param == "seconds"
    assert "Possible seconds: 10, 15." in too_short.value.message
    # nobody serves sora-2-pro
    with pytest.raises(openai.BadRequestError) as no_model:
        await sdk.videos.create(prompt="x", model="sora-2-pro")
    assert (no_model.value.param, no_model.value.code) == ("model", "model_not_available")
    # the relay dialect names its own field
    status, body = await proxy.relay().post(
        {"prompt": "x", "model": "sora-2", "aspect_ratio": "16:9", "duration": 4}
    )
    assert (status, body["error"]["param"]) == (400, "duration")
    assert "Possible seconds: 10, 15." in body["error"]["message"]
    assert relay_sim.stats.creates_received == openai_sim.stats.creates_received == 0
