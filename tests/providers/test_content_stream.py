"""A download relayed from an upstream: one that goes silent ends with a timeout, one that is
slow but keeps moving does not (``providers.http.HttpContentStream``'s watch); an answer whose
head, or whose refusal, never ends comes to an end at the call's timeout all the same."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from providers.base import ContentStream, Rejected, UpstreamTimeout
from providers.openai import OpenAIVideosProvider
from tests.fake_upstream import ScriptedFactory, ScriptedUpstream

PIECE = b"\0" * 65536
PATH = "/v1/videos/video_1/content"


@pytest.fixture
async def release() -> AsyncIterator[asyncio.Event]:
    """Lets a held upstream answer finish, at the latest when the test ends."""
    event = asyncio.Event()
    yield event
    event.set()


@contextlib.asynccontextmanager
async def adapter_on(
    upstream: ScriptedUpstream, seconds: float
) -> AsyncIterator[OpenAIVideosProvider]:
    """An adapter whose calls, and silent downloads, time out after ``seconds``; closed after."""
    adapter = OpenAIVideosProvider(
        name="up", base_url=upstream.url + "/v1", api_key="sk-up", timeout=seconds
    )
    try:
        yield adapter
    finally:
        await adapter.aclose()


async def read_into(stream: ContentStream, pieces: list[bytes]) -> None:
    async for chunk in stream.chunks():
        pieces.append(chunk)  # noqa: PERF401 (what arrived before a failure stays)


async def test_a_download_that_goes_silent_ends_with_a_timeout(
    scripted: ScriptedFactory, release: asyncio.Event
) -> None:
    upstream = await scripted()

    async def stalls(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.content_length = 10 * len(PIECE)
        await response.prepare(request)
        await response.write(PIECE)
        await release.wait()  # and then nothing more, for as long as the test runs
        return response

    upstream.answer("GET", PATH, stalls)
    async with adapter_on(upstream, 0.3) as adapter:
        stream = await adapter.open_content("video_1", "video")
        pieces: list[bytes] = []
        try:
            with pytest.raises(aiohttp.SocketTimeoutError, match=r"no byte moved for 0\.3s"):
                await read_into(stream, pieces)
        finally:
            stream.close()
        assert b"".join(pieces) == PIECE


async def test_a_slow_download_that_keeps_moving_is_whole(scripted: ScriptedFactory) -> None:
    upstream = await scripted()

    async def trickles(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.content_length = 8 * len(PIECE)
        await response.prepare(request)
        for _ in range(8):  # 0.8 s in all, several times the timeout, never silent for long
            await response.write(PIECE)
            await asyncio.sleep(0.1)
        return response

    upstream.answer("GET", PATH, trickles)
    async with adapter_on(upstream, 0.4) as adapter:
        stream = await adapter.open_content("video_1", "video")
        try:
            body = b"".join([chunk async for chunk in stream.chunks()])
        finally:
            stream.close()
        assert body == PIECE * 8


async def test_an_upstream_that_never_answers_a_download_times_out(
    scripted: ScriptedFactory, release: asyncio.Event
) -> None:
    # A download has no total timeout (it may outlast any), but the head of its answer does:
    # without one, a copy worker waited for this answer for as long as the connection stayed open.
    upstream = await scripted()

    async def silent(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(status=204)

    upstream.answer("GET", PATH, silent)
    async with adapter_on(upstream, 0.3) as adapter:
        with pytest.raises(UpstreamTimeout, match=r"^content: TimeoutError"):
            async with asyncio.timeout(10):  # far past the adapter's: the wait must end first
                await adapter.open_content("video_1", "video")


async def test_a_refusal_whose_body_never_ends_is_answered_at_the_timeout(
    scripted: ScriptedFactory, release: asyncio.Event
) -> None:
    upstream = await scripted()

    async def refuses(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=404, headers={"Content-Type": "application/json"})
        response.content_length = 1000
        await response.prepare(request)
        await response.write(b'{"error": {"message": "no such video"')
        await release.wait()  # and the rest never comes
        return response

    upstream.answer("GET", PATH, refuses)
    async with adapter_on(upstream, 0.3) as adapter:
        with pytest.raises(Rejected) as refused:
            async with asyncio.timeout(10):
                await adapter.open_content("video_1", "video")
        assert refused.value.status == 404  # the status says what happened; the body is cut
