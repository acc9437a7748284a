"""The health board: what every instance of a fleet must agree on about each provider.

Outcome windows, consecutive failures, ejections, 429 cooldowns and admin drains decide where
renders go; if each instance kept its own, one would keep sending to a provider another saw
fail or answer 429, and a drain behind a load balancer would reach one instance of N. The board
is the shared record of those facts; every change to it is a ``HealthEvent``.

``HealthBoard`` is the seam: ``report`` folds an event into the record (deciding ejections the
way ``monitoring.outlier`` does), ``read`` returns each provider's ``SharedView``. Two
implementations pass one contract suite (``tests/contract/test_board.py``):
``monitoring.health.ProviderHealth`` (one process: the record is its own state) and
``monitoring.redis_board.RedisBoard`` (a fleet: the record lives in Redis, one Lua script per
report of any number of events). Per-instance figures (latency and render-time averages) are
not on the board: they describe the path from this instance.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Protocol


class Change(Enum):
    OUTCOME = "outcome"  # a submit (render False) or a render (render True) succeeded or failed
    PROBE = "probe"  # an active probe passed or failed
    COOLDOWN = "cooldown"  # a 429: not used before ``at``
    DRAIN = "drain"  # the admin drained (``drained``) or re-enabled the provider
    TRACK = "track"  # the provider is configured (it counts towards the ejected share)


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthEvent:
    change: Change
    provider: str
    ok: bool = True
    at: float = 0.0  # when it happened (unix seconds); for a cooldown, when it ends
    render: bool = False
    drained: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedView:
    """One provider's entry on the board."""

    consecutive: int = 0  # failures in a row
    outcomes: tuple[bool, ...] = ()  # the outlier window, oldest first (True: success)
    renders: tuple[bool, ...] = ()  # render outcomes behind the success rate, oldest first
    ejections: int = 0
    ejected_until: float | None = None  # set while ejected, until a probe passes after it
    cooling_until: float = 0.0
    drained: bool = False


class HealthBoard(Protocol):
    async def report(self, *events: HealthEvent) -> None:
        """Fold ``events`` into the record in order, as one call each would; in a fleet, one
        round trip for them all."""
        ...

    async def read(self, providers: Collection[str]) -> Mapping[str, SharedView]:
        """The entries of ``providers`` (an unknown provider reads as a fresh entry)."""
        ...
