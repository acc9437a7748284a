"""The poll plan: when each in-flight job is read next, and since when its render has made no
progress, kept where every instance can see it.

Jobs are planned in *shards* (one per provider: the unit of the poll lease, so one instance
reads all of a provider's jobs and its list sweeps still cover up to a page of them per call).
Whoever creates or fails over a job ``plan``s it; the shard's lease holder ``take``s what is
due, which also pushes those jobs' due time ``hold_for`` seconds on, so a holder that dies
mid-read leaves them due again for its successor, and a live holder is not handed them twice.
After each read the holder plans the job's next one, or ``forget``s it once settled.

``progress`` keeps the stall timer: it stores a job's progress mark (attempt and percent) with
the time it was first seen and answers that time while the mark stays the same, so a takeover
by another instance does not restart the timer.

``LocalPlan`` (one process) and ``router.fleet.redis_plan.RedisPlan`` pass
``tests/contract/test_plan.py``.
"""

from __future__ import annotations

import heapq
from typing import Protocol


class PollPlan(Protocol):
    async def plan(self, shard: str, job_id: str, due: float) -> None: ...

    async def take(self, shard: str, now: float, limit: int, hold_for: float) -> list[str]:
        """Up to ``limit`` job ids due by ``now``, earliest first, each pushed to
        ``now + hold_for``."""
        ...

    async def forget(self, shard: str, job_id: str) -> None: ...

    async def progress(self, shard: str, job_id: str, mark: str, now: float) -> float:
        """Since when ``job_id`` has shown ``mark`` (``now`` when the mark is new)."""
        ...

    async def size(self, shard: str) -> int: ...


class LocalPlan:
    """Per shard: due times (a heap with lazy deletion) and progress marks."""

    __slots__ = ("_due", "_heaps", "_marks")

    def __init__(self) -> None:
        self._due: dict[str, dict[str, float]] = {}
        self._heaps: dict[str, list[tuple[float, str]]] = {}
        self._marks: dict[str, dict[str, tuple[str, float]]] = {}

    async def plan(self, shard: str, job_id: str, due: float) -> None:
        self._due.setdefault(shard, {})[job_id] = due
        heapq.heappush(self._heaps.setdefault(shard, []), (due, job_id))

    async def take(self, shard: str, now: float, limit: int, hold_for: float) -> list[str]:
        due, heap = self._due.get(shard, {}), self._heaps.get(shard, [])
        taken: list[str] = []
        while heap and heap[0][0] <= now and len(taken) < limit:
            at, job_id = heapq.heappop(heap)
            if due.get(job_id) == at:  # not a stale entry
                taken.append(job_id)
        for job_id in taken:
            await self.plan(shard, job_id, now + hold_for)
        return taken

    async def forget(self, shard: str, job_id: str) -> None:
        self._due.get(shard, {}).pop(job_id, None)
        self._marks.get(shard, {}).pop(job_id, None)

    async def progress(self, shard: str, job_id: str, mark: str, now: float) -> float:
        marks = self._marks.setdefault(shard, {})
        seen = marks.get(job_id)
        if seen is not None and seen[0] == mark:
            return seen[1]
        marks[job_id] = (mark, now)
        return now

    async def size(self, shard: str) -> int:
        return len(self._due.get(shard, {}))
