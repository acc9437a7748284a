"""``Idempotency`` (router.jobs.idempotency) over each store: one ``Idempotency-Key`` sent to
several instances at once makes one create, because the key is claimed in the store first."""

from __future__ import annotations

import asyncio

import pytest

from router.jobs.idempotency import Idempotency, Submit
from router.records.job import Job
from router.records.request import CreateRequest
from router.store.base import IdempotencyClaim, JobStore
from tests.contract.conftest import Backing
from tests.contract.test_job_store import new_job

REQUEST = CreateRequest("sora-2", "a fox in the snow", "1280x720", 4, None)


def creating(store: JobStore, created: list[str]) -> Submit:
    """A ``submit`` that stores a job under the claimed id, as ``Dispatcher.create`` does,
    after an upstream call that takes a moment (others arrive meanwhile)."""

    async def submit(claim: IdempotencyClaim | None, job_id: str | None) -> Job:
        assert job_id is not None
        created.append(job_id)
        await asyncio.sleep(0.05)  # the upstream create's latency, not a wait for anything
        job = new_job()
        job.id = job_id
        await store.insert(job, None, claim)
        return job

    return submit


async def test_one_key_sent_to_every_instance_at_once_makes_one_job(backing: Backing) -> None:
    stores = [await backing.peer() for _ in range(3)]
    created: list[str] = []

    jobs = await asyncio.gather(
        *(
            Idempotency(store).run("alice", "pay-once", REQUEST, creating(store, created))
            for store in stores
        )
    )

    assert len(created) == 1
    assert {job.id for job in jobs} == set(created)


async def test_a_failed_create_frees_the_key_for_the_next_instance(backing: Backing) -> None:
    first, second = await backing.peer(), await backing.peer()

    async def refuse(claim: IdempotencyClaim | None, job_id: str | None) -> Job:
        raise RuntimeError("the upstream said no")

    with pytest.raises(RuntimeError, match="said no"):
        await Idempotency(first).run("alice", "retry-me", REQUEST, refuse)
    created: list[str] = []
    job = await Idempotency(second).run("alice", "retry-me", REQUEST, creating(second, created))

    assert created == [job.id]
