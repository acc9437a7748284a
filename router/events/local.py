"""In-process ``JobEvents`` for the SQLite store: one process, so delivery is a function call.

``deliver`` is the synchronous form the SQLite store calls right after it takes a change (no
await on the store's hot path); ``publish`` is the same for callers of the protocol.
"""

from __future__ import annotations

from router.events.base import DEFAULT_LIMIT, Fanout, Subscription
from router.records.event import JobChanged

__all__ = ["LocalJobEvents"]


class LocalJobEvents:
    """Events that reach the subscribers of this process only."""

    __slots__ = ("_fanout",)

    def __init__(self) -> None:
        self._fanout = Fanout()

    def deliver(self, event: JobChanged) -> None:
        self._fanout.deliver(event)

    async def publish(self, event: JobChanged) -> None:
        self._fanout.deliver(event)

    def subscribe(self, *, job_id: str | None = None, limit: int = DEFAULT_LIMIT) -> Subscription:
        return self._fanout.subscribe(job_id, limit)

    def close(self) -> None:
        """End every subscription (shutdown)."""
        self._fanout.close()
