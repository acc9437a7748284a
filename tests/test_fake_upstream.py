"""Tests for tests/fake_upstream.py: a scripted upstream stops promptly."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from tests.fake_upstream import STOP_GRACE, ScriptedFactory


async def test_a_stop_cancels_an_answer_still_held_after_its_grace(
    scripted: ScriptedFactory,
) -> None:
    upstream = await scripted()
    held, never = asyncio.Event(), asyncio.Event()

    async def holds(request: web.Request) -> web.StreamResponse:
        held.set()
        await never.wait()
        return web.Response()

    upstream.answer("GET", "/held", holds)
    async with aiohttp.ClientSession() as session:
        asking = asyncio.ensure_future(session.get(upstream.url + "/held"))
        await asyncio.wait_for(held.wait(), timeout=10)
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with asyncio.timeout(10 * STOP_GRACE):  # aiohttp's default waited 60 s here
            await upstream.stop()
        assert loop.time() - began >= STOP_GRACE  # the answer had its grace first
        with pytest.raises(aiohttp.ClientConnectionError):  # no answer, whatever the client tries
            await asking
