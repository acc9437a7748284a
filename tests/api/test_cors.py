"""Browsers (issue 16): ``server.cors_origins``. Preflights of allowed origins are answered
without a key; allowed origins get ``Access-Control-*`` on every answer, errors included; others
get nothing. The last test runs a real headless Chromium on a page served from another loopback
port that calls the proxy with ``fetch`` and reports what it could read."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.conftest import ALICE, ProxyFactory, RunningProxy, sim_provider
from tests.proxy_process import free_port

ALLOWED = "http://app.example:8080"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip


@pytest.fixture
async def cors_proxy(proxy_factory: ProxyFactory) -> RunningProxy:
    return await proxy_factory([sim_provider("a")], server={"cors_origins": [ALLOWED]})


async def test_an_allowed_preflight_needs_no_key_and_names_what_may_follow(
    cors_proxy: RunningProxy,
) -> None:
    headers = {
        "Origin": ALLOWED,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-request-id",
    }
    async with (
        aiohttp.ClientSession() as http,
        http.options(f"{cors_proxy.url}/v1/videos", headers=headers) as response,
    ):
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        allowed = response.headers["Access-Control-Allow-Headers"]
        assert allowed == "authorization, content-type, x-request-id"
        assert response.headers["Access-Control-Max-Age"] == "600"
        assert response.headers["X-Request-Id"].startswith("req_")


@pytest.mark.parametrize(
    ("method", "path", "key", "status"),
    [
        ("GET", "/v1/videos", ALICE, 200),
        ("GET", "/v1/videos", "sk-wrong", 401),
        ("GET", "/nowhere", ALICE, 404),
        ("PUT", "/v1/videos", ALICE, 405),
    ],
)
async def test_an_allowed_origin_reads_every_answer_errors_included(
    cors_proxy: RunningProxy, method: str, path: str, key: str, status: int
) -> None:
    headers = {"Origin": ALLOWED, "Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, cors_proxy.url + path, headers=headers) as response,
    ):
        assert response.status == status
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert "X-Request-Id" in response.headers["Access-Control-Expose-Headers"]
        assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]
        assert "Origin" in response.headers["Vary"]


async def test_other_origins_and_the_default_get_no_cors_headers(
    cors_proxy: RunningProxy, proxy_factory: ProxyFactory
) -> None:
    closed = await proxy_factory([sim_provider("b")])  # cors_origins left empty
    preflight = {"Origin": ALLOWED, "Access-Control-Request-Method": "POST"}
    async with aiohttp.ClientSession() as http:
        for url, origin in ((cors_proxy.url, "http://evil.example"), (closed.url, ALLOWED)):
            headers = {**preflight, "Origin": origin}
            async with http.options(f"{url}/v1/videos", headers=headers) as response:
                assert response.status == 401  # no preflight answer: the key is asked for
                assert "Access-Control-Allow-Origin" not in response.headers
            get = {"Origin": origin, "Authorization": f"Bearer {ALICE}"}
            async with http.get(f"{url}/v1/videos", headers=get) as response:
                assert response.status == 200
                assert "Access-Control-Allow-Origin" not in response.headers


async def test_an_any_origin_entry_echoes_each_origin(proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory([sim_provider("a")], server={"cors_origins": ["*"]})
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{proxy.url}/healthz", headers={"Origin": "http://x.example"}) as response,
    ):
        assert response.headers["Access-Control-Allow-Origin"] == "http://x.example"


PAGE = """<!doctype html><title>cors</title><script>
(async () => {
  const report = {};
  try {
    const created = await fetch("%(proxy)s/v1/videos", {
      method: "POST",
      headers: {"Authorization": "Bearer %(key)s", "Content-Type": "application/json",
                "X-Request-Id": "browser-1"},
      body: JSON.stringify({prompt: "a kite", seconds: "4"}),
    });
    report.create = {status: created.status, id: (await created.json()).id,
                     request_id: created.headers.get("X-Request-Id")};
    const refused = await fetch("%(proxy)s/v1/videos", {headers: {"Authorization": "Bearer no"}});
    report.refused = {status: refused.status, code: (await refused.json()).error.code};
  } catch (error) {
    report.error = String(error);
  }
  await fetch("/report", {method: "POST", body: JSON.stringify(report)});
})();
</script>"""


def page_origin() -> tuple[int, str]:
    """A free loopback port for the page, and the origin a browser gives it."""
    port = free_port()
    return port, f"http://127.0.0.1:{port}"


async def run_page_in_chromium(
    proxy: RunningProxy, port: int, origin: str, tmp_path: Path
) -> dict[str, Any]:
    """Serve ``PAGE`` at ``origin`` (on ``port``), open it in a fresh headless Chromium and
    return what the page reported."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium: scripts/test installs Debian's chromium when run as root")
    reported: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def page(request: web.Request) -> web.Response:
        body = PAGE % {"proxy": proxy.url, "key": ALICE}
        return web.Response(text=body, content_type="text/html")

    async def report(request: web.Request) -> web.Response:
        if not reported.done():
            reported.set_result(orjson.loads(await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_post("/report", report)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    browser = await asyncio.create_subprocess_exec(
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'chromium'}",  # a fresh profile every time
        f"{origin}/",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        return await asyncio.wait_for(reported, 45)
    finally:
        os.killpg(browser.pid, signal.SIGTERM)  # its own session: the browser and its helpers
        await asyncio.wait_for(browser.wait(), 15)
        await runner.cleanup()


async def test_a_page_on_an_allowed_origin_calls_the_proxy_from_chromium(
    proxy_factory: ProxyFactory, tmp_path: Path
) -> None:
    port, origin = page_origin()
    proxy = await proxy_factory([sim_provider("a")], server={"cors_origins": [origin]})
    report = await run_page_in_chromium(proxy, port, origin, tmp_path)
    assert "error" not in report, report
    assert report["create"]["status"] == 200
    assert report["create"]["id"].startswith("video_")
    assert report["create"]["request_id"] == "browser-1"  # an exposed header, read by the page
    assert report["refused"] == {"status": 401, "code": "invalid_api_key"}


async def test_a_page_on_another_origin_is_blocked_by_chromium(
    proxy_factory: ProxyFactory, tmp_path: Path
) -> None:
    port, origin = page_origin()
    proxy = await proxy_factory([sim_provider("a")], server={"cors_origins": [ALLOWED]})
    report = await run_page_in_chromium(proxy, port, origin, tmp_path)
    assert report == {"error": "TypeError: Failed to fetch"}
    assert proxy.stats("a").creates_received == 0  # the preflight failed: nothing was sent
