"""Copy on completion and serving from the store (issue 19, acceptance 1 and the copy rules).

A video completes on a stand-alone simulator; the proxy copies it into the local asset store;
the simulator then forgets the render, and the video, its thumbnail and its sprite sheet still
download byte-identical from the proxy, ``Range`` and the conditional headers answered from
our copy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from router import appkeys as keys
from router.records.job import CopyState
from tests.assets.helpers import copied, sha256, upstream_bytes
from tests.conftest import (
    ALICE,
    ProxyFactory,
    SimulatorFactory,
    finished_job,
    upstream_provider,
)
from tests.fake_upstream import ScriptedFactory, ScriptedUpstream

AUTH = {"Authorization": f"Bearer {ALICE}"}


async def _get(
    url: str, headers: dict[str, str] | None = None
) -> tuple[int, CIMultiDict[str], bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers={**AUTH, **(headers or {})}) as r,
    ):
        return r.status, CIMultiDict(r.headers), await r.read()


async def test_a_forgotten_render_still_downloads_from_our_copy(
    proxy_factory: ProxyFactory,
    simulators: SimulatorFactory,
    tmp_path: Path,
    backend: dict[str, str],
) -> None:
    sim = await simulators(video_bytes=300_000)
    proxy = await proxy_factory([upstream_provider("up", "openai", sim)], assets=backend)
    video = await proxy.client().videos.create(prompt="a lighthouse at dusk")
    job = await copied(proxy, (await finished_job(proxy, video.id)).id)
    assert job.copy is CopyState.STORED
    upstream_id = job.current.upstream_id
    expected = {
        v: upstream_bytes(sim, upstream_id, v) for v in ("video", "thumbnail", "spritesheet")
    }
    for asset in job.stored:
        assert (asset.size, asset.sha256) == (
            len(expected[asset.variant]),
            sha256(expected[asset.variant]),
        )
        assert not asset.generated  # the simulator has its own images
    if not backend:  # the local directory beside the job store
        assert (tmp_path / "assets" / f"videos/{job.id}/video").read_bytes() == expected["video"]

    del sim.jobs[upstream_id]  # the upstream forgets the render
    downloads = sim.stats.content_downloads
    base = f"{proxy.url}/v1/videos/{job.id}/content"
    for variant, body in expected.items():
        status, headers, got = await _get(f"{base}?variant={variant}")
        assert status == 200 and got == body
        assert headers["ETag"] == f'"{sha256(body)}"'
        assert headers["Content-Length"] == str(len(body))
        assert headers["X-Content-Type-Options"] == "nosniff"
    sdk = await proxy.client().videos.download_content(job.id)
    assert sdk.content == expected["video"]
    assert sim.stats.content_downloads == downloads  # nothing asked of the upstream again

    whole = expected["video"]
    etag = f'"{sha256(whole)}"'
    for range_header, start, stop in [
        ("bytes=0-99", 0, 100),
        ("bytes=299990-", 299990, 300000),
        ("bytes=-10", 299990, 300000),
        ("bytes=299000-999999", 299000, 300000),
    ]:
        status, headers, got = await _get(base, {"Range": range_header})
        assert status == 206 and got == whole[start:stop]
        assert headers["Content-Range"] == f"bytes {start}-{stop - 1}/{len(whole)}"
    status, headers, _ = await _get(base, {"Range": "bytes=300000-"})
    assert status == 416 and headers["Content-Range"] == "bytes */300000"
    status, _, got = await _get(base, {"If-None-Match": etag})
    assert status == 304 and got == b""
    status, _, got = await _get(base, {"Range": "bytes=0-9", "If-Range": etag})
    assert status == 206 and got == whole[:10]
    status, _, got = await _get(base, {"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert status == 200 and got == whole  # a changed representation: the whole of it
    metrics = proxy.app[keys.METRICS]
    assert metrics.content_answers.labels("upstream")._value.get() == 0
    assert metrics.asset_copies.labels("stored")._value.get() == 1


async def test_signed_relay_links_serve_from_the_store(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    sim = await simulators()
    proxy = await proxy_factory([upstream_provider("up", "openai", sim)])
    relay = proxy.relay()
    task_id = await relay.create(prompt="a kite over dunes")
    job = await copied(proxy, (await finished_job(proxy, task_id)).id)
    link = (await relay.task(task_id))["data"]["output"]
    del sim.jobs[job.current.upstream_id]
    async with (
        aiohttp.ClientSession() as http,
        http.get(link, headers={"Range": "bytes=0-63"}) as r,
    ):
        assert r.status == 206
        assert await r.read() == upstream_bytes(sim, job.current.upstream_id, "video")[:64]


def _scripted_openai(upstream: ScriptedUpstream) -> dict[str, object]:
    upstream.reply("POST", "/v1/videos", {"id": "vid_1", "status": "queued", "progress": 0})
    upstream.reply(
        "GET", "/v1/videos/vid_1",
        {"id": "vid_1", "status": "completed", "progress": 100, "expires_at": 4_000_000_000},
    )  # fmt: skip
    return {
        "name": "scripted", "kind": "openai", "base_url": f"{upstream.url}/v1",
        "api_key": "sk-up", "poll_interval": 0.05, "timeout": 5,
        "models": {"sora-2": {"price_per_second": 0.1}},
    }  # fmt: skip


Reply = Callable[[], Awaitable[web.StreamResponse]]


def _in_turn(replies: list[Reply]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Answer with each reply in turn, the last one from then on."""

    async def answer(request: web.Request) -> web.StreamResponse:
        return await (replies.pop(0) if len(replies) > 1 else replies[0])()

    return answer


async def test_a_failed_copy_is_retried_until_it_is_whole(
    proxy_factory: ProxyFactory, scripted: ScriptedFactory
) -> None:
    upstream = await scripted()
    body = bytes(range(256)) * 400

    async def server_error() -> web.StreamResponse:
        return web.json_response({"error": {"message": "down"}}, status=500)

    async def whole() -> web.StreamResponse:
        return web.Response(body=body, content_type="video/mp4")

    upstream.answer("GET", "/v1/videos/vid_1/content", _in_turn([server_error, whole]))
    proxy = await proxy_factory(
        [_scripted_openai(upstream)],
        assets={"copy_retry_base": 0.05, "thumbnails": False},
    )
    video = await proxy.client().videos.create(prompt="a slow river")
    job = await copied(proxy, video.id)
    assert job.copy is CopyState.STORED
    video_copy = job.stored_asset("video")
    assert video_copy is not None and video_copy.sha256 == sha256(body)
    assert job.copy_tries >= 1
    metrics = proxy.app[keys.METRICS]
    assert metrics.asset_copies.labels("retried")._value.get() >= 1


async def test_a_copy_whose_body_arrives_short_is_not_stored(
    proxy_factory: ProxyFactory, scripted: ScriptedFactory
) -> None:
    upstream = await scripted()
    body = bytes(range(256)) * 400
    sent: list[int] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Length": str(len(body)), "Content-Type": "video/mp4"}
        )
        await response.prepare(request)
        if not sent:  # the first try: a tenth, then the connection drops
            sent.append(1)
            await response.write(body[: len(body) // 10])
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write(body)
        await response.write_eof()
        return response

    upstream.answer("GET", "/v1/videos/vid_1/content", answer)
    proxy = await proxy_factory(
        [_scripted_openai(upstream)], assets={"copy_retry_base": 0.05, "thumbnails": False}
    )
    video = await proxy.client().videos.create(prompt="a slow river")
    job = await copied(proxy, video.id)
    assert job.copy is CopyState.STORED and job.copy_tries == 1
    assert proxy.app[keys.METRICS].asset_copies.labels("retried")._value.get() == 1
    status, _, got = await _get(f"{proxy.url}/v1/videos/{job.id}/content")
    assert status == 200 and got == body


async def test_a_copy_failing_until_the_upstream_link_expires_is_marked_lost(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    sim = await simulators(asset_ttl=0)  # the upstream's link is dead the moment it completes
    proxy = await proxy_factory(
        [upstream_provider("up", "openai", sim)], server={"admin_key": "sk-admin"}
    )
    video = await proxy.client().videos.create(prompt="a fading photograph")
    job = await copied(proxy, video.id)
    assert job.copy is CopyState.LOST and job.stored == []
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{proxy.url}/admin/jobs/{job.id}", headers={"Authorization": "Bearer sk-admin"}
        ) as r,
    ):
        view = await r.json()
    assert view["copy"] == "lost" and "expired" in view["copy_error"]
    assert proxy.app[keys.METRICS].asset_copies.labels("lost")._value.get() == 1
