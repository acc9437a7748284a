"""Task kinds end to end through the proxy (issue 20): a Gemini operation done with every
sample filtered is moderation with no spend (acceptance 2), what each upstream metered is
recorded on the attempt, and a ``simulator`` provider runs any format with no keys.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from router import appkeys as keys
from router.records.job import JobState
from tests.conftest import FAST_RENDER, ProxyFactory, finished_job


def simulated(name: str, wire: str, price: float = 0.05, **simulate: Any) -> dict[str, Any]:
    """An embedded simulator reached through the ``wire`` kind's adapter."""
    return {
        "name": name,
        "kind": "simulator",
        "format": wire,
        "models": {"sora-2": {"price_per_second": price}},
        "poll_interval": 0.05,
        "timeout": 5,
        "simulate": {**FAST_RENDER, **simulate},
    }


async def test_a_gemini_operation_done_with_every_sample_filtered_is_moderation_with_no_spend(
    proxy_factory: ProxyFactory,
) -> None:
    proxy = await proxy_factory(
        [
            simulated("veo", "gemini", moderation_output_words=["racy"]),
            simulated("backup", "openai", price=0.1),
        ],
        routing={"strategy": "cheapest"},
    )
    video = await proxy.client().videos.create(model="sora-2", prompt="a racy scene")
    done = await finished_job(proxy, video.id)
    assert (done.state, done.error_code, [a.provider for a in done.attempts]) == (
        JobState.FAILED,
        "moderation_blocked",
        ["veo"],
    )
    assert done.cost_usd == 0
    assert proxy.app[keys.LIMITS].usage("alice").spent == 0  # type: ignore[union-attr]
    counter = proxy.app[keys.METRICS].moderations.labels("veo", "output")
    assert counter._value.get() == 1
    assert proxy.stats("backup").creates_received == 0


@pytest.mark.parametrize(
    ("wire", "cost", "tokens"),
    [("openrouter", 0.4, None), ("xai", 0.2, None), ("ark", None, 4 * 1280 * 720 * 24 // 1024)],
)
async def test_what_the_upstream_metered_is_recorded_on_the_attempt(
    proxy_factory: ProxyFactory, wire: str, cost: float | None, tokens: int | None
) -> None:
    proxy = await proxy_factory([simulated("up", wire)])
    client = proxy.client()
    video = await client.videos.create(model="sora-2", prompt="a kite", size="1280x720")
    done = await client.videos.poll(video.id, poll_interval_ms=20)
    assert done.status == "completed"
    job = await finished_job(proxy, video.id)
    assert job.current.upstream_cost_usd == cost
    assert job.current.usage_tokens == tokens
    assert job.cost_usd == pytest.approx(0.05 * 4)  # the client pays the configured price


async def test_a_simulators_format_cannot_change_on_reload(proxy_factory: ProxyFactory) -> None:
    """Its renders in flight live in the running simulator, reached through that format."""
    proxy = await proxy_factory([simulated("sim", "gemini")])
    pool = proxy.app[keys.POOL]
    entry = pool.get("sim")
    assert entry is not None
    assert pool.reload_problems([replace(entry.config, format="xai")]) == [
        "providers[0].format: cannot change on reload; restart or use a new name"
    ]
    assert pool.reload_problems([entry.config]) == []
