"""ProviderHealth's submit outcomes: the same record whether or not a fleet board listens."""

from __future__ import annotations

from monitoring.board import Change, HealthEvent
from monitoring.health import ProviderHealth
from monitoring.outlier import OutlierSettings
from tests.clock import ManualClock

SETTINGS = OutlierSettings(consecutive_failures=3, failure_rate=0.9, window=10, min_volume=10)
T0 = 1_700_000_000.0
OUTCOMES = [False, False, True, False, False, True, False, False, False]


def test_submit_outcomes_make_the_same_record_alone_and_forwarded() -> None:
    alone = ProviderHealth(["a", "b", "c", "d"], SETTINGS, ManualClock(T0))
    forwarded = ProviderHealth(["a", "b", "c", "d"], SETTINGS, ManualClock(T0))
    heard: list[HealthEvent] = []
    forwarded.forward = heard.append
    for health in (alone, forwarded):
        for ok in OUTCOMES:
            health.submitted("a", ok, 0.5)
    assert alone.view("a") == forwarded.view("a")
    assert alone.view("a").outcomes == tuple(OUTCOMES)
    assert alone.ejected("a")  # the last three failed in a row
    assert alone.stats("a").submit_latency == forwarded.stats("a").submit_latency == 0.5
    # a fleet hears every outcome, successes included
    assert heard == [
        HealthEvent(change=Change.OUTCOME, provider="a", ok=ok, at=T0) for ok in OUTCOMES
    ]


def test_a_success_ends_a_run_of_failures() -> None:
    health = ProviderHealth(["a", "b", "c", "d"], SETTINGS, ManualClock(T0))
    for ok in (False, False, True, False, False):
        health.submitted("a", ok, 0.1)
    assert not health.ejected("a")  # never three in a row
    assert health.view("a").consecutive == 2
