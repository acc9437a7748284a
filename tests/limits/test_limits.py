"""Limits (issue 5, points 1 and 2): per-key rate, concurrency and budget; per-provider caps.

Every proxy runs on real loopback HTTP against simulated upstreams; what reached an upstream is
read from the simulator's own counters. Rate windows run on an injected clock shared by the
proxy and the stand-alone simulators, so "a minute" passes when the test says so.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import openai
import pytest

from router import appkeys as keys
from router.limits.local import RateWindow
from router.records.job import JobState
from tests.clock import ManualClock
from tests.conftest import (
    ALICE,
    ProxyFactory,
    RunningProxy,
    SimulatorFactory,
    local_store,
    sim_provider,
    upstream_provider,
    wait_for,
)

SLOW = {"render_seconds": 3600}  # renders that stay in flight for the whole test


def limited_key(**limits: object) -> list[dict[str, object]]:
    return [{"name": "alice", "key": ALICE, **limits}]


async def post_create(
    proxy: RunningProxy, session: aiohttp.ClientSession
) -> aiohttp.ClientResponse:
    response = await session.post(
        f"{proxy.url}/v1/videos",
        json={"model": "sora-2", "prompt": "a cat", "seconds": "4"},
        headers={"Authorization": f"Bearer {ALICE}"},
    )
    await response.read()
    return response


def test_the_rate_window_counts_any_sixty_seconds_not_a_leaky_bucket() -> None:
    window = RateWindow(3)
    assert [window.take(t) for t in (0.0, 1.0, 2.0)] == [0.0, 0.0, 0.0]
    # A leaky bucket would admit a fourth 20 s after the burst; the window waits for the first.
    assert window.take(20.0) == pytest.approx(40.0)
    assert window.take(60.0) == 0.0
    assert window.take(60.5) == pytest.approx(0.5)


async def test_the_fourth_create_in_a_minute_for_rpm_3_is_a_429_with_retry_after(
    proxy_factory: ProxyFactory,
) -> None:
    clock = ManualClock(time.time())
    proxy = await proxy_factory([sim_provider("a")], clock=clock, keys=limited_key(rpm=3))
    client = proxy.client()
    for _ in range(3):
        await client.videos.create(model="sora-2", prompt="a cat")
    clock.advance(20)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.videos.create(model="sora-2", prompt="a cat")
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.response.headers["Retry-After"] == "40"
    assert proxy.stats("a").creates_received == 3
    clock.advance(41)
    await client.videos.create(model="sora-2", prompt="a cat")
    assert proxy.stats("a").creates_received == 4


async def test_the_third_render_in_flight_for_max_concurrent_2_is_a_429(
    proxy_factory: ProxyFactory,
) -> None:
    proxy = await proxy_factory(
        [sim_provider("a", **SLOW), sim_provider("b", **SLOW)], keys=limited_key(max_concurrent=2)
    )
    client = proxy.client()
    await client.videos.create(model="sora-2", prompt="one")
    await client.videos.create(model="sora-2", prompt="two")
    with pytest.raises(openai.RateLimitError) as caught:
        await client.videos.create(model="sora-2", prompt="three")
    assert caught.value.code == "rate_limit_exceeded"
    assert "Retry-After" in caught.value.response.headers
    received = proxy.stats("a").creates_received + proxy.stats("b").creates_received
    assert received == 2


async def test_a_finished_render_frees_its_concurrency_slot(proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory([sim_provider("a")], keys=limited_key(max_concurrent=1))
    client = proxy.client()
    first = await client.videos.create_and_poll(model="sora-2", prompt="one")
    assert first.status == "completed"
    second = await client.videos.create_and_poll(model="sora-2", prompt="two")
    assert second.status == "completed"


async def test_twenty_concurrent_creates_never_commit_more_than_the_daily_budget(
    proxy_factory: ProxyFactory,
) -> None:
    # $0.10/s x 4 s = $0.40 a render: two fit in $1.00, a third would make $1.20.
    proxy = await proxy_factory(
        [sim_provider("a", price=0.1)], keys=limited_key(daily_budget_usd=1.0)
    )
    async with aiohttp.ClientSession() as session:
        answers = await asyncio.gather(*(post_create(proxy, session) for _ in range(20)))
    statuses = sorted(r.status for r in answers)
    assert statuses == [200] * 2 + [429] * 18
    refused = [r for r in answers if r.status == 429]
    assert all(r.headers.get("Retry-After") for r in refused)
    assert proxy.stats("a").creates_received == 2
    store = local_store(proxy.app)

    async def settled() -> bool:
        return not store.unfinished()

    await wait_for(settled)
    jobs = store.list_owned("alice", after=None, limit=100, order="asc")[0]
    assert sum(j.cost_usd for j in jobs) == pytest.approx(0.8)
    usage = proxy.app[keys.LIMITS].usage("alice")
    assert usage is not None and usage.spent == pytest.approx(0.8) and usage.reserved == 0
    with pytest.raises(openai.RateLimitError) as caught:
        await proxy.client().videos.create(model="sora-2", prompt="one more", seconds="4")
    assert caught.value.code == "insufficient_quota"


async def test_a_render_that_fails_releases_its_reservation(proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory(
        [sim_provider("a", price=0.1, fail_words=["doomed"])],
        keys=limited_key(daily_budget_usd=0.5),
    )
    client = proxy.client()
    failed = await client.videos.create_and_poll(model="sora-2", prompt="doomed", seconds="4")
    assert failed.status == "failed"
    done = await client.videos.create_and_poll(model="sora-2", prompt="fine", seconds="4")
    assert done.status == "completed"
    usage = proxy.app[keys.LIMITS].usage("alice")
    assert usage is not None and usage.spent == pytest.approx(0.4) and usage.reserved == 0


async def test_a_provider_with_rpm_3_never_gets_a_fourth_create_in_a_minute(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    clock = ManualClock(time.time())
    capped = await simulators(clock=clock, creates_per_minute=3, **SLOW)
    other = await simulators(clock=clock, **SLOW)
    proxy = await proxy_factory(
        [
            upstream_provider("capped", "openai", capped, rpm=3),
            upstream_provider(
                "other", "openai", other, models={"sora-2": {"price_per_second": 0.5}}
            ),
        ],
        clock=clock,
        routing={"strategy": "cheapest"},
    )
    client = proxy.client()
    for _ in range(6):
        await client.videos.create(model="sora-2", prompt="a cat")
    assert (capped.stats.creates_received, capped.stats.creates_accepted) == (3, 3)
    assert other.stats.creates_received == 3
    clock.advance(61)
    for _ in range(3):
        await client.videos.create(model="sora-2", prompt="a cat")
    # A new minute: the capped upstream takes three more and never had to refuse one.
    assert (capped.stats.creates_received, capped.stats.creates_accepted) == (6, 6)
    assert other.stats.creates_received == 3


async def test_a_create_waits_for_a_free_slot_and_gets_it(proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory(
        [{**sim_provider("a"), "max_concurrent": 1}], routing={"admission_wait": 20}
    )
    client = proxy.client()
    first, second = await asyncio.gather(
        client.videos.create_and_poll(model="sora-2", prompt="one"),
        client.videos.create_and_poll(model="sora-2", prompt="two"),
    )
    assert (first.status, second.status) == ("completed", "completed")
    jobs = [local_store(proxy.app).get(v.id) for v in (first, second)]
    assert all(j is not None and j.state is JobState.COMPLETED for j in jobs)
    # One render at a time: the second was submitted after the first finished.
    a, b = sorted((j for j in jobs if j is not None), key=lambda j: j.created_at)
    assert a.completed_at is not None and b.current.submitted_at >= a.completed_at


async def test_a_create_that_finds_every_provider_full_gets_a_429_after_the_wait(
    proxy_factory: ProxyFactory,
) -> None:
    proxy = await proxy_factory(
        [{**sim_provider("a", **SLOW), "max_concurrent": 1}],
        routing={"admission_wait": 0.2},
    )
    client = proxy.client()
    await client.videos.create(model="sora-2", prompt="one")
    with pytest.raises(openai.RateLimitError) as caught:
        await client.videos.create(model="sora-2", prompt="two")
    assert caught.value.code == "rate_limit_exceeded"
    assert proxy.stats("a").creates_received == 1
    assert proxy.app[keys.LIMITS].queued == 0


async def test_the_admission_queue_is_bounded(proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory(
        [{**sim_provider("a", **SLOW), "max_concurrent": 1}],
        routing={"admission_wait": 30, "admission_queue": 0},
    )
    client = proxy.client()
    await client.videos.create(model="sora-2", prompt="one")
    started = asyncio.get_running_loop().time()
    with pytest.raises(openai.RateLimitError):
        await client.videos.create(model="sora-2", prompt="two")
    # No room in the queue: refused at once rather than after admission_wait.
    assert asyncio.get_running_loop().time() - started < 5


async def test_status_reads_stay_under_the_providers_poll_rpm(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    clock = ManualClock(time.time())
    upstream = await simulators(clock=clock, **SLOW)
    proxy = await proxy_factory(
        [upstream_provider("a", "openai", upstream, poll_rpm=2)], clock=clock
    )
    client = proxy.client()
    for _ in range(4):
        await client.videos.create(model="sora-2", prompt="a cat")

    async def two_reads() -> bool:
        return upstream.stats.gets >= 2

    await wait_for(two_reads)
    # Polls fall due every 50 ms; a second of them must still stay inside the window.
    await asyncio.sleep(1.0)
    assert upstream.stats.gets == 2
    assert proxy.app[keys.POLLER].scheduled == 4
