"""``kill -9`` of the proxy mid-render loses nothing (issue 2, point 2).

The proxy runs as a real subprocess (``python -m router serve``); the upstream is a simulator in
this test process on a manual clock, so every render is provably still in flight when the proxy
dies and finishes only when the test advances the clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from providers.simulator.server import Simulator
from providers.simulator.settings import SimulationSettings
from tests.clock import ManualClock
from tests.conftest import ALICE, wait_for
from tests.proxy_process import ProxyProcess, start_proxy_process

RENDER_SECONDS = 30.0


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Simulator, ManualClock]]:
    clock = ManualClock()
    sim = Simulator(
        SimulationSettings(render_seconds=RENDER_SECONDS), api_key="sk-upstream", clock=clock
    )
    await sim.start()
    yield sim, clock
    await sim.stop()


def write_config(tmp_path: Path, upstream_url: str) -> Path:
    config = {
        "server": {"host": "127.0.0.1", "poll_after_ms": 50},
        "store": {"path": str(tmp_path / "jobs.db")},
        "keys": [{"name": "alice", "key": ALICE}],
        "providers": [
            {
                "name": "upstream",
                "kind": "openai",
                "base_url": f"{upstream_url}/v1",
                "api_key": "sk-upstream",
                "poll_interval": 0.05,
                "timeout": 5,
                "models": {"sora-2": {"price_per_second": 0.1}},
            }
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def test_kill_9_mid_render_then_restart_completes_every_job(
    tmp_path: Path, upstream: tuple[Simulator, ManualClock]
) -> None:
    sim, clock = upstream
    config = write_config(tmp_path, sim.base_url)
    headers = {"Authorization": f"Bearer {ALICE}"}

    proxy = await start_proxy_process(config)
    url = proxy.url
    try:
        async with aiohttp.ClientSession(headers=headers) as http:
            ids = []
            for n in range(4):
                async with http.post(f"{url}/v1/videos", json={"prompt": f"take {n}"}) as r:
                    assert r.status == 200
                    ids.append((await r.json())["id"])
            clock.now += RENDER_SECONDS / 2  # all four are rendering, none finished
            proxy.kill_9()
            assert sim.stats.creates_accepted == 4

            proxy = ProxyProcess(config, int(url.rsplit(":", 1)[1]))  # same port, same file
            await proxy.ready()
            for video_id in ids:
                async with http.get(f"{url}/v1/videos/{video_id}") as r:
                    assert r.status == 200
                    assert (await r.json())["status"] in ("queued", "in_progress")
            clock.now += RENDER_SECONDS

            async def all_completed() -> bool:
                for video_id in ids:
                    async with http.get(f"{url}/v1/videos/{video_id}") as r:
                        if (await r.json())["status"] != "completed":
                            return False
                return True

            await wait_for(all_completed, within=15)
            for video_id in ids:
                async with http.get(f"{url}/v1/videos/{video_id}/content") as r:
                    assert r.status == 200
                    assert r.headers["Content-Type"] == "video/mp4"
                    assert len(await r.read()) == sim.settings.video_bytes
            assert sim.stats.creates_accepted == 4  # nothing was rendered twice
    finally:
        await proxy.stop()
