"""List sweeps (issue 7): many jobs in flight on a provider with a list are read a page (up to
100 jobs) per upstream call, and whatever a sweep does not see is still read by itself.

Upstreams are simulators (or a scripted upstream) on loopback. Render progress runs on a
``ManualClock`` shared by the simulators and the proxy; the poller's schedule runs on the loop's
own clock at each provider's short ``poll_interval``. Upstream calls are counted on both sides:
by the simulator's stats and by the proxy's ``sora_proxy_upstream_calls_total``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from router import appkeys as keys
from router.jobs.sweep import SWEEP_MIN_JOBS
from router.records.job import AttemptState, Job, JobState
from tests.clock import ManualClock
from tests.conftest import (
    ProxyFactory,
    RunningProxy,
    SimulatorFactory,
    finished_job,
    stored_job,
    upstream_provider,
    wait_for,
)
from tests.fake_upstream import ScriptedFactory, ScriptedUpstream

JOBS = SWEEP_MIN_JOBS + 5
RENDER = {"render_seconds": 100.0}  # clock seconds: jobs finish only when the test says so


async def create_many(proxy: RunningProxy, count: int = JOBS, prompt: str = "a cat") -> list[str]:
    """``count`` renders created at once, so the provider has them all in flight early."""
    client = proxy.client()
    videos = await asyncio.gather(
        *(client.videos.create(model="sora-2", prompt=prompt) for _ in range(count))
    )
    return [video.id for video in videos]


def calls(proxy: RunningProxy, provider: str, operation: str, outcome: str = "ok") -> int:
    sample = proxy.app[keys.METRICS].registry.get_sample_value(
        "sora_proxy_upstream_calls_total",
        {"provider": provider, "operation": operation, "outcome": outcome},
    )
    return int(sample or 0)


def jobs(proxy: RunningProxy, ids: list[str]) -> list[Job]:
    return [stored_job(proxy, job_id) for job_id in ids]


async def progressed(proxy: RunningProxy, ids: list[str], at_least: int) -> None:
    async def moved() -> bool:
        return all(job.progress >= at_least for job in jobs(proxy, ids))

    await wait_for(moved)


async def test_jobs_in_flight_progress_and_complete_by_list_pages_not_status_reads(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    clock = ManualClock(time.time())
    sim = await simulators(clock=clock, **RENDER)
    proxy = await proxy_factory([upstream_provider("a", "openai", sim)], clock=clock)
    ids = await create_many(proxy)
    clock.advance(30)
    await progressed(proxy, ids, 30)  # from here on, sweeps refresh every job
    gets, pages = sim.stats.gets, calls(proxy, "a", "list")
    started = asyncio.get_running_loop().time()
    for at_least in (50, 70, 90):
        clock.advance(20)
        await progressed(proxy, ids, at_least)
    clock.advance(10)
    assert {(await finished_job(proxy, i)).state for i in ids} == {JobState.COMPLETED}
    intervals = (asyncio.get_running_loop().time() - started) / 0.05
    assert sim.stats.gets == gets  # not one status read: each sweep was one page for all
    swept = calls(proxy, "a", "list") - pages
    assert 4 <= swept <= intervals + 1  # at most one page per poll interval
    assert proxy.app[keys.POLLER].scheduled == 0


async def test_a_job_missing_upstream_is_read_alone_and_fails_over_and_a_stall_is_seen_in_the_list(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    clock = ManualClock(time.time())
    a = await simulators(clock=clock, stall_words=["stuck"], **RENDER)
    b = await simulators(clock=clock, **RENDER)
    proxy = await proxy_factory(
        [
            upstream_provider("a", "openai", a, models={"sora-2": {"price_per_second": 0.05}}),
            upstream_provider("b", "openai", b),
        ],
        clock=clock,
        routing={"strategy": "cheapest", "stall_timeout": 60},
    )
    ids = await create_many(proxy)
    stuck = (await create_many(proxy, 1, "stuck frame"))[0]
    lost = ids.pop()
    clock.advance(50)
    await progressed(proxy, [*ids, lost, stuck], 40)
    del a.jobs[stored_job(proxy, lost).current.upstream_id]  # gone from its list and its route
    gets = a.stats.gets
    # Steps shorter than stall_timeout, so only the stuck job can look stalled (a page fetched
    # just before a step is folded just after it).
    clock.advance(30)
    await progressed(proxy, ids, 80)
    clock.advance(31)  # the others complete; the stuck one has shown 40% for 61 s

    async def moved_to_b() -> bool:
        return all(stored_job(proxy, i).current.provider == "b" for i in (lost, stuck))

    await wait_for(moved_to_b)
    assert a.stats.gets - gets == 1  # only the job the sweep did not see was read alone
    clock.advance(50)
    await progressed(proxy, [stuck], 45)
    clock.advance(51)
    assert {(await finished_job(proxy, i)).state for i in [*ids, lost, stuck]} == {
        JobState.COMPLETED
    }
    assert [(x.provider, x.error_code) for x in stored_job(proxy, lost).attempts] == [
        ("a", "upstream_job_missing"),
        ("b", None),
    ]
    assert [(x.provider, x.error_code) for x in stored_job(proxy, stuck).attempts] == [
        ("a", "stalled"),
        ("b", None),
    ]
    assert all(len(stored_job(proxy, i).attempts) == 1 for i in ids)
    assert b.stats.creates_received == 2


async def test_a_relay_provider_keeps_reading_each_job(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    clock = ManualClock(time.time())
    sim = await simulators(clock=clock, **RENDER)
    proxy = await proxy_factory([upstream_provider("r", "relay", sim)], clock=clock)
    ids = await create_many(proxy)
    clock.advance(50)
    await progressed(proxy, ids, 50)
    clock.advance(60)
    assert {(await finished_job(proxy, i)).state for i in ids} == {JobState.COMPLETED}
    assert calls(proxy, "r", "list") == 0 and sim.stats.lists == 0
    assert sim.stats.gets >= 2 * JOBS


def scripted_video(video_id: str, done: bool) -> dict[str, Any]:
    return {
        "id": video_id,
        "object": "video",
        "model": "sora-2",
        "status": "completed" if done else "in_progress",
        "progress": 100 if done else 50,
        "created_at": int(time.time()),
        "expires_at": int(time.time()) + 3600 if done else None,
        "size": "720x1280",
        "seconds": "4",
        "error": None,
    }


def scripted_provider(url: str) -> dict[str, Any]:
    """Provider ``s`` of kind openai at a scripted upstream."""
    return {
        "name": "s",
        "kind": "openai",
        "base_url": f"{url}/v1",
        "models": {"sora-2": {"price_per_second": 0.1}},
        "poll_interval": 0.05,
        "timeout": 5,
    }


def failing_list(
    status: int, headers: dict[str, str] | None = None
) -> Callable[[web.Request], web.StreamResponse]:
    """A list endpoint that answers the health probe (``limit=1``) and fails every page."""

    def listing(request: web.Request) -> web.StreamResponse:
        if request.query.get("limit") == "1":
            return web.json_response({"object": "list", "data": [], "has_more": False})
        error = {"error": {"message": "the list is broken"}}
        return web.json_response(error, status=status, headers=headers)

    return listing


def list_pages(upstream: ScriptedUpstream) -> int:
    """Sweep pages the upstream was asked for (the probe's ``limit=1`` read is not one)."""
    return sum(1 for s in upstream.seen if s.path == "/v1/videos" and "order" in s.query)


async def test_jobs_that_wait_for_a_sweep_whose_list_says_404_are_read_alone(
    proxy_factory: ProxyFactory, scripted: ScriptedFactory
) -> None:
    # The first page is held until more jobs have joined the next roster; then the list says
    # 404. Those jobs must be read alone: the list is not asked again.
    upstream = await scripted()
    asked, release = asyncio.Event(), asyncio.Event()
    made = itertools.count()

    def create(request: web.Request) -> web.StreamResponse:
        video_id = f"video_{next(made):04d}"
        upstream.answer("GET", f"/v1/videos/{video_id}", read)
        return web.json_response({**scripted_video(video_id, False), "status": "queued"})

    def read(request: web.Request) -> web.StreamResponse:
        return web.json_response(scripted_video(request.path.rsplit("/", 1)[1], True))

    async def listing(request: web.Request) -> web.StreamResponse:
        if request.query.get("limit") == "1":  # the health probe
            return web.json_response({"object": "list", "data": [], "has_more": False})
        asked.set()
        await release.wait()
        return web.json_response({"error": {"message": "no list here"}}, status=404)

    upstream.answer("POST", "/v1/videos", create)
    upstream.answer("GET", "/v1/videos", listing)
    proxy = await proxy_factory([scripted_provider(upstream.url)])
    first = await create_many(proxy)
    await asyncio.wait_for(asked.wait(), timeout=10)
    later = await create_many(proxy, count=3)
    poller = proxy.app[keys.POLLER]

    async def later_ones_wait_for_the_sweep() -> bool:
        return poller.sweeping == len(first) + len(later)

    await wait_for(later_ones_wait_for_the_sweep)
    release.set()
    assert {(await finished_job(proxy, i)).state for i in first + later} == {JobState.COMPLETED}
    assert list_pages(upstream) == 1


@pytest.mark.parametrize("status", [500, 429, 404])
async def test_a_failing_list_falls_back_to_reading_each_job_and_every_job_completes(
    proxy_factory: ProxyFactory, scripted: ScriptedFactory, status: int
) -> None:
    upstream = await scripted()
    done = False
    made: list[str] = []

    def read(request: web.Request) -> web.StreamResponse:
        return web.json_response(scripted_video(request.path.rsplit("/", 1)[1], done))

    def create(request: web.Request) -> web.StreamResponse:
        video_id = f"video_{len(made):04d}"
        made.append(video_id)
        upstream.answer("GET", f"/v1/videos/{video_id}", read)
        return web.json_response({**scripted_video(video_id, False), "status": "queued"})

    upstream.answer("POST", "/v1/videos", create)
    upstream.answer("GET", "/v1/videos", failing_list(status))
    proxy = await proxy_factory([scripted_provider(upstream.url)])
    ids = await create_many(proxy)

    def pages() -> int:
        return list_pages(upstream)

    def reads() -> int:
        paths = {f"/v1/videos/{video_id}" for video_id in made}
        return sum(1 for s in upstream.seen if s.method == "GET" and s.path in paths)

    async def read_each_twice_after_a_failed_page() -> bool:
        return pages() >= 1 and reads() >= 2 * JOBS

    await wait_for(read_each_twice_after_a_failed_page)
    assert {job.progress for job in jobs(proxy, ids)} == {50}
    done = True
    assert {(await finished_job(proxy, i)).state for i in ids} == {JobState.COMPLETED}
    outcome = {500: "error", 429: "rate_limited", 404: "unsupported"}[status]
    assert calls(proxy, "s", "list", outcome) == pages() >= 1
    if status == 404:  # no list there after all: never asked again, every job read alone
        assert pages() == 1


async def test_a_rate_limited_list_page_backs_every_job_off_for_its_retry_after(
    proxy_factory: ProxyFactory, scripted: ScriptedFactory
) -> None:
    upstream = await scripted()
    made: list[str] = []

    def create(request: web.Request) -> web.StreamResponse:
        video_id = f"video_{len(made):04d}"
        made.append(video_id)
        return web.json_response({**scripted_video(video_id, False), "status": "queued"})

    upstream.answer("POST", "/v1/videos", create)
    upstream.answer("GET", "/v1/videos", failing_list(429, {"Retry-After": "3600"}))
    proxy = await proxy_factory([scripted_provider(upstream.url)])
    ids = await create_many(proxy)

    def pages() -> int:
        return list_pages(upstream)

    def reads() -> int:
        return sum(1 for s in upstream.seen if s.method == "GET" and s.path != "/v1/videos")

    async def refused_once() -> bool:
        return pages() >= 1

    await wait_for(refused_once)
    await asyncio.sleep(0.5)  # ten intervals: every job has met a rate-limited page by now
    before = (pages(), reads())
    await asyncio.sleep(0.5)
    assert (pages(), reads()) == before and pages() >= 1  # nothing more asked for an hour
    assert reads() < SWEEP_MIN_JOBS  # only a job read before the provider had enough in flight
    assert proxy.app[keys.POLLER].scheduled == len(ids)
    assert {job.state for job in jobs(proxy, ids)} <= {JobState.QUEUED, JobState.IN_PROGRESS}


async def test_every_list_page_counts_against_poll_rpm(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    clock = ManualClock(time.time())  # the rate window's clock: a minute never passes here
    sim = await simulators(clock=clock, **RENDER)
    provider = upstream_provider("a", "openai", sim, poll_rpm=3, poll_interval=0.2)
    proxy = await proxy_factory([provider], clock=clock)
    ids = await create_many(proxy)

    async def three_pages() -> bool:
        return calls(proxy, "a", "list") >= 3

    await wait_for(three_pages)
    await asyncio.sleep(1.0)  # five more intervals: each sweep would read another page
    assert (calls(proxy, "a", "list"), sim.stats.gets) == (3, 0)
    assert proxy.app[keys.POLLER].scheduled == len(ids)  # waiting for the rate, not lost
    assert all(job.current.state is not AttemptState.UNKNOWN for job in jobs(proxy, ids))
