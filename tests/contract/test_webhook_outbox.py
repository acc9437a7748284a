"""The ``WebhookOutbox`` contract, on SQLite, one Redis and a Redis Cluster: one event per job,
type and URL whoever adds it; each due event claimed by one instance at a time under a lease;
a lapsed lease hands it to another and the lapsed holder can no longer reschedule it; events
outlive the process that queued or claimed them; depth and the oldest event's age."""

from __future__ import annotations

import asyncio

from router.store.outbox import OutboxEvent
from tests.contract.side_stores import SideStores, side

__all__ = ["side"]

LEASE = 30.0
URL = "https://hooks.example.com/a"


def event(
    n: int, *, job: str = "video_1", url: str = URL, kind: str = "video.completed"
) -> OutboxEvent:
    return OutboxEvent(f"evt_{n}", job, kind, url, "alice", b'{"n": %d}' % n, 100.0 + n)


async def test_a_job_has_one_event_per_type_and_url_whoever_adds_it(side: SideStores) -> None:
    a, b = await side.outbox(), await side.outbox()
    # two instances hear the job settle at once, each with an event id of its own
    added = await asyncio.gather(*(outbox.add(event(n)) for n, outbox in enumerate([a, b] * 4)))
    assert sum(added) == 1
    assert await a.add(event(20, kind="video.failed"))
    assert await b.add(event(21, url="https://hooks.example.com/b"))
    assert not await b.add(event(22, url="https://hooks.example.com/b"))
    claimed = await a.claim(now=200.0, lease=LEASE, limit=10)
    winner = added.index(True)
    assert sorted(e.id for e in claimed) == sorted([f"evt_{winner}", "evt_20", "evt_21"])
    assert all(e.claim for e in claimed)


async def test_each_due_event_goes_to_one_claimer(side: SideStores) -> None:
    a, b = await side.outbox(), await side.outbox()
    for n in range(12):
        assert await a.add(event(n, job=f"video_{n}"))
    first, second = await asyncio.gather(
        a.claim(now=200.0, lease=LEASE, limit=12), b.claim(now=200.0, lease=LEASE, limit=12)
    )
    ids = [e.id for e in first + second]
    assert sorted(ids) == sorted(f"evt_{n}" for n in range(12))  # all of them, each once
    assert await a.claim(now=200.0 + LEASE - 1, lease=LEASE, limit=12) == []
    (taken,) = [e for e in first + second if e.id == "evt_3"]
    assert (taken.job_id, taken.type, taken.url, taken.owner) == (
        "video_3",
        "video.completed",
        URL,
        "alice",
    )
    assert (taken.body, taken.created_at, taken.attempts) == (b'{"n": 3}', 103.0, 0)


async def test_claims_are_oldest_due_first_and_bounded(side: SideStores) -> None:
    outbox = await side.outbox()
    for n in (5, 1, 3):
        await outbox.add(event(n, job=f"video_{n}"))
    assert [e.id for e in await outbox.claim(now=200.0, lease=LEASE, limit=2)] == [
        "evt_1",
        "evt_3",
    ]
    assert [e.id for e in await outbox.claim(now=200.0, lease=LEASE, limit=2)] == ["evt_5"]
    assert await outbox.claim(now=50.0, lease=LEASE, limit=2) == []  # none due yet


async def test_a_renewed_lease_holds_and_a_lapsed_one_passes_to_another(
    side: SideStores,
) -> None:
    a, b = await side.outbox(), await side.outbox()
    await a.add(event(1))
    (held,) = await a.claim(now=200.0, lease=LEASE, limit=5)
    assert await a.renew(held, until=200.0 + 2 * LEASE)
    assert await b.claim(now=200.0 + LEASE + 1, lease=LEASE, limit=5) == []  # renewed
    (taken,) = await b.claim(now=200.0 + 2 * LEASE, lease=LEASE, limit=5)  # a stopped renewing
    assert taken.id == held.id and taken.claim != held.claim
    # the lapsed holder can neither keep it nor reschedule or end it under the new holder
    assert not await a.renew(held, until=500.0)
    assert not await a.failed(held, due_at=201.0, error="HTTP 500")
    assert not await a.gave_up(held, now=201.0, error="HTTP 500")
    assert await b.claim(now=200.0 + 3 * LEASE - 1, lease=LEASE, limit=5) == []
    assert await b.renew(taken, until=400.0)
    assert await b.pending() == (1, 101.0)


async def test_a_failed_attempt_is_due_again_later_with_one_more_attempt(
    side: SideStores,
) -> None:
    a, b = await side.outbox(), await side.outbox()
    await a.add(event(1))
    (held,) = await a.claim(now=200.0, lease=LEASE, limit=5)
    assert await a.failed(held, due_at=260.0, error="HTTP 500")
    assert not await a.renew(held, until=300.0)  # the claim ended with the attempt
    assert await b.claim(now=259.0, lease=LEASE, limit=5) == []
    (again,) = await b.claim(now=260.0, lease=LEASE, limit=5)
    assert (again.id, again.attempts, again.body) == ("evt_1", 1, held.body)
    assert await b.failed(again, due_at=300.0, error="ClientConnectorError")
    (third,) = await a.claim(now=300.0, lease=LEASE, limit=5)
    assert third.attempts == 2


async def test_delivered_and_given_up_events_leave_the_queue(side: SideStores) -> None:
    a, b = await side.outbox(), await side.outbox()
    for n in (1, 2, 3):
        await a.add(event(n, job=f"video_{n}"))
    assert await b.pending() == (3, 101.0)
    one, two, three = await a.claim(now=200.0, lease=LEASE, limit=5)
    await a.delivered(one, now=201.0)
    assert await b.pending() == (2, 102.0)
    assert await a.gave_up(two, now=202.0, error="HTTP 410")
    assert await b.pending() == (1, 103.0)
    # a lapsed holder that did send it: the receiver has it, so it counts as delivered
    (retaken,) = await b.claim(now=200.0 + LEASE, lease=LEASE, limit=5)
    assert retaken.id == three.id
    await a.delivered(three, now=231.0)
    assert await b.pending() == (0, None)
    assert not await b.failed(retaken, due_at=300.0, error="HTTP 500")
    assert await a.claim(now=10_000.0, lease=LEASE, limit=5) == []
    assert not await a.add(event(9, job="video_1"))  # ended, and still one event for the job


async def test_events_outlive_the_process_that_queued_or_claimed_them(side: SideStores) -> None:
    first = await side.outbox()
    await first.add(event(1, job="video_1"))
    await first.add(event(2, job="video_2"))
    (held, _) = await first.claim(now=200.0, lease=LEASE, limit=1) + [None]
    assert held is not None and held.id == "evt_1"
    # the process dies (or restarts) holding evt_1; another comes up on the same backing
    again = await side.reopen_outbox()
    assert await again.pending() == (2, 101.0)
    (free,) = await again.claim(now=201.0, lease=LEASE, limit=5)
    assert free.id == "evt_2"
    (lapsed,) = await again.claim(now=200.0 + LEASE, lease=LEASE, limit=5)
    assert (lapsed.id, lapsed.body, lapsed.attempts) == ("evt_1", held.body, 0)
    await again.delivered(lapsed, now=231.0)
    await again.delivered(free, now=231.0)
    assert await again.pending() == (0, None)
