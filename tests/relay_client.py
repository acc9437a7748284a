"""A client of the relay dialect, calling the proxy the way relay scripts call a reseller."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

FINISHED = ("SUCCESS", "FAILURE")


class RelayClient:
    """Bearer key on API calls only; links are fetched bare, as a browser or CDN client would."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self.session = aiohttp.ClientSession()

    async def close(self) -> None:
        await self.session.close()

    async def post(self, body: Any) -> tuple[int, Any]:
        async with self.session.post(
            f"{self.url}/v2/videos/generations", json=body, headers=self._auth()
        ) as response:
            return response.status, await response.json()

    async def create(self, **fields: Any) -> str:
        status, body = await self.post(fields)
        assert status == 200, body
        assert set(body) == {"task_id"}
        return str(body["task_id"])

    async def get(self, task_id: str) -> tuple[int, Any]:
        async with self.session.get(
            f"{self.url}/v2/videos/generations/{task_id}", headers=self._auth()
        ) as response:
            return response.status, await response.json()

    async def task(self, task_id: str) -> dict[str, Any]:
        status, body = await self.get(task_id)
        assert status == 200, body
        return dict(body)

    async def finish(self, task_id: str, within: float = 10.0) -> dict[str, Any]:
        """Poll until the task succeeds or fails."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while (task := await self.task(task_id))["status"] not in FINISHED:
            assert loop.time() < deadline, f"task {task_id} still {task['status']}"
            await asyncio.sleep(0.02)
        return task

    async def fetch(self, link: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """GET a link with no key."""
        async with self.session.get(link, headers=headers) as response:
            return response.status, await response.read()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}
