"""Strategies with seeded randomness (issue 4, point 4), over a real pool of simulators."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from typing import Any

from router import appkeys as keys
from router.routing.selection import Selector
from router.routing.strategies import Candidate, Context, balanced, cheapest
from tests.conftest import ProxyFactory, RunningProxy, sim_provider


async def selector_for(
    proxy_factory: ProxyFactory, providers: list[dict[str, Any]], strategy: str
) -> tuple[RunningProxy, Selector]:
    proxy = await proxy_factory(providers, routing={"strategy": strategy, "seed": 42})
    return proxy, proxy.app[keys.SELECTOR]


def first(selector: Selector, seconds: int = 4) -> str:
    return selector.candidates("sora-2", "720x1280", seconds)[0].entry.name


def without_price(selector: Selector, name: str) -> list[Candidate]:
    """The capable candidates with ``name`` unpriced (config cannot express it; a strategy must
    still refuse it rather than assume a price)."""
    found = selector.capable("sora-2", "720x1280", 4)
    return [replace(c, price_per_second=None) if c.entry.name == name else c for c in found]


def context(selector: Selector) -> Context:
    return Context(health=selector.health, rng=random.Random(1), seconds=4, latency_weight=0.001)


async def test_cheapest_picks_the_cheapest_capable_healthy_provider(
    proxy_factory: ProxyFactory,
) -> None:
    _, selector = await selector_for(
        proxy_factory,
        [sim_provider("dear", price=0.3), sim_provider("cheap", price=0.05)],
        "cheapest",
    )
    assert [c.entry.name for c in selector.candidates("sora-2", "720x1280", 4)] == [
        "cheap",
        "dear",
    ]
    for strategy in (cheapest, balanced):
        ordered = strategy(without_price(selector, "cheap"), context(selector))
        assert [c.entry.name for c in ordered] == ["dear"]
    selector.health.outliers.view("cheap").ejected_until = 0.0
    assert first(selector) == "dear"


async def test_fastest_follows_the_ewmas(proxy_factory: ProxyFactory) -> None:
    _, selector = await selector_for(
        proxy_factory, [sim_provider("a"), sim_provider("b")], "fastest"
    )
    health = selector.health
    health.rendered("a", True, 30.0)
    health.rendered("b", True, 10.0)
    assert first(selector) == "b"
    for _ in range(10):
        health.rendered("b", True, 90.0)
    assert first(selector) == "a"


async def test_priority_orders_by_priority_then_weight(proxy_factory: ProxyFactory) -> None:
    _, selector = await selector_for(
        proxy_factory,
        [
            {**sim_provider("low"), "priority": 2},
            {**sim_provider("light"), "priority": 1, "weight": 1},
            {**sim_provider("heavy"), "priority": 1, "weight": 5},
        ],
        "priority",
    )
    names = [c.entry.name for c in selector.candidates("sora-2", "720x1280", 4)]
    assert names == ["heavy", "light", "low"]


async def test_weighted_follows_the_weights_within_a_tolerance(
    proxy_factory: ProxyFactory,
) -> None:
    _, selector = await selector_for(
        proxy_factory,
        [{**sim_provider("one"), "weight": 1}, {**sim_provider("three"), "weight": 3}],
        "weighted",
    )
    picks = Counter(first(selector) for _ in range(4000))
    assert abs(picks["three"] / 4000 - 0.75) < 0.03


async def test_balanced_moves_traffic_away_from_a_provider_whose_success_drops(
    proxy_factory: ProxyFactory,
) -> None:
    _, selector = await selector_for(
        proxy_factory,
        [sim_provider("cheap", price=0.05), sim_provider("dear", price=0.08)],
        "balanced",
    )
    assert first(selector) == "cheap"
    for _ in range(4):
        selector.health.rendered("cheap", False)  # success rate 1/5: 0.05/0.2 > 0.08
    assert [c.entry.name for c in selector.candidates("sora-2", "720x1280", 4)] == [
        "dear",
        "cheap",
    ]


async def test_panic_routes_over_every_capable_provider(proxy_factory: ProxyFactory) -> None:
    _, selector = await selector_for(
        proxy_factory, [sim_provider("a"), sim_provider("b")], "cheapest"
    )
    for name in ("a", "b"):
        selector.health.outliers.view(name).ejected_until = 0.0
    assert selector.panicking()
    assert {c.entry.name for c in selector.candidates("sora-2", "720x1280", 4)} == {"a", "b"}
