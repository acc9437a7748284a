"""Simulated traffic with known counts, shared by the metrics and real-Prometheus tests.

``first`` is tried first (priority strategy); it refuses prompts with "forbidden", fails
renders of "crash" near 90% (the poller fails them over to ``second``) and moderates the
output of "gore". ``limited`` alone serves sora-2-pro and answers every create with 429.
Outlier detection is loosened so the planned failures never eject anyone.
"""

from __future__ import annotations

from typing import Any, Literal

import openai

from tests.conftest import ProxyFactory, RunningProxy, local_store, sim_provider, wait_for

SECRET_PROMPT = "forbidden sunset 7f3a9c"  # must never reach /metrics

SUCCESSES = ("a calm lake", "a red kite", "a quiet street")
FAILOVERS = ("crash one", "crash two")
OUTPUT_MODERATED = ("gore scene",)
PROMPT_MODERATED = (SECRET_PROMPT, "forbidden thing")
RATE_LIMITED = 1  # a second would find the provider cooling down: a 503, not a 429
SECONDS = 4
SECONDS_WORD: Literal["4"] = "4"  # what the SDK sends for SECONDS


def providers() -> list[dict[str, Any]]:
    first = sim_provider(
        "first",
        fail_words=["crash"],
        moderation_prompt_words=["forbidden"],
        moderation_output_words=["gore"],
    )
    second = sim_provider("second")
    limited = sim_provider("limited", rate_limit_rate=1.0)
    first["priority"], second["priority"] = 0, 1
    first["models"] = second["models"] = {"sora-2": {"price_per_second": 0.1}}
    limited["models"] = {"sora-2-pro": {"price_per_second": 0.3}}
    return [first, second, limited]


async def traffic_proxy(proxy_factory: ProxyFactory, **sections: Any) -> RunningProxy:
    return await proxy_factory(
        providers(),
        routing={"strategy": "priority"},
        health={"consecutive_failures": 1000, "min_volume": 1000, "probe_interval": 0.2},
        **sections,
    )


async def run_traffic(proxy: RunningProxy) -> None:
    """Send every request above and wait until each accepted job has finished."""
    client = proxy.client()
    ids: list[str] = []
    for prompt in SUCCESSES + FAILOVERS + OUTPUT_MODERATED:
        video = await client.videos.create(model="sora-2", prompt=prompt, seconds=SECONDS_WORD)
        ids.append(video.id)
    for prompt in PROMPT_MODERATED:
        try:
            await client.videos.create(model="sora-2", prompt=prompt)
        except openai.BadRequestError:
            continue
        raise AssertionError("a forbidden prompt was accepted")
    for _ in range(RATE_LIMITED):
        try:
            await client.videos.create(model="sora-2-pro", prompt="a busy road")
        except openai.RateLimitError:
            continue
        raise AssertionError("a create on a rate-limited provider was accepted")
    store = local_store(proxy.app)

    async def all_done() -> bool:
        return all((job := store.get(i)) is not None and job.state.finished for i in ids)

    await wait_for(all_done)
