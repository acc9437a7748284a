"""The relay dialect's own optional fields (issue 15, point 11): ``watermark`` and ``private``
are accepted, sent on to relay upstreams and left out for others; ``notify_hook`` is refused
with a message that says what to do instead."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ProxyFactory
from tests.fake_upstream import ScriptedFactory, ScriptedUpstream

TASKS = "/v2/videos/generations"


def scripted_provider(upstream: ScriptedUpstream, kind: str) -> dict[str, Any]:
    return {
        "name": kind,
        "kind": kind,
        "base_url": f"{upstream.url}/v1" if kind == "openai" else upstream.url,
        "api_key": "sk-up-switches",
        "models": {"sora-2": {"price_per_second": 0.1}},
        "poll_interval": 0.05,
        "timeout": 5,
    }


@pytest.mark.parametrize("kind", ["relay", "openai"])
async def test_watermark_and_private_reach_relay_upstreams_only(
    proxy_factory: ProxyFactory, scripted: ScriptedFactory, kind: str
) -> None:
    upstream = await scripted()
    upstream.reply("POST", TASKS, {"task_id": "task-1"})
    upstream.reply("GET", f"{TASKS}/task-1", {"task_id": "task-1", "status": "IN_PROGRESS"})
    video = {"id": "video_1", "object": "video", "status": "queued", "progress": 0}
    upstream.reply("POST", "/v1/videos", video)
    upstream.reply("GET", "/v1/videos/video_1", video)
    proxy = await proxy_factory([scripted_provider(upstream, kind)])
    relay = proxy.relay()
    await relay.create(prompt="a kite", duration="4", watermark=False, private=True)
    sent = next(s.json() for s in upstream.seen if s.method == "POST")
    if kind == "relay":
        assert (sent["watermark"], sent["private"]) == (False, True)
    else:
        assert "watermark" not in sent and "private" not in sent


async def test_notify_hook_is_refused_with_a_clear_message(
    proxy_factory: ProxyFactory, scripted: ScriptedFactory
) -> None:
    upstream = await scripted()
    proxy = await proxy_factory([scripted_provider(upstream, "relay")])
    status, body = await proxy.relay().post(
        {"prompt": "a kite", "notify_hook": "https://example.com/hook"}
    )
    assert status == 400
    error = body["error"]
    assert (error["param"], error["code"]) == ("notify_hook", "unsupported_parameter")
    assert "not supported yet" in error["message"] and "poll" in error["message"]
    status, body = await proxy.relay().post({"prompt": "a kite", "private": "yes"})
    assert (status, body["error"]["param"]) == (400, "private")
    assert [s for s in upstream.seen if s.method == "POST"] == []
