"""kill -9 during a copy, then a restart: nothing half-written is ever served (acceptance 2).

The proxy runs as a real process (``python -m router serve``) against a simulator in this test
process. One video is copied whole and the proxy stopped; then a second copy is slowed by
``copy_bandwidth`` and the proxy killed with SIGKILL while the copy is half done. After a
restart the first video downloads though the upstream has forgotten it, and the second is
copied again from the start and downloads byte-identical.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from providers.simulator.server import Simulator
from tests.assets.helpers import upstream_bytes
from tests.conftest import ALICE, SimulatorFactory, wait_for
from tests.proxy_process import free_port, start_proxy_process

ADMIN = "sk-admin-restart"
VIDEO_BYTES = 24 << 20


def write_config(tmp_path: Path, upstream: str, **assets: Any) -> Path:
    config = {
        "server": {"host": "127.0.0.1", "poll_after_ms": 50, "admin_key": ADMIN},
        "store": {"path": str(tmp_path / "jobs.db")},
        "assets": {"thumbnails": False, **assets},
        "keys": [{"name": "alice", "key": ALICE}],
        "providers": [
            {
                "name": "upstream", "kind": "openai", "base_url": f"{upstream}/v1",
                "api_key": "sk-upstream", "poll_interval": 0.05, "timeout": 10,
                "models": {"sora-2": {"price_per_second": 0.1}},
            }
        ],
    }  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def test_kill_9_mid_copy_then_restart_serves_only_whole_copies(
    tmp_path: Path, simulators: SimulatorFactory
) -> None:
    sim = await simulators(video_bytes=VIDEO_BYTES)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    partial = tmp_path / "assets" / ".partial"
    auth = {"Authorization": f"Bearer {ALICE}"}
    async with aiohttp.ClientSession(headers=auth) as http:

        async def copy_state(job_id: str) -> str:
            admin = {"Authorization": f"Bearer {ADMIN}"}
            async with http.get(f"{url}/admin/jobs/{job_id}", headers=admin) as r:
                return str((await r.json())["copy"])

        async def create(prompt: str) -> str:
            async with http.post(f"{url}/v1/videos", json={"prompt": prompt}) as r:
                assert r.status == 200
                return str((await r.json())["id"])

        proxy = await start_proxy_process(write_config(tmp_path, sim.base_url), port)
        try:
            first = await create("the first take")

            async def first_stored() -> bool:
                return await copy_state(first) == "stored"

            await wait_for(first_stored, within=30)
        finally:
            await proxy.stop()

        slow = write_config(tmp_path, sim.base_url, copy_bandwidth=2 << 20)
        proxy = await start_proxy_process(slow, port)
        try:
            second = await create("the second take")

            async def copy_half_written() -> bool:
                return any(f.is_file() and f.stat().st_size > 0 for f in partial.rglob("*"))

            await wait_for(copy_half_written, within=30)
            assert await copy_state(second) == "pending"
            proxy.kill_9()
        finally:
            await proxy.stop()
        assert not (tmp_path / "assets" / "videos" / second).exists()  # nothing half in place

        first_upstream = next(j for j in sim.jobs.values() if j.prompt == "the first take").id
        second_upstream = next(j for j in sim.jobs.values() if j.prompt == "the second take").id
        del sim.jobs[first_upstream]  # the upstream forgets the first video
        proxy = await start_proxy_process(write_config(tmp_path, sim.base_url), port)
        try:

            async def second_stored() -> bool:
                return await copy_state(second) == "stored"

            await wait_for(second_stored, within=30)
            assert not [f for f in partial.rglob("*") if f.is_file() and f.stat().st_size]
            assert len(list(partial.glob("*.lock"))) == 1  # the killed one's went with its files
            for job_id, upstream_id in ((first, first_upstream), (second, second_upstream)):
                async with http.get(f"{url}/v1/videos/{job_id}/content") as r:
                    assert r.status == 200
                    digest = hashlib.sha256()
                    async for chunk in r.content.iter_any():
                        digest.update(chunk)
                expected = upstream_bytes_digest(sim, upstream_id)
                assert digest.hexdigest() == expected
        finally:
            await proxy.stop()


def upstream_bytes_digest(sim: Simulator, upstream_id: str) -> str:
    return hashlib.sha256(upstream_bytes(sim, upstream_id, "video")).hexdigest()
