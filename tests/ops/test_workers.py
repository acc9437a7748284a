"""``sora-proxy serve --workers N`` (issue 17): worker processes on one port under a supervisor
that restarts a dead worker, passes SIGHUP on (every worker reloads) and drains all on SIGTERM;
each worker's metrics on its own port. Real processes, a real Redis, loopback only."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from router.cli import CANNOT_LISTEN, main
from tests.conftest import ALICE, BOB, SimulatorFactory, upstream_provider, wait_for
from tests.proxy_process import ProxyProcess, answers_ok, free_port
from tests.redis_rig import RedisServer

FAST = {"render_seconds": 0.3}


def document(store: dict[str, Any], keys: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "server": {
            "host": "127.0.0.1",
            "link_secret": "workers-link-secret-0123456789",
            "shutdown_timeout": 2,
        },
        "store": store,
        "keys": keys,
        "providers": [
            {
                "name": "sim",
                "kind": "simulator",
                "models": {"sora-2": {"price_per_second": 0.1}},
                "poll_interval": 0.05,
                "simulate": FAST,
            }
        ],
    }


def two_free_ports() -> int:
    """A port ``p`` with ``p`` and ``p + 1`` free (the workers' metrics ports)."""
    while True:
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def children(pid: int) -> set[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(child) for child in found}


async def all_accept(url: str, key: str, attempts: int = 20) -> bool:
    """Each request on a fresh connection, so the kernel picks a worker for each."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(attempts):
            headers = {"Authorization": f"Bearer {key}"}
            async with session.get(f"{url}/v1/videos", headers=headers) as response:
                if response.status != 200:
                    return False
    return True


def test_more_than_one_worker_needs_the_redis_backend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    store = {"path": str(tmp_path / "jobs.db")}
    config.write_text(yaml.safe_dump(document(store, [{"name": "alice", "key": ALICE}])))
    assert main(["serve", "--config", str(config), "--workers", "2"]) == 2
    assert "--workers 2 needs store.backend: redis" in capsys.readouterr().err
    assert main(["serve", "--config", str(config), "--workers", "0"]) == 2


def test_workers_report_a_taken_address_before_starting(
    tmp_path: Path, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    store = {"backend": "redis", "url": redis_server.url}
    config.write_text(yaml.safe_dump(document(store, [{"name": "alice", "key": ALICE}])))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        args = ["serve", "--config", str(config), "--port", port, "--workers", "2"]
        assert main(args) == CANNOT_LISTEN
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err


@pytest.mark.timeout(240)  # three process starts and a drain on a shared, loaded machine
async def test_two_workers_share_the_port_are_restarted_reloaded_and_drained(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    config = tmp_path / "config.yaml"
    store = {"backend": "redis", "url": redis_server.url, "path": str(tmp_path / "j.db")}
    doc = document(store, [{"name": "alice", "key": ALICE}])
    config.write_text(yaml.safe_dump(doc))
    metrics = two_free_ports()
    args = ["--workers", "2", "--metrics-port", str(metrics)]
    proxy = ProxyProcess(config, free_port(), tmp_path / "proxy.log", args)
    try:
        await proxy.ready(within=60)
        worker_metrics = [f"http://127.0.0.1:{metrics + i}/metrics" for i in range(2)]

        async def both_serve_metrics() -> bool:
            return all([await answers_ok(url) for url in worker_metrics])

        await wait_for(both_serve_metrics, within=30)
        first = children(proxy.process.pid)
        assert len(first) == 2

        victim = min(first)
        os.kill(victim, signal.SIGKILL)

        async def replaced() -> bool:
            now = children(proxy.process.pid)
            return len(now) == 2 and victim not in now

        await wait_for(replaced, within=30)
        await wait_for(both_serve_metrics, within=30)
        await proxy.ready(within=30)

        doc["keys"].append({"name": "bob", "key": BOB})
        config.write_text(yaml.safe_dump(doc))
        proxy.signal(signal.SIGHUP)

        async def every_worker_reloaded() -> bool:
            return await all_accept(proxy.url, BOB)

        await wait_for(every_worker_reloaded, within=30)
        workers = children(proxy.process.pid)
    finally:
        code = await proxy.stop()
    assert code == 0
    assert not any(alive(pid) for pid in workers)


@pytest.mark.timeout(240)  # two worker starts on a shared, loaded machine
async def test_two_workers_share_every_job_and_one_idempotency_key_on_their_one_port(
    tmp_path: Path, redis_server: RedisServer, simulators: SimulatorFactory
) -> None:
    """Issue 17's checks 1 and 2 through ``--workers 2``: every request on a fresh connection,
    so the kernel spreads them over both workers."""
    sim = await simulators(render_seconds=0.5, video_bytes=30_000)
    config = tmp_path / "config.yaml"
    store = {"backend": "redis", "url": redis_server.url, "path": str(tmp_path / "j.db")}
    doc = document(store, [{"name": "alice", "key": ALICE}])
    doc["providers"] = [upstream_provider("up", "openai", sim, poll_interval=0.1)]
    doc["assets"] = {"path": str(tmp_path / "assets")}  # the copy both workers serve
    config.write_text(yaml.safe_dump(doc))
    proxy = ProxyProcess(config, free_port(), tmp_path / "proxy.log", ["--workers", "2"])
    headers = {"Authorization": f"Bearer {ALICE}"}
    body = {"model": "sora-2", "prompt": "a lighthouse", "seconds": "4"}
    try:
        await proxy.ready(within=60)
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def create(extra: dict[str, str]) -> str:
                async with http.post(
                    f"{proxy.url}/v1/videos", json=body, headers={**headers, **extra}
                ) as r:
                    assert r.status == 200, await r.text()
                    return str((await r.json())["id"])

            async def status(video_id: str) -> str:
                """The video's status, or the HTTP status when it is not a 200."""
                async with http.get(f"{proxy.url}/v1/videos/{video_id}", headers=headers) as r:
                    return str(r.status if r.status != 200 else (await r.json())["status"])

            ids = [await create({}) for _ in range(4)]

            async def all_completed() -> bool:
                return all([await status(v) == "completed" for v in ids for _ in range(2)])

            await wait_for(all_completed, within=60)
            async with http.get(f"{proxy.url}/v1/videos?limit=100", headers=headers) as r:
                assert sorted(v["id"] for v in (await r.json())["data"]) == sorted(ids)
            for _ in range(4):
                path = f"{proxy.url}/v1/videos/{ids[0]}/content"
                async with http.get(path, headers=headers) as r:
                    assert (r.status, len(await r.read())) == (200, 30_000)

            key = {"Idempotency-Key": "only-once"}
            same = await asyncio.gather(*(create(key) for _ in range(6)))
            assert len(set(same)) == 1
            assert sim.stats.creates_received == 5

            for video_id in ids:
                async with http.delete(f"{proxy.url}/v1/videos/{video_id}", headers=headers) as r:
                    assert r.status == 200
            assert [await status(v) for v in ids for _ in range(2)] == ["404"] * 8
    finally:
        assert await proxy.stop() == 0
