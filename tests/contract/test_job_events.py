"""The ``JobEvents`` contract, for the in-process events, one Redis and a Redis Cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from router.config.model import StoreConfig
from router.events.base import JobEvents, Subscription, SubscriptionLagged
from router.events.local import LocalJobEvents
from router.events.redis import RedisJobEvents
from router.records.event import JobChanged
from router.store.redis_client import RedisClient, connect
from router.store.redis_keys import SHARDS, shard_of

EventsFactory = Callable[[], Awaitable[JobEvents]]
WITHIN = 5.0  # seconds an event may take to arrive (a busy CI machine)


@pytest.fixture
async def make_events(redis_config: StoreConfig | None) -> AsyncIterator[EventsFactory]:
    """Make ``JobEvents`` that share one bus, as the processes of one fleet do: the local
    backend shares one object (one process), Redis ones share the server, each with its own
    client."""
    local = LocalJobEvents()
    started: list[RedisJobEvents] = []
    clients: list[RedisClient] = []

    async def make() -> JobEvents:
        if redis_config is None:
            return local
        clients.append(connect(redis_config))
        events = RedisJobEvents(clients[-1], block=0.2)
        await events.start()
        started.append(events)
        return events

    yield make
    local.close()
    for events in started:
        await events.close()
    for client in clients:
        await client.aclose()


def changed(job_id: str, version: int, status: str = "queued", progress: int = 0) -> JobChanged:
    return JobChanged(job_id, version, status, progress)


async def take(subscription: Subscription, count: int) -> list[JobChanged]:
    """The next ``count`` events, within ``WITHIN`` seconds."""

    async def collect() -> list[JobChanged]:
        return [await anext(subscription) for _ in range(count)]

    return await asyncio.wait_for(collect(), WITHIN)


async def test_a_subscriber_gets_each_event_once_in_order(make_events: EventsFactory) -> None:
    events = await make_events()
    sent = [changed("video_a", v, "in_progress", 10 * v) for v in range(1, 6)]
    async with events.subscribe() as subscription:
        for event in sent:
            await events.publish(event)
        got = await take(subscription, len(sent))

    assert got == sent


async def test_every_subscriber_gets_every_event(make_events: EventsFactory) -> None:
    events = await make_events()
    first, second = events.subscribe(), events.subscribe()
    event = changed("video_b", 1, "completed", 100)

    await events.publish(event)

    assert await take(first, 1) == [event]
    assert await take(second, 1) == [event]
    first.close()
    second.close()


async def test_a_job_subscription_gets_only_that_job(make_events: EventsFactory) -> None:
    events = await make_events()
    mine = events.subscribe(job_id="video_mine")
    everything = events.subscribe()

    await events.publish(changed("video_other", 1))
    await events.publish(changed("video_mine", 1))
    await events.publish(changed("video_mine", 2, "completed", 100))

    assert [e.version for e in await take(mine, 2)] == [1, 2]
    seen = await take(everything, 3)  # one job's events in order; across jobs, any order
    assert [(e.id, e.version) for e in seen if e.id == "video_mine"] == [
        ("video_mine", 1),
        ("video_mine", 2),
    ]
    assert [e.id for e in seen].count("video_other") == 1
    mine.close()
    everything.close()


async def test_a_late_subscriber_gets_what_is_published_after_it_subscribed(
    make_events: EventsFactory,
) -> None:
    """Earlier events may still reach it (a reader in flight); listeners compare versions."""
    events = await make_events()
    await events.publish(changed("video_d", 1))
    subscription = events.subscribe(job_id="video_d")
    fresh = changed("video_d", 2, "completed", 100)

    await events.publish(fresh)

    got = await take(subscription, 1)
    if got[0] != fresh:
        got += await take(subscription, 1)
    assert got[-1] == fresh
    subscription.close()


async def test_a_closed_subscription_ends_its_iteration(make_events: EventsFactory) -> None:
    events = await make_events()
    subscription = events.subscribe()
    waiting = asyncio.ensure_future(anext(subscription))
    await asyncio.sleep(0)

    subscription.close()

    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, WITHIN)
    await events.publish(changed("video_late", 1))  # nobody is left to hand it to


async def test_a_subscriber_that_falls_behind_is_dropped(make_events: EventsFactory) -> None:
    events = await make_events()
    slow = events.subscribe(limit=2)
    keeping_up = events.subscribe()
    sent = [changed("video_c", v) for v in range(1, 5)]

    for event in sent:
        await events.publish(event)
    assert await take(keeping_up, 4) == sent

    with pytest.raises(SubscriptionLagged):
        await take(slow, 3)
    keeping_up.close()


async def test_events_of_jobs_in_every_shard_arrive(make_events: EventsFactory) -> None:
    events = await make_events()
    ids: dict[int, str] = {}
    number = 0
    while len(ids) < SHARDS:
        job_id = f"video_{number:048x}"
        ids.setdefault(shard_of(job_id), job_id)
        number += 1
    async with events.subscribe() as subscription:
        for job_id in ids.values():
            await events.publish(changed(job_id, 1))
        got = await take(subscription, SHARDS)

    assert sorted(e.id for e in got) == sorted(ids.values())


async def test_a_subscriber_elsewhere_in_the_fleet_gets_the_event(
    make_events: EventsFactory,
) -> None:
    here, there = await make_events(), await make_events()
    event = changed("video_e", 3, "in_progress", 40)
    async with there.subscribe(job_id="video_e") as subscription:
        await here.publish(event)

        assert await take(subscription, 1) == [event]
