"""Which providers may take a request, in the order to try them.

A provider is a candidate when it serves the requested model at exactly the requested size and
seconds (its own narrowing and the catalogue's), is not ejected by outlier detection, is not
cooling down after a 429, has not been tried for this job yet, and has room under its limits
(``router.limits.local``: renders in flight and creates per minute). The configured strategy
(``router.routing.strategies``) orders them. ``usable`` is the same list before the room
check: when it is not empty but ``candidates`` is, the create waits for room (the
dispatcher's admission queue) instead of failing.

Drained providers (``drain``, from the admin API) take no new renders, not even in panic;
their jobs in flight carry on. Drains are kept by ``ProviderHealth`` (the health board), so a
fleet shares them. ``configure`` takes a reloaded config.

Panic: when the healthy share of the capable providers falls below ``health.panic_threshold``
(or none is healthy), ejection is ignored and every capable provider is a candidate, so a
detector that ejected everyone cannot turn the proxy into a wall of 502s.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Mapping

from monitoring.health import ProviderHealth
from router.config.model import Config, ModelSpec
from router.errors import Unavailable, UpstreamFailed
from router.limits.local import Limits
from router.records.job import Job
from router.routing.pool import PoolEntry, ProviderPool
from router.routing.strategies import STRATEGIES, Candidate, Context, explain

__all__ = ["Candidate", "Selector"]


class Selector:
    __slots__ = (
        "_capable",
        "_catalogue",
        "_contexts",
        "_latency_weight",
        "_limits",
        "_panic_threshold",
        "_pool",
        "_probe_interval",
        "_rng",
        "_strategy",
        "_strategy_name",
        "health",
    )

    def __init__(
        self, pool: ProviderPool, config: Config, health: ProviderHealth, limits: Limits
    ) -> None:
        self._pool = pool
        self._limits = limits
        self._rng = random.Random(config.routing.seed)
        self.health = health
        self.configure(config)

    def configure(self, config: Config) -> None:
        self._catalogue: Mapping[str, ModelSpec] = config.models
        self._capable: dict[tuple[str, str, int], tuple[Candidate, ...]] = {}
        self._contexts: dict[int, Context] = {}  # by seconds; what strategies see is fixed
        self._strategy = STRATEGIES[config.routing.strategy]
        self._strategy_name = config.routing.strategy
        self._panic_threshold = config.health.panic_threshold
        self._probe_interval = config.health.probe_interval
        self._latency_weight = config.routing.latency_weight

    def drain(self, provider: str, drained: bool) -> None:
        """Stop (or resume) sending new renders to ``provider``."""
        self.health.drain(provider, drained)

    def drained(self, provider: str) -> bool:
        return self.health.drained(provider)

    def capable(
        self, model: str, size: str, seconds: int, needs: frozenset[str] = frozenset()
    ) -> tuple[Candidate, ...]:
        """Providers that render exactly this (and whose kind has every feature ``needs``
        names: edit, extend, characters); worked out once per request shape and config
        (``configure`` runs after every reload, so the cache never outlives a pool change)."""
        if needs:
            every = self.capable(model, size, seconds)
            return tuple(c for c in every if needs <= c.entry.adapter.features)
        shape = (model, size, seconds)
        found = self._capable.get(shape)
        if found is None:
            spec = self._catalogue[model]
            found = tuple(
                Candidate(entry, offer.upstream_model, offer.price_for(size))
                for entry in self._pool
                if (offer := entry.config.models.get(model)) is not None
                and offer.supports(size, seconds, spec)
            )
            self._capable[shape] = found
        return found

    def candidates(
        self,
        model: str,
        size: str,
        seconds: int,
        *,
        tried: Collection[str] = (),
        needs: frozenset[str] = frozenset(),
    ) -> list[Candidate]:
        usable = self.usable(model, size, seconds, tried=tried, needs=needs)
        return [c for c in usable if self._limits.has_room(c.entry.name)]

    def usable(
        self,
        model: str,
        size: str,
        seconds: int,
        *,
        tried: Collection[str] = (),
        needs: frozenset[str] = frozenset(),
    ) -> list[Candidate]:
        """Capable, healthy (or panicking), not cooling, not tried; in strategy order."""
        capable = self.capable(model, size, seconds, needs)
        health = self.health
        panic: bool | None = None  # worked out only when some candidate is ejected
        usable: list[Candidate] = []
        for c in capable:
            name = c.entry.name
            if name in tried or health.drained(name) or health.cooling(name):
                continue
            if health.ejected(name):
                if panic is None:
                    panic = self.panicking([c.entry for c in capable])
                if not panic:
                    continue
            usable.append(c)
        return self._strategy(usable, self._context(seconds))

    def why(
        self, order: list[Candidate], model: str, size: str, seconds: int, tried: Collection[str]
    ) -> str:
        """The strategy's reasons for ``order`` (a log line's "why"), and why each capable
        provider outside it is not a candidate."""
        reasons = explain(self._strategy_name, order, self._context(seconds))
        ordered = {c.entry.name for c in order}
        left_out = [
            f"{c.entry.name} {self._left_out_because(c, tried)}"
            for c in self.capable(model, size, seconds)
            if c.entry.name not in ordered
        ]
        return f"{reasons}; not candidates: {', '.join(left_out)}" if left_out else reasons

    def _left_out_because(self, c: Candidate, tried: Collection[str]) -> str:
        name = c.entry.name
        if name in tried:
            return "tried already"
        if self.health.drained(name):
            return "drained"
        if self.health.cooling(name):
            return "cooling down"
        if self.health.ejected(name):
            return "ejected"
        return "unpriced" if c.price_per_second is None else "at its limits"

    def _context(self, seconds: int) -> Context:
        ctx = self._contexts.get(seconds)
        if ctx is None:
            ctx = self._contexts[seconds] = Context(
                health=self.health,
                rng=self._rng,
                seconds=seconds,
                latency_weight=self._latency_weight,
            )
        return ctx

    def unavailable(self, model: str, size: str, seconds: int) -> Unavailable:
        """The 503 for a render every capable provider refuses now, naming each one's state
        (drained, cooling down, ejected), with a ``Retry-After``: the soonest end of a cooldown,
        else the probe interval (a drain or an ejection has no end time; a probe is the
        soonest the proxy would see a provider back)."""
        states: list[str] = []
        waits: list[float] = []
        for c in self.capable(model, size, seconds):
            name = c.entry.name
            if self.health.drained(name):
                states.append(f"{name} is drained")
                waits.append(self._probe_interval)
            elif self.health.cooling(name):
                states.append(f"{name} is cooling down after a 429")
                waits.append(self.health.cooling_for(name))
            else:
                states.append(f"{name} is ejected after failures")
                waits.append(self._probe_interval)
        return Unavailable(
            f"No capable provider can take this render now: {'; '.join(states)}. Retry later.",
            code="providers_unavailable",
            headers={"Retry-After": str(max(1, math.ceil(min(waits, default=1.0))))},
        )

    def panicking(self, entries: Collection[PoolEntry] | None = None) -> bool:
        """Whether too few of ``entries`` (default: all providers) are healthy to route on."""
        pool = list(self._pool) if entries is None else list(entries)
        if not pool:
            return False
        healthy = sum(1 for e in pool if not self.health.ejected(e.name))
        return healthy == 0 or healthy / len(pool) < self._panic_threshold

    def rendering_provider(self, job: Job) -> PoolEntry:
        """The provider holding ``job``'s render (remix and content must use it), or 502."""
        entry = self.configured(job.current.provider)
        if entry is None:
            raise UpstreamFailed("The provider that rendered this video is no longer configured.")
        return entry

    def configured(self, provider: str) -> PoolEntry | None:
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
