"""RetryPolicy, RetryState and RetryBudget (issue 4, point 3), including a property test."""

from __future__ import annotations

import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from router.config.model import RoutingConfig
from router.jobs.retry import AttemptFailure, RetryBudget, RetryDecision, RetryPolicy, RetryState

POLICY = RetryPolicy.from_config(RoutingConfig(max_attempts=3, job_deadline=100.0))


@given(
    attempts=st.integers(min_value=1, max_value=10),
    age=st.floats(min_value=0, max_value=1000),
    failure=st.sampled_from(AttemptFailure),
    moderation_retries=st.booleans(),
)
def test_a_resubmit_never_exceeds_max_attempts_or_the_deadline(
    attempts: int, age: float, failure: AttemptFailure, moderation_retries: bool
) -> None:
    policy = RetryPolicy(
        max_attempts=3,
        job_deadline=100.0,
        stall_timeout=10.0,
        retry_output_moderation=moderation_retries,
    )
    decision = RetryState(policy, attempts, created_at=0.0).decide(failure, age)
    if decision is RetryDecision.RESUBMIT:
        assert attempts + 1 <= policy.max_attempts and age < policy.job_deadline
        assert failure is not AttemptFailure.MODERATION or moderation_retries


def test_output_moderation_is_terminal_by_default() -> None:
    state = RetryState(POLICY, 1, created_at=0.0)
    assert state.decide(AttemptFailure.MODERATION, 1.0) is RetryDecision.FAIL
    assert state.decide(AttemptFailure.STALLED, 1.0) is RetryDecision.RESUBMIT


def test_the_budget_caps_resubmits_as_a_share_of_creates() -> None:
    budget = RetryBudget(ratio=0.5, min_resubmits=1)
    for _ in range(4):
        budget.created(0.0)
    assert [budget.try_spend(1.0) for _ in range(4)] == [True, True, True, False]
    assert budget.try_spend(1000.0)  # the window moved on


def test_the_budget_counts_creates_within_the_window() -> None:
    budget = RetryBudget(ratio=0.5, min_resubmits=0)
    for index in range(1000):
        budget.created(index * 0.001)  # a thousand creates in one second
    budget.created(200.0)
    budget.created(200.5)
    spent = [budget.try_spend(299.0) for _ in range(502)]
    assert spent == [True] * 501 + [False]  # half of 1002 creates
    assert not budget.try_spend(301.5)  # the first second is out of the window, 2 creates left


def test_the_budget_keeps_no_memory_per_create() -> None:
    """A process that never re-submits must not keep a timestamp of every create."""
    budget = RetryBudget()
    for index in range(10_000):  # warm up: the window's worth of seconds exists
        budget.created(index * 0.05)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(10_000, 210_000):  # 200k creates over 10,000 s
            budget.created(index * 0.05)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, grown
