"""Counted latencies kept in plain Python numbers on the loop thread: downstream requests and
upstream calls.

Both are recorded once per call on the hot path. ``prometheus_client``'s ``Counter.inc`` and
``Histogram.observe`` take a lock each and the histogram walks its buckets in Python; at tens
of thousands of calls a second that is a measurable share of a poll's cost. Here a sample is
two dict lookups, a bisect and three additions, and the series are built only when
Prometheus scrapes (``collect``), with the same names, labels and buckets the client library
would give: a counter ``<name>_total`` over ``labels + (extra,)`` and a histogram over
``labels``.

Single-threaded by design: samples and scrapes both run on the event loop.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric


class _Latency:
    __slots__ = ("buckets", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size  # per bucket, not cumulative; the last is +Inf
        self.total = 0.0


class CountedLatency:
    """A counter of calls by ``labels`` and one more label, and a latency histogram by
    ``labels``; e.g. requests by (route) and status, upstream calls by (provider, operation)
    and outcome."""

    __slots__ = ("_bounds", "_counter", "_counts", "_histogram", "_labels", "_latency")

    def __init__(
        self,
        counter: tuple[str, str],  # name (without _total), help
        histogram: tuple[str, str],  # name, help
        labels: Sequence[str],
        extra: str,
        bounds: Sequence[float],
    ) -> None:
        self._counter = counter
        self._histogram = histogram
        self._labels = (*labels, extra)
        self._bounds = tuple(bounds)
        self._counts: dict[tuple[tuple[str, ...], object], int] = {}
        self._latency: dict[tuple[str, ...], _Latency] = {}

    def observe(self, key: tuple[str, ...], extra: object, seconds: float) -> None:
        """One call under ``key`` (the values of ``labels``) ending as ``extra``."""
        counted = (key, extra)
        self._counts[counted] = self._counts.get(counted, 0) + 1
        latency = self._latency.get(key)
        if latency is None:
            latency = self._latency[key] = _Latency(len(self._bounds) + 1)
        latency.buckets[bisect.bisect_left(self._bounds, seconds)] += 1
        latency.total += seconds

    def collect(self) -> Iterator[Metric]:
        counts = CounterMetricFamily(*self._counter, labels=self._labels)
        for (key, extra), value in self._counts.items():
            counts.add_metric([*key, str(extra)], value)
        yield counts
        latency = HistogramMetricFamily(*self._histogram, labels=self._labels[:-1])
        edges = [*(repr(float(b)) for b in self._bounds), "+Inf"]  # as prometheus_client
        for key, series in self._latency.items():
            running, cumulative = 0, []
            for edge, count in zip(edges, series.buckets, strict=True):
                running += count
                cumulative.append((edge, running))
            latency.add_metric(list(key), cumulative, series.total)
        yield latency
