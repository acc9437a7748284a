"""A misbehaving upstream over loopback against the HTTP boundary (issue 15, points 5, 6, 7):
ids with path characters, replies that never end, status words invented on every poll.

Imports only what existed before issue 15, so each test can be run against the old code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from providers import statuses
from providers.base import BadUpstreamReply, Rejected, RenderRequest, UpstreamStatus
from providers.openai import OpenAIVideosProvider
from providers.relay import RelayProvider
from tests.fake_upstream import ScriptedFactory
from tests.hostile_upstream import Endless

REQUEST = RenderRequest(model="sora-2", prompt="a kite", size="1280x720", seconds=8)
TASKS = "/v2/videos/generations"
CAP = 8 * 1024 * 1024  # the default max_reply_bytes


@pytest.mark.parametrize("upstream_id", ["../../admin?steal=1#x", "a/../../b", "..", "x%2F..%2Fy"])
async def test_ids_go_into_paths_escaped(
    scripted: ScriptedFactory, adapters: Callable[..., Any], upstream_id: str
) -> None:
    """Point 5: an id (stored before ids were checked) cannot reach another path or add a
    query; the two ids escaping cannot hold are refused without a call."""
    upstream = await scripted()
    openai = adapters(OpenAIVideosProvider, f"{upstream.url}/v1")
    if upstream_id == "..":
        with pytest.raises(BadUpstreamReply):
            await openai.get(upstream_id)
        assert upstream.seen == []
        return
    for call in (openai.get, openai.delete):
        with pytest.raises(Rejected, match="no such path"):  # the scripted upstream's 404
            await call(upstream_id)
    for seen in upstream.seen:
        assert seen.path == f"/v1/videos/{upstream_id}", seen.path
        assert seen.query == {}
    assert [s.method for s in upstream.seen] == ["GET", "DELETE"]


@pytest.mark.parametrize("bad", ["../../admin", "a/b", "a?b", "a#b", "", ".hidden", "x" * 300])
async def test_an_id_no_upstream_uses_is_a_malformed_reply(
    scripted: ScriptedFactory, adapters: Callable[..., Any], bad: str
) -> None:
    """Point 5: a create answered with such an id, in either wire format."""
    upstream = await scripted()
    upstream.reply("POST", "/v1/videos", {"id": bad, "status": "queued"})
    upstream.reply("POST", TASKS, {"task_id": bad})
    with pytest.raises(BadUpstreamReply):
        await adapters(OpenAIVideosProvider, f"{upstream.url}/v1").create(REQUEST)
    with pytest.raises(BadUpstreamReply):
        await adapters(RelayProvider, upstream.url).create(REQUEST)


async def test_an_endless_reply_is_cut_at_the_cap(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    """Point 6: a 2xx that never ends is a ``BadUpstreamReply`` once past the cap, not a
    reply read until the timeout (the proxy's memory growing all the while)."""
    upstream = await scripted()
    endless = Endless()
    upstream.answer("POST", "/v1/videos", endless)
    openai = adapters(OpenAIVideosProvider, f"{upstream.url}/v1")
    with pytest.raises(BadUpstreamReply, match="longer than"):
        await openai.create(REQUEST)
    # What the upstream got out before we hung up: the cap and the socket buffers, no more.
    assert endless.sent < 2 * CAP


async def test_invented_status_words_bound_the_log_and_memory(
    scripted: ScriptedFactory,
    adapters: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Point 7: 300 polls, each answering a new 20 KB status word."""
    upstream = await scripted()
    polls = 0

    def invented(_: web.Request) -> web.Response:
        nonlocal polls
        polls += 1
        return web.json_response({"id": "v1", "status": f"w{polls}-" + "z" * 20_000})

    upstream.answer("GET", "/v1/videos/v1", invented)
    openai = adapters(OpenAIVideosProvider, f"{upstream.url}/v1")
    before = set(statuses._reported)  # process-wide: other tests' words must log afterwards
    try:
        with caplog.at_level(logging.WARNING, logger="providers.statuses"):
            for _ in range(300):
                assert (await openai.get("v1")).status is UpstreamStatus.UNRECOGNISED
        assert len(caplog.text) < 64 * 300
        assert len(statuses._reported) <= 64
        assert all(len(word) < 100 for word in statuses._reported)
    finally:
        statuses._reported.clear()
        statuses._reported.update(before)


async def test_a_cookie_an_upstream_sets_is_never_sent_back(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    """One session serves every tenant's calls: an upstream's ``Set-Cookie`` must not ride on
    the next call (a shared jar would carry one tenant's session to another's render)."""
    upstream = await scripted()
    upstream.reply(
        "GET",
        "/v1/videos/v1",
        {"id": "v1", "status": "queued"},
        headers={"Set-Cookie": "session=tenant-a; Path=/"},
    )
    # by name: aiohttp's default jar keeps no cookie of a bare IP address
    named = upstream.url.replace("127.0.0.1", "localhost")
    openai = adapters(OpenAIVideosProvider, f"{named}/v1")
    for _ in range(2):
        await openai.get("v1")
    assert [s.headers.get("Cookie") for s in upstream.seen] == [None, None]
