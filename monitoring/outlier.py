"""Passive outlier detection: eject a provider whose submits or renders keep failing.

Two detectors, as in Envoy: consecutive failures, and the failure rate over a sliding window of
outcomes once it holds a minimum volume. An ejection lasts ``base_ejection`` times the number of
ejections so far (capped), so a flapping provider stays out longer each time. An ejected provider
returns only when its ejection time is over *and* an active probe has passed since then; a cap on
the ejected share keeps a bad detector from taking the whole fleet down.

Only provider failures are fed here: moderation refusals and 429s are not outlier signals, so
callers never report them. Time is always passed in by the caller, so tests need no clock.
This module must not import from ``router``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class OutlierSettings:
    consecutive_failures: int = 5  # this many failures in a row eject
    failure_rate: float = 0.5  # ... or this share of failures over the window
    window: int = 20  # outcomes kept per provider for the failure rate
    min_volume: int = 10  # the failure rate is judged only over at least this many outcomes
    base_ejection: float = 30.0  # seconds; the n-th ejection lasts n times this
    max_ejection: float = 300.0  # seconds; ejections never last longer
    max_ejected_share: float = 0.7  # never eject more than this share of the providers


@dataclass(slots=True)
class ProviderOutliers:
    """What the detector knows about one provider."""

    consecutive: int = 0
    outcomes: deque[bool] = field(default_factory=deque)  # True: success
    ejections: int = 0
    ejected_until: float | None = None  # set while ejected, until a probe passes after it

    @property
    def failure_rate(self) -> float:
        return self.outcomes.count(False) / len(self.outcomes) if self.outcomes else 0.0


class OutlierDetector:
    """Per-provider outcome records and the ejections they cause."""

    __slots__ = ("_records", "settings")

    def __init__(self, providers: list[str], settings: OutlierSettings) -> None:
        self.settings = settings
        self._records = {name: ProviderOutliers() for name in providers}

    def track(self, providers: list[str]) -> None:
        for name in providers:
            self._records.setdefault(name, ProviderOutliers())

    def record(self, provider: str, ok: bool, now: float) -> None:
        """Fold one submit or render outcome in; may eject the provider."""
        rec = self._records[provider]
        rec.outcomes.append(ok)
        while len(rec.outcomes) > self.settings.window:
            rec.outcomes.popleft()
        rec.consecutive = 0 if ok else rec.consecutive + 1
        if ok or self.ejected(provider):
            return
        s = self.settings
        too_many = rec.consecutive >= s.consecutive_failures
        too_often = len(rec.outcomes) >= s.min_volume and rec.failure_rate >= s.failure_rate
        if (too_many or too_often) and self._room_to_eject():
            rec.ejections += 1
            rec.ejected_until = now + min(s.base_ejection * rec.ejections, s.max_ejection)

    def probed(self, provider: str, ok: bool, now: float) -> None:
        """An active probe's result: a pass after the ejection time readmits the provider."""
        rec = self._records[provider]
        if rec.ejected_until is None:
            if not ok:
                self.record(provider, False, now)
            return
        if ok and now >= rec.ejected_until:
            rec.ejected_until = None
            rec.consecutive = 0
            rec.outcomes.clear()

    def ejected(self, provider: str) -> bool:
        """Ejected until the ejection time is over and a probe has passed after it."""
        return self._records[provider].ejected_until is not None

    def view(self, provider: str) -> ProviderOutliers:
        return self._records[provider]

    def find(self, provider: str) -> ProviderOutliers | None:
        return self._records.get(provider)

    def adopt(self, provider: str, record: ProviderOutliers) -> None:
        """Replace ``provider``'s record with the fleet's shared one."""
        self._records[provider] = record

    def _room_to_eject(self) -> bool:
        ejected = sum(1 for name in self._records if self.ejected(name))
        return (ejected + 1) / len(self._records) <= self.settings.max_ejected_share
