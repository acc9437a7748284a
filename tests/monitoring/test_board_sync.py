"""HealthSync on a real Redis: what an instance saw while a report was on its way goes to the
board in one round trip, in order, however many events it is."""

from __future__ import annotations

from redis.asyncio import Redis

from monitoring.board_sync import HealthSync
from monitoring.health import SUCCESS_WINDOW, ProviderHealth
from monitoring.outlier import OutlierSettings
from monitoring.redis_board import RedisBoard
from tests.clock import ManualClock
from tests.redis_rig import RedisServer

SETTINGS = OutlierSettings(consecutive_failures=3, window=10, min_volume=10)
PROVIDERS = ["a", "b", "c"]  # one of three may be ejected (max_ejected_share)
T0 = 1_700_000_000.0


async def _script_calls(client: Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {"calls": 0})["calls"])


async def test_the_events_of_a_busy_moment_reach_the_board_in_one_round_trip(
    redis_server: RedisServer,
) -> None:
    client = Redis.from_url(redis_server.url)
    health = ProviderHealth(PROVIDERS, SETTINGS, ManualClock(T0))
    board = RedisBoard(client, SETTINGS, SUCCESS_WINDOW)
    sync = HealthSync(health, board, lambda: PROVIDERS)
    await sync.start()
    try:
        before = await _script_calls(client)
        for _ in range(100):  # a burst of creates answered, as under load: no await between
            health.submitted("a", True, 0.2)
        for _ in range(3):
            health.rendered("a", False)
        await sync.flush()
        calls = await _script_calls(client) - before
        shared = (await board.read(["a"]))["a"]
    finally:
        await sync.stop()
        await client.aclose()
    print(f"board reports for 103 events: {calls}")
    assert calls == 1  # one per event before (103): a backlog under load
    assert shared == health.view("a")  # in order: the three failures last, and they ejected
    assert shared.outcomes == (True,) * 7 + (False,) * 3
    assert shared.ejected_until is not None
