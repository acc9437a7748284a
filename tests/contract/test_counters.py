"""The ``Counters`` contract: windows, holds with a TTL, budget reservations and wake-ups on
frees, the same for the in-process counters, Redis and a Redis Cluster; two instances on one
Redis share every count."""

from __future__ import annotations

import asyncio

import pytest

from router.limits.counters import Counters, LocalCounters
from router.limits.redis_counters import RedisCounters
from tests.clock import ManualClock
from tests.contract.conftest import Fleet

TTL = 30.0


class Instances:
    """Two instances' counters on one backend (one object for the local backend)."""

    def __init__(self, fleet: Fleet, clock: ManualClock) -> None:
        self.clock = clock
        if fleet.kind == "local":
            local = LocalCounters(clock, hold_ttl=TTL)
            self.a: Counters = local
            self.b: Counters = local
        else:
            self.a = RedisCounters(fleet.client(), fleet.bus(), clock, hold_ttl=TTL)
            self.b = RedisCounters(fleet.client(), fleet.bus(), clock, hold_ttl=TTL)


@pytest.fixture
async def pair(fleet: Fleet) -> Instances:
    instances = Instances(fleet, ManualClock())
    await fleet.start()
    return instances


async def test_a_window_admits_limit_events_in_any_period_across_instances(
    pair: Instances,
) -> None:
    assert await pair.a.take("key:alice", 3, 60.0) == 0.0
    pair.clock.advance(10)
    assert await pair.b.take("key:alice", 3, 60.0) == 0.0
    assert await pair.a.take("key:alice", 3, 60.0) == 0.0
    assert await pair.b.take("key:alice", 3, 60.0) == pytest.approx(60.0 - 10)
    assert await pair.a.room("key:alice", 3, 60.0) == pytest.approx(50.0)
    pair.clock.advance(50)
    assert await pair.b.room("key:alice", 3, 60.0) == 0.0
    assert await pair.b.take("key:alice", 3, 60.0) == 0.0
    assert await pair.a.take("key:alice", 3, 60.0) == pytest.approx(10.0)
    assert await pair.a.take("key:bob", 3, 60.0) == 0.0  # names count apart


async def test_room_counts_nothing(pair: Instances) -> None:
    for _ in range(5):
        assert await pair.a.room("provider:p", 1, 60.0) == 0.0
    assert await pair.b.take("provider:p", 1, 60.0) == 0.0


async def test_a_smaller_limit_waits_for_the_excess_to_leave(pair: Instances) -> None:
    for _ in range(3):
        assert await pair.a.take("key:k", 3, 60.0) == 0.0
        pair.clock.advance(1)
    assert await pair.b.room("key:k", 1, 60.0) == pytest.approx(60.0 - 1)


async def test_holds_are_capped_across_instances_and_a_token_counts_once(
    pair: Instances,
) -> None:
    assert await pair.a.hold("key:alice", "job1", 2)
    assert await pair.a.hold("key:alice", "job1", 2)  # the same render, held again
    assert await pair.b.hold("key:alice", "job2", 2)
    assert not await pair.b.hold("key:alice", "job3", 2)
    assert await pair.a.holding("key:alice") == 2
    await pair.a.release("key:alice", "job1")
    assert await pair.b.holding("key:alice") == 1
    assert await pair.b.hold("key:alice", "job3", 2)
    assert await pair.a.hold("key:other", "job9", None)


async def test_a_hold_expires_unless_renewed(pair: Instances) -> None:
    assert await pair.a.hold("provider:p", "dead", None)
    assert await pair.a.hold("provider:p", "alive", None)
    pair.clock.advance(TTL - 1)
    await pair.b.renew("provider:p", ["alive", "never-held"])
    pair.clock.advance(2)
    assert await pair.b.holding("provider:p") == 1
    assert await pair.b.hold("provider:p", "new", 2)
    pair.clock.advance(TTL)
    assert await pair.a.holding("provider:p") == 0


async def test_budget_reservations_across_instances(pair: Instances) -> None:
    assert await pair.a.hold("key:k", "j1", None)
    assert await pair.b.hold("key:k", "j2", None)
    assert await pair.a.reserve("key:k", "j1", 0.6, 1.0)
    assert not await pair.b.reserve("key:k", "j2", 0.6, 1.0)
    assert await pair.b.reserve("key:k", "j2", 0.4, 1.0)  # exactly the budget
    assert await pair.a.reserve("key:k", "j1", 0.5, 1.0)  # a token's own amount is replaced
    assert await pair.b.committed("key:k") == pytest.approx(0.9)
    await pair.a.release("key:k", "j1", spend=0.5)
    await pair.b.release("key:k", "j1", spend=0.5)  # settled twice, spent once
    await pair.b.release("key:k", "j2")  # failed: nothing spent
    assert await pair.a.committed("key:k") == pytest.approx(0.5)
    assert await pair.b.hold("key:k", "j3", None)
    assert not await pair.b.reserve("key:k", "j3", 0.6, 1.0)
    pair.clock.advance(86400)  # tomorrow
    assert await pair.a.committed("key:k") == 0.0
    assert await pair.b.hold("key:k", "j3", None)
    assert await pair.b.reserve("key:k", "j3", 1.0, 1.0)


async def test_an_expired_hold_gives_its_reservation_back(pair: Instances) -> None:
    assert await pair.a.hold("key:k", "j1", None)
    assert await pair.a.reserve("key:k", "j1", 1.0, 1.0)
    pair.clock.advance(TTL + 1)
    assert await pair.b.committed("key:k") == 0.0
    # The render completed all the same (polled by another instance): its price is spent.
    await pair.b.release("key:k", "j1", spend=0.75)
    assert await pair.a.committed("key:k") == pytest.approx(0.75)


async def test_concurrent_reservations_commit_exactly_what_the_budget_holds(
    pair: Instances,
) -> None:
    async def one(index: int) -> bool:
        counters = pair.a if index % 2 else pair.b
        token = f"job{index}"
        assert await counters.hold("key:k", token, None)
        if await counters.reserve("key:k", token, 0.5, 1.0):
            return True
        await counters.release("key:k", token)
        return False

    results = await asyncio.gather(*(one(i) for i in range(20)))
    assert sum(results) == 2


async def test_a_release_anywhere_wakes_a_waiter(pair: Instances) -> None:
    assert await pair.a.hold("provider:p", "j1", 1)
    waiter = asyncio.create_task(pair.b.freed(30.0))
    await asyncio.sleep(0)  # the waiter is waiting
    await pair.a.release("provider:p", "j1")
    async with asyncio.timeout(5.0):
        await waiter


async def test_freed_returns_after_its_timeout(pair: Instances) -> None:
    async with asyncio.timeout(5.0):
        await pair.a.freed(0.01)
