"""The routing strategies: the order in which a request's candidates are tried.

Each strategy takes the candidates (already filtered for capability and health) and returns
them in trial order. Ties and spreading are random, from the selector's seeded ``Random``.
Price-aware strategies (``cheapest``, ``balanced``) drop providers without a price for the
request: routing to an unpriced provider would silently assume a price.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from monitoring.health import ProviderHealth
from router.routing.pool import PoolEntry


@dataclass(slots=True, frozen=True)
class Candidate:
    entry: PoolEntry
    upstream_model: str
    price_per_second: float | None


@dataclass(slots=True, frozen=True)
class Context:
    """What a strategy may look at besides the candidates."""

    health: ProviderHealth
    rng: random.Random
    seconds: int
    latency_weight: float  # USD per second of expected time (balanced)


Strategy = Callable[[list[Candidate], Context], list[Candidate]]


def _shuffled(found: list[Candidate], ctx: Context) -> list[Candidate]:
    # Shuffle first, then a stable sort: equal keys end up in random order.
    found = list(found)
    ctx.rng.shuffle(found)
    return found


def _priced(found: list[Candidate], ctx: Context) -> list[Candidate]:
    return [c for c in _shuffled(found, ctx) if c.price_per_second is not None]


def expected_seconds(c: Candidate, ctx: Context) -> float:
    """Submit latency plus render time, from the EWMAs; 0 when unknown, so new ones get tried."""
    stats = ctx.health.stats(c.entry.name)
    return (stats.submit_latency or 0.0) + (stats.render_time or 0.0)


def cheapest(found: list[Candidate], ctx: Context) -> list[Candidate]:
    return sorted(_priced(found, ctx), key=lambda c: c.price_per_second or 0.0)


def fastest(found: list[Candidate], ctx: Context) -> list[Candidate]:
    return sorted(_shuffled(found, ctx), key=lambda c: expected_seconds(c, ctx))


def priority(found: list[Candidate], ctx: Context) -> list[Candidate]:
    return sorted(
        _shuffled(found, ctx), key=lambda c: (c.entry.config.priority, -c.entry.config.weight)
    )


def weighted(found: list[Candidate], ctx: Context) -> list[Candidate]:
    """A weighted random order without replacement (Efraimidis-Spirakis keys)."""
    return sorted(
        found,
        key=lambda c: ctx.rng.random() ** (1.0 / max(c.entry.config.weight, 1e-9)),
        reverse=True,
    )


def balanced_score(c: Candidate, ctx: Context) -> float:
    """Expected cost per successful render plus the expected time, priced by latency_weight."""
    cost = (c.price_per_second or 0.0) * ctx.seconds
    rate = ctx.health.stats(c.entry.name).success_rate
    return cost / rate + ctx.latency_weight * expected_seconds(c, ctx)


def balanced(found: list[Candidate], ctx: Context) -> list[Candidate]:
    return sorted(_priced(found, ctx), key=lambda c: balanced_score(c, ctx))


# What each strategy ordered by, in words, for the log line that says why a provider was chosen.
_EXPLAIN: dict[str, Callable[[Candidate, Context], str]] = {
    "balanced": lambda c, ctx: f"score {balanced_score(c, ctx):.3f}",
    "cheapest": lambda c, ctx: f"${c.price_per_second or 0.0:g}/s",
    "fastest": lambda c, ctx: f"expected {expected_seconds(c, ctx):.1f}s",
    "priority": lambda c, ctx: f"priority {c.entry.config.priority}",
    "weighted": lambda c, ctx: f"weight {c.entry.config.weight:g}",
}


def explain(strategy: str, order: list[Candidate], ctx: Context) -> str:
    """``order`` in the strategy's words: ``balanced: a (score 0.4), then b (score 0.5)``."""
    words = _EXPLAIN[strategy]
    ranked = ", then ".join(f"{c.entry.name} ({words(c, ctx)})" for c in order)
    return f"{strategy}: {ranked}"


STRATEGIES: dict[str, Strategy] = {
    "balanced": balanced,
    "cheapest": cheapest,
    "fastest": fastest,
    "priority": priority,
    "weighted": weighted,
}
