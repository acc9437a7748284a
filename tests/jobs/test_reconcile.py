"""A create that was sent and never answered (issue 4): an ``unknown`` attempt, reconciled
through the provider's list, never sent blindly to a second provider.

Upstreams are simulators on loopback. ``slow_reply_words`` makes one take the create and hold
its answer past the provider's timeout (the render exists upstream); ``latency`` holds a request
before it is handled, so a create the proxy gave up on never makes a job. The reconcile window
runs on an injected clock the test moves; renders run on each simulator's own clock.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import aiohttp

from router import appkeys as keys
from router.records.job import AttemptState, JobState
from tests.clock import ManualClock
from tests.conftest import (
    ALICE,
    BOB,
    ProxyFactory,
    RunningProxy,
    SimulatorFactory,
    finished_job,
    sim_provider,
    stored_job,
    upstream_provider,
    wait_for,
)

SLOW = "a slow cat"  # names the slow-reply word
SLOW_REPLY = {"slow_reply_words": ["slow"], "slow_reply_seconds": 0.5}
TIMEOUT = 0.2  # the provider timeout, shorter than the held answer
ADMIN = "admin-secret"


def slow_sim(name: str, *, price: float = 0.05, **simulate: Any) -> dict[str, Any]:
    """An embedded simulator that takes creates naming "slow" but answers them too late."""
    return {**sim_provider(name, price=price, **SLOW_REPLY, **simulate), "timeout": TIMEOUT}


def upstream_calls(proxy: RunningProxy, provider: str, operation: str, outcome: str) -> float:
    sample = proxy.app[keys.METRICS].registry.get_sample_value(
        "sora_proxy_upstream_calls_total",
        {"provider": provider, "operation": operation, "outcome": outcome},
    )
    return sample or 0.0


async def test_an_unanswered_create_is_found_in_the_list_and_completes_where_it_was_sent(
    proxy_factory: ProxyFactory,
) -> None:
    proxy = await proxy_factory(
        [slow_sim("a"), sim_provider("b", price=0.1)], routing={"strategy": "cheapest"}
    )
    client = proxy.client()
    outcomes = proxy.app[keys.HEALTH].outliers.view("a").outcomes
    # the start-up probe's, which a loaded machine can time out (the provider timeout is short)
    before = len(outcomes)
    created = await client.videos.create(model="sora-2", prompt=SLOW)
    assert (created.status, created.progress) == ("queued", 0)
    assert upstream_calls(proxy, "a", "create", "timeout") == 1

    video = await client.videos.poll(created.id, poll_interval_ms=50)
    assert (video.id, video.status) == (created.id, "completed")
    attempts = stored_job(proxy, created.id).attempts
    assert [(a.provider, a.state) for a in attempts] == [("a", AttemptState.COMPLETED)]
    assert list(proxy.simulator("a").jobs) == [attempts[0].upstream_id]
    assert (proxy.stats("a").creates_received, proxy.stats("b").creates_received) == (1, 0)
    assert proxy.stats("a").slow_replies == 1
    # the unanswered create is no health signal: the finished render is the only outcome since
    assert list(outcomes)[before:] == [True]
    content = await client.videos.download_content(created.id)
    assert len(content.content) == proxy.simulator("a").settings.video_bytes


async def test_a_create_that_never_arrived_goes_to_another_provider_after_the_window(
    proxy_factory: ProxyFactory,
) -> None:
    clock = ManualClock(time.time())
    lost = {**sim_provider("a", price=0.05, latency=1.0), "timeout": TIMEOUT}
    proxy = await proxy_factory(
        [lost, sim_provider("b", price=0.1)],
        clock=clock,
        routing={"strategy": "cheapest", "reconcile_window": 30},
        server={"admin_key": ADMIN},
    )
    created = await proxy.client().videos.create(model="sora-2", prompt="a cat")
    assert created.status == "queued"
    a = proxy.simulator("a")
    a.settings = replace(a.settings, latency=0.0)  # it answers again: its list can be read

    async def listed_twice() -> bool:
        return upstream_calls(proxy, "a", "find", "ok") >= 2

    await wait_for(listed_twice)  # not found, but the window (injected clock) is still open
    pending = stored_job(proxy, created.id)
    assert pending.state is JobState.QUEUED
    assert [(x.provider, x.state, x.upstream_id) for x in pending.attempts] == [
        ("a", AttemptState.UNKNOWN, "")
    ]
    async with aiohttp.ClientSession() as http:
        url = f"{proxy.url}/admin/jobs/{created.id}"
        async with http.get(url, headers={"Authorization": f"Bearer {ADMIN}"}) as response:
            assert response.status == 200
            assert (await response.json())["attempts"][0]["state"] == "unknown"
    assert proxy.stats("b").creates_received == 0

    clock.advance(31)
    done = await finished_job(proxy, created.id)
    assert done.state is JobState.COMPLETED
    assert [(x.provider, x.error_code) for x in done.attempts] == [
        ("a", "submit_unconfirmed"),
        ("b", None),
    ]
    assert upstream_calls(proxy, "a", "create", "timeout") == 1  # sent to "a" exactly once
    assert a.jobs == {} and a.stats.creates_received == 0 and a.stats.abandoned >= 1
    assert proxy.stats("b").creates_received == 1
    assert (await proxy.client().videos.retrieve(created.id)).status == "completed"


async def test_two_tenants_same_prompt_same_second_claim_nothing_and_go_elsewhere(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    """Issue 15, point 4: two unanswered creates that match the same renders (upstream times
    are whole seconds): a claim could hand one tenant the other's video, so neither claims,
    and after the window both go elsewhere like a create that was never listed."""
    sim_clock = ManualClock(time.time())  # renders wait for the test: both stay unfinished
    clock = ManualClock(time.time())
    sim = await simulators(clock=sim_clock, render_seconds=30, **SLOW_REPLY)
    proxy = await proxy_factory(
        [
            upstream_provider("a", "openai", sim, timeout=TIMEOUT),
            sim_provider("b", price=0.5),
        ],
        clock=clock,
        routing={"strategy": "cheapest", "reconcile_window": 30},
    )
    first, second = await asyncio.gather(
        proxy.client(ALICE).videos.create(model="sora-2", prompt=SLOW),
        proxy.client(BOB).videos.create(model="sora-2", prompt=SLOW),
    )

    async def both_renders_listed_and_looked_at() -> bool:
        return len(sim.jobs) == 2 and upstream_calls(proxy, "a", "find", "ok") >= 6

    await wait_for(both_renders_listed_and_looked_at)
    for video in (first, second):
        assert [
            (x.provider, x.state, x.upstream_id) for x in stored_job(proxy, video.id).attempts
        ] == [("a", AttemptState.UNKNOWN, "")]
    clock.advance(31)
    for video in (first, second):
        done = await finished_job(proxy, video.id)
        assert done.state is JobState.COMPLETED
        assert [(x.provider, x.error_code) for x in done.attempts] == [
            ("a", "submit_unconfirmed"),
            ("b", None),
        ]
    assert (sim.stats.creates_received, proxy.stats("b").creates_received) == (2, 2)


async def test_one_unanswered_create_and_two_matching_renders_claims_neither(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    """Point 4's other half: a second matching render (sent around the proxy, with the same
    key) makes the match ambiguous, so nothing is claimed."""
    sim_clock = ManualClock(time.time())
    clock = ManualClock(time.time())
    sim = await simulators(clock=sim_clock, render_seconds=30, **SLOW_REPLY)
    proxy = await proxy_factory(
        [upstream_provider("a", "openai", sim, timeout=TIMEOUT), sim_provider("b", price=0.5)],
        clock=clock,
        routing={"strategy": "cheapest", "reconcile_window": 30},
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sim.base_url}/v1/videos",
            json={"prompt": SLOW, "model": "sora-2", "size": "720x1280", "seconds": "4"},
            headers={"Authorization": f"Bearer {sim.api_key}"},
        ) as response,
    ):
        assert response.status == 200
    created = await proxy.client().videos.create(model="sora-2", prompt=SLOW)

    async def looked_at() -> bool:
        return len(sim.jobs) == 2 and upstream_calls(proxy, "a", "find", "ok") >= 3

    await wait_for(looked_at)
    assert stored_job(proxy, created.id).current.state is AttemptState.UNKNOWN
    clock.advance(31)
    done = await finished_job(proxy, created.id)
    assert [x.provider for x in done.attempts] == ["a", "b"]


async def test_a_relay_that_cannot_be_searched_fails_the_job_unconfirmed_and_sends_nothing_else(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    clock = ManualClock(time.time())
    sim = await simulators(**SLOW_REPLY)
    relay = upstream_provider(
        "relay", "relay", sim, models={"sora-2": {"price_per_second": 0.05}}, timeout=TIMEOUT
    )
    proxy = await proxy_factory(
        [relay, sim_provider("b", price=0.1)],
        clock=clock,
        routing={"strategy": "cheapest", "reconcile_window": 30},
    )
    client = proxy.client()
    created = await client.videos.create(model="sora-2", prompt=SLOW)
    assert created.status == "queued"

    async def asked() -> bool:
        return upstream_calls(proxy, "relay", "find", "unsupported") >= 1

    await wait_for(asked)
    assert stored_job(proxy, created.id).state is JobState.QUEUED  # the window is still open
    clock.advance(31)
    done = await finished_job(proxy, created.id)
    assert (done.state, done.error_code, len(done.attempts)) == (
        JobState.FAILED,
        "submit_unconfirmed",
        1,
    )
    video = await client.videos.retrieve(created.id)
    assert video.status == "failed" and video.error is not None
    assert video.error.code == "submit_unconfirmed"
    assert "may have started" in video.error.message
    assert proxy.stats("b").creates_received == 0
    assert sim.stats.creates_accepted == 1  # it did start there: that is why nothing else got it


async def test_an_unknown_attempt_is_reconciled_after_a_restart(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    sim = await simulators(**SLOW_REPLY)
    # The first proxy would poll only after a minute: it stops with the attempt still unknown.
    first = await proxy_factory(
        [upstream_provider("up", "openai", sim, timeout=TIMEOUT, poll_interval=60)]
    )
    created = await first.client().videos.create(model="sora-2", prompt=SLOW)
    assert stored_job(first, created.id).current.state is AttemptState.UNKNOWN
    await first.stop()

    second = await proxy_factory([upstream_provider("up", "openai", sim, timeout=TIMEOUT)])
    done = await finished_job(second, created.id)  # same tmp_path: the same jobs.db
    assert done.state is JobState.COMPLETED
    assert [a.upstream_id for a in done.attempts] == list(sim.jobs)
    assert sim.stats.creates_received == 1
