"""Issue 17, acceptance 3 and the drain of 5, over real processes: three proxies
(``python -m router serve``) on one real Redis behind Debian's nginx (round robin, started by
the test on a free port with a generated config); the ``openai`` SDK talks to nginx only.
Upstreams are simulators in this test process, so what reached them is counted there.

No minute is waited for: "3 creates in a minute" is checked as "exactly 3 of 9 creates sent
within one minute"; the sliding window itself is tested on an injected clock
(``tests/flows/test_fleet_coordination.py``, ``tests/contract/test_counters.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from providers.simulator.server import Simulator
from tests.conftest import ALICE, SimulatorFactory, upstream_provider, wait_for
from tests.proxy_process import ProxyProcess, answers_ok, free_port, start_processes
from tests.redis_rig import RedisServer

SLOW = {"render_seconds": 3600}
ADMIN = "admin-key-for-the-nginx-fleet"
LIMITED = "sk-test-limited"
BUDGET = "sk-test-budget"
INSTANCES = 3

pytestmark = [
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx: scripts/test installs it"),
    pytest.mark.timeout(300),  # three proxy processes and nginx on a shared, loaded machine
]


def nginx_conf(directory: Path, port: int, upstreams: list[int]) -> Path:
    servers = "".join(f"        server 127.0.0.1:{p};\n" for p in upstreams)
    temp = "".join(
        f"    {kind}_temp_path {directory / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = directory / "nginx.conf"
    conf.write_text(
        f"""daemon off;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temp}    upstream fleet {{
{servers}    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://fleet;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream off;
        }}
    }}
}}
"""
    )
    return conf


def start_nginx(conf: Path, directory: Path) -> subprocess.Popen[bytes]:
    command = ["nginx", "-c", str(conf), "-p", str(directory)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def stop_all(nginx: subprocess.Popen[bytes] | None, proxies: list[ProxyProcess]) -> None:
    """Stop nginx (graceful quit) and then every proxy behind it."""
    if nginx is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(nginx.pid, signal.SIGQUIT)
        await asyncio.to_thread(nginx.wait, 15)
    for proxy in proxies:
        await proxy.stop()


async def nginx_ready(directory: Path, port: int, upstreams: list[int]) -> subprocess.Popen[bytes]:
    """nginx on ``port`` in front of ``upstreams``, once it answers ``/healthz`` (the caller
    stops it, in a ``finally``)."""
    nginx = start_nginx(nginx_conf(directory, port, upstreams), directory)

    async def answers() -> bool:
        assert nginx.poll() is None, "nginx exited"
        return await answers_ok(f"http://127.0.0.1:{port}/healthz")

    try:
        await wait_for(answers, within=30)
    except BaseException:
        nginx.kill()
        nginx.wait(10)
        raise
    return nginx


@dataclass
class Fleet:
    url: str  # nginx
    proxies: list[ProxyProcess]
    capped: Simulator
    other: Simulator
    spare: Simulator

    def client(self, key: str = ALICE) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0)


@pytest.fixture
async def fleet(
    tmp_path: Path, redis_server: RedisServer, simulators: SimulatorFactory
) -> AsyncIterator[Fleet]:
    capped = await simulators(creates_per_minute=3, **SLOW)
    other = await simulators(**SLOW)
    spare = await simulators(**SLOW)
    providers = [
        upstream_provider("capped", "openai", capped, rpm=3),
        upstream_provider("other", "openai", other, models={"sora-2": {"price_per_second": 0.25}}),
        upstream_provider("spare", "openai", spare, models={"sora-2": {"price_per_second": 1.0}}),
    ]
    proxies: list[ProxyProcess] = []
    nginx: subprocess.Popen[bytes] | None = None
    try:
        ports = [free_port() for _ in range(INSTANCES)]
        docs: list[dict[str, Any]] = [
            {
                "server": {
                    "host": "127.0.0.1",
                    "admin_key": ADMIN,
                    "link_secret": "nginx-fleet-link-secret-0123456789",
                },
                "store": {
                    "backend": "redis",
                    "url": redis_server.url,
                    "path": str(tmp_path / f"jobs-{index}.db"),
                },
                "keys": [
                    {"name": "alice", "key": ALICE},
                    {"name": "limited", "key": LIMITED, "rpm": 3},
                    {"name": "budget", "key": BUDGET, "daily_budget_usd": 2.0},
                ],
                "providers": providers,
                "routing": {"strategy": "cheapest"},
            }
            for index in range(INSTANCES)
        ]
        await start_processes(tmp_path, docs, ports, proxies)
        nginx_dir = tmp_path / "nginx"
        nginx_dir.mkdir()
        port = free_port()
        nginx = await nginx_ready(nginx_dir, port, ports)
        yield Fleet(f"http://127.0.0.1:{port}", proxies, capped, other, spare)
    finally:
        await stop_all(nginx, proxies)


async def test_limits_and_drains_hold_across_three_instances_behind_nginx(fleet: Fleet) -> None:
    # A provider with rpm 3 (its upstream refuses a 4th create a minute): never a 429 from it.
    async with fleet.client() as client:
        for _ in range(6):
            await client.videos.create(model="sora-2", prompt="a cat")
    assert (fleet.capped.stats.creates_received, fleet.capped.stats.creates_accepted) == (3, 3)
    assert fleet.other.stats.creates_received == 3

    # A key with rpm 3: exactly 3 of 9 creates within the minute, whichever instance took them.
    answers: list[str | None] = []
    async with fleet.client(LIMITED) as client:
        for _ in range(9):
            try:
                await client.videos.create(model="sora-2", prompt="a dog")
            except openai.RateLimitError as refused:
                answers.append(refused.code)
            else:
                answers.append("created")
    assert answers.count("created") == 3
    assert answers.count("rate_limit_exceeded") == 6
    assert fleet.other.stats.creates_received == 6

    # 20 concurrent creates against a budget for 2 ($1.00 a render at "other"): exactly 2.
    async with fleet.client(BUDGET) as client:

        async def create() -> bool:
            try:
                await client.videos.create(model="sora-2", prompt="a bird")
            except openai.RateLimitError:
                return False
            return True

        results = await asyncio.gather(*(create() for _ in range(20)))
    assert sum(results) == 2
    assert fleet.other.stats.creates_received == 8

    # A drain through nginx reaches one instance; no instance sends "other" a new render.
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{fleet.url}/admin/providers/other/drain", headers={"Authorization": f"Bearer {ADMIN}"}
        ) as answer,
    ):
        assert answer.status == 200
    async with fleet.client() as client:
        for _ in range(6):
            await client.videos.create(model="sora-2", prompt="a fish")
    assert fleet.other.stats.creates_received == 8
    assert fleet.spare.stats.creates_received == 6
