"""Cancel (an extension of ours) and discovery (``/v1/models``, ``/v1/videos/models``)."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from router import appkeys as keys
from router.records.job import JobState
from tests.conftest import (
    ALICE,
    BOB,
    ProxyFactory,
    RunningProxy,
    sim_provider,
    stored_job,
    wait_for,
)
from tests.sim_rig import assert_openai_error


async def call(
    proxy: RunningProxy, method: str, path: str, *, key: str = ALICE, expect: int = 200
) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, f"{proxy.url}{path}", headers={"Authorization": f"Bearer {key}"}
        ) as response,
    ):
        body: dict[str, Any] = await response.json()
        assert response.status == expect, body
        return body


async def test_cancel_stops_a_render_frees_the_key_and_refunds_it(
    proxy_factory: ProxyFactory,
) -> None:
    proxy = await proxy_factory(
        [sim_provider("slow", render_seconds=60)],
        keys=[
            {"name": "alice", "key": ALICE, "max_concurrent": 1, "daily_budget_usd": 1.0},
            {"name": "bob", "key": BOB},
        ],
    )
    video = await proxy.client().videos.create(prompt="a long walk", seconds="4")
    limits = proxy.app[keys.LIMITS]
    usage = limits.usage("alice")
    assert usage is not None and usage.in_flight == 1 and usage.reserved > 0
    cancelled = await call(proxy, "POST", f"/v1/videos/{video.id}/cancel")
    assert cancelled["status"] == "failed"
    assert cancelled["error"]["code"] == "cancelled"
    assert (usage.in_flight, usage.reserved, usage.spent) == (0, 0.0, 0.0)
    assert stored_job(proxy, video.id).state is JobState.FAILED
    # the slot is free again: a second render is admitted
    second = await proxy.client().videos.create(prompt="another walk")
    assert second.status in ("queued", "in_progress")
    again = await call(proxy, "POST", f"/v1/videos/{video.id}/cancel", expect=400)
    assert_openai_error(again, code="video_finished", param="video_id")
    other = await call(proxy, "POST", f"/v1/videos/{second.id}/cancel", key=BOB, expect=404)
    assert_openai_error(other, code="not_found", param="video_id")
    metrics = proxy.app[keys.METRICS].render().decode()
    assert 'outcome="cancelled"' in metrics


async def test_a_cancelled_render_stays_cancelled_when_the_upstream_finishes(
    proxy_factory: ProxyFactory,
) -> None:
    proxy = await proxy_factory([sim_provider("quick", render_seconds=0.5)])
    video = await proxy.client().videos.create(prompt="quick")
    await call(proxy, "POST", f"/v1/videos/{video.id}/cancel")
    sim = proxy.simulator("quick")

    async def upstream_done() -> bool:  # the simulator runs on the wall clock here
        return all(
            job.state_at(time.time(), sim.settings).status.finished for job in sim.jobs.values()
        )

    await wait_for(upstream_done)
    assert stored_job(proxy, video.id).state is JobState.FAILED
    assert (await proxy.client().videos.retrieve(video.id)).error.code == "cancelled"  # type: ignore[union-attr]


async def test_models_list_what_the_key_may_use(proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory(
        [sim_provider("a", price=0.1), sim_provider("b", price=0.2)],
        keys=[
            {"name": "alice", "key": ALICE},
            {"name": "bob", "key": BOB, "models": ["sora-2"]},
        ],
    )
    models = await call(proxy, "GET", "/v1/models")
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["sora-2", "sora-2-pro"]
    assert all(m["object"] == "model" and isinstance(m["created"], int) for m in models["data"])
    listed = await proxy.client(BOB).models.list()
    assert [m.id for m in listed.data] == ["sora-2"]
    videos = await call(proxy, "GET", "/v1/videos/models")
    sora = videos["data"][0]
    assert sora["id"] == "sora-2" and sora["providers"] == 2
    assert sora["features"] == {
        "remix": True,
        "edit": True,
        "extend": True,
        "characters": True,
        "input_reference": True,
    }
    assert sora["price_per_second"] == {"currency": "USD", "min": 0.1, "max": 0.2}
    assert sora["seconds"] == ["4", "8", "10", "12", "15"] and "1280x720" in sora["sizes"]
