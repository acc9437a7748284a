"""Readiness (issue 4): ``/readyz`` waits for start-up and for the first health probe round.

The probes go over real HTTP to an upstream whose probe call (``GET /v1/videos?limit=1`` in
the OpenAI wire format) the test holds until it lets go, so "the round has not finished" is a
state the test controls rather than a race it hopes to win.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import ProxyFactory, RunningProxy, wait_for
from tests.fake_upstream import ScriptedFactory, ScriptedUpstream


class GatedUpstream:
    """An OpenAI-format upstream (a scripted one) whose every ``GET /v1/videos`` waits until
    ``release()``."""

    def __init__(self, upstream: ScriptedUpstream) -> None:
        self.url = upstream.url
        self.arrived = asyncio.Event()  # a probe reached us
        self._gate = asyncio.Event()
        upstream.answer("GET", "/v1/videos", self._list)

    def release(self) -> None:
        self._gate.set()

    async def _list(self, request: web.Request) -> web.Response:
        self.arrived.set()
        await self._gate.wait()
        return web.json_response({"object": "list", "data": [], "has_more": False})


@pytest.fixture
async def gated(scripted: ScriptedFactory) -> AsyncIterator[GatedUpstream]:
    upstream = GatedUpstream(await scripted())
    yield upstream
    upstream.release()  # a held handler would keep the server's shutdown waiting


def openai_provider(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "openai",
        "base_url": f"{url}/v1",
        "api_key": "sk-upstream",
        "models": {"sora-2": {"price_per_second": 0.1}},
        "timeout": 5,
        **extra,
    }


async def readyz(proxy: RunningProxy) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(f"{proxy.url}/readyz") as r:
        return r.status, dict(await r.json())


async def is_ready(proxy: RunningProxy) -> bool:
    return (await readyz(proxy))[0] == 200


async def test_readyz_is_503_until_every_provider_was_probed_once_then_200(
    proxy_factory: ProxyFactory, gated: GatedUpstream, scripted: ScriptedFactory
) -> None:
    """A failing probe counts as probed; a held one keeps readiness off; liveness is unaffected.

    The default probe interval (30 s) is kept: the first round must start at once.
    """
    failing = await scripted()
    failing.reply("GET", "/v1/videos", {"error": {"message": "down"}}, status=500)
    proxy = await proxy_factory(
        [openai_provider("held", gated.url), openai_provider("failing", failing.url)],
        ready=False,
    )
    await asyncio.wait_for(gated.arrived.wait(), timeout=5)
    await wait_for(lambda: _probed(failing.seen))  # both probes sent; one is held
    assert await readyz(proxy) == (503, {"ready": False, "waiting_for": ["first_probe_round"]})
    async with aiohttp.ClientSession() as s, s.get(f"{proxy.url}/healthz") as r:
        assert r.status == 200
    gated.release()
    await wait_for(lambda: is_ready(proxy), within=5)
    assert await readyz(proxy) == (200, {"ready": True})


async def _probed(seen: list[Any]) -> bool:
    return any(s.path == "/v1/videos" and s.query == {"limit": "1"} for s in seen)


async def test_a_hanging_probe_is_bounded_by_the_adapter_timeout(
    proxy_factory: ProxyFactory, gated: GatedUpstream
) -> None:
    """An upstream that never answers delays readiness by its ``timeout``, not for ever."""
    proxy = await proxy_factory([openai_provider("hanging", gated.url, timeout=0.3)], ready=False)
    await wait_for(lambda: is_ready(proxy), within=5)
    assert gated.arrived.is_set()
