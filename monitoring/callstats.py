"""Counts and latencies kept in plain Python numbers on the loop thread: downstream requests,
upstream calls, and the queue wait of every attempt.

All are recorded on the hot path, once per call or per create. ``prometheus_client``'s
``Counter.inc`` and ``Histogram.observe`` take a lock each and the histogram walks its buckets
in Python; at tens of thousands of calls a second that is a measurable share of a poll's cost,
and ``python -m bench.ab`` put the labelled queue-wait histogram alone at ~2% of a create's
CPU. Here a sample is a dict lookup or two, a bisect and a few additions, and the series are
built only when Prometheus scrapes (``collect``), with the names, labels and buckets the client
library would give: ``Latencies`` is a histogram over ``labels``; ``CountedLatency`` adds a
counter ``<name>_total`` over ``labels + (extra,)``, and hands out one key's ``Calls`` to a
caller that always records under that key (a route's handler wrapper), which then skips the
key's lookup.

Single-threaded by design: samples and scrapes both run on the event loop.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric


class _Latency:
    __slots__ = ("buckets", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size  # per bucket, not cumulative; the last is +Inf
        self.total = 0.0


def _histogram(
    name: str,
    documentation: str,
    labels: Sequence[str],
    bounds: Sequence[float],
    series: Iterable[tuple[tuple[str, ...], _Latency]],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    edges = [*(repr(float(b)) for b in bounds), "+Inf"]  # as prometheus_client
    for key, latency in series:
        running, cumulative = 0, []
        for edge, count in zip(edges, latency.buckets, strict=True):
            running += count
            cumulative.append((edge, running))
        family.add_metric(list(key), cumulative, latency.total)
    return family


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
        yield _histogram(
            self._name, self._documentation, self._labels, self._bounds, self._series.items()
        )


class Calls:
    """The calls under one key of a ``CountedLatency``: how many ended each way, and how long
    they took. A caller that always records under the same key (a route's handler wrapper)
    holds this and skips the lookup of its key."""

    __slots__ = ("_bounds", "_first", "counts", "latency")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds, self._first = bounds, bounds[0]
        self.counts: dict[object, int] = {}
        self.latency = _Latency(len(bounds) + 1)

    def observe(self, extra: object, seconds: float) -> None:
        """One call ending as ``extra``."""
        counts = self.counts
        counts[extra] = counts.get(extra, 0) + 1
        latency = self.latency
        # most requests end within the first bucket (a poll: well under a millisecond)
        if seconds <= self._first:
            latency.buckets[0] += 1
        else:
            latency.buckets[bisect.bisect_left(self._bounds, seconds)] += 1
        latency.total += seconds


class CountedLatency:
    """A counter of calls by ``labels`` and one more label, and a latency histogram by
    ``labels``; e.g. requests by (route) and status, upstream calls by (provider, operation)
    and outcome."""

    __slots__ = ("_bounds", "_counter", "_extra", "_histogram", "_labels", "_series")

    def __init__(
        self,
        counter: tuple[str, str],  # name (without _total), help
        histogram: tuple[str, str],  # name, help
        labels: Sequence[str],
        extra: str,
        bounds: Sequence[float],
    ) -> None:
        self._counter, self._histogram = counter, histogram
        self._labels, self._extra = list(labels), extra
        self._bounds = tuple(bounds)
        self._series: dict[tuple[str, ...], Calls] = {}

    def calls(self, key: tuple[str, ...]) -> Calls:
        """The calls under ``key`` (the values of ``labels``), to record into; exported from
        its first call on."""
        calls = self._series.get(key)
        if calls is None:
            calls = self._series[key] = Calls(self._bounds)
        return calls

    def observe(self, key: tuple[str, ...], extra: object, seconds: float) -> None:
        """One call under ``key`` ending as ``extra``."""
        self.calls(key).observe(extra, seconds)

    def collect(self) -> Iterator[Metric]:
        counts = CounterMetricFamily(*self._counter, labels=[*self._labels, self._extra])
        for key, calls in self._series.items():
            for extra, value in calls.counts.items():
                counts.add_metric([*key, str(extra)], value)
        yield counts
        yield _histogram(
            *self._histogram,
            self._labels,
            self._bounds,
            ((key, calls.latency) for key, calls in self._series.items() if calls.counts),
        )
