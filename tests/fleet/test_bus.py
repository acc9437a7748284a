"""``RedisBus``: notices reach every instance, a listener's bug silences no other, and the
subscription comes back by itself after Redis restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from router.fleet.bus import RedisBus
from tests.conftest import wait_for
from tests.redis_rig import RedisServer


@pytest.fixture
async def clients(redis_server: RedisServer) -> AsyncIterator[list[Redis]]:
    made = [Redis.from_url(redis_server.url, socket_timeout=1) for _ in range(2)]
    try:
        yield made
    finally:
        for client in made:
            await client.aclose()


async def test_a_notice_reaches_every_instance_past_a_broken_listener(
    clients: list[Redis],
) -> None:
    heard: list[tuple[str, str]] = []

    def broken(text: str) -> None:
        raise RuntimeError("a listener's bug")

    def hearing(name: str) -> Callable[[str], None]:
        return lambda text: heard.append((name, text))

    buses = [RedisBus(client) for client in clients]
    for index, bus in enumerate(buses):
        bus.listen("sora:test", broken)
        bus.listen("sora:test", hearing(f"bus{index}"))
        await bus.start()
    try:
        await buses[0].publish("sora:test", "hello")

        async def both_heard() -> bool:
            return sorted(heard) == [("bus0", "hello"), ("bus1", "hello")]

        await wait_for(both_heard)
    finally:
        for bus in buses:
            await bus.stop()


async def test_the_subscription_returns_after_redis_restarts(
    clients: list[Redis], redis_server: RedisServer
) -> None:
    heard: list[str] = []
    bus = RedisBus(clients[0])
    bus.listen("sora:test", heard.append)
    await bus.start()
    try:
        redis_server.kill()
        redis_server.start()

        async def heard_again() -> bool:
            await clients[1].publish("sora:test", "back")
            return "back" in heard

        await wait_for(heard_again, within=20)
    finally:
        await bus.stop()
