"""``kill -9`` of the proxy mid-render loses nothing (issue 2, point 2).

The proxy runs as a real subprocess (``python -m router serve``); the upstream is a simulator in
this test process on a manual clock, so every render is provably still in flight when the proxy
dies and finishes only when the test advances the clock.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from providers.simulation import SimulationSettings
from providers.simulator import Simulator
from tests.conftest import ALICE, wait_for

ROOT = Path(__file__).resolve().parent.parent
RENDER_SECONDS = 30.0


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Simulator, ManualClock]]:
    clock = ManualClock()
    sim = Simulator(
        SimulationSettings(render_seconds=RENDER_SECONDS), api_key="sk-upstream", clock=clock
    )
    await sim.start()
    yield sim, clock
    await sim.stop()


def write_config(tmp_path: Path, upstream_url: str, port: int) -> Path:
    config = {
        "server": {"host": "127.0.0.1", "port": port, "poll_after_ms": 50},
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


async def start_proxy_process(config: Path, url: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(  # noqa: ASYNC220 - a Popen returns at once; nothing blocks
        [
            sys.executable,
            "-m",
            "router",
            "--log-level",
            "warning",
            "serve",
            "--config",
            str(config),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    async def ready() -> bool:
        assert process.poll() is None, "proxy exited"
        try:
            async with aiohttp.ClientSession() as s, s.get(f"{url}/readyz") as r:
                return r.status == 200
        except aiohttp.ClientConnectionError:
            return False

    await wait_for(ready, within=20)
    return process


async def test_kill_9_mid_render_then_restart_completes_every_job(
    tmp_path: Path, upstream: tuple[Simulator, ManualClock]
) -> None:
    sim, clock = upstream
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = write_config(tmp_path, sim.base_url, port)
    headers = {"Authorization": f"Bearer {ALICE}"}

    process = await start_proxy_process(config, url)
    try:
        async with aiohttp.ClientSession(headers=headers) as http:
            ids = []
            for n in range(4):
                async with http.post(f"{url}/v1/videos", json={"prompt": f"take {n}"}) as r:
                    assert r.status == 200
                    ids.append((await r.json())["id"])
            clock.now += RENDER_SECONDS / 2  # all four are rendering, none finished
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            assert sim.stats.creates_accepted == 4

            process = await start_proxy_process(config, url)
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
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(process.wait, 10)
