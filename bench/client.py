"""Setting the stage over HTTP: create jobs, wait for them, read what a server answers.

This is set-up, never the measurement (wrk measures), so a plain aiohttp client is enough; it
runs on the runner's core with many connections so creating 100k jobs takes minutes, not hours.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson

__all__ = ["PROMPT", "Api", "create_body", "wait_answering"]

PROMPT = "a paper boat on a rainy street"
_SEND_TIMEOUT = aiohttp.ClientTimeout(total=60)


def create_body(model: str) -> bytes:
    """The JSON create every scenario sends: the catalogue's only size and length."""
    return orjson.dumps({"prompt": PROMPT, "model": model, "seconds": "4", "size": "720x1280"})


class Api:
    """One server's OpenAI Videos API under one key; use as ``async with Api(...) as api``."""

    __slots__ = ("_headers", "_session", "url")

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self._headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        connector = aiohttp.TCPConnector(limit=256)
        self._session = aiohttp.ClientSession(connector=connector, timeout=_SEND_TIMEOUT)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def headers(self) -> dict[str, str]:
        """The key's Authorization header (and the JSON content type)."""
        return self._headers

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Api used outside 'async with'")
        return self._session

    async def get_bytes(self, path: str) -> bytes:
        async with self.session.get(self.url + path, headers=self._headers) as reply:
            body = await reply.read()
            if reply.status != 200:
                raise RuntimeError(f"GET {path}: HTTP {reply.status}: {body[:200]!r}")
            return body

    async def get_json(self, path: str) -> Any:
        return orjson.loads(await self.get_bytes(path))

    async def create(self, model: str) -> str:
        """Create one job; its id."""
        body = create_body(model)
        async with self.session.post(
            f"{self.url}/v1/videos", data=body, headers=self._headers
        ) as reply:
            answer = await reply.read()
            if reply.status != 200:
                raise RuntimeError(f"create: HTTP {reply.status}: {answer[:200]!r}")
            return str(orjson.loads(answer)["id"])

    async def create_many(self, model: str, count: int, concurrency: int) -> list[str]:
        """Create ``count`` jobs over ``concurrency`` connections; their ids."""
        ids: list[str] = []
        remaining = iter(range(count))

        async def worker() -> None:
            for _ in remaining:  # one shared iterator: each job is created once
                ids.append(await self.create(model))  # noqa: PERF401 (shared by the workers)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ids

    async def wait_status(self, video_id: str, status: str, within: float = 30.0) -> bytes:
        """Poll until the job reaches ``status``; the Video object's bytes as then served."""
        deadline = time.monotonic() + within
        while True:
            body = await self.get_bytes(f"/v1/videos/{video_id}")
            if orjson.loads(body)["status"] == status:
                return body
            if time.monotonic() > deadline:
                raise RuntimeError(f"{video_id} not {status} within {within}s: {body[:200]!r}")
            await asyncio.sleep(0.05)


async def wait_answering(url: str, within: float = 30.0) -> None:
    """Wait until ``url`` answers 200 (a server that just started)."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as reply:
                    if reply.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {within}s")
            await asyncio.sleep(0.05)
