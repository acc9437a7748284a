"""The fleet's message bus: short notices every instance hears (a limit slot freed, shared
health changed, an admin drain or reload), never state.

A notice is a hint to re-read or re-try; what it is about lives in the store (Redis keys), so a
notice lost while an instance reconnects costs a delay, never a wrong decision. ``RedisBus``
delivers over Redis pub/sub (plain PUBLISH is broadcast to every node of a Cluster, so any
node's subscription hears it); one process alone (the sqlite backend) needs no bus. Listeners
are plain callables run on the loop; they must not block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, cast

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Listener = Callable[[str], None]  # called with the notice's text
RECONNECT_DELAY = 0.5  # seconds between subscription attempts while Redis is away


class Bus(Protocol):
    async def publish(self, channel: str, text: str) -> None:
        """Tell every instance (this one too) ``text`` on ``channel``."""
        ...

    def listen(self, channel: str, listener: Listener) -> None:
        """Call ``listener`` with every notice on ``channel`` from now on."""
        ...

    async def start(self) -> None:
        """Begin delivering (after the first ``listen`` calls); returns once subscribed."""
        ...

    async def stop(self) -> None: ...


class _Listeners:
    __slots__ = ("_by_channel",)

    def __init__(self) -> None:
        self._by_channel: dict[str, list[Listener]] = {}

    def add(self, channel: str, listener: Listener) -> None:
        self._by_channel.setdefault(channel, []).append(listener)

    @property
    def channels(self) -> list[str]:
        return list(self._by_channel)

    def deliver(self, channel: str, text: str) -> None:
        for listener in self._by_channel.get(channel, ()):
            try:
                listener(text)
            except Exception:  # one listener's bug must not silence the others
                log.exception("bus listener on %s raised", channel)


class RedisBus:
    """Redis pub/sub: one subscription per instance, re-made after a lost connection."""

    __slots__ = ("_client", "_listeners", "_subscribed", "_task")

    def __init__(self, client: Redis | RedisCluster) -> None:
        self._client = client
        self._listeners = _Listeners()
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def publish(self, channel: str, text: str) -> None:
        await self._client.publish(channel, text)

    def listen(self, channel: str, listener: Listener) -> None:
        self._listeners.add(channel, listener)

    async def start(self) -> None:
        if self._task is None and self._listeners.channels:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="bus")
            await self._subscribed.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            raise_if_cancelling()
            pubsub: PubSub | None = None
            try:
                pubsub = await self._pubsub()
                await pubsub.subscribe(*self._listeners.channels)
                while True:
                    raise_if_cancelling()
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self._subscribed.set()
                    elif message["type"] == "message":
                        self._listeners.deliver(_text(message["channel"]), _text(message["data"]))
            except (RedisError, OSError) as exc:
                raise_if_cancelling()
                log.warning("bus: no subscription (%r); subscribing again", exc)
                await asyncio.sleep(RECONNECT_DELAY)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(RedisError, OSError):
                        # typed from redis-py 8.2 on, untyped before: call it through a cast
                        await cast("Callable[[], Awaitable[None]]", pubsub.aclose)()

    async def _pubsub(self) -> PubSub:
        client = self._client
        if isinstance(client, RedisCluster):
            # A cluster client routes SUBSCRIBE by the channel's slot and needs its slot map
            # first; any one node hears every PUBLISH, so subscribe on the default node.
            await client.initialize()
            return client.pubsub(node=client.get_default_node())
        return client.pubsub()


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that a Redis client turned into an error or swallowed.

    redis-py answers a cancellation in the middle of a command by dropping the connection, and
    what surfaces may be a ``RedisError`` or nothing at all; a loop that goes round again would
    then outlive its ``cancel()`` and hang the shutdown that awaits it. Loops call this at the
    top of every round and after every error they retry.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
