"""The ``HealthBoard`` contract: one sequence of health events gives the same record in one
process (``ProviderHealth``), in Redis and in a Redis Cluster, and what one instance reports
another reads."""

from __future__ import annotations

import pytest

from monitoring.board import Change, HealthBoard, HealthEvent, SharedView
from monitoring.health import SUCCESS_WINDOW, ProviderHealth
from monitoring.outlier import OutlierSettings
from monitoring.redis_board import RedisBoard
from tests.clock import ManualClock
from tests.contract.conftest import Fleet

PROVIDERS = ["a", "b", "c"]
SETTINGS = OutlierSettings(
    consecutive_failures=3,
    failure_rate=0.5,
    window=6,
    min_volume=4,
    base_ejection=30.0,
    max_ejection=45.0,
    max_ejected_share=0.7,
)
T0 = 1_700_000_000.0


class Boards:
    """Two instances' boards (one object for the in-process board)."""

    def __init__(self, fleet: Fleet) -> None:
        if fleet.kind == "local":
            local = ProviderHealth(PROVIDERS, SETTINGS, ManualClock(T0))
            self.a: HealthBoard = local
            self.b: HealthBoard = local
        else:
            self.a = RedisBoard(fleet.client(), SETTINGS, SUCCESS_WINDOW)
            self.b = RedisBoard(fleet.client(), SETTINGS, SUCCESS_WINDOW)


@pytest.fixture
async def boards(fleet: Fleet) -> Boards:
    found = Boards(fleet)
    await fleet.start()
    for name in PROVIDERS:
        await found.a.report(HealthEvent(change=Change.TRACK, provider=name))
    return found


def outcome(provider: str, ok: bool, at: float = T0, *, render: bool = False) -> HealthEvent:
    return HealthEvent(change=Change.OUTCOME, provider=provider, ok=ok, at=at, render=render)


def probe(provider: str, ok: bool, at: float) -> HealthEvent:
    return HealthEvent(change=Change.PROBE, provider=provider, ok=ok, at=at)


async def test_consecutive_failures_on_two_instances_eject_for_everyone(boards: Boards) -> None:
    await boards.a.report(outcome("a", False))
    await boards.b.report(outcome("a", False))
    view = (await boards.b.read(["a"]))["a"]
    assert (view.consecutive, view.ejected_until) == (2, None)
    await boards.a.report(outcome("a", False, T0 + 1))
    view = (await boards.b.read(["a"]))["a"]
    assert view.ejected_until == pytest.approx(T0 + 1 + 30)
    assert view.ejections == 1
    assert view.outcomes == (False, False, False)


async def test_a_success_resets_the_run(boards: Boards) -> None:
    for ok in (True, True, False, False, True, False, False):
        await boards.a.report(outcome("a", ok))
    view = (await boards.b.read(["a"]))["a"]
    assert view.consecutive == 2


async def test_the_failure_rate_ejects_once_the_window_has_min_volume(boards: Boards) -> None:
    for ok in (True, False, True, False):
        await boards.a.report(outcome("b", ok))
    view = (await boards.b.read(["b"]))["b"]
    assert view.ejected_until == pytest.approx(T0 + 30)
    for ok in (True, True, True, True, True, True):
        await boards.b.report(outcome("c", ok))
    await boards.b.report(outcome("c", False))
    view = (await boards.a.read(["c"]))["c"]
    assert view.outcomes == (True, True, True, True, True, False)  # the window keeps 6
    assert view.ejected_until is None


async def test_a_probe_readmits_only_after_the_ejection_time(boards: Boards) -> None:
    for _ in range(3):
        await boards.a.report(outcome("a", False))
    await boards.b.report(probe("a", True, T0 + 10))
    assert (await boards.a.read(["a"]))["a"].ejected_until is not None
    await boards.b.report(probe("a", True, T0 + 30))
    view = (await boards.a.read(["a"]))["a"]
    assert (view.ejected_until, view.consecutive, view.outcomes) == (None, 0, ())
    for _ in range(3):
        await boards.a.report(outcome("a", False, T0 + 40))
    view = (await boards.b.read(["a"]))["a"]
    assert view.ejections == 2
    assert view.ejected_until == pytest.approx(T0 + 40 + 45)  # 2 x 30, capped at 45


async def test_a_failed_probe_counts_as_a_failure_unless_ejected(boards: Boards) -> None:
    await boards.a.report(probe("b", False, T0))
    assert (await boards.b.read(["b"]))["b"].consecutive == 1


async def test_the_ejected_share_is_capped(boards: Boards) -> None:
    for name in PROVIDERS:
        for _ in range(3):
            await boards.a.report(outcome(name, False))
    views = await boards.b.read(PROVIDERS)
    assert [views[n].ejected_until is not None for n in PROVIDERS] == [True, True, False]


async def test_render_outcomes_keep_the_success_window(boards: Boards) -> None:
    for index in range(SUCCESS_WINDOW + 3):
        await boards.a.report(outcome("c", index % 2 == 0, render=True))
    await boards.b.report(outcome("c", True))  # a submit: not a render
    view = (await boards.b.read(["c"]))["c"]
    assert len(view.renders) == SUCCESS_WINDOW
    assert view.renders[-1] is True
    assert view.renders[-2] is False


async def test_cooldowns_only_grow_and_drains_reach_everyone(boards: Boards) -> None:
    await boards.a.report(HealthEvent(change=Change.COOLDOWN, provider="a", at=T0 + 20))
    await boards.b.report(HealthEvent(change=Change.COOLDOWN, provider="a", at=T0 + 5))
    await boards.b.report(HealthEvent(change=Change.DRAIN, provider="b", drained=True))
    views = await boards.a.read(["a", "b", "unknown"])
    assert views["a"].cooling_until == pytest.approx(T0 + 20)
    assert (views["a"].drained, views["b"].drained) == (False, True)
    assert views["unknown"].outcomes == ()
    await boards.a.report(HealthEvent(change=Change.DRAIN, provider="b", drained=False))
    assert not (await boards.b.read(["b"]))["b"].drained


async def test_a_board_read_round_trips_through_adopt(boards: Boards) -> None:
    """What an instance adopts from the board is what it then reports as its own view."""
    for ok in (False, True, False):
        await boards.a.report(outcome("a", ok, render=True))
    await boards.a.report(HealthEvent(change=Change.DRAIN, provider="c", drained=True))
    shared = await boards.b.read(PROVIDERS)
    mirror = ProviderHealth(PROVIDERS, SETTINGS, ManualClock(T0))
    mirror.adopt({**shared, "not-configured-here": shared["a"]})
    assert {n: mirror.view(n) for n in PROVIDERS} == dict(shared)
    assert mirror.drained("c")
    assert mirror.view("not-configured-here") == SharedView()
    assert await boards.b.read([]) == {}


async def test_one_report_of_many_events_folds_them_as_one_report_each(boards: Boards) -> None:
    """A fleet reports what it saw since its last report in one call (``HealthSync``): the
    record is the one the events give one by one, ejections and the ejected share included."""
    events = [
        outcome("a", True),
        outcome("a", False, render=True),
        outcome("b", False),
        HealthEvent(change=Change.COOLDOWN, provider="b", at=T0 + 9),
        outcome("a", False),
        probe("c", False, T0),
        outcome("a", False, T0 + 2),  # the third in a row: a is ejected
        outcome("b", False),
        outcome("b", False, T0 + 3),  # b too: two of three out, under the 0.7 cap
        outcome("c", False),
        outcome("c", False),  # c's third failure (its probe's first): the cap keeps c in
        probe("a", True, T0 + 40),  # past a's ejection: readmitted
        HealthEvent(change=Change.DRAIN, provider="c", drained=True),
        outcome("a", True, render=True),
    ]
    one_by_one = ProviderHealth(PROVIDERS, SETTINGS, ManualClock(T0))
    for event in events:
        await one_by_one.report(event)

    await boards.a.report(*events)

    assert dict(await boards.b.read(PROVIDERS)) == dict(await one_by_one.read(PROVIDERS))
    views = await boards.b.read(PROVIDERS)
    assert views["a"].ejected_until is None and views["a"].ejections == 1
    assert views["b"].ejected_until == pytest.approx(T0 + 3 + 30)
    assert views["c"].ejected_until is None and views["c"].drained
