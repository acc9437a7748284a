"""A hostile upstream cannot make the proxy leak secrets, carry its key away or fetch for it
(issue 15, points 1, 2, 3 and 8), end to end over loopback.

Each upstream here is a ``ScriptedUpstream`` playing a broken or malicious provider; a second
one on 127.0.0.2 plays "another host". Each test fails on the code before issue 15.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from router.records.job import JobState
from tests.conftest import ALICE, ProxyFactory, RunningProxy, stored_job, wait_for
from tests.fake_upstream import ScriptedFactory, ScriptedUpstream
from tests.hostile_upstream import (
    echoes,
    encoded_forms,
    failed_task,
    failed_video,
    loop_to_self,
    redirect,
)

# Characters that encodings change, so the plain form and the encoded ones differ.
UPSTREAM_KEY = "sk-upstream/hostile+3f9a=1c77"
ADMIN = "adm hostile&8c2e41d0"
LINK_SECRET = "link:hostile?5d7b#90aa"
TASKS = "/v2/videos/generations"
QUEUED = {"id": "video_h1", "object": "video", "status": "queued", "progress": 0, "created_at": 1}


def provider(upstream: ScriptedUpstream, kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": f"hostile-{kind}",
        "kind": kind,
        "base_url": f"{upstream.url}/v1" if kind == "openai" else upstream.url,
        "api_key": UPSTREAM_KEY,
        "models": {"sora-2": {"price_per_second": 0.1}},
        "poll_interval": 0.02,
        "timeout": 5,
        **extra,
    }


SERVER = {"admin_key": ADMIN, "link_secret": LINK_SECRET}
ONE_ATTEMPT = {"max_attempts": 1}


def leaks(texts: dict[str, str]) -> list[str]:
    """Every secret, in every form ``echoes`` writes it, found in ``texts``. The proxy holds a
    client key only as its digest, and finds its base64 by decoding what looks like base64
    (README, "Security model")."""
    secrets = {"upstream key": UPSTREAM_KEY, "admin key": ADMIN, "link secret": LINK_SECRET}
    secrets["client key"] = ALICE
    return [
        f"{what} ({form}) in {where}"
        for what, secret in secrets.items()
        for form, text in encoded_forms(secret).items()
        for where, place in texts.items()
        if text.lower() in place.lower()
    ]


async def answered(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, str]:
    async with http.request(kwargs.pop("method", "GET"), url, **kwargs) as response:
        return response.status, await response.text()


@pytest.mark.parametrize("kind", ["openai", "relay"])
async def test_secrets_in_a_successful_reply_are_scrubbed_everywhere(
    proxy_factory: ProxyFactory,
    scripted: ScriptedFactory,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    kind: str,
) -> None:
    """Point 1: a failed render's message echoing every secret, plain and encoded, in a 2xx."""
    caplog.set_level(logging.DEBUG)
    upstream = await scripted()
    text = " | ".join(echoes(s) for s in (UPSTREAM_KEY, ADMIN, LINK_SECRET, ALICE))
    if kind == "openai":
        upstream.reply("POST", "/v1/videos", QUEUED)
        upstream.reply("GET", "/v1/videos/video_h1", failed_video("video_h1", text))
    else:
        upstream.reply("POST", TASKS, {"task_id": "task-h1"})
        upstream.reply("GET", f"{TASKS}/task-h1", failed_task("task-h1", text))
    proxy = await proxy_factory([provider(upstream, kind)], server=SERVER, routing=ONE_ATTEMPT)
    headers = {"Authorization": f"Bearer {ALICE}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(f"{proxy.url}/v1/videos", json={"prompt": "a kite"}) as response:
            video_id = (await response.json())["id"]

        async def failed() -> bool:
            return stored_job(proxy, video_id).state.finished

        await wait_for(failed)
        texts = {
            "the video": (await answered(http, f"{proxy.url}/v1/videos/{video_id}"))[1],
            "the task": (await answered(http, f"{proxy.url}{TASKS}/{video_id}"))[1],
            "the admin view": (
                await answered(
                    http,
                    f"{proxy.url}/admin/jobs/{video_id}",
                    headers={"Authorization": f"Bearer {ADMIN}"},
                )
            )[1],
        }
    job = stored_job(proxy, video_id)
    assert job.error_message and "[redacted]" in job.error_message  # the words did arrive
    texts["the stored job"] = repr(job.to_record())
    texts["the store's files"] = await asyncio.to_thread(read_store, tmp_path)
    texts["the log"] = caplog.text
    assert leaks(texts) == []


async def test_a_redirected_create_is_not_followed_and_keeps_the_key_home(
    proxy_factory: ProxyFactory, scripted: ScriptedFactory
) -> None:
    """Points 2 and 3: Azure's create answered 307 to another host: nothing (no body, no
    ``api-key``) goes there, and the create is an upstream error."""
    upstream, other = await scripted(), await scripted(host="127.0.0.2")
    upstream.answer("POST", "/openai/v1/videos", redirect(f"{other.url}/steal"))
    proxy = await proxy_factory([provider(upstream, "azure")])
    status, body = await proxy_call(proxy.url, "POST", "/v1/videos", json={"prompt": "a kite"})
    assert status == 502, body
    assert other.seen == []


async def test_content_redirected_to_a_listed_host_goes_there_without_the_key(
    proxy_factory: ProxyFactory, scripted: ScriptedFactory
) -> None:
    """Point 2: Azure's content answered 302 to its CDN: fetched, with no ``api-key``, and
    served with ``nosniff`` and a ``Content-Disposition``."""
    upstream, cdn = await scripted(), await scripted(host="127.0.0.2")
    base = "/openai/v1/videos"
    upstream.reply("POST", base, QUEUED)
    upstream.reply("GET", f"{base}/video_h1", {**QUEUED, "status": "completed"})
    upstream.answer("GET", f"{base}/video_h1/content", redirect(f"{cdn.url}/v/h1.mp4", 302))
    cdn.reply("GET", "/v/h1.mp4", body=b"mp4!", content_type="video/mp4")
    proxy = await proxy_factory(
        [provider(upstream, "azure", content_hosts=["127.0.0.2"])],
        assets={"copy": False},  # the pass-through path; copies take the same one (tests/assets)
    )
    video = await finished_video(proxy)
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {ALICE}"}) as http,
        http.get(f"{proxy.url}/v1/videos/{video}/content") as response,
    ):
        assert (response.status, await response.read()) == (200, b"mp4!")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Disposition"].startswith("inline; filename=")
    assert [s.path for s in cdn.seen] == ["/v/h1.mp4"]
    assert "api-key" not in {h.lower() for h in cdn.seen[0].headers}
    assert upstream.seen[-1].headers["api-key"] == UPSTREAM_KEY  # the own host got it


@pytest.mark.parametrize(
    "case", ["another host", "a redirect to another host", "a page, not a video"]
)
async def test_content_comes_only_from_allowed_hosts_and_only_as_media(
    proxy_factory: ProxyFactory, scripted: ScriptedFactory, case: str
) -> None:
    """Point 3: a relay's ``data.output`` (through a signed link that needs no key) pointing at
    an unlisted host, directly or through a redirect, or serving HTML, is a 502; the other
    host sees nothing."""
    upstream, internal = await scripted(), await scripted(host="127.0.0.2")
    internal.reply("GET", "/admin", body=b"internal secrets", content_type="video/mp4")
    output = {
        "another host": f"{internal.url}/admin",
        "a redirect to another host": "/files/h1.mp4",
        "a page, not a video": "/files/page",
    }[case]
    upstream.answer("GET", "/files/h1.mp4", redirect(f"{internal.url}/admin", 302))
    upstream.reply("GET", "/files/page", body=b"<script>x</script>", content_type="text/html")
    upstream.reply("POST", TASKS, {"task_id": "task-h1"})
    done = {"task_id": "task-h1", "status": "SUCCESS", "progress": "100%"}
    upstream.reply("GET", f"{TASKS}/task-h1", {**done, "data": {"output": output}})
    proxy = await proxy_factory([provider(upstream, "relay")])
    relay = proxy.relay()
    task = await relay.finish(await relay.create(prompt="a kite"))
    status, body = await relay.fetch(task["data"]["output"])
    assert status == 502, body
    assert internal.seen == []


@pytest.mark.parametrize("kind", ["openai", "azure"])
async def test_a_redirect_loop_never_puts_the_key_in_a_log(
    proxy_factory: ProxyFactory,
    scripted: ScriptedFactory,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    """Point 8: aiohttp's exception reprs carry the request headers; none reaches a log."""
    caplog.set_level(logging.DEBUG)
    upstream = await scripted()
    path = "/v1/videos" if kind == "openai" else "/openai/v1/videos"
    upstream.answer("POST", path, loop_to_self())
    upstream.answer("GET", path, loop_to_self())
    proxy = await proxy_factory([provider(upstream, kind)])
    status, _ = await proxy_call(proxy.url, "POST", "/v1/videos", json={"prompt": "a kite"})
    assert status == 502
    assert "redirect" in caplog.text  # the failure was logged, in words
    assert leaks({"the log": caplog.text}) == []


def read_store(directory: Path) -> str:
    """The job store's files as they are on disk, WAL included."""
    return "".join(p.read_bytes().decode("latin-1") for p in directory.glob("jobs.db*"))


async def proxy_call(url: str, method: str, path: str, **kwargs: Any) -> tuple[int, str]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ALICE}"}) as http:
        return await answered(http, url + path, method=method, **kwargs)


async def finished_video(proxy: RunningProxy) -> str:
    """Create a video and wait until the proxy has it completed."""
    status, body = await proxy_call(proxy.url, "POST", "/v1/videos", json={"prompt": "a kite"})
    assert status == 200, body
    video_id = str(orjson.loads(body)["id"])

    async def completed() -> bool:
        return stored_job(proxy, video_id).state is JobState.COMPLETED

    await wait_for(completed)
    return video_id
