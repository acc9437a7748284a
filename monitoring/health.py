"""Provider health: outcome statistics, 429 cooldowns, drains, outlier ejection and probes.

``ProviderHealth`` is the one place the router reports what happened at a provider and asks
whether it may be used. It keeps, per provider, exponentially weighted averages of submit
latency and render time, a sliding success rate of renders (for expected-cost routing), the
429 cooldown (``Retry-After``; never a health signal), the admin drain, and delegates ejection
to the ``OutlierDetector``. ``HealthChecker`` runs the active probes: free calls only
(``Provider.probe``: a list or a status read), never a render.

Everything but the two averages is the health board's (``monitoring.board``): each change is a
``HealthEvent``, applied here at once and handed to ``forward`` when set, so a fleet can put it
on the shared board; ``adopt`` takes the shared entries back. On its own, a ``ProviderHealth``
is the in-process ``HealthBoard`` (``report`` and ``read``).

This module must not import from ``router``; time is passed in or read from an injected clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from monitoring.board import Change, HealthEvent, SharedView
from monitoring.outlier import OutlierDetector, OutlierSettings, ProviderOutliers
from providers.base import Provider, ProviderError

log = logging.getLogger(__name__)

EWMA_ALPHA = 0.3  # weight of the newest sample
SUCCESS_WINDOW = 20  # render outcomes behind the success rate


@dataclass(slots=True)
class ProviderStats:
    submit_latency: float | None = None  # EWMA, seconds
    render_time: float | None = None  # EWMA, seconds from submit to completion
    renders: deque[bool] = field(default_factory=lambda: deque(maxlen=SUCCESS_WINDOW))
    cooling_until: float = 0.0  # after a 429, not used before this

    @property
    def success_rate(self) -> float:
        """Render success rate with one optimistic prior success, so a new provider starts at 1."""
        return (self.renders.count(True) + 1) / (len(self.renders) + 1)


def _ewma(old: float | None, sample: float) -> float:
    return sample if old is None else old + EWMA_ALPHA * (sample - old)


class ProviderHealth:
    """Outcomes in, usability out, for every configured provider."""

    __slots__ = ("_clock", "_drained", "_stats", "forward", "outliers")

    def __init__(
        self, providers: list[str], settings: OutlierSettings, clock: Callable[[], float]
    ) -> None:
        self._clock = clock
        self._stats = {name: ProviderStats() for name in providers}
        self._drained: set[str] = set()
        self.outliers = OutlierDetector(providers, settings)
        self.forward: Callable[[HealthEvent], None] | None = None  # to a shared board

    def track(self, providers: list[str]) -> None:
        """Start keeping statistics for providers added by a config reload."""
        for name in providers:
            self._post(HealthEvent(change=Change.TRACK, provider=name))

    def stats(self, provider: str) -> ProviderStats:
        return self._stats[provider]

    def submitted(self, provider: str, ok: bool, latency: float) -> None:
        """A create answered (``ok``) or failed for a provider reason (not 429, not moderation)."""
        if ok:
            s = self._stats[provider]
            s.submit_latency = _ewma(s.submit_latency, latency)
            if self.forward is None:  # what ``apply`` does with it, without an event per create
                self.outliers.record(provider, True, self._clock())
                return
        self._post(HealthEvent(change=Change.OUTCOME, provider=provider, ok=ok, at=self._clock()))

    def rendered(self, provider: str, ok: bool, seconds: float | None = None) -> None:
        """A render finished, failed, stalled or expired for a provider reason."""
        s = self._stats[provider]
        if ok and seconds is not None:
            s.render_time = _ewma(s.render_time, seconds)
        now = self._clock()
        self._post(
            HealthEvent(change=Change.OUTCOME, provider=provider, ok=ok, at=now, render=True)
        )

    def cool(self, provider: str, retry_after: float | None) -> None:
        """A 429: skip the provider for ``retry_after`` seconds (1 s when it did not say)."""
        until = self._clock() + (retry_after or 1.0)
        self._post(HealthEvent(change=Change.COOLDOWN, provider=provider, at=until))

    def cooling(self, provider: str) -> bool:
        return self._stats[provider].cooling_until > self._clock()

    def cooling_for(self, provider: str) -> float:
        """Seconds of cooldown left (0 when not cooling)."""
        return max(0.0, self._stats[provider].cooling_until - self._clock())

    def ejected(self, provider: str) -> bool:
        return self.outliers.ejected(provider)

    def drain(self, provider: str, drained: bool) -> None:
        """Stop (or resume) sending new renders to ``provider``."""
        self._post(HealthEvent(change=Change.DRAIN, provider=provider, drained=drained))

    def drained(self, provider: str) -> bool:
        return provider in self._drained

    async def probe(self, name: str, adapter: Provider) -> bool:
        """One free call to ``adapter``; its result goes to the outlier detector."""
        try:
            await adapter.probe()
        except ProviderError as exc:
            log.info("probe of %s failed (%r)", name, exc)
            ok = False
        else:
            ok = True
        self._post(HealthEvent(change=Change.PROBE, provider=name, ok=ok, at=self._clock()))
        return ok

    # -- the board -------------------------------------------------------------------------

    def _post(self, event: HealthEvent) -> None:
        self.apply(event)
        if self.forward is not None:
            self.forward(event)

    def apply(self, event: HealthEvent) -> None:
        """Fold ``event`` into this process's record (nothing is forwarded)."""
        name = event.provider
        if name not in self._stats:
            self._stats[name] = ProviderStats()
            self.outliers.track([name])
        change = event.change
        if change is Change.OUTCOME:
            if event.render:
                self._stats[name].renders.append(event.ok)
            self.outliers.record(name, event.ok, event.at)
        elif change is Change.PROBE:
            self.outliers.probed(name, event.ok, event.at)
        elif change is Change.COOLDOWN:
            s = self._stats[name]
            s.cooling_until = max(s.cooling_until, event.at)
        elif change is Change.DRAIN:
            if event.drained:
                self._drained.add(name)
            else:
                self._drained.discard(name)

    def view(self, provider: str) -> SharedView:
        """``provider``'s board entry as this process sees it."""
        stats, rec = self._stats.get(provider), self.outliers.find(provider)
        if stats is None or rec is None:
            return SharedView(drained=provider in self._drained)
        return SharedView(
            consecutive=rec.consecutive,
            outcomes=tuple(rec.outcomes),
            renders=tuple(stats.renders),
            ejections=rec.ejections,
            ejected_until=rec.ejected_until,
            cooling_until=stats.cooling_until,
            drained=provider in self._drained,
        )

    def adopt(self, views: Mapping[str, SharedView]) -> None:
        """Take the shared board's entries as this process's own (a fleet's refresh)."""
        for name, view in views.items():
            stats = self._stats.get(name)
            if stats is None:
                continue  # not configured here (yet): the next refresh after a reload has it
            stats.renders.clear()
            stats.renders.extend(view.renders)
            stats.cooling_until = max(stats.cooling_until, view.cooling_until)
            self.outliers.adopt(
                name,
                ProviderOutliers(
                    consecutive=view.consecutive,
                    outcomes=deque(view.outcomes),
                    ejections=view.ejections,
                    ejected_until=view.ejected_until,
                ),
            )
            if view.drained:
                self._drained.add(name)
            else:
                self._drained.discard(name)

    async def report(self, *events: HealthEvent) -> None:
        for event in events:
            self.apply(event)

    async def read(self, providers: Collection[str]) -> Mapping[str, SharedView]:
        return {name: self.view(name) for name in providers}


class HealthChecker:
    """Probes every provider each ``interval`` seconds until cancelled.

    ``adapters`` is asked for the providers on every round, so a config reload's additions are
    probed and removed providers are not.

        The first round starts at once (not after one interval) and ``first_round`` is set when
        every provider has been probed once, whatever the outcome; readiness waits for it. A
        hanging probe is bounded by its adapter's timeout, so the first round always ends.
    """

    __slots__ = ("_adapters", "_health", "_interval", "first_round")

    def __init__(
        self,
        health: ProviderHealth,
        adapters: Callable[[], Iterable[tuple[str, Provider]]],
        interval: float,
    ) -> None:
        self._health = health
        self._adapters = adapters
        self._interval = interval
        self.first_round = asyncio.Event()

    async def run(self) -> None:
        while True:
            await asyncio.gather(*(self._probe(name, a) for name, a in self._adapters()))
            self.first_round.set()
            await asyncio.sleep(self._interval)

    async def _probe(self, name: str, adapter: Provider) -> None:
        # A bug in one probe must neither end the loop nor keep readiness off for good.
        try:
            await self._health.probe(name, adapter)
        except Exception:
            log.exception("probe of %s raised", name)
