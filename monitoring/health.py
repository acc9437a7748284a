"""Provider health: outcome statistics, 429 cooldowns, outlier ejection and active probes.

``ProviderHealth`` is the one place the router reports what happened at a provider and asks
whether it may be used. It keeps, per provider, exponentially weighted averages of submit
latency and render time, a sliding success rate of renders (for expected-cost routing), the
429 cooldown (``Retry-After``; never a health signal) and delegates ejection to the
``OutlierDetector``. ``HealthChecker`` runs the active probes: free calls only
(``Provider.probe``: a list or a status read), never a render.

This module must not import from ``router``; time is passed in or read from an injected clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from monitoring.outlier import OutlierDetector, OutlierSettings
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

    __slots__ = ("_clock", "_stats", "outliers")

    def __init__(
        self, providers: list[str], settings: OutlierSettings, clock: Callable[[], float]
    ) -> None:
        self._clock = clock
        self._stats = {name: ProviderStats() for name in providers}
        self.outliers = OutlierDetector(providers, settings)

    def track(self, providers: list[str]) -> None:
        """Start keeping statistics for providers added by a config reload."""
        for name in providers:
            self._stats.setdefault(name, ProviderStats())
        self.outliers.track(providers)

    def stats(self, provider: str) -> ProviderStats:
        return self._stats[provider]

    def submitted(self, provider: str, ok: bool, latency: float) -> None:
        """A create answered (``ok``) or failed for a provider reason (not 429, not moderation)."""
        if ok:
            s = self._stats[provider]
            s.submit_latency = _ewma(s.submit_latency, latency)
        self.outliers.record(provider, ok, self._clock())

    def rendered(self, provider: str, ok: bool, seconds: float | None = None) -> None:
        """A render finished, failed, stalled or expired for a provider reason."""
        s = self._stats[provider]
        s.renders.append(ok)
        if ok and seconds is not None:
            s.render_time = _ewma(s.render_time, seconds)
        self.outliers.record(provider, ok, self._clock())

    def cool(self, provider: str, retry_after: float | None) -> None:
        """A 429: skip the provider for ``retry_after`` seconds (1 s when it did not say)."""
        s = self._stats[provider]
        s.cooling_until = max(s.cooling_until, self._clock() + (retry_after or 1.0))

    def cooling(self, provider: str) -> bool:
        return self._stats[provider].cooling_until > self._clock()

    def cooling_for(self, provider: str) -> float:
        """Seconds of cooldown left (0 when not cooling)."""
        return max(0.0, self._stats[provider].cooling_until - self._clock())

    def ejected(self, provider: str) -> bool:
        return self.outliers.ejected(provider)

    async def probe(self, name: str, adapter: Provider) -> bool:
        """One free call to ``adapter``; its result goes to the outlier detector."""
        try:
            await adapter.probe()
        except ProviderError as exc:
            log.info("probe of %s failed (%r)", name, exc)
            ok = False
        else:
            ok = True
        self.outliers.probed(name, ok, self._clock())
        return ok


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
