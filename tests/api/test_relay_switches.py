"""The relay dialect's own optional fields (issue 15, point 11): ``watermark`` and ``private``
are accepted, sent on to relay upstreams and left out for others. (``notify_hook`` is a
delivered webhook since issue 18: ``tests/flows/test_webhooks.py``.)"""

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


async def test_a_switch_that_is_not_true_or_false_is_refused_before_any_upstream_call(
    proxy_factory: ProxyFactory, scripted: ScriptedFactory
) -> None:
    upstream = await scripted()
    proxy = await proxy_factory([scripted_provider(upstream, "relay")])
    for name, value in (("private", "yes"), ("watermark", 1)):
        status, body = await proxy.relay().post({"prompt": "a kite", name: value})
        assert (status, body["error"]["param"]) == (400, name)
        assert body["error"]["code"] == "invalid_type"
    assert [s for s in upstream.seen if s.method == "POST"] == []
