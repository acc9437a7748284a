"""``FleetLimits`` (issue 17): limits decided on shared counters, so any instance can settle a
render another admitted, and what an instance keeps alive outlives one that died.

Two instances are two ``FleetLimits`` on one ``LocalCounters`` (the in-process implementation
of the same contract the Redis one passes, ``tests/contract/test_counters.py``); the clock is
moved by hand.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.asyncio import Redis

from providers.base import UpstreamJob, UpstreamStatus
from router.config.model import Config
from router.errors import TooManyRequests, Unavailable
from router.fleet.bus import RedisBus
from router.limits.counters import LocalCounters
from router.limits.fleet import RECHECK, FleetLimits, key_name, provider_name
from router.limits.local import Assigned, Hold
from router.limits.redis_counters import RedisCounters
from router.records.job import Attempt, Job
from tests.clock import ManualClock
from tests.conftest import ALICE, build_config, sim_provider
from tests.redis_rig import RedisServer

TTL = 30.0


def config(tmp_path: Path, **key: object) -> Config:
    providers = [{**sim_provider("a"), "max_concurrent": 1, "poll_rpm": 2}, sim_provider("b")]
    return build_config(tmp_path, providers, keys=[{"name": "alice", "key": ALICE, **key}])


class Pair:
    def __init__(self, tmp_path: Path, **key: object) -> None:
        self.clock = ManualClock()
        self.counters = LocalCounters(self.clock, hold_ttl=TTL)
        self.a = FleetLimits(config(tmp_path, **key), self.clock, self.counters)
        self.b = FleetLimits(config(tmp_path, **key), self.clock, self.counters)


async def placed(limits: FleetLimits, provider: str, cost: float) -> Hold:
    """A render of alice's admitted, assigned to ``provider`` and bound to its job."""
    hold = await limits.admit("alice")
    assert await limits.assign(hold, provider, cost) is Assigned.OK
    limits.bind(hold, hold.token)
    return hold


def job_of(token: str, provider: str, price: float = 0.1) -> Job:
    attempt = Attempt(provider=provider, upstream_id="up-1", submitted_at=0.0)
    return Job(
        id=token,
        owner="alice",
        model="sora-2",
        prompt="a cat",
        size="720x1280",
        seconds=4,
        created_at=0.0,
        price_per_second=price,
        attempts=[attempt],
    )


async def test_a_render_admitted_here_and_settled_there_is_spent_once(tmp_path: Path) -> None:
    pair = Pair(tmp_path, daily_budget_usd=1.0)
    hold = await placed(pair.a, "a", 0.4)
    job = job_of(hold.token, "a")
    job.observe(UpstreamJob("up-1", UpstreamStatus.COMPLETED, 100), 5.0)
    pair.b.finish(job)  # polled and settled by the other instance
    await pair.b.settle()
    assert await pair.counters.committed(key_name("alice")) == pytest.approx(0.4)
    assert await pair.counters.holding(key_name("alice")) == 0
    assert await pair.counters.holding(provider_name("a")) == 0
    pair.a.finish(job)  # the admitting instance hears of it later: nothing is spent twice
    await pair.a.settle()
    assert await pair.counters.committed(key_name("alice")) == pytest.approx(0.4)


async def test_a_failed_render_spends_nothing(tmp_path: Path) -> None:
    pair = Pair(tmp_path, daily_budget_usd=1.0)
    hold = await placed(pair.a, "b", 0.4)
    job = job_of(hold.token, "b")
    job.fail("render_failed", "no", 5.0)
    pair.a.finish(job)
    await pair.a.settle()
    assert await pair.counters.committed(key_name("alice")) == 0.0


async def test_assign_says_why_a_provider_cannot_take_the_render(tmp_path: Path) -> None:
    pair = Pair(tmp_path, daily_budget_usd=0.5)
    first = await pair.a.admit("alice")
    assert await pair.a.assign(first, "a", 0.4) is Assigned.OK
    second = await pair.b.admit("alice")
    assert await pair.b.assign(second, "a", 0.1) is Assigned.FULL  # a renders one at a time
    assert pair.b.room_in(["a"]) > 0
    assert await pair.b.assign(second, "b", 0.2) is Assigned.OVER_BUDGET
    assert await pair.counters.holding(provider_name("b")) == 0  # the provider hold undone
    assert await pair.b.assign(second, "b", 0.1) is Assigned.OK
    assert "daily budget of $0.50" in pair.b.over_budget("alice").message


async def test_moving_a_render_frees_its_old_providers_slot(tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    hold = await placed(pair.a, "a", 0.0)
    pair.a.attempt_ended(hold.token)  # failed there; a new attempt elsewhere
    await pair.a.settle()
    assert await pair.counters.holding(provider_name("a")) == 0
    assert await pair.a.assign(hold, "b", 0.0) is Assigned.OK
    other = await pair.b.admit("alice")
    assert await pair.b.assign(other, "a", 0.0) is Assigned.OK
    assert await pair.b.assign(other, "b", 0.0) is Assigned.OK  # moved before it was sent
    await pair.b.settle()
    assert await pair.counters.holding(provider_name("a")) == 0
    pair.b.release(other)
    await pair.b.settle()
    assert await pair.counters.holding(key_name("alice")) == 1


async def test_a_live_instance_keeps_its_holds_and_a_dead_ones_lapse(tmp_path: Path) -> None:
    pair = Pair(tmp_path, max_concurrent=2)
    alive = await pair.a.admit("alice")
    assert await pair.a.assign(alive, "b", 0.0) is Assigned.OK
    await pair.b.admit("alice")  # b dies with this hold: nothing renews it
    with pytest.raises(TooManyRequests):
        await pair.a.admit("alice")
    for _ in range(3):
        pair.clock.advance(TTL / 2)
        await pair.a.renew()
    assert await pair.counters.holding(key_name("alice")) == 1
    assert await pair.counters.holding(provider_name("b")) == 1
    await pair.a.admit("alice")


async def test_restored_renders_hold_their_slots_again(tmp_path: Path) -> None:
    pair = Pair(tmp_path, max_concurrent=1, daily_budget_usd=0.4)
    job = job_of("job-restored", "a")
    pair.a.restore([job], [])
    await pair.a.settle()
    assert await pair.counters.holding(key_name("alice")) == 1
    assert await pair.counters.holding(provider_name("a")) == 1
    assert await pair.counters.committed(key_name("alice")) == pytest.approx(0.4)
    with pytest.raises(TooManyRequests):
        await pair.b.admit("alice")


async def test_status_reads_count_against_poll_rpm_fleet_wide(tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    assert await pair.a.take_read("a") == 0.0
    assert await pair.b.take_read("a") == 0.0
    assert await pair.a.take_read("a") == pytest.approx(60.0)
    assert await pair.a.take_read("b") == 0.0  # no poll_rpm


async def test_a_wait_for_room_ends_on_a_release_elsewhere(tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    hold = await pair.a.admit("alice")
    waiter = asyncio.create_task(pair.b.wait_for_room(30.0))
    await asyncio.sleep(0)
    pair.a.release(hold)
    async with asyncio.timeout(5):
        await waiter


async def test_releases_that_cannot_reach_redis_are_logged_and_lapse(
    tmp_path: Path, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    client = Redis.from_url(redis_server.url, socket_timeout=1, socket_connect_timeout=1)
    try:
        limits = FleetLimits(
            config(tmp_path), clock, RedisCounters(client, RedisBus(client), clock)
        )
        hold = await limits.admit("alice")
        redis_server.kill()
        limits.release(hold)
        await limits.settle()
        await limits.renew()
        assert "did not reach Redis" in caplog.text
        with pytest.raises(Unavailable) as refused:
            await limits.admit("alice")
        assert refused.value.headers["Retry-After"] == "1"
        assert await limits.take_read("a") == RECHECK
    finally:
        await client.aclose()


class Racing(LocalCounters):
    """Another instance takes provider b's last create slot between this one's look at the
    window and its own take."""

    rival_waiting = True

    async def room(self, name: str, limit: int, period: float) -> float:
        wait = await super().room(name, limit, period)
        if self.rival_waiting and name == provider_name("b") and wait == 0.0:
            self.rival_waiting = False
            await super().take(name, limit, period)
        return wait


async def test_a_create_slot_taken_by_another_instance_meanwhile_undoes_the_assignment(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    counters = Racing(clock, hold_ttl=TTL)
    providers = [sim_provider("a"), {**sim_provider("b"), "rpm": 1}]
    keys = [{"name": "alice", "key": ALICE, "daily_budget_usd": 1.0}]
    limits = FleetLimits(build_config(tmp_path, providers, keys=keys), clock, counters)
    hold = await limits.admit("alice")
    assert await limits.assign(hold, "b", 0.4) is Assigned.FULL
    assert await counters.holding(provider_name("b")) == 0
    assert await counters.committed(key_name("alice")) == 0.0
    assert limits.room_in(["b"]) == pytest.approx(1.0)  # looks again within a second
    assert await limits.assign(hold, "a", 0.4) is Assigned.OK
