"""The contract every task upstream kind passes (issue 20, acceptance 1), parametrised over
the kinds, each against its own simulated wire format on a loopback port.

Per kind: the ``openai`` SDK creates, polls and downloads through the proxy; a render that
fails there fails over to another kind (the OpenAI format) under the same job id; moderation
ends the job ``moderation_blocked`` at the right stage, is not failed over and costs nothing;
a 429 cools the provider; the probe is free and proves the key; an unanswered create cannot
be looked up, so it is never sent elsewhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from providers.base import (
    InputReference,
    ModerationBlocked,
    ModerationStage,
    Provider,
    ProviderUnusable,
    RenderRequest,
    Unsearchable,
    UpstreamStatus,
)
from providers.fieldmap import FieldMap
from providers.registry import TASK_KINDS, build_adapter
from providers.simulator.media import Variant, make_asset
from providers.simulator.server import FORMAT_PREFIXES, Simulator
from router import appkeys as keys
from router.records.job import JobState
from tests.conftest import (
    ProxyFactory,
    RunningProxy,
    SimulatorFactory,
    finished_job,
    sim_provider,
    stored_job,
)

KINDS = sorted(TASK_KINDS)
FAL_MODEL = "fal-ai/veo3.1/fast"


def upstream_model(kind: str) -> str:
    """A model name the kind's wire format takes (fal's is a path, Gemini's has no slash)."""
    return FAL_MODEL if kind == "fal" else "veo-3.1-generate-preview"


# What a model entry needs beyond its price, per kind (fal's inputs differ per model).
FAL_FIELDS = {
    "seconds": "duration",
    "seconds_format": "{}s",
    "aspect_ratio": "aspect_ratio",
    "resolution": "resolution",
    "image_url": "image_url",
    "fixed": {"generate_audio": False},
}
MODEL_EXTRA: dict[str, dict[str, Any]] = {
    "fal": {"upstream_model": FAL_MODEL, "fields": FAL_FIELDS}
}
FIELD_MAPS = {FAL_MODEL: FieldMap.parse(FAL_FIELDS, "fields")[0]}


def kind_provider(
    kind: str, sim: Simulator, *, name: str = "k", price: float = 0.05
) -> dict[str, Any]:
    """A provider of ``kind`` pointed at ``sim``'s format, cheaper than the fallback."""
    return {
        "name": name,
        "kind": kind,
        "base_url": sim.base_url + FORMAT_PREFIXES[kind],
        "api_key": sim.api_key,
        "models": {"sora-2": {"price_per_second": price, **MODEL_EXTRA.get(kind, {})}},
        "poll_interval": 0.05,
        "timeout": 5,
    }


async def pair(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory, kind: str, **knobs: Any
) -> tuple[RunningProxy, Simulator]:
    """The kind under test (cheapest, with ``knobs``) and an OpenAI-format fallback ``b``."""
    sim = await simulators(**knobs)
    proxy = await proxy_factory(
        [kind_provider(kind, sim), sim_provider("b", price=0.1)],
        routing={"strategy": "cheapest"},
        health={"probe_interval": 60},
    )
    return proxy, sim


def kind_adapter(kind: str, sim: Simulator, *, api_key: str | None = None) -> Provider:
    """An adapter of ``kind`` on ``sim``'s format (the caller closes it)."""
    return build_adapter(
        kind,
        name="k",
        base_url=sim.base_url + FORMAT_PREFIXES[kind],
        api_key=sim.api_key if api_key is None else api_key,
        timeout=5,
        field_maps=FIELD_MAPS,
    )


def simulated_id(upstream_id: str) -> str:
    """The simulator's job id in an upstream id (Gemini's and fal's embed it in a path)."""
    return upstream_id.rsplit("/", 1)[-1]


def moderations(proxy: RunningProxy, stage: str) -> float:
    counter = proxy.app[keys.METRICS].moderations.labels("k", stage)
    return float(counter._value.get())


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_the_sdk_creates_polls_and_downloads(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory, kind: str
) -> None:
    proxy, sim = await pair(proxy_factory, simulators, kind, video_bytes=5000)
    client = proxy.client()
    video = await client.videos.create(model="sora-2", prompt="a paper boat", size="1280x720")
    seen: list[int] = []
    while video.status in ("queued", "in_progress"):
        seen.append(video.progress)
        video = await client.videos.retrieve(video.id)
    assert (video.status, video.progress, video.size) == ("completed", 100, "1280x720")
    assert seen == sorted(seen)
    body = (await client.videos.download_content(video.id)).content
    job = stored_job(proxy, video.id)
    assert [a.provider for a in job.attempts] == ["k"]
    sim_id = simulated_id(job.current.upstream_id)
    assert body == b"".join(
        make_asset(sim_id, Variant.VIDEO, 5000, size="1280x720", seconds=4).chunks(0, 5000)
    )
    rendered = sim.jobs[sim_id]
    assert (rendered.prompt, rendered.size, rendered.seconds) == ("a paper boat", "1280x720", "4")
    assert proxy.app[keys.LIMITS].usage("alice").spent == pytest.approx(0.05 * 4)  # type: ignore[union-attr]


async def test_a_failed_render_fails_over_to_another_kind_under_the_same_id(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory, kind: str
) -> None:
    proxy, _ = await pair(proxy_factory, simulators, kind, fail_words=["doom"])
    video = await proxy.client().videos.create(model="sora-2", prompt="doom")
    done = await finished_job(proxy, video.id)
    assert done.state is JobState.COMPLETED
    assert [(a.provider, a.error_code) for a in done.attempts] == [
        ("k", done.attempts[0].error_code),
        ("b", None),
    ]
    assert done.attempts[0].error_code not in (None, "moderation_blocked")


async def test_output_moderation_ends_the_job_without_failover_or_spend(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory, kind: str
) -> None:
    proxy, _ = await pair(proxy_factory, simulators, kind, moderation_output_words=["racy"])
    video = await proxy.client().videos.create(model="sora-2", prompt="a racy scene")
    done = await finished_job(proxy, video.id)
    assert (done.state, done.error_code, len(done.attempts)) == (
        JobState.FAILED,
        "moderation_blocked",
        1,
    )
    assert proxy.stats("b").creates_received == 0
    assert moderations(proxy, "output") == 1
    assert done.cost_usd == 0
    assert proxy.app[keys.LIMITS].usage("alice").spent == 0  # type: ignore[union-attr]
    assert not proxy.app[keys.HEALTH].stats("k").renders  # not a health signal


async def test_prompt_moderation_is_refused_at_submit_and_reaches_one_provider(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory, kind: str
) -> None:
    proxy, sim = await pair(proxy_factory, simulators, kind, moderation_prompt_words=["forbidden"])
    with pytest.raises(openai.BadRequestError) as caught:
        await proxy.client().videos.create(model="sora-2", prompt="something forbidden")
    assert caught.value.code == "moderation_blocked"
    assert (sim.stats.creates_received, proxy.stats("b").creates_received) == (1, 0)
    assert moderations(proxy, "prompt") == 1


async def test_a_429_cools_the_provider(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory, kind: str
) -> None:
    proxy, sim = await pair(proxy_factory, simulators, kind, rate_limit_rate=1.0, retry_after=30)
    client = proxy.client()
    await client.videos.create(model="sora-2", prompt="one")
    await client.videos.create(model="sora-2", prompt="two")
    health = proxy.app[keys.HEALTH]
    assert sim.stats.creates_received == 1  # cooling: the second went straight to b
    assert proxy.stats("b").creates_received == 2
    assert health.cooling("k") and not health.ejected("k")


@pytest.fixture
async def adapter(simulators: SimulatorFactory, kind: str) -> AsyncIterator[Provider]:
    sim = await simulators()
    built = kind_adapter(kind, sim)
    yield built
    await built.aclose()


async def test_the_probe_is_free_and_proves_the_key(
    simulators: SimulatorFactory, kind: str
) -> None:
    sim = await simulators()
    good, bad = kind_adapter(kind, sim), kind_adapter(kind, sim, api_key="sk-wrong")
    try:
        await good.probe()
        with pytest.raises(ProviderUnusable):
            await bad.probe()
    finally:
        await good.aclose()
        await bad.aclose()
    assert sim.stats.creates_received == 0


async def test_an_unanswered_create_cannot_be_looked_up(adapter: Provider, kind: str) -> None:
    request = RenderRequest(model=upstream_model(kind), prompt="p", size="1280x720", seconds=4)
    with pytest.raises(Unsearchable):
        await adapter.find(request, 0.0)
    with pytest.raises(Unsearchable):
        await adapter.list_page(None)
    assert adapter.lists is False


async def test_an_input_image_refused_is_the_input_stage(
    simulators: SimulatorFactory, kind: str
) -> None:
    built = kind_adapter(kind, await simulators(moderation_input_rate=1.0))
    request = RenderRequest(
        model=upstream_model(kind),
        prompt="animate this",
        size="1280x720",
        seconds=4,
        input_reference=InputReference(data=b"\x89PNG\r\n\x1a\n", content_type="image/png"),
    )
    try:
        with pytest.raises(ModerationBlocked) as caught:
            await built.create(request)
    finally:
        await built.aclose()
    assert caught.value.stage is ModerationStage.INPUT


async def test_a_fresh_render_reads_as_queued_or_rendering(adapter: Provider, kind: str) -> None:
    job = await adapter.create(
        RenderRequest(model=upstream_model(kind), prompt="p", size="720x1280", seconds=4)
    )
    assert job.status in (UpstreamStatus.QUEUED, UpstreamStatus.IN_PROGRESS)
    again = await adapter.get(job.upstream_id)
    assert again.upstream_id == job.upstream_id
    assert (again.progress or 0) >= (job.progress or 0)
