"""The simulated task formats on the wire, raw (no adapter): each format's auth, its error
body, its refusals of what it cannot take, and the operations the proxy seldom sends (Ark's
delete, fal's cancel, OpenRouter's model list). The clock is moved by hand.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.sim_rig import BEARER, KEY, Rig, StartRig
from tests.sim_rig import rig as rig  # a fixture
from tests.sim_rig import start_rig as start_rig  # a fixture

ARK_TASKS = "/ark/api/v3/contents/generations/tasks"
FAL = {"Authorization": f"Key {KEY}"}
GOOGLE = {"x-goog-api-key": KEY}


async def post(rig: Rig, path: str, body: Any, headers: dict[str, str], expect: int = 200) -> Any:
    reply, _ = await rig.call("POST", path, json=body, headers=headers, expect=expect)
    return reply


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/openrouter/api/v1/videos/x", {}, 401),
        ("/xai/v1/videos/x", {"Authorization": "Bearer nope"}, 401),
        (f"{ARK_TASKS}/x", {}, 401),
        ("/fal/o/a/requests/x/status", BEARER, 401),
        ("/gemini/v1beta/models", {}, 403),
        ("/gemini/v1beta/models", {"x-goog-api-key": "nope"}, 400),
    ],
)
async def test_every_format_checks_its_own_credential(
    rig: Rig, path: str, headers: dict[str, str], status: int
) -> None:
    await rig.call("GET", path, headers=headers, expect=status)


async def test_a_wrong_gemini_key_is_googles_api_key_invalid(rig: Rig) -> None:
    body, _ = await rig.call(
        "GET", "/gemini/v1beta/models", headers={"x-goog-api-key": "no"}, expect=400
    )
    assert body["error"]["status"] == "INVALID_ARGUMENT"
    assert body["error"]["details"][0]["reason"] == "API_KEY_INVALID"


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/openrouter/api/v1/videos", {"model": "m", "prompt": "p", "size": "1792x1024"}, BEARER),
        ("/openrouter/api/v1/videos", {"model": "m", "prompt": "p", "resolution": "480p"}, BEARER),
        ("/xai/v1/videos/generations", {"model": "m", "prompt": "p", "duration": 99}, BEARER),
        (ARK_TASKS, {"model": "m", "content": "text"}, BEARER),
        (ARK_TASKS, {"model": "m", "content": [{"type": "image_url"}]}, BEARER),
        ("/gemini/v1beta/models/veo:predictLongRunning", {"instances": []}, GOOGLE),
        (
            "/gemini/v1beta/models/veo:predictLongRunning",
            {"instances": [{"prompt": "p"}], "parameters": "x"},
            GOOGLE,
        ),
        (
            "/gemini/v1beta/models/veo:predictLongRunning",
            {"instances": [{"prompt": "p", "image": "x"}]},
            GOOGLE,
        ),
        ("/fal/o/a", {"prompt": "p", "duration": "99s"}, FAL),
    ],
)
async def test_what_a_format_cannot_take_is_a_400(
    rig: Rig, path: str, body: dict[str, Any], headers: dict[str, str]
) -> None:
    await post(rig, path, body, headers, expect=400)
    assert rig.sim.stats.creates_accepted == 0


async def test_a_form_body_is_refused_by_the_json_formats(rig: Rig) -> None:
    await rig.call(
        "POST", "/xai/v1/videos/generations", data={"prompt": "p"}, headers=BEARER, expect=400
    )


async def test_ark_delete_cancels_a_queued_task_and_deletes_a_finished_one(rig: Rig) -> None:
    body = {"model": "seedance", "content": [{"type": "text", "text": "a kite"}], "duration": 4}
    first = (await post(rig, ARK_TASKS, body, BEARER))["id"]
    await rig.call("DELETE", f"{ARK_TASKS}/{first}", headers=BEARER)
    task, _ = await rig.call("GET", f"{ARK_TASKS}/{first}", headers=BEARER)
    assert task["status"] == "cancelled"
    rig.clock.advance(6)  # out of the queue: rendering cannot be cancelled
    second = (await post(rig, ARK_TASKS, body, BEARER))["id"]
    rig.clock.advance(6)
    await rig.call("DELETE", f"{ARK_TASKS}/{second}", headers=BEARER, expect=400)
    rig.clock.advance(30)
    await rig.call("DELETE", f"{ARK_TASKS}/{second}", headers=BEARER)
    await rig.call("GET", f"{ARK_TASKS}/{second}", headers=BEARER, expect=404)


async def test_fal_cancel_is_accepted_until_the_request_finishes(rig: Rig) -> None:
    submitted = await post(rig, "/fal/owner/app/sub", {"prompt": "a kite", "duration": "8"}, FAL)
    base = f"/fal/owner/app/requests/{submitted['request_id']}"
    await rig.call("GET", base, headers=FAL, expect=400)  # no result yet
    await rig.call("PUT", f"{base}/cancel", headers=FAL, expect=202)
    rig.clock.advance(60)
    await rig.call("PUT", f"{base}/cancel", headers=FAL, expect=400)
    await rig.call(
        "GET", f"/fal/other/app/requests/{submitted['request_id']}", headers=FAL, expect=404
    )


async def test_openrouter_lists_its_models_without_a_key_and_serves_index_0_only(
    rig: Rig,
) -> None:
    models, _ = await rig.call("GET", "/openrouter/api/v1/videos/models", headers={})
    assert "720p" in models["data"][0]["supported_resolutions"]
    body = {"model": "m", "prompt": "p", "size": "1280x720"}
    job = await post(rig, "/openrouter/api/v1/videos", body, BEARER, expect=202)
    assert job["status"] == "pending"
    rig.clock.advance(60)
    content = f"/openrouter/api/v1/videos/{job['id']}/content"
    await rig.call("GET", f"{content}?index=1", headers=BEARER, expect=404)
    await rig.call("GET", f"{content}?index=0", headers=BEARER)


async def test_gemini_serves_a_download_only_for_its_operations_and_model(rig: Rig) -> None:
    created = await post(
        rig,
        "/gemini/v1beta/models/veo:predictLongRunning",
        {"instances": [{"prompt": "p"}], "parameters": {"durationSeconds": "4"}},
        GOOGLE,
    )
    name = created["name"]
    await rig.call(
        "GET", f"/gemini/v1beta/{name.replace('veo', 'other', 1)}", headers=GOOGLE, expect=404
    )
    await rig.call(
        "GET", "/gemini/v1beta/files/nope:download?alt=media", headers=GOOGLE, expect=404
    )
    rig.clock.advance(60)
    operation, _ = await rig.call("GET", f"/gemini/v1beta/{name}", headers=GOOGLE)
    uri = operation["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
    _, response = await rig.call(
        "GET", uri.removeprefix(rig.sim.base_url), headers=GOOGLE, allow_redirects=False, expect=302
    )
    assert response.headers["Location"].endswith(".mp4")


async def test_a_fal_429_keeps_its_retry_after(start_rig: StartRig) -> None:
    rig = await start_rig(rate_limit_rate=1.0, retry_after=9)
    _, response = await rig.call("POST", "/fal/o/a", json={"prompt": "p"}, headers=FAL, expect=429)
    assert response.headers["Retry-After"] == "9"
