"""The admin view (issue 4, point 5): gating, provider state, panic and a job's attempts."""

from __future__ import annotations

from typing import Any

import aiohttp

from router import appkeys as keys
from tests.conftest import ALICE, ProxyFactory, RunningProxy, sim_provider, wait_for

ADMIN = "admin-secret"


async def get(proxy: RunningProxy, path: str, key: str | None = ADMIN) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(proxy.url + path, headers=headers) as reply,
    ):
        return reply.status, await reply.json()


async def admin_proxy(proxy_factory: ProxyFactory, **sections: Any) -> RunningProxy:
    return await proxy_factory(
        [sim_provider("a", price=0.05), sim_provider("b", price=0.1)],
        server={"admin_key": ADMIN},
        **sections,
    )


async def test_admin_is_off_without_a_key_and_refuses_other_keys(
    proxy_factory: ProxyFactory,
) -> None:
    off = await proxy_factory([sim_provider("a")])
    assert (await get(off, "/admin/providers"))[0] == 404
    on = await admin_proxy(proxy_factory)
    assert (await get(on, "/admin/providers", None))[0] == 401
    status, body = await get(on, "/admin/providers", "wrong")
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    status, body = await get(on, "/admin/providers", ALICE)
    assert status == 403 and body["error"]["code"] == "permission_denied"


async def test_providers_show_state_and_a_job_shows_its_attempts(
    proxy_factory: ProxyFactory,
) -> None:
    proxy = await admin_proxy(proxy_factory, routing={"strategy": "cheapest"})
    video = await proxy.client().videos.create(model="sora-2", prompt="a cat")
    status, body = await get(proxy, "/admin/providers")
    assert status == 200 and body["panic"] is False
    row = {r["name"]: r for r in body["providers"]}["a"]
    assert row["state"] == "up" and row["submit_latency_ewma"] > 0 and row["in_flight"] == 1
    status, record = await get(proxy, f"/admin/jobs/{video.id}")
    assert status == 200 and [a["provider"] for a in record["attempts"]] == ["a"]
    assert (await get(proxy, "/admin/jobs/video_nope"))[0] == 404


async def test_ejected_providers_return_after_their_time_and_a_probe_and_panic_shows(
    proxy_factory: ProxyFactory,
) -> None:
    proxy = await admin_proxy(
        proxy_factory,
        health={
            "consecutive_failures": 1,
            "max_ejected_share": 1,
            "base_ejection": 1.0,
            "probe_interval": 0.05,
        },
    )
    health = proxy.app[keys.HEALTH]
    health.submitted("a", False, 0.1)
    health.submitted("b", False, 0.1)
    _, body = await get(proxy, "/admin/providers")
    assert body["panic"] is True
    assert {r["state"] for r in body["providers"]} == {"ejected"}

    async def back() -> bool:
        return not (health.ejected("a") or health.ejected("b"))

    await wait_for(back, within=5)
    assert health.outliers.view("a").ejections == 1
    assert (await get(proxy, "/admin/providers"))[1]["panic"] is False
