"""Webhooks: signed as Standard Webhooks (the SDK's ``verify_signature`` accepts every one),
retried with the same ``webhook-id`` until acknowledged, kept across a restart, for the key's
``webhook_url``, a create's ``callback_url`` and a relay ``notify_hook`` (issue 18, acceptance 3).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web

from router import appkeys as keys
from router.jobs.webhooks import callback_refusal
from tests.conftest import (
    ALICE,
    BOB,
    ProxyFactory,
    build_config,
    finished_job,
    sim_provider,
    start_proxy,
    wait_for,
)

SECRET = "whsec_" + base64.b64encode(b"sixteen-or-more-bytes!").decode()
FAST_RETRIES = {
    "first_delay": 0.05,
    "factor": 1.5,
    "max_delay": 0.2,
    "jitter": 0.1,
    "allow_private_addresses": True,
    # a stop calls off an attempt in flight and its claim lapses after the lease: short here, so
    # a restart delivers within the test's wait whenever the stop lands
    "lease": 1.0,
}


@dataclass
class Receiver:
    """A webhook receiver: verifies each delivery with the SDK, answers 500 ``fail`` times
    per event id, then 200."""

    fail: int = 0
    url: str = ""
    seen: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # path, id, body
    acked: list[str] = field(default_factory=list)  # event ids answered 200
    sdk: openai.OpenAI = field(default_factory=lambda: openai.OpenAI(api_key="unused"))

    async def handle(self, request: web.Request) -> web.Response:
        payload = await request.read()
        # raises InvalidWebhookSignatureError on a bad signature or a stale timestamp
        self.sdk.webhooks.verify_signature(payload, dict(request.headers), secret=SECRET)
        event_id = request.headers["webhook-id"]
        self.seen.append((request.path, event_id, orjson.loads(payload)))
        if sum(1 for _, i, _ in self.seen if i == event_id) <= self.fail:
            return web.Response(status=500)
        self.acked.append(event_id)
        return web.Response(status=200)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver(fail=3)
    app = web.Application()
    app.router.add_post("/{path:.*}", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    found.url = f"http://{host}:{port}"
    yield found
    found.sdk.close()
    await runner.cleanup()


def keys_with_hook(url: str) -> list[dict[str, Any]]:
    return [
        {"name": "alice", "key": ALICE, "webhook_url": f"{url}/hooks", "webhook_secret": SECRET},
        {"name": "bob", "key": BOB, "webhook_secret": SECRET},
    ]


async def test_an_event_is_retried_until_acknowledged_with_one_webhook_id(
    proxy_factory: ProxyFactory, receiver: Receiver
) -> None:
    proxy = await proxy_factory(
        [sim_provider("sim")], keys=keys_with_hook(receiver.url), webhooks=FAST_RETRIES
    )
    video = await proxy.client().videos.create(prompt="a kite")
    await finished_job(proxy, video.id)

    async def acknowledged() -> bool:
        return len(receiver.acked) == 1

    await wait_for(acknowledged)
    ids = {event_id for _, event_id, _ in receiver.seen}
    assert len(receiver.seen) == 4 and ids == set(receiver.acked)  # 500, 500, 500, then 200
    (_, event_id, body) = receiver.seen[-1]
    assert event_id.startswith("evt_")
    assert body["object"] == "event" and body["type"] == "video.completed"
    assert body["data"] == {"id": video.id} and body["id"] == event_id
    hooks = proxy.app[keys.WEBHOOKS]  # first 0.05 s, then 1.5 times longer, at most 0.2 s
    assert 0.045 <= hooks.delay(0) <= 0.055 and 0.0675 <= hooks.delay(1) <= 0.0825
    assert 0.18 <= hooks.delay(10) <= 0.22

    async def counted() -> bool:  # the proxy records the 200 just after the receiver sent it
        metrics = proxy.app[keys.METRICS].render().decode()
        return 'sora_proxy_webhook_deliveries_total{outcome="delivered"} 1.0' in metrics

    await wait_for(counted)
    metrics = proxy.app[keys.METRICS].render().decode()
    assert 'sora_proxy_webhook_deliveries_total{outcome="retry"} 3.0' in metrics


async def test_callback_url_and_notify_hook_are_delivered_too(
    proxy_factory: ProxyFactory, receiver: Receiver
) -> None:
    receiver.fail = 0
    proxy = await proxy_factory(
        [sim_provider("sim", fail_words=["broken"])],
        keys=keys_with_hook(receiver.url),
        webhooks=FAST_RETRIES,
    )
    video = await proxy.client(BOB).videos.create(
        prompt="broken kite", extra_body={"callback_url": f"{receiver.url}/cb"}
    )
    task = await proxy.relay(BOB).create(prompt="a kite", notify_hook=f"{receiver.url}/relay")
    await finished_job(proxy, video.id)
    await finished_job(proxy, task)

    async def both() -> bool:
        return len(receiver.acked) == 2

    await wait_for(both)
    by_path = {path: body for path, _, body in receiver.seen}
    assert by_path["/cb"]["type"] == "video.failed" and by_path["/cb"]["data"]["id"] == video.id
    assert by_path["/relay"]["type"] == "video.completed"
    assert by_path["/relay"]["data"]["id"] == task


async def test_events_survive_a_restart(tmp_path: Path, receiver: Receiver) -> None:
    receiver.fail = 10**6  # nothing is acknowledged while the first proxy runs
    config = build_config(
        tmp_path,
        [sim_provider("sim")],
        keys=keys_with_hook(receiver.url),
        webhooks=FAST_RETRIES,
    )
    first = await start_proxy(config)
    try:
        video = await first.client().videos.create(prompt="a kite")
        await finished_job(first, video.id)

        async def tried() -> bool:
            return len(receiver.seen) >= 2

        await wait_for(tried)
    finally:
        await first.stop()
    receiver.fail = 0
    second = await start_proxy(config)
    try:

        async def acknowledged() -> bool:
            return len(receiver.acked) == 1

        await wait_for(acknowledged)
    finally:
        await second.stop()
    assert {event_id for _, event_id, _ in receiver.seen} == set(receiver.acked)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.com/x", True),
        ("http://127.0.0.1:9/x", False),
        ("http://[::1]/x", False),
        ("http://10.1.2.3/x", False),
        ("http://169.254.169.254/latest", False),
        ("http://localhost/x", False),
        ("ftp://example.com/x", False),
        ("https://" + "a" * 2100 + ".com", False),
    ],
)
def test_callback_addresses_follow_the_address_rules(url: str, allowed: bool) -> None:
    assert (callback_refusal(url, allow_private=False) is None) is allowed


async def test_a_private_callback_is_refused_at_create(proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory([sim_provider("sim")])
    with pytest.raises(openai.BadRequestError) as refused:
        await proxy.client().videos.create(
            prompt="x", extra_body={"callback_url": "http://127.0.0.1:1/hook"}
        )
    assert refused.value.code == "invalid_value"
    assert refused.value.param == "callback_url"
