"""The simulated upstream as one server: routes, auth, latency, stats and its lifecycle."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import aiohttp
import pytest

from providers.simulator import server as simulator
from providers.simulator.server import Simulator, SimulatorStats, serve_forever
from providers.simulator.settings import SimulationSettings
from tests.sim_rig import AZURE, BEARER, KEY, PREVIEW, Rig, StartRig, assert_openai_error
from tests.sim_rig import rig as rig  # a fixture
from tests.sim_rig import start_rig as start_rig  # a fixture

# -- auth --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"api-key": KEY}],
    ids=["none", "wrong-key", "no-scheme", "azure-header"],
)
async def test_openai_and_relay_paths_need_the_bearer_key(
    rig: Rig, headers: dict[str, str]
) -> None:
    body, _ = await rig.call("GET", "/v1/videos", headers=headers, expect=401)
    assert_openai_error(body, code="invalid_api_key")
    body, _ = await rig.call(
        "POST", "/v2/videos/generations", json={"prompt": "x"}, headers=headers, expect=401
    )
    assert body["code"] == "invalid_api_key"
    assert rig.sim.stats == SimulatorStats()  # refused before any handler


async def test_without_an_api_key_every_caller_is_let_in(start_rig: StartRig) -> None:
    rig = await start_rig(api_key="")
    await rig.call("POST", "/v1/videos", json={"prompt": "fox"}, headers={})
    await rig.call("GET", "/openai/v1/videos", params=PREVIEW, headers={})


# -- one server --------------------------------------------------------------------------------


async def test_one_job_table_behind_every_dialect(rig: Rig) -> None:
    video = await rig.create()
    seen, _ = await rig.call(
        "GET", f"/openai/v1/videos/{video['id']}", params=PREVIEW, headers=AZURE
    )
    assert seen["id"] == video["id"]
    task, _ = await rig.call(
        "POST", "/v2/videos/generations", json={"prompt": "x", "model": "sora-2"}
    )
    assert (await rig.video(task["task_id"]))["size"] == "1280x720"


async def test_latency_delays_every_answer(start_rig: StartRig) -> None:
    rig = await start_rig(latency=0.05)
    started = time.perf_counter()
    await rig.call("GET", "/v1/videos")
    assert time.perf_counter() - started >= 0.05


# -- stats and lifecycle -----------------------------------------------------------------------


async def test_stats_count_every_request_that_reached_a_handler(start_rig: StartRig) -> None:
    rig = await start_rig(moderation_prompt_words=("blocked",))
    video = await rig.create()
    await rig.call("POST", "/v1/videos", json={"prompt": "blocked"}, expect=400)
    created, _ = await rig.call(
        "POST", "/v2/videos/generations", json={"prompt": "x", "model": "m"}
    )
    await rig.video(video["id"])
    await rig.relay_task(created["task_id"])
    await rig.call("GET", "/openai/v1/videos", params=PREVIEW, headers=AZURE)
    await rig.call("GET", f"/v1/videos/{video['id']}/content", expect=409)
    rig.clock.advance(25)
    await rig.call("GET", f"/v1/videos/{video['id']}/content")
    await rig.call("POST", f"/v1/videos/{video['id']}/remix", json={"prompt": "again"})
    await rig.call("DELETE", f"/v1/videos/{video['id']}")
    assert rig.sim.stats == SimulatorStats(
        creates_received=3,
        creates_accepted=2,
        gets=2,
        lists=1,
        content_downloads=2,
        remixes=1,
        deletes=1,
    )
    assert len(rig.sim.jobs) == 2  # the relay job and the remix


def test_public_surface() -> None:
    assert set(simulator.__all__) == {"Simulator", "SimulatorStats", "serve_forever"}


async def test_start_twice_and_base_url_before_start_are_errors() -> None:
    sim = Simulator(SimulationSettings())
    with pytest.raises(RuntimeError):
        _ = sim.base_url
    url = await sim.start()
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url) and sim.base_url == url
        with pytest.raises(RuntimeError):
            await sim.start()
    finally:
        await sim.stop()


async def test_serve_forever_logs_its_url_and_stops_when_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="providers.simulator.server")
    task = asyncio.create_task(
        serve_forever(SimulationSettings(), host="127.0.0.1", port=0, api_key=KEY)
    )
    messages: list[str] = []
    for _ in range(200):  # start-up takes a few loop turns; poll for it rather than guess
        messages = [
            r.getMessage() for r in caplog.records if r.name == "providers.simulator.server"
        ]
        if messages:
            break
        await asyncio.sleep(0.01)
    url = re.search(r"http://\S+", messages[0])
    assert url is not None
    async with (
        aiohttp.ClientSession() as http,
        http.get(url.group() + "/v1/videos", headers=BEARER) as response,
    ):
        assert response.status == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
