"""Whether a job whose attempt ended badly gets a new attempt on another provider.

``RetryPolicy`` is immutable and built once from ``routing``; ``RetryState.decide`` answers for
one job from its attempts so far (so it survives restarts: the job's attempt list is the state);
``RetryBudget`` caps re-submissions as a share of traffic, so an outage cannot double the spend.

Classes of attempt failure (``AttemptFailure``): a provider failure (the render failed for a
non-moderation reason, or its upstream job vanished), a stall (no progress for
``stall_timeout``), an unconfirmed create (sent, never answered, and not in the provider's list
within ``reconcile_window``; decided like a provider failure), and output moderation, terminal
unless ``retry_output_moderation``. A job
past ``job_deadline`` (counted from its creation) is never given another attempt, nor is one
that has used ``max_attempts``.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from router.config.model import RoutingConfig

BUDGET_WINDOW = 300.0  # seconds of traffic the budget looks back over


class AttemptFailure(enum.Enum):
    """Why an accepted attempt ended without the video; the value is the failover ``reason``
    label, in one vocabulary with the create-time reasons (``RATE_LIMITED``, ``SUBMIT_FAILED``)."""

    PROVIDER = "render_failed"  # the upstream failed the render (not moderation) or lost it
    STALLED = "stalled"  # no progress for stall_timeout
    MODERATION = "output_moderated"  # the output was refused by moderation
    UNCONFIRMED = "submit_unconfirmed"  # an unanswered create not found upstream in the window


# The failover counter's ``reason`` for a create refused by one provider and sent to the next:
# a 429, or anything else retryable. An accepted attempt's reasons are ``AttemptFailure``'s.
RATE_LIMITED, SUBMIT_FAILED = "rate_limited", "submit_failed"


class RetryDecision(enum.Enum):
    RESUBMIT = "resubmit"  # a new attempt on a provider not tried yet
    FAIL = "fail"  # settle the job as failed


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    max_attempts: int
    job_deadline: float
    stall_timeout: float
    retry_output_moderation: bool
    reconcile_window: float = 120.0  # how long an unanswered create is looked for upstream

    @classmethod
    def from_config(cls, routing: RoutingConfig) -> RetryPolicy:
        return cls(
            max_attempts=routing.max_attempts,
            job_deadline=routing.job_deadline,
            stall_timeout=routing.stall_timeout,
            retry_output_moderation=routing.retry_output_moderation,
            reconcile_window=routing.reconcile_window,
        )


@dataclass(frozen=True, slots=True)
class RetryState:
    """One job's position against the policy: attempts made and when the job started."""

    policy: RetryPolicy
    attempts: int
    created_at: float

    def past_deadline(self, now: float) -> bool:
        return now >= self.created_at + self.policy.job_deadline

    def decide(self, failure: AttemptFailure, now: float) -> RetryDecision:
        if failure is AttemptFailure.MODERATION and not self.policy.retry_output_moderation:
            return RetryDecision.FAIL
        if self.attempts >= self.policy.max_attempts or self.past_deadline(now):
            return RetryDecision.FAIL
        return RetryDecision.RESUBMIT


class RetryBudget:
    """Re-submissions allowed: ``min_resubmits`` plus ``ratio`` of the jobs created lately.

    Creates are counted by the second (``[second, count]`` pairs), not kept one timestamp each:
    every create passes here, and most processes never re-submit, so a timestamp per create
    would pile up with nothing to trim it. A second counts until all of it is older than
    ``BUDGET_WINDOW``, so at the window's edge up to a second more of creates count.
    """

    __slots__ = ("_created", "_creates", "_resubmits", "min_resubmits", "ratio")

    def __init__(self, *, ratio: float = 0.5, min_resubmits: int = 10) -> None:
        self.ratio = ratio
        self.min_resubmits = min_resubmits
        self._creates: deque[list[int]] = deque()  # [second, creates in it], oldest first
        self._created = 0  # the creates in ``_creates``
        self._resubmits: deque[float] = deque()

    def created(self, now: float) -> None:
        second = int(now // 1)
        creates = self._creates
        if creates and creates[-1][0] == second:
            creates[-1][1] += 1
        else:
            self._forget_creates(now)  # once a second: the window holds BUDGET_WINDOW of them
            creates.append([second, 1])
        self._created += 1

    def try_spend(self, now: float) -> bool:
        """Take one re-submission from the budget; False when it is used up."""
        self._forget_creates(now)
        resubmits = self._resubmits
        while resubmits and resubmits[0] < now - BUDGET_WINDOW:
            resubmits.popleft()
        if len(resubmits) >= self.min_resubmits + self.ratio * self._created:
            return False
        resubmits.append(now)
        return True

    def _forget_creates(self, now: float) -> None:
        creates = self._creates
        while creates and creates[0][0] + 1 <= now - BUDGET_WINDOW:
            self._created -= creates.popleft()[1]
