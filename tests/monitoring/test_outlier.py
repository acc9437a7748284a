"""Passive ejection and its end (issue 4, point 5), on explicit times: no clock, no sleeps."""

from __future__ import annotations

from monitoring.outlier import OutlierDetector, OutlierSettings

SETTINGS = OutlierSettings(
    consecutive_failures=3, failure_rate=0.5, window=10, min_volume=6, base_ejection=30.0
)


def detector() -> OutlierDetector:
    return OutlierDetector(["a", "b", "c"], SETTINGS)


def test_consecutive_failures_eject() -> None:
    d = detector()
    for t in range(3):
        d.record("a", False, float(t))
    assert d.ejected("a") and not d.ejected("b")


def test_failure_rate_ejects_only_with_the_minimum_volume() -> None:
    d = detector()
    for t, ok in enumerate([True, False, True, False, True]):
        d.record("a", ok, float(t))
    assert not d.ejected("a")
    d.record("a", False, 5.0)  # 3 of 6 failed
    assert d.ejected("a")


def test_return_needs_the_ejection_time_and_a_passing_probe_and_time_grows() -> None:
    d = detector()
    for _ in range(3):
        d.record("a", False, 0.0)
    d.probed("a", True, 29.0)  # too early
    d.probed("a", False, 31.0)  # in time, but failing
    assert d.ejected("a")
    d.probed("a", True, 31.0)
    assert not d.ejected("a")
    for _ in range(3):
        d.record("a", False, 100.0)
    assert d.view("a").ejected_until == 160.0  # second ejection: twice as long


def test_the_ejected_share_is_capped() -> None:
    d = OutlierDetector(["a", "b"], SETTINGS)  # default-like cap 0.7: one of two
    for name in ("a", "b"):
        for _ in range(3):
            d.record(name, False, 0.0)
    assert [d.ejected("a"), d.ejected("b")] == [True, False]


def test_a_failing_probe_counts_as_a_failure_while_in_service() -> None:
    d = detector()
    for t in range(3):
        d.probed("a", False, float(t))
    assert d.ejected("a")
