"""``X-Request-Id`` on every answer (issue 16): the client's when it is usable, else a new one;
errors, the catch-all 404/405 and streamed downloads included; the SDK's ``_request_id``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.conftest import ALICE, ProxyFactory, RunningProxy, finished_job, sim_provider
from tests.log_capture import CapturedLogs

MAX_BODY = 4096


@pytest.fixture
async def small_proxy(proxy_factory: ProxyFactory) -> RunningProxy:
    return await proxy_factory([sim_provider("sim-a")], server={"max_body_bytes": MAX_BODY})


@pytest.fixture
async def http(small_proxy: RunningProxy) -> AsyncIterator[aiohttp.ClientSession]:
    """Alice's session on ``small_proxy``."""
    session = aiohttp.ClientSession(small_proxy.url, headers={"Authorization": f"Bearer {ALICE}"})
    try:
        yield session
    finally:
        await session.close()


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/healthz", {}, 200),
        ("GET", "/metrics", {}, 200),
        ("GET", "/v1/videos", {}, 200),
        ("GET", "/v1/videos", {"Authorization": "Bearer wrong"}, 401),
        ("GET", "/v1/videos/video_nope", {}, 404),
        ("GET", "/no/such/route", {}, 404),
        ("PUT", "/v1/videos", {}, 405),
        ("GET", "/v2/videos/content/video_x?expires=1&sig=00", {}, 403),
        ("GET", "/admin/providers", {}, 404),
    ],
)
async def test_every_answer_carries_a_made_up_request_id(
    http: aiohttp.ClientSession, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    async with http.request(method, path, headers=headers) as response:
        assert response.status == status
        made = response.headers["X-Request-Id"]
    async with http.request(method, path, headers=headers) as again:
        assert again.headers["X-Request-Id"] != made
    assert made.startswith("req_")


async def test_a_usable_client_request_id_comes_back_and_a_bad_one_is_replaced(
    http: aiohttp.ClientSession,
) -> None:
    async with http.get("/v1/videos", headers={"X-Request-Id": "trace-1"}) as response:
        assert response.headers["X-Request-Id"] == "trace-1"
    async with http.get("/v1/videos", headers={"X-Request-Id": "x" * 129}) as response:
        assert response.headers["X-Request-Id"].startswith("req_")
    async with http.get("/v1/videos", headers={"X-Request-Id": "a b"}) as response:
        assert response.headers["X-Request-Id"].startswith("req_")


async def test_the_413_names_the_limit_and_carries_the_request_id(
    http: aiohttp.ClientSession,
) -> None:
    body = {"prompt": "x" * (MAX_BODY * 2)}
    async with http.post("/v1/videos", json=body, headers={"X-Request-Id": "big-1"}) as response:
        assert response.status == 413
        assert response.headers["X-Request-Id"] == "big-1"
        error = (await response.json())["error"]
    assert error["code"] == "request_too_large"
    assert f"the limit is {MAX_BODY} bytes" in error["message"]


async def test_the_sdk_reads_the_request_id_and_a_streamed_download_carries_it(
    small_proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    client = small_proxy.client()
    video = await client.videos.create(prompt="a cat", extra_headers={"X-Request-Id": "sdk-1"})
    assert video._request_id == "sdk-1"
    polled = await client.videos.retrieve(video.id)
    assert polled._request_id is not None and polled._request_id.startswith("req_")
    await finished_job(small_proxy, video.id)
    async with http.get(f"/v1/videos/{video.id}/content") as response:
        assert response.status == 200
        assert response.headers["X-Request-Id"].startswith("req_")
        await response.read()


async def test_the_access_log_is_off_by_default(
    http: aiohttp.ClientSession, logs: CapturedLogs
) -> None:
    async with http.get("/v1/videos") as response:
        assert response.status == 200
    assert logs.lines(logger="sora_proxy.access") == []


async def test_the_access_log_writes_one_line_per_request_without_the_query(
    proxy_factory: ProxyFactory, logs: CapturedLogs
) -> None:
    proxy = await proxy_factory([sim_provider("sim-a")], log_access=True)
    async with aiohttp.ClientSession() as http:
        url = f"{proxy.url}/v2/videos/content/video_x?expires=1&sig=secret"
        async with http.get(url, headers={"X-Request-Id": "acc-1"}) as response:
            assert response.status == 403
    (line,) = logs.lines(logger="sora_proxy.access")
    assert line["message"] == "GET /v2/videos/content/video_x"
    assert (line["status"], line["request_id"], line["level"]) == (403, "acc-1", "INFO")
    assert line["duration_ms"] >= 0


async def test_a_request_id_stays_with_its_request_on_a_kept_alive_connection(
    proxy_factory: ProxyFactory, logs: CapturedLogs
) -> None:
    """The wrapper sets the id in the request's own task (aiohttp runs each request in one)
    and never resets it: a line aiohttp writes for the next request on the same connection,
    one it could not parse, carries no id."""
    proxy = await proxy_factory([sim_provider("sim-a")], log_access=True)
    kept = (
        f"GET /v1/videos HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {ALICE}\r\n"
        "X-Request-Id: trace-kept\r\n\r\n"
    )
    broken = "GET /v1/videos HTTP/1.1\r\nHost: test\r\nBad Name: x\r\n\r\n"
    reader, writer = await asyncio.open_connection(*proxy.url.removeprefix("http://").split(":"))
    try:
        async with asyncio.timeout(10):
            writer.write(kept.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            writer.write(broken.encode())
            refusal = await reader.read()  # aiohttp closes after the 400
    finally:
        writer.close()
        await writer.wait_closed()
    assert head.startswith(b"HTTP/1.1 200") and b"400" in refusal.split(b"\r\n")[0]
    (access,) = logs.lines(logger="sora_proxy.access")
    assert access["request_id"] == "trace-kept"
    (refused,) = [line for line in logs.lines() if "could not parse" in line["message"]]
    assert "request_id" not in refused
