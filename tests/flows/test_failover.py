"""Failover before and after acceptance, and moderation as its own class (issue 4, points 1-3).

Every provider is a simulator on a loopback port; which one saw a create is read from its own
stats. Stall and deadline detection run on an injected clock the test moves forward.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import openai
import pytest

from router import appkeys as keys
from router.records.job import JobState
from tests.clock import ManualClock
from tests.conftest import (
    ProxyFactory,
    RunningProxy,
    finished_job,
    sim_provider,
    stored_job,
    wait_for,
)


async def create(proxy: RunningProxy, prompt: str = "a cat") -> str:
    video = await proxy.client().videos.create(model="sora-2", prompt=prompt)
    return video.id


async def test_three_providers_sixteen_jobs_all_complete_and_the_broken_are_ejected(
    proxy_factory: ProxyFactory,
) -> None:
    proxy = await proxy_factory(
        [
            sim_provider("flaky", price=0.05, fail_rate=0.9, seed=7),
            sim_provider("broken", price=0.08, submit_error_rate=1.0),
            sim_provider("dear", price=0.3),
        ],
        routing={"strategy": "cheapest", "seed": 1},
        health={"consecutive_failures": 3, "probe_interval": 60},
    )
    health = proxy.app[keys.HEALTH]
    first = [await create(proxy) for _ in range(8)]
    assert [(await finished_job(proxy, i)).state for i in first] == [JobState.COMPLETED] * 8
    assert health.ejected("flaky") and health.ejected("broken")
    before = {n: proxy.stats(n).creates_received for n in ("flaky", "broken")}
    second = [await create(proxy) for _ in range(8)]
    assert [(await finished_job(proxy, i)).state for i in second] == [JobState.COMPLETED] * 8
    for name in ("flaky", "broken"):
        assert proxy.stats(name).creates_received - before[name] <= 2


async def test_a_prompt_moderated_request_reaches_exactly_one_provider(
    proxy_factory: ProxyFactory,
) -> None:
    words = {"moderation_prompt_words": ["forbidden"]}
    proxy = await proxy_factory(
        [sim_provider("a", price=0.05, **words), sim_provider("b", price=0.1, **words)],
        routing={"strategy": "cheapest"},
    )
    with pytest.raises(openai.BadRequestError) as caught:
        await create(proxy, "something forbidden")
    assert caught.value.code == "moderation_blocked"
    assert (proxy.stats("a").creates_received, proxy.stats("b").creates_received) == (1, 0)
    assert not proxy.app[keys.HEALTH].stats("a").renders


async def output_moderating_pair(proxy_factory: ProxyFactory, **routing: Any) -> RunningProxy:
    """The cheaper provider refuses renders of "racy" prompts at the output stage."""
    return await proxy_factory(
        [
            sim_provider("a", price=0.05, moderation_output_words=["racy"]),
            sim_provider("b", price=0.1),
        ],
        routing={"strategy": "cheapest", **routing},
    )


async def test_output_moderation_fails_the_job_and_is_not_resubmitted(
    proxy_factory: ProxyFactory,
) -> None:
    proxy = await output_moderating_pair(proxy_factory)
    done = await finished_job(proxy, await create(proxy, "a racy scene"))
    assert (done.state, done.error_code, len(done.attempts)) == (
        JobState.FAILED,
        "moderation_blocked",
        1,
    )
    assert proxy.stats("b").creates_received == 0
    assert not proxy.app[keys.HEALTH].stats("a").renders  # not a health signal


async def test_output_moderation_is_resubmitted_when_the_policy_says_so(
    proxy_factory: ProxyFactory,
) -> None:
    proxy = await output_moderating_pair(proxy_factory, retry_output_moderation=True)
    done = await finished_job(proxy, await create(proxy, "a racy scene"))
    assert done.state is JobState.COMPLETED
    assert [a.provider for a in done.attempts] == ["a", "b"]


async def test_a_stalled_render_moves_after_stall_timeout_and_progress_never_drops(
    proxy_factory: ProxyFactory,
) -> None:
    clock = ManualClock(time.time())
    proxy = await proxy_factory(
        [sim_provider("a", price=0.05, stall_words=["stuck"]), sim_provider("b", price=0.1)],
        clock=clock,
        routing={"strategy": "cheapest", "stall_timeout": 60},
    )
    job_id = await create(proxy, "stuck frame")
    client = proxy.client()

    async def stalled_at_40() -> bool:
        return (await client.videos.retrieve(job_id)).progress == 40

    await wait_for(stalled_at_40)
    await asyncio.sleep(0.2)  # a few polls on the unmoved clock: no failover yet
    assert len(stored_job(proxy, job_id).attempts) == 1
    clock.advance(61)
    seen: list[int] = []

    async def completed() -> bool:
        video = await client.videos.retrieve(job_id)
        seen.append(video.progress)
        assert video.status in ("in_progress", "completed")
        return video.status == "completed"

    await wait_for(completed)
    assert seen == sorted(seen) and seen[0] >= 40
    assert [(a.provider, a.error_code) for a in stored_job(proxy, job_id).attempts] == [
        ("a", "stalled"),
        ("b", None),
    ]


async def test_a_job_past_its_deadline_fails_without_another_attempt(
    proxy_factory: ProxyFactory,
) -> None:
    clock = ManualClock(time.time())
    proxy = await proxy_factory(
        [sim_provider("a", price=0.05, stall_words=["stuck"]), sim_provider("b", price=0.1)],
        clock=clock,
        routing={"strategy": "cheapest", "job_deadline": 100, "stall_timeout": 1000},
    )
    job_id = await create(proxy, "stuck frame")
    clock.advance(101)
    done = await finished_job(proxy, job_id)
    assert (done.state, done.error_code, len(done.attempts)) == (
        JobState.FAILED,
        "deadline_exceeded",
        1,
    )
    assert proxy.stats("b").creates_received == 0


async def test_max_attempts_is_never_exceeded(proxy_factory: ProxyFactory) -> None:
    doomed: dict[str, Any] = {"fail_words": ["doom"]}
    proxy = await proxy_factory(
        [sim_provider(n, price=p, **doomed) for n, p in (("a", 0.05), ("b", 0.1), ("c", 0.2))],
        routing={"strategy": "cheapest", "max_attempts": 2},
    )
    done = await finished_job(proxy, await create(proxy, "doom"))
    assert (done.state, len(done.attempts)) == (JobState.FAILED, 2)
    assert proxy.stats("c").creates_received == 0


async def test_an_ambiguous_create_is_never_sent_to_another_provider(
    proxy_factory: ProxyFactory,
) -> None:
    """Taken upstream but answered too late: queued to the client, found, rendered there."""
    late = {"slow_reply_words": ["cat"], "slow_reply_seconds": 1.0}
    slow = {**sim_provider("slow", price=0.05, **late), "timeout": 0.3}
    proxy = await proxy_factory(
        [slow, sim_provider("b", price=0.1)], routing={"strategy": "cheapest"}
    )
    video = await proxy.client().videos.create(model="sora-2", prompt="a cat")
    assert video.status == "queued"
    done = await finished_job(proxy, video.id)
    assert (done.state, [a.provider for a in done.attempts]) == (JobState.COMPLETED, ["slow"])
    assert done.current.upstream_id in proxy.simulator("slow").jobs
    assert (proxy.stats("slow").creates_received, proxy.stats("b").creates_received) == (1, 0)


async def test_a_429_cools_the_provider_without_counting_against_health(
    proxy_factory: ProxyFactory,
) -> None:
    proxy = await proxy_factory(
        [
            sim_provider("a", price=0.05, rate_limit_rate=1.0, retry_after=30),
            sim_provider("b", price=0.1),
        ],
        routing={"strategy": "cheapest"},
    )
    await create(proxy)
    await create(proxy)
    health = proxy.app[keys.HEALTH]
    assert proxy.stats("a").creates_received == 1  # cooling: the second went straight to b
    assert health.cooling("a") and not health.ejected("a")
    assert not health.outliers.view("a").outcomes
