"""Config reload (issue 5, point 4) and the admin API's drain, re-enable and reload (point 5).

The SIGHUP test runs the proxy as a real process (``python -m router serve``) against two
simulated upstreams in this test process on a manual clock, so the renders in flight are
provably still running across the reload and finish only when the test moves the clock. The
admin tests run the proxy in-process, started from a YAML file the test rewrites.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import yaml
from aiohttp import web

from router import appkeys as keys
from router.app import create_app
from router.config.load import load_config
from router.records.job import JobState
from tests.clock import ManualClock
from tests.conftest import ALICE, BOB, SimulatorFactory, local_store, wait_for
from tests.proxy_process import start_proxy_process

ADMIN = "sk-admin-reload"
SLOW = {"render_seconds": 30}


def provider(name: str, base_url: str, api_key: str, price: float) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "openai",
        "base_url": f"{base_url}/v1",
        "api_key": api_key,
        "poll_interval": 0.05,
        "timeout": 5,
        "models": {"sora-2": {"price_per_second": price}},
    }


def document(tmp_path: Path, providers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "poll_after_ms": 50, "admin_key": ADMIN},
        "store": {"path": str(tmp_path / "jobs.db")},
        "keys": [{"name": "alice", "key": ALICE}],
        "providers": providers,
        "routing": {"strategy": "cheapest"},
        **extra,
    }


def write(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(doc))


async def call(
    url: str, method: str, path: str, key: str | None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url + path, json=body, headers=headers) as reply,
    ):
        return reply.status, await reply.json()


async def create(url: str, key: str = ALICE) -> str:
    status, body = await call(url, "POST", "/v1/videos", key, {"prompt": "a cat"})
    assert status == 200, body
    return str(body["id"])


async def test_sighup_reloads_prices_and_keys_and_every_job_in_flight_completes(
    tmp_path: Path, simulators: SimulatorFactory
) -> None:
    clock = ManualClock(time.time())
    cheap = await simulators(clock=clock, **SLOW)
    dear = await simulators(clock=clock, **SLOW)
    path, log = tmp_path / "config.yaml", tmp_path / "proxy.log"
    doc = document(
        tmp_path,
        [
            provider("cheap", cheap.base_url, cheap.api_key, 0.1),
            provider("dear", dear.base_url, dear.api_key, 0.3),
        ],
    )
    write(path, doc)
    proxy = await start_proxy_process(path, log=log)
    try:
        before = [await create(proxy.url) for _ in range(3)]
        assert (cheap.stats.creates_received, dear.stats.creates_received) == (3, 0)

        doc["providers"][0]["models"]["sora-2"]["price_per_second"] = 0.5
        doc["keys"].append({"name": "bob", "key": BOB})
        write(path, doc)
        proxy.signal(signal.SIGHUP)

        async def bob_works() -> bool:
            status, _ = await call(proxy.url, "GET", "/v1/videos", BOB)
            return status == 200

        await wait_for(bob_works)
        after = await create(proxy.url, BOB)
        assert dear.stats.creates_received == 1  # "dear" is the cheaper one now

        write(path, {**doc, "providers": [{"name": "broken", "kind": "nonsense"}]})
        proxy.signal(signal.SIGHUP)

        async def refusal_logged() -> bool:
            return "reload refused" in log.read_text()

        await wait_for(refusal_logged)
        assert "providers[0].kind" in log.read_text()
        await create(proxy.url, BOB)  # still the old, good config
        assert (cheap.stats.creates_received, dear.stats.creates_received) == (3, 2)

        clock.advance(31)
        for job_id in [*before, after]:
            key = BOB if job_id == after else ALICE

            async def completed(job_id: str = job_id, key: str = key) -> bool:
                status, body = await call(proxy.url, "GET", f"/v1/videos/{job_id}", key)
                return status == 200 and body["status"] == "completed"

            await wait_for(completed)
    finally:
        assert await proxy.stop() == 0


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[list[web.AppRunner]]:
    runners: list[web.AppRunner] = []
    yield runners
    for runner in runners:
        await runner.cleanup()


async def start(
    tmp_path: Path, doc: dict[str, Any], runners: list[web.AppRunner]
) -> tuple[Path, str, web.Application]:
    """Write ``doc`` as the config file and serve the proxy from it, as ``serve`` would."""
    path = tmp_path / "config.yaml"
    write(path, doc)
    app = create_app(load_config(path), config_path=path)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    runners.append(runner)
    host, port = runner.addresses[0][:2]
    return path, f"http://{host}:{port}", app


async def test_admin_reload_refuses_a_broken_file_with_every_reason_and_changes_nothing(
    tmp_path: Path, simulators: SimulatorFactory, served: list[web.AppRunner]
) -> None:
    sim = await simulators()
    doc = document(tmp_path, [provider("a", sim.base_url, sim.api_key, 0.1)])
    path, url, app = await start(tmp_path, doc, served)
    before = app[keys.CONFIG].current
    broken = {**doc, "keys": [{"name": "bob"}], "routing": {"strategy": "fastest-ish"}}
    write(path, broken)
    status, body = await call(url, "POST", "/admin/reload", ADMIN)
    assert status == 400 and body["error"]["code"] == "invalid_config"
    assert "keys[0]" in body["error"]["message"]
    assert "routing.strategy" in body["error"]["message"]
    assert app[keys.CONFIG].current is before
    assert (await call(url, "GET", "/v1/videos", ALICE))[0] == 200

    # A provider cannot change its kind live; the whole reload is refused.
    changed = document(tmp_path, [{**provider("a", sim.base_url, sim.api_key, 0.1)}])
    changed["providers"][0].update(kind="relay", base_url=sim.base_url)
    write(path, changed)
    status, body = await call(url, "POST", "/admin/reload", ADMIN)
    assert status == 400 and "providers[0].kind" in body["error"]["message"]
    assert app[keys.CONFIG].current is before


async def test_admin_reload_names_what_needs_a_restart(
    tmp_path: Path, simulators: SimulatorFactory, served: list[web.AppRunner]
) -> None:
    sim = await simulators()
    doc = document(tmp_path, [provider("a", sim.base_url, sim.api_key, 0.1)])
    path, url, app = await start(tmp_path, doc, served)
    doc["server"]["poll_after_ms"] = 500
    doc["health"] = {"probe_interval": 5}
    write(path, doc)
    status, body = await call(url, "POST", "/admin/reload", ADMIN)
    assert status == 200
    assert body == {
        "reloaded": True,
        "restart_required": ["server.poll_after_ms", "health.probe_interval"],
    }
    assert app[keys.CONFIG].current.server.poll_after_ms == 50


async def test_a_key_removed_or_rotated_by_a_reload_is_refused_on_its_next_request(
    tmp_path: Path, simulators: SimulatorFactory, served: list[web.AppRunner]
) -> None:
    """The key ring remembers headers that authenticated (issue 21); a reload forgets them all,
    so a removed key, and the old secret of a rotated one, are refused at once."""
    sim = await simulators()
    doc = document(tmp_path, [provider("a", sim.base_url, sim.api_key, 0.1)])
    doc["keys"].append({"name": "bob", "key": BOB})
    path, url, _ = await start(tmp_path, doc, served)
    rotated = "sk-test-alice-rotated"
    clients = {
        key: openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=10)
        for key in (ALICE, BOB, rotated)
    }
    try:
        for _ in range(2):  # the second time from memory
            await clients[ALICE].videos.list()
            await clients[BOB].videos.list()
        doc["keys"] = [{"name": "alice", "key": rotated}]
        write(path, doc)
        assert (await call(url, "POST", "/admin/reload", ADMIN))[0] == 200
        for refused in (BOB, ALICE):
            with pytest.raises(openai.AuthenticationError):
                await clients[refused].videos.list()
        await clients[rotated].videos.list()
    finally:
        for client in clients.values():
            await client.close()


async def test_a_removed_provider_keeps_polling_its_jobs_until_they_finish(
    tmp_path: Path, simulators: SimulatorFactory, served: list[web.AppRunner]
) -> None:
    clock = ManualClock(time.time())
    old = await simulators(clock=clock, **SLOW)
    new = await simulators(clock=clock, **SLOW)
    doc = document(tmp_path, [provider("old", old.base_url, old.api_key, 0.1)])
    path, url, app = await start(tmp_path, doc, served)
    job_id = await create(url)
    write(path, document(tmp_path, [provider("new", new.base_url, new.api_key, 0.1)]))
    assert (await call(url, "POST", "/admin/reload", ADMIN))[0] == 200
    await create(url)
    assert (old.stats.creates_received, new.stats.creates_received) == (1, 1)
    names = [
        row["name"] for row in (await call(url, "GET", "/admin/providers", ADMIN))[1]["providers"]
    ]
    assert names == ["new"]
    clock.advance(31)

    async def done() -> bool:
        job = local_store(app).get(job_id)
        return job is not None and job.state is JobState.COMPLETED

    await wait_for(done)
    async with aiohttp.ClientSession() as session:
        reply = await session.get(
            f"{url}/v1/videos/{job_id}/content", headers={"Authorization": f"Bearer {ALICE}"}
        )
        assert reply.status == 200 and len(await reply.read()) > 0


async def test_drain_stops_new_renders_and_enable_brings_them_back(
    tmp_path: Path, simulators: SimulatorFactory, served: list[web.AppRunner]
) -> None:
    a, b = await simulators(), await simulators()
    providers = [
        provider("a", a.base_url, a.api_key, 0.1),
        provider("b", b.base_url, b.api_key, 0.2),
    ]
    _, url, _ = await start(tmp_path, document(tmp_path, providers), served)
    for key, status in ((None, 401), (ALICE, 403)):
        assert (await call(url, "POST", "/admin/providers/a/drain", key))[0] == status
        assert (await call(url, "POST", "/admin/reload", key))[0] == status
    status, row = await call(url, "POST", "/admin/providers/a/drain", ADMIN)
    assert status == 200 and row["state"] == "drained"
    await create(url)
    assert (a.stats.creates_received, b.stats.creates_received) == (0, 1)
    status, row = await call(url, "POST", "/admin/providers/a/enable", ADMIN)
    assert status == 200 and row["state"] == "up"
    await create(url)
    assert (a.stats.creates_received, b.stats.creates_received) == (1, 1)
    assert (await call(url, "POST", "/admin/providers/nope/drain", ADMIN))[0] == 404
