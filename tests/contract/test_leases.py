"""The ``Leases`` and ``PollPlan`` contracts: one holder per lease until it lapses, a successor
takes over without anyone deciding the holder died; due jobs are handed out once, held for a
while, and due again when the taker dies; stall timers survive a takeover."""

from __future__ import annotations

import asyncio

import pytest

from router.fleet.leases import Leases, LeaseTable, LocalLeases
from router.fleet.plan import LocalPlan, PollPlan
from router.fleet.redis_leases import RedisLeases
from router.fleet.redis_plan import RedisPlan
from tests.clock import ManualClock
from tests.contract.conftest import Fleet

TTL = 10.0


class Instances:
    def __init__(self, fleet: Fleet, clock: ManualClock) -> None:
        self.clock = clock
        if fleet.kind == "local":
            table: LeaseTable = {}
            self.a: Leases = LocalLeases(table, "a", clock)
            self.b: Leases = LocalLeases(table, "b", clock)
            plan = LocalPlan()
            self.plan_a: PollPlan = plan
            self.plan_b: PollPlan = plan
        else:
            self.a = RedisLeases(fleet.client(), "a", clock)
            self.b = RedisLeases(fleet.client(), "b", clock)
            self.plan_a = RedisPlan(fleet.client())
            self.plan_b = RedisPlan(fleet.client())


@pytest.fixture
async def pair(fleet: Fleet) -> Instances:
    found = Instances(fleet, ManualClock())
    await fleet.start()
    return found


async def test_one_holder_until_the_lease_lapses(pair: Instances) -> None:
    assert await pair.a.acquire("poll:sim", TTL)
    assert not await pair.b.acquire("poll:sim", TTL)
    assert await pair.a.acquire("poll:sim", TTL)  # its own: renewed
    assert await pair.b.holder("poll:sim") == "a"
    pair.clock.advance(TTL - 1)
    assert await pair.a.renew("poll:sim", TTL)
    pair.clock.advance(TTL - 1)
    assert not await pair.b.acquire("poll:sim", TTL)
    pair.clock.advance(2)  # a died: nothing renewed it
    assert await pair.a.holder("poll:sim") is None
    assert await pair.b.acquire("poll:sim", TTL)
    assert not await pair.a.renew("poll:sim", TTL)
    assert await pair.a.holder("poll:sim") == "b"


async def test_only_the_holder_releases(pair: Instances) -> None:
    assert await pair.a.acquire("poll:x", TTL)
    await pair.b.release("poll:x")
    assert await pair.b.holder("poll:x") == "a"
    await pair.a.release("poll:x")
    assert await pair.b.holder("poll:x") is None
    assert not await pair.a.renew("poll:x", TTL)
    assert await pair.b.acquire("poll:x", TTL)


async def test_racing_acquirers_get_one_lease(pair: Instances) -> None:
    results = await asyncio.gather(
        *((pair.a if i % 2 else pair.b).acquire(f"poll:{i // 2}", TTL) for i in range(20))
    )
    assert sum(results) == 10


async def test_due_jobs_are_handed_out_once_and_due_again_after_the_hold(
    pair: Instances,
) -> None:
    now = pair.clock()
    for index in range(5):
        await pair.plan_a.plan("sim", f"job{index}", now + index)
    await pair.plan_a.plan("other", "elsewhere", now)
    assert await pair.plan_b.take("sim", now + 2, 10, 30.0) == ["job0", "job1", "job2"]
    assert await pair.plan_a.take("sim", now + 3, 10, 30.0) == ["job3"]
    assert await pair.plan_b.take("sim", now + 10, 1, 30.0) == ["job4"]
    await pair.plan_a.plan("sim", "job0", now + 5)  # read: planned again
    await pair.plan_a.forget("sim", "job1")  # settled
    assert await pair.plan_b.size("sim") == 4
    # The taker of job2 died; 30 s on, job2 is due for whoever holds the lease then.
    assert await pair.plan_b.take("sim", now + 33, 10, 30.0) == ["job0", "job2", "job3"]
    assert await pair.plan_a.take("other", now, 10, 30.0) == ["elsewhere"]


async def test_the_stall_timer_survives_a_takeover(pair: Instances) -> None:
    now = pair.clock()
    assert await pair.plan_a.progress("sim", "job", "1:10", now) == now
    assert await pair.plan_b.progress("sim", "job", "1:10", now + 50) == now
    assert await pair.plan_b.progress("sim", "job", "1:20", now + 60) == now + 60
    await pair.plan_a.forget("sim", "job")
    assert await pair.plan_b.progress("sim", "job", "1:20", now + 70) == now + 70
