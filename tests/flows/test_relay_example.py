"""The origin article's relay example against the proxy, host and key changed (issue 3, point 1).

The calls are the article's own: Python ``http.client`` with a JSON body. They block, so they
run in a thread while the proxy serves on this test's loop.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.conftest import ALICE, ProxyFactory, RunningProxy, local_store, sim_provider

EXAMPLE = {
    "prompt": "make animate",
    "model": "sora-2",
    "aspect_ratio": "16:9",
    "hd": False,
    "duration": "10",
}
LINK_TTL = 600


def call(
    url: str, method: str, path: str, payload: str | None = None, key: str | None = ALICE
) -> tuple[int, dict[str, str], bytes]:
    """One request the way the article makes it: ``http.client``, Bearer key, JSON type."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    try:
        conn.request(method, path, payload, headers)
        res = conn.getresponse()
        return res.status, dict(res.getheaders()), res.read()
    finally:
        conn.close()


async def run_example(proxy: RunningProxy) -> dict[str, Any]:
    """Create with the article's body, then poll (as the article's reader would) to the end."""
    status, _, data = await asyncio.to_thread(
        call, proxy.url, "POST", "/v2/videos/generations", json.dumps(EXAMPLE)
    )
    assert status == 200, data
    created = json.loads(data.decode("utf-8"))
    assert set(created) == {"task_id"}
    path = f"/v2/videos/generations/{created['task_id']}"
    for _ in range(500):
        status, _, data = await asyncio.to_thread(call, proxy.url, "GET", path)
        assert status == 200, data
        task: dict[str, Any] = json.loads(data)
        if task["status"] in ("SUCCESS", "FAILURE"):
            return task
        assert task["status"] in ("NOT_START", "IN_PROGRESS")
        assert task["progress"].endswith("%") and task["data"] is None
        await asyncio.sleep(0.02)
    raise AssertionError("the task never finished")


def with_query(link: str, **changes: str) -> str:
    """The link's path and query (as ``http.client`` wants them), with some values replaced."""
    parts = urlsplit(link)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return f"{parts.path}?{urlencode(query)}"


class OffsetClock:
    """Real time plus an offset the test can push forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
async def proxy(proxy_factory: ProxyFactory) -> RunningProxy:
    return await proxy_factory([sim_provider("sim-a")], server={"link_ttl": LINK_TTL})


async def test_the_article_example_creates_polls_and_downloads(proxy: RunningProxy) -> None:
    task = await run_example(proxy)
    assert task["status"] == "SUCCESS" and task["progress"] == "100%"
    assert (task["platform"], task["action"], task["fail_reason"]) == ("sora", "generate", "")
    for field in ("submit_time", "start_time", "finish_time"):
        assert isinstance(task[field], int)
    assert task["submit_time"] <= task["start_time"] <= task["finish_time"]

    job = local_store(proxy.app).get(task["task_id"])
    assert job is not None and (job.model, job.size, job.seconds) == ("sora-2", "1280x720", 10)

    link = task["data"]["output"]
    assert link.startswith(f"{proxy.url}/v2/videos/content/{job.id}?")
    status, headers, body = await asyncio.to_thread(
        call, proxy.url, "GET", with_query(link), None, None
    )
    assert status == 200
    assert headers["Content-Type"] == "video/mp4"
    assert body[4:8] == b"ftyp"
    assert len(body) == proxy.simulator("sim-a").settings.video_bytes


async def test_a_tampered_link_is_refused(proxy: RunningProxy) -> None:
    task = await run_example(proxy)
    link = task["data"]["output"]
    other = await run_example(proxy)
    sig, expires = (parse_qs(urlsplit(link).query)[k][0] for k in ("sig", "expires"))
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    tampered = {
        "sig changed": with_query(link, sig=flipped),
        "sig dropped": urlsplit(link).path,
        "expires changed": with_query(link, expires=str(int(expires) + 3600)),
        "job id changed": with_query(link).replace(task["task_id"], other["task_id"]),
        "unknown job id": with_query(link).replace(task["task_id"], "video_" + "0" * 48),
    }
    for case, path in tampered.items():
        status, _, body = await asyncio.to_thread(call, proxy.url, "GET", path, None, None)
        assert status in (403, 404), case
        error = json.loads(body)["error"]
        assert set(error) == {"message", "type", "param", "code"}, case


async def test_an_expired_link_is_refused(proxy_factory: ProxyFactory) -> None:
    clock = OffsetClock()
    proxy = await proxy_factory([sim_provider("sim-a")], clock=clock, server={"link_ttl": LINK_TTL})
    link = (await run_example(proxy))["data"]["output"]
    path = with_query(link)
    status, _, _ = await asyncio.to_thread(call, proxy.url, "GET", path, None, None)
    assert status == 200
    clock.offset = LINK_TTL + 1
    status, _, body = await asyncio.to_thread(call, proxy.url, "GET", path, None, None)
    assert status == 403
    assert json.loads(body)["error"]["code"] == "link_expired"
