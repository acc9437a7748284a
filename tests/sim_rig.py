"""A simulator on real loopback HTTP with a clock the test moves by hand, for tests/test_sim*.py.

``start_rig`` starts simulators on demand and stops them after the test; ``rig`` is one with
the default timing. A ``Rig`` sends requests and checks their status in one call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from providers.simulator.server import Simulator
from providers.simulator.settings import SimulationSettings
from tests.clock import ManualClock

KEY = "sk-sim-test"
BEARER = {"Authorization": f"Bearer {KEY}"}
AZURE = {"api-key": KEY}
PREVIEW = {"api-version": "preview"}
T0 = 1_800_000_000.0
PNG = b"\x89PNG\r\n\x1a\n"
TIMING = {"queue_seconds": 5.0, "render_seconds": 20.0, "video_bytes": 4096}


@dataclass
class Rig:
    sim: Simulator
    clock: ManualClock
    http: aiohttp.ClientSession

    def url(self, path: str) -> str:
        return self.sim.base_url + path

    async def call(
        self, method: str, path: str, *, expect: int = 200, **kwargs: Any
    ) -> tuple[Any, aiohttp.ClientResponse]:
        """Send a request, check the status, return the JSON body (or bytes) and the response."""
        kwargs.setdefault("headers", BEARER)
        async with self.http.request(method, self.url(path), **kwargs) as response:
            raw = await response.read()
            assert response.status == expect, raw[:300]
            is_json = response.content_type == "application/json"
            return (await response.json() if is_json else raw), response

    async def create(self, prompt: str = "a red fox in snow", **fields: Any) -> dict[str, Any]:
        body, _ = await self.call("POST", "/v1/videos", json={"prompt": prompt, **fields})
        assert isinstance(body, dict)
        return body

    async def video(self, video_id: str) -> dict[str, Any]:
        body, _ = await self.call("GET", f"/v1/videos/{video_id}")
        assert isinstance(body, dict)
        return body

    async def relay_task(self, task_id: str) -> dict[str, Any]:
        body, _ = await self.call("GET", f"/v2/videos/generations/{task_id}")
        assert isinstance(body, dict)
        return body


StartRig = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def start_rig() -> AsyncIterator[StartRig]:
    """Start simulators on demand (settings as keywords); all are stopped after the test."""
    simulators: list[Simulator] = []
    async with aiohttp.ClientSession() as http:

        async def start(
            *, api_key: str = KEY, deployments: Collection[str] | None = None, **settings: Any
        ) -> Rig:
            clock = ManualClock(T0)
            sim = Simulator(
                SimulationSettings(**{**TIMING, **settings}),
                api_key=api_key,
                deployments=deployments,
                clock=clock,
            )
            simulators.append(sim)
            await sim.start()
            return Rig(sim, clock, http)

        yield start
    for sim in simulators:
        await sim.stop()


@pytest.fixture
async def rig(start_rig: StartRig) -> Rig:
    return await start_rig()


def sdk_form(**fields: str) -> aiohttp.FormData:
    """A multipart body shaped like the OpenAI SDK's create (text fields, optional image)."""
    form = aiohttp.FormData(default_to_multipart=True)  # the SDK never sends urlencoded
    for name, value in fields.items():
        form.add_field(name, value)
    return form


def with_image(form: aiohttp.FormData) -> aiohttp.FormData:
    form.add_field("input_reference", PNG, filename="a.png", content_type="image/png")
    return form


def assert_openai_error(body: Any, *, code: str | None, param: str | None = None) -> None:
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert (error["code"], error["param"]) == (code, param)
