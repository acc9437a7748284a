"""Counts and latencies kept in plain Python numbers on the loop thread: downstream requests,
upstream calls, and the queue wait of every attempt.

All are recorded on the hot path, once per call or per create. ``prometheus_client``'s
``Counter.inc`` and ``Histogram.observe`` take a lock each and the histogram walks its buckets
in Python; at tens of thousands of calls a second that is a measurable share of a poll's cost,
and ``python -m bench.ab`` put the labelled queue-wait histogram alone at ~2% of a create's
CPU. Here a sample is a dict lookup or two, a bisect and a few additions, and the series are
built only when Prometheus scrapes (``collect``), with the names, labels and buckets the client
library would give: ``Latencies`` is a histogram over ``labels``; ``CountedLatency`` adds a
counter ``<name>_total`` over ``labels + (extra,)``.

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


class Latencies:
    """A histogram of seconds by ``labels``, e.g. queue waits by (provider)."""

    __slots__ = ("_bounds", "_documentation", "_labels", "_name", "_series")

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], bounds: Sequence[float]
    ) -> None:
        self._name, self._documentation = name, documentation
        self._labels = list(labels)
        self._bounds = tuple(bounds)
        self._series: dict[tuple[str, ...], _Latency] = {}

    def observe(self, key: tuple[str, ...], seconds: float) -> None:
        """One sample under ``key`` (the values of ``labels``)."""
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Latency(len(self._bounds) + 1)
        series.buckets[bisect.bisect_left(self._bounds, seconds)] += 1
        series.total += seconds

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labels)
        edges = [*(repr(float(b)) for b in self._bounds), "+Inf"]  # as prometheus_client
        for key, series in self._series.items():
            running, cumulative = 0, []
            for edge, count in zip(edges, series.buckets, strict=True):
                running += count
                cumulative.append((edge, running))
            family.add_metric(list(key), cumulative, series.total)
        yield family


class CountedLatency:
    """A counter of calls by ``labels`` and one more label, and a latency histogram by
    ``labels``; e.g. requests by (route) and status, upstream calls by (provider, operation)
    and outcome."""

    __slots__ = ("_counter", "_counts", "_labels", "_latency")

    def __init__(
        self,
        counter: tuple[str, str],  # name (without _total), help
        histogram: tuple[str, str],  # name, help
        labels: Sequence[str],
        extra: str,
        bounds: Sequence[float],
    ) -> None:
        self._counter = counter
        self._labels = (*labels, extra)
        self._counts: dict[tuple[tuple[str, ...], object], int] = {}
        self._latency = Latencies(*histogram, labels, bounds)

    def observe(self, key: tuple[str, ...], extra: object, seconds: float) -> None:
        """One call under ``key`` (the values of ``labels``) ending as ``extra``."""
        counted = (key, extra)
        self._counts[counted] = self._counts.get(counted, 0) + 1
        self._latency.observe(key, seconds)

    def collect(self) -> Iterator[Metric]:
        counts = CounterMetricFamily(*self._counter, labels=self._labels)
        for (key, extra), value in self._counts.items():
            counts.add_metric([*key, str(extra)], value)
        yield counts
        yield from self._latency.collect()
