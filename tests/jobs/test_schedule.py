"""The schedule's backoff after failed reads: doubling, capped, jittered, and never before an
upstream's ``Retry-After``."""

from __future__ import annotations

import random

from router.jobs.schedule import BACKOFF_JITTER, ERROR_BACKOFF_CAP, Schedule


async def _nothing(job_id: str) -> None:
    raise AssertionError("no read is due in these tests")


def schedule(seed: int) -> Schedule:
    return Schedule(_nothing, lambda job_id: None, lambda provider: 1, random.Random(seed))


async def test_jobs_that_failed_together_are_not_read_again_at_one_instant() -> None:
    delays = [schedule(7).backoff(f"job-{n}", 2.0, None) for n in range(50)]
    shared = schedule(7)
    spread = [shared.backoff(f"job-{n}", 2.0, None) for n in range(50)]

    assert all(2.0 * (1 - BACKOFF_JITTER) <= d <= 2.0 for d in spread)
    assert len(set(spread)) == 50  # spread out, not one instant
    assert delays == [delays[0]] * 50  # the same seed draws the same jitter


async def test_backoff_doubles_up_to_the_cap_and_a_retry_after_wins() -> None:
    plan = schedule(3)
    first, second, third = (plan.backoff("job", 2.0, None) for _ in range(3))
    assert 1.6 <= first <= 2.0 and 3.2 <= second <= 4.0 and 6.4 <= third <= 8.0
    for _ in range(10):
        late = plan.backoff("job", 2.0, None)
    assert ERROR_BACKOFF_CAP * (1 - BACKOFF_JITTER) <= late <= ERROR_BACKOFF_CAP
    assert plan.backoff("other", 2.0, 30.0) == 30.0
    plan.succeeded("job")
    assert plan.backoff("job", 2.0, None) <= 2.0  # a success starts the doubling afresh
