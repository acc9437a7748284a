"""``JobChanged``: what every stored change of a job tells its listeners.

One event per stored change of a job (created, progressed, moved to another provider, settled,
deleted), carrying just enough for a listener to decide whether to act: the poll cache keeps a
job's view current, server-sent events and webhooks tell clients, asset copies start at
completion. A listener that needs more reads the job from the store, where ``version`` tells it
whether what it read is at least as new as the event.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.records.job import Job

__all__ = ["DELETED", "JobChanged"]

DELETED = "deleted"  # the status of the event that announces a deleted job


@dataclass(frozen=True, slots=True)
class JobChanged:
    """Job ``id`` reached ``version``, with ``status`` (a ``JobState`` value, or ``DELETED``)
    and ``progress`` (0-100) at that version."""

    id: str
    version: int
    status: str
    progress: int

    @classmethod
    def of(cls, job: Job) -> JobChanged:
        """The event for ``job`` as it is now."""
        return cls(job.id, job.version, job.state.value, job.progress)

    @classmethod
    def deleted(cls, job: Job) -> JobChanged:
        """The event for ``job``'s deletion: one version past the last stored one."""
        return cls(job.id, job.version + 1, DELETED, job.progress)
