"""Downstream request counts and latency, kept in plain Python numbers on the loop thread.

Every client request records one sample. ``prometheus_client``'s ``Counter.inc`` and
``Histogram.observe`` take a lock each and the histogram walks its buckets in Python; at tens
of thousands of requests a second that is a measurable share of a poll's cost. Here a sample
is a dict lookup, a bisect and three additions, and the series are built only when Prometheus
scrapes (``collect``), with the same names, labels and buckets the client library would give.

Single-threaded by design: samples and scrapes both run on the event loop.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)


class _Latency:
    __slots__ = ("buckets", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size  # per bucket, not cumulative; the last is +Inf
        self.total = 0.0


class RequestStats:
    """``<prefix>requests_total{route,status}`` and ``<prefix>request_duration_seconds{route}``."""

    __slots__ = ("_bounds", "_counts", "_latency", "_prefix")

    def __init__(self, prefix: str, bounds: Sequence[float]) -> None:
        self._prefix = prefix
        self._bounds = tuple(bounds)
        self._counts: dict[tuple[str, int], int] = {}
        self._latency: dict[str, _Latency] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        latency = self._latency.get(route)
        if latency is None:
            latency = self._latency[route] = _Latency(len(self._bounds) + 1)
        latency.buckets[bisect.bisect_left(self._bounds, seconds)] += 1
        latency.total += seconds

    def collect(self) -> Iterator[Metric]:
        counts = CounterMetricFamily(
            self._prefix + "requests",
            "Downstream requests by route and status.",
            labels=["route", "status"],
        )
        for (route, status), value in self._counts.items():
            counts.add_metric([route, str(status)], value)
        yield counts
        latency = HistogramMetricFamily(
            self._prefix + "request_duration_seconds",
            "Downstream request latency.",
            labels=["route"],
        )
        edges = [*(_edge(b) for b in self._bounds), "+Inf"]
        for route, series in self._latency.items():
            running, cumulative = 0, []
            for edge, count in zip(edges, series.buckets, strict=True):
                running += count
                cumulative.append((edge, running))
            latency.add_metric([route], cumulative, series.total)
        yield latency


def _edge(bound: float) -> str:
    """A bucket's ``le`` as prometheus_client writes it (``0.005``, ``1.0``)."""
    return repr(float(bound))
