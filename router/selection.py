"""Which providers may take a request, in the order to try them.

A provider is a candidate when it serves the requested model at exactly the requested size
and seconds (its own narrowing and the catalogue's) and has not been tried for this job yet.
Order: ``priority`` (lower first), then price for this request (unpriced last), then name.
Health, capacity and the routing strategies plug in here (issue 4 of the tracker).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from router.config import ModelSpec, ProviderModel
from router.pool import PoolEntry, ProviderPool


@dataclass(slots=True, frozen=True)
class Candidate:
    entry: PoolEntry
    model: ProviderModel
    price_per_second: float | None


class Selector:
    __slots__ = ("_catalogue", "_pool")

    def __init__(self, pool: ProviderPool, catalogue: Mapping[str, ModelSpec]) -> None:
        self._pool = pool
        self._catalogue = catalogue

    def capable(self, model: str, size: str, seconds: int) -> list[Candidate]:
        spec = self._catalogue[model]
        found = []
        for entry in self._pool:
            offer = entry.config.models.get(model)
            if offer is not None and offer.supports(size, seconds, spec):
                found.append(Candidate(entry, offer, offer.price_for(size)))
        return found

    def candidates(
        self, model: str, size: str, seconds: int, *, tried: Collection[str] = ()
    ) -> list[Candidate]:
        found = [c for c in self.capable(model, size, seconds) if c.entry.name not in tried]
        found.sort(key=_order)
        return found

    def pinned(self, provider: str) -> PoolEntry | None:
        """The provider a follow-up (remix, content) must use: the one holding the render."""
        return self._pool.get(provider)

    def renderable(self, model: str, size: str) -> tuple[list[str], list[int]]:
        """Sizes of ``model`` that some provider renders, and the seconds renderable at ``size``.

        When no provider renders ``size`` at all, the seconds are those of any size. Naming the
        seconds at the asked size keeps a 400 from offering a length that would fail again.
        """
        spec = self._catalogue[model]
        sizes = [s for s in spec.sizes if any(self.capable(model, s, n) for n in spec.seconds)]
        at = (size,) if size in sizes else spec.sizes
        seconds = [n for n in spec.seconds if any(self.capable(model, s, n) for s in at)]
        return sizes, seconds


def _order(candidate: Candidate) -> tuple[int, float, str]:
    price = candidate.price_per_second
    return (
        candidate.entry.config.priority,
        float("inf") if price is None else price,
        candidate.entry.name,
    )
