"""``HealthSync``: one instance's ``ProviderHealth`` kept in step with the fleet's board.

Every ``HealthEvent`` the instance sees is applied locally at once (routing never waits for
Redis) and queued; one task reports the queue to the board in order, all that is queued in one
report (at most ``REPORT_BATCH`` events). A busy instance sees events (a successful create is
one) faster than one round trip each: sent one at a time, the queue grew for as long as the
load lasted, then went on costing a round trip per event after it, and held ``flush`` (a
drain's answer, every refresh) behind the backlog. When another instance changes the board (a
bus notice) or every ``BOARD_REFRESH`` seconds, the board is read back and adopted, once the
queue is empty so a read cannot undo a change of ours still on its way. While Redis is away,
events are logged and dropped: each instance keeps routing on what it sees itself, and the
board catches up with the next events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.exceptions import RedisError

from monitoring.board import Change, HealthBoard, HealthEvent
from monitoring.health import ProviderHealth

log = logging.getLogger(__name__)

BOARD_REFRESH = 5.0  # seconds between reads of the board without a notice
REPORT_BATCH = 256  # events in one report at most: one script run of a few hundred commands


def _raise_if_cancelling() -> None:
    # redis-py may turn a cancellation mid-command into a connection error, or swallow it; a
    # loop must not outlive its cancel() (router.fleet.bus.raise_if_cancelling says more).
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class HealthSync:
    __slots__ = ("_board", "_changed", "_health", "_providers", "_queue", "_tasks")

    def __init__(
        self, health: ProviderHealth, board: HealthBoard, providers: Callable[[], list[str]]
    ) -> None:
        self._health = health
        self._board = board
        self._providers = providers
        self._queue: asyncio.Queue[HealthEvent] = asyncio.Queue()
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Put this instance's providers on the board, adopt it, then keep both in step."""
        for name in self._providers():
            self._queue.put_nowait(HealthEvent(change=Change.TRACK, provider=name))
        self._health.forward = self._queue.put_nowait
        loop = asyncio.get_running_loop()
        self.keep(loop.create_task(self._report(), name="health-report"))
        await self.flush()
        await self.refresh()
        self.keep(loop.create_task(self._refresher(), name="health-refresh"))

    async def stop(self) -> None:
        self._health.forward = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def keep(self, task: asyncio.Task[None]) -> None:
        """Hold ``task`` until it ends (``stop`` cancels it)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def changed(self, provider: str) -> None:
        """A bus notice: some instance changed the board."""
        self._changed.set()

    async def flush(self) -> None:
        """Return once every event queued so far is on the board (or was dropped)."""
        await self._queue.join()

    async def refresh(self) -> None:
        await self.flush()
        self._health.adopt(await self._board.read(self._providers()))

    async def _report(self) -> None:
        queue = self._queue
        while True:
            _raise_if_cancelling()
            events = [await queue.get()]
            while len(events) < REPORT_BATCH and not queue.empty():
                events.append(queue.get_nowait())
            try:
                await self._board.report(*events)
            except (RedisError, OSError) as exc:
                _raise_if_cancelling()
                first = events[0]
                log.warning(
                    "health: %d change(s) not shared, the first a %s of %s (%r)",
                    len(events),
                    first.change.value,
                    first.provider,
                    exc,
                )
            finally:
                for _ in events:
                    queue.task_done()

    async def _refresher(self) -> None:
        while True:
            _raise_if_cancelling()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(BOARD_REFRESH):
                    await self._changed.wait()
            self._changed.clear()
            try:
                await self.refresh()
            except (RedisError, OSError) as exc:
                _raise_if_cancelling()
                log.warning("health: the shared board could not be read (%r)", exc)
