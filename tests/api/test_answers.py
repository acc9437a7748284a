"""Answers that explain themselves (issue 16): the all-drained 503, a key's concurrency 429
estimated from its oldest render, the admin view's two named windows, and a relay link that
never outlives the asset it points to."""

from __future__ import annotations

import math
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import openai
import pytest

from router import appkeys as keys
from tests.conftest import (
    ALICE,
    ProxyFactory,
    RunningProxy,
    finished_job,
    local_store,
    sim_provider,
)

ADMIN = "sk-admin-answers"


async def admin(proxy: RunningProxy, method: str, path: str) -> Any:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, proxy.url + path, headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


async def test_every_provider_drained_is_a_503_that_says_so_with_the_probe_interval(
    proxy_factory: ProxyFactory,
) -> None:
    proxy = await proxy_factory(
        [sim_provider("a"), sim_provider("b")],
        server={"admin_key": ADMIN},
        health={"probe_interval": 7},
    )
    for name in ("a", "b"):
        await admin(proxy, "POST", f"/admin/providers/{name}/drain")
    with pytest.raises(openai.InternalServerError) as caught:
        await proxy.client().videos.create(prompt="a cat")
    refused = caught.value
    assert (refused.status_code, refused.code) == (503, "providers_unavailable")
    assert refused.response.headers["Retry-After"] == "7"
    assert "a is drained" in refused.message and "b is drained" in refused.message


async def test_a_provider_cooling_after_a_429_names_the_cooldown_left(
    proxy_factory: ProxyFactory,
) -> None:
    proxy = await proxy_factory([sim_provider("a", rate_limit_rate=1.0, retry_after=40)])
    client = proxy.client()
    with pytest.raises(openai.RateLimitError):
        await client.videos.create(prompt="first")  # the upstream's 429 cools the provider
    with pytest.raises(openai.InternalServerError) as caught:
        await client.videos.create(prompt="second")
    assert "a is cooling down after a 429" in caught.value.message
    assert 30 <= int(caught.value.response.headers["Retry-After"]) <= 40


async def test_a_key_at_its_concurrency_waits_for_its_oldest_render(
    proxy_factory: ProxyFactory,
) -> None:
    """Renders here take 3 s: the 429 says about 3 s, not 1 (which SDK retries would waste)."""
    proxy = await proxy_factory(
        [sim_provider("a", render_seconds=3)],
        keys=[{"name": "alice", "key": ALICE, "max_concurrent": 1}],
    )
    client = proxy.client()
    await finished_job(proxy, (await client.videos.create(prompt="teach the figures")).id)
    stats = proxy.app[keys.HEALTH].stats("a")
    assert stats.render_time is not None
    # the render time runs from the create's answer; the upstream's 3 s from before it
    expected = (stats.submit_latency or 0.0) + stats.render_time
    assert expected >= 3
    started = time.time()
    await client.videos.create(prompt="the oldest in flight")
    with pytest.raises(openai.RateLimitError) as caught:
        await client.videos.create(prompt="one too many")
    left = expected - (time.time() - started)
    assert (
        math.floor(left) <= int(caught.value.response.headers["Retry-After"]) <= math.ceil(expected)
    )


async def test_the_admin_view_names_its_two_windows_with_their_counts(
    proxy_factory: ProxyFactory,
) -> None:
    proxy = await proxy_factory(
        [sim_provider("a", fail_words=["doom"])], server={"admin_key": ADMIN}
    )
    video = await proxy.client().videos.create(prompt="doom")
    await finished_job(proxy, video.id)
    (row,) = (await admin(proxy, "GET", "/admin/providers"))["providers"]
    # One submit that went through and one render that failed.
    assert row["renders"] == {"counted": 1, "succeeded": 0, "success_rate": 0.0}
    assert row["outlier_window"] == {"counted": 2, "failed": 1, "failure_rate": 0.5}


async def test_a_relay_link_never_outlives_the_asset(proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory(
        [sim_provider("a", asset_ttl=60)],
        server={"link_ttl": 86400},
        assets={"copy": False},  # the upstream's expiry; our copy's is tests/assets' business
    )
    relay = proxy.relay()
    task = await relay.finish(await relay.create(prompt="a kite", model="sora-2"))
    job = local_store(proxy.app).get(task["task_id"])
    assert job is not None and job.expires_at is not None
    expires = int(parse_qs(urlsplit(task["data"]["output"]).query)["expires"][0])
    assert expires == math.ceil(job.expires_at)
    assert expires <= time.time() + 61
    status, body = await relay.fetch(task["data"]["output"])
    assert status == 200 and body[4:8] == b"ftyp"
