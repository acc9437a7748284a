"""The job store's disk fills up at a create, then gets room again (issue 15, point 13).

The store lives on a tmpfs of its own, a few MiB, which the test fills with a file. A create
then renders upstream but cannot be stored: the render is deleted there, the key's and the
provider's slots and the budget reservation come back, the client hears 503
``store_unavailable`` with ``Retry-After`` (not a 500 the SDK would retry into more paid
renders), and ``/readyz`` says ``store_writes``. Removing the file is all it takes to recover:
no restart. Skipped where a tmpfs cannot be mounted (not root, or no permission to mount).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from router import appkeys as keys
from tests.conftest import (
    ALICE,
    ProxyFactory,
    RunningProxy,
    finished_job,
    local_store,
    sim_provider,
    wait_for,
)

FILLER = "filler"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for this test, unmounted after it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], timeout=10, check=False)


def fill(directory: Path) -> None:
    """Write a file until the disk is full, to the last byte."""
    with (directory / FILLER).open("wb", buffering=0) as out:
        for size in (64 * 1024, 512, 1):
            with contextlib.suppress(OSError):
                while out.write(bytes(size)):
                    pass
    assert shutil.disk_usage(directory).free < 4096


async def create(proxy: RunningProxy) -> tuple[int, dict[str, str], dict[str, object]]:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {ALICE}"}) as http,
        http.post(f"{proxy.url}/v1/videos", json={"prompt": "a kite"}) as response,
    ):
        return response.status, dict(response.headers), await response.json()


async def ready(proxy: RunningProxy) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(f"{proxy.url}/readyz") as response:
        return response.status, await response.json()


async def test_a_full_disk_at_create_gives_everything_back_and_recovers_by_itself(
    proxy_factory: ProxyFactory, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = await proxy_factory(
        [sim_provider("sim-a", render_seconds=0.2)],
        store={"path": str(small_disk / "jobs.db")},
        keys=[{"name": "alice", "key": ALICE, "max_concurrent": 1, "daily_budget_usd": 1.0}],
    )
    sim = proxy.simulator("sim-a")
    status, _, first = await create(proxy)
    assert status == 200, first
    await finished_job(proxy, str(first["id"]))
    await asyncio.to_thread(fill, small_disk)

    for _ in range(3):  # a leaked slot would make the second a 429
        status, headers, body = await create(proxy)
        assert status == 503, body
        assert body["error"]["code"] == "store_unavailable"  # type: ignore[index]
        assert int(headers["Retry-After"]) > 0
    # The simulator, like OpenAI, refuses to delete a render still in progress: each of the
    # three is counted and logged with its upstream id, for the operator to cancel or bill.
    orphaned = [job_id for job_id in sim.jobs if job_id != stored(proxy, str(first["id"]))]
    assert len(orphaned) == 3
    assert sim.stats.deletes == 3
    orphans = proxy.app[keys.METRICS].registry.get_sample_value(
        "sora_proxy_orphaned_renders_total", {"provider": "sim-a"}
    )
    assert orphans == 3
    logged = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert all(job_id in logged for job_id in orphaned)
    assert proxy.app[keys.LIMITS].rendering("sim-a") == 0
    status, readiness = await ready(proxy)
    assert status == 503 and "store_writes" in readiness["waiting_for"]  # type: ignore[operator]

    await asyncio.to_thread((small_disk / FILLER).unlink)

    async def ready_again() -> bool:
        return (await ready(proxy))[0] == 200

    await wait_for(ready_again)
    status, _, video = await create(proxy)
    assert status == 200, video
    assert (await finished_job(proxy, str(video["id"]))).state.value == "completed"


def stored(proxy: RunningProxy, job_id: str) -> str:
    job = local_store(proxy.app).get(job_id)
    assert job is not None
    return job.current.upstream_id
