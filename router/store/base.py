"""The ``JobStore`` seam: the source of truth for jobs, asynchronous and compare-and-set.

Every implementation (``router.store.sqlite`` for one process, ``router.store.redis`` for a
fleet) passes one contract suite (``tests/contract/test_job_store.py``). Callers can rely on:

* ``read`` returns the job as stored, a copy the caller may change; nothing it changes is seen
  by anyone until ``update`` stores it;
* ``update(job, expected_version=v)`` stores ``job`` only if the stored version is still
  ``v`` (the version the caller read); False means somebody else changed it first (or deleted
  it): re-read, re-decide. Two writers can never both settle a job, and a later write never
  silently wins. A settled job's last update is final;
* ``amend(job, expected_version=v)`` is the one write a settled job takes: bookkeeping that is
  not its state (the asset copy of ``router.assets``), compare-and-set like ``update``; it
  refuses a job whose status would change;
* every stored change (insert, update, amend, delete) is announced once as a ``JobChanged`` on
  the store's job events: an amend too, so a cache of the job (``router.jobs.views``) learns
  that its copy is whole, or gone;
* ``claim_key`` records an ``Idempotency-Key`` for a job atomically, before any upstream call:
  of concurrent claims of one key, in any process, exactly one wins and every caller gets the
  winning record; ``release_key`` frees a claim whose create failed, so a retry may lead;
* ``claim_render`` names which job holds an upstream render (``render_holder``): the first
  claim wins, so two jobs never adopt one render; ``insert`` and ``update`` claim the renders
  of the job's attempts.

A job's ``owner`` and ``created_at`` never change after ``insert``: they key the owner's list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from providers.base import InputReference
from router.records.job import Job

__all__ = [
    "IDEMPOTENCY_TTL",
    "IdempotencyClaim",
    "IdempotencyRecord",
    "JobStore",
    "OwnerPages",
    "WriteHealth",
    "check_page",
    "owned_since",
]

WALK_PAGE = 500  # jobs per page when ``owned_since`` walks an owner's list

IDEMPOTENCY_TTL = 24 * 3600.0  # seconds an Idempotency-Key is remembered


@dataclass(slots=True, frozen=True)
class IdempotencyClaim:
    """An ``Idempotency-Key`` to record with the job about to be inserted for ``owner``."""

    owner: str  # the client key's name: keys of different clients never collide
    key: str
    fingerprint: str  # a hash of the normalised request the key was first used with


@dataclass(slots=True, frozen=True)
class IdempotencyRecord:
    """A remembered ``Idempotency-Key``: which job it created, for which request, when."""

    owner: str
    key: str
    fingerprint: str
    job_id: str
    created_at: float  # by the store's clock

    def row(self) -> tuple[str, str, str, str, float]:
        return (self.owner, self.key, self.fingerprint, self.job_id, self.created_at)


class WriteHealth(Protocol):
    """Whether the store can write right now (issue 15).

    A failed write (a full disk, an I/O error, a Redis that refuses writes: MISCONF, OOM,
    READONLY, or cannot be reached) turns ``writable`` false; it turns true again with the
    next write that succeeds, ``probe_write``'s included. While it is false creates answer 503
    and ``/readyz`` is false (``router.runtime.storewatch`` probes until a write works).
    """

    @property
    def writable(self) -> bool: ...

    async def probe_write(self) -> bool:
        """Make one small real write; whether it worked (and so ``writable``)."""
        ...


class JobStore(WriteHealth, Protocol):
    """Where jobs live; see the module docstring for what callers can rely on."""

    async def read(self, job_id: str) -> Job | None: ...
    async def read_many(self, job_ids: list[str]) -> list[Job]:
        """The stored jobs of ``job_ids``, in order; ids not stored are left out."""
        ...

    async def page(
        self, owner: str, *, after: str | None, limit: int, order: str
    ) -> tuple[list[Job], bool]: ...
    async def unsettled(self) -> list[Job]: ...
    async def insert(
        self,
        job: Job,
        input_reference: InputReference | None = None,
        idempotency: IdempotencyClaim | None = None,
    ) -> None: ...
    async def update(self, job: Job, *, expected_version: int) -> bool: ...
    async def amend(self, job: Job, *, expected_version: int) -> bool: ...
    async def delete(self, job_id: str) -> None: ...
    async def input_reference(self, job_id: str) -> InputReference | None: ...
    async def claim_key(self, claim: IdempotencyClaim, job_id: str) -> IdempotencyRecord: ...
    async def release_key(self, claim: IdempotencyClaim, job_id: str) -> None: ...
    async def claim_render(self, provider: str, upstream_id: str, job_id: str) -> bool: ...
    async def render_holder(self, provider: str, upstream_id: str) -> str | None: ...


def check_page(limit: int, order: str) -> None:
    if limit < 1 or order not in ("asc", "desc"):
        raise ValueError(f"bad page: limit={limit} order={order!r}")


class OwnerPages(Protocol):
    """The part of ``JobStore`` that ``owned_since`` walks."""

    async def page(
        self, owner: str, *, after: str | None, limit: int, order: str
    ) -> tuple[list[Job], bool]: ...


async def owned_since(store: OwnerPages, owner: str, oldest: float) -> AsyncIterator[Job]:
    """``owner``'s jobs newest first, page by page, stopping after the page that reaches back
    past ``oldest`` (``created_at``): what start-up walks to find recent work (copies to
    resume, webhooks to queue, today's spend). Callers filter what they want."""
    after: str | None = None
    while True:
        page, more = await store.page(owner, after=after, limit=WALK_PAGE, order="desc")
        for job in page:
            yield job
        if not more or not page or page[-1].created_at < oldest:
            return
        after = page[-1].id
