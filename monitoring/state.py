"""Gauges of live state, read when Prometheus scrapes rather than set on every transition.

Provider health, ejections, cooldowns, panic mode, jobs in flight and poller lag all live in
objects the router owns; reading them at scrape time means a gauge can never miss a transition
(an ejection that ends by time has no event to hook). The router hands in a ``read`` callable
returning a ``StateSnapshot``, so this module needs nothing from ``router``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from monitoring.metrics import PREFIX


@dataclass(frozen=True, slots=True)
class ProviderState:
    healthy: bool  # neither ejected nor cooling down
    ejected: bool
    cooling: bool  # after a 429, until its Retry-After
    ejections: int  # ejections since start
    in_flight: int  # renders in flight here: submitted or accepted, not finished


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    providers: Mapping[str, ProviderState]
    panic: bool
    scheduled_polls: int
    overdue_polls: int


class StateCollector:
    """A custom collector: one ``read()`` per scrape, a fixed set of series per provider."""

    def __init__(self, read: Callable[[], StateSnapshot]) -> None:
        self._read = read

    def describe(self) -> list[Metric]:
        # Describing without reading lets the registry check names before the app has started.
        return list(self._families(StateSnapshot({}, False, 0, 0)))

    def collect(self) -> Iterator[Metric]:
        return self._families(self._read())

    def _families(self, s: StateSnapshot) -> Iterator[Metric]:
        per_provider = (
            (
                "provider_healthy",
                "1 when a provider is neither ejected nor cooling down.",
                "healthy",
            ),
            ("provider_ejected", "1 while outlier detection keeps a provider out.", "ejected"),
            ("provider_cooling", "1 while a provider cools down after a 429.", "cooling"),
            ("jobs_in_flight", "Renders in flight by provider (not finished).", "in_flight"),
        )
        for name, doc, attr in per_provider:
            family = GaugeMetricFamily(PREFIX + name, doc, labels=["provider"])
            for provider, state in s.providers.items():
                family.add_metric([provider], float(getattr(state, attr)))
            yield family
        ejections = CounterMetricFamily(
            PREFIX + "provider_ejections", "Outlier ejections since start.", labels=["provider"]
        )
        for provider, state in s.providers.items():
            ejections.add_metric([provider], float(state.ejections))
        yield ejections
        yield GaugeMetricFamily(
            PREFIX + "panic_mode", "1 while too few providers are healthy to route on.", s.panic
        )
        yield GaugeMetricFamily(
            PREFIX + "poller_scheduled_polls", "Status polls waiting or running.", s.scheduled_polls
        )
        yield GaugeMetricFamily(
            PREFIX + "poller_overdue_polls",
            "Status polls not started a second after they were due.",
            s.overdue_polls,
        )
