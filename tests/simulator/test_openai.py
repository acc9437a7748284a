"""The OpenAI Videos API and its Azure twin on the simulated upstream, over loopback HTTP."""

from __future__ import annotations

import re
from typing import Any

import pytest

from providers.simulator.jobs import CreateParams
from tests.sim_rig import (
    AZURE,
    BEARER,
    PNG,
    PREVIEW,
    T0,
    Rig,
    StartRig,
    assert_openai_error,
    sdk_form,
    with_image,
)
from tests.sim_rig import rig as rig  # a fixture
from tests.sim_rig import start_rig as start_rig  # a fixture

# -- OpenAI dialect: the lifecycle -------------------------------------------------------------


async def test_multipart_create_moves_through_queue_and_render_to_a_downloadable_mp4(
    rig: Rig,
) -> None:
    form = sdk_form(prompt="a red fox", model="sora-2-pro", seconds="8", size="1280x720")
    video, _ = await rig.call("POST", "/v1/videos", data=form)
    assert re.fullmatch(r"video_[0-9a-f]{48}", video["id"])
    assert video == {
        "id": video["id"],
        "object": "video",
        "model": "sora-2-pro",
        "status": "queued",
        "progress": 0,
        "created_at": int(T0),
        "completed_at": None,
        "expires_at": None,
        "prompt": "a red fox",
        "size": "1280x720",
        "seconds": "8",
        "remixed_from_video_id": None,
        "error": None,
    }
    rig.clock.advance(5)  # out of the queue
    assert (await rig.video(video["id"]))["status"] == "in_progress"
    rig.clock.advance(10)  # half of render_seconds
    assert (await rig.video(video["id"]))["progress"] == 50
    rig.clock.advance(10)
    done = await rig.video(video["id"])
    assert (done["status"], done["progress"]) == ("completed", 100)
    assert done["completed_at"] == int(T0) + 25
    assert done["expires_at"] == int(T0) + 25 + 3600

    body, response = await rig.call("GET", f"/v1/videos/{video['id']}/content")
    assert response.content_type == "video/mp4"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert len(body) == 4096
    assert body[4:12] == b"ftypisom"
    again, _ = await rig.call("GET", f"/v1/videos/{video['id']}/content?variant=video")
    assert again == body  # deterministic per job id


async def test_json_create_takes_int_seconds_and_an_image_url_object(rig: Rig) -> None:
    reference = {"image_url": "data:image/png;base64,iVBORw0KGgo="}
    video = await rig.create(seconds=12, input_reference=reference)
    assert (video["seconds"], video["model"], video["size"]) == ("12", "sora-2", "720x1280")
    job = rig.sim.jobs[video["id"]]
    assert (job.input_reference, job.input_bytes) == (reference["image_url"], None)


async def test_multipart_takes_an_image_file_but_not_a_url_string(rig: Rig) -> None:
    form = with_image(sdk_form(prompt="a fox"))
    video, _ = await rig.call("POST", "/v1/videos", data=form)
    assert rig.sim.jobs[video["id"]].input_bytes == PNG
    as_text = sdk_form(prompt="a fox", input_reference="https://example.com/a.png")
    body, _ = await rig.call("POST", "/v1/videos", data=as_text, expect=400)
    assert_openai_error(body, code="invalid_type", param="input_reference")


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        ({"model": "sora-2"}, "missing_required_parameter", "prompt"),
        ({"prompt": "   "}, "invalid_value", "prompt"),
        ({"prompt": "x" * 32001}, "invalid_value", "prompt"),
        ({"prompt": "fox", "seconds": "7"}, "invalid_value", "seconds"),
        ({"prompt": "fox", "seconds": 4.0}, "invalid_value", "seconds"),
        ({"prompt": "fox", "size": "640x480"}, "invalid_value", "size"),
        (
            {"prompt": "fox", "input_reference": "https://x/a.png"},
            "invalid_type",
            "input_reference",
        ),
        ({"prompt": "fox", "model": ""}, "invalid_type", "model"),
    ],
)
async def test_invalid_create_is_a_400_envelope_and_makes_no_job(
    rig: Rig, fields: dict[str, Any], code: str, param: str
) -> None:
    body, _ = await rig.call("POST", "/v1/videos", json=fields, expect=400)
    assert_openai_error(body, code=code, param=param)
    assert body["error"]["type"] == "invalid_request_error"
    assert rig.sim.jobs == {}


async def test_unparseable_json_is_a_400_envelope(rig: Rig) -> None:
    headers = {**BEARER, "Content-Type": "application/json"}
    body, _ = await rig.call("POST", "/v1/videos", data=b"{nope", headers=headers, expect=400)
    assert_openai_error(body, code=None)


async def test_unknown_video_is_404(rig: Rig) -> None:
    body, _ = await rig.call("GET", "/v1/videos/video_" + "0" * 48, expect=404)
    assert_openai_error(body, code=None, param="video_id")


# -- content -----------------------------------------------------------------------------------


async def test_content_is_refused_until_completed_and_for_failed_jobs(start_rig: StartRig) -> None:
    rig = await start_rig(fail_words=("glitch",))
    ok, failing = await rig.create(), await rig.create("a glitch")
    body, _ = await rig.call("GET", f"/v1/videos/{ok['id']}/content", expect=409)
    assert_openai_error(body, code="video_not_ready")
    rig.clock.advance(25)
    await rig.call("GET", f"/v1/videos/{ok['id']}/content")
    body, _ = await rig.call("GET", f"/v1/videos/{failing['id']}/content", expect=400)
    assert_openai_error(body, code=None, param="video_id")


async def test_content_expires_after_asset_ttl(start_rig: StartRig) -> None:
    rig = await start_rig(asset_ttl=100.0)
    video = await rig.create()
    rig.clock.advance(25 + 99)
    await rig.call("GET", f"/v1/videos/{video['id']}/content")
    rig.clock.advance(1)
    body, _ = await rig.call("GET", f"/v1/videos/{video['id']}/content", expect=410)
    assert_openai_error(body, code="expired")


async def test_unknown_variant_is_400(rig: Rig) -> None:
    video = await rig.create()
    rig.clock.advance(25)
    body, _ = await rig.call("GET", f"/v1/videos/{video['id']}/content?variant=gif", expect=400)
    assert_openai_error(body, code="invalid_value", param="variant")


# -- list, delete, remix -----------------------------------------------------------------------


async def test_list_pages_newest_first_by_default_and_oldest_first_on_request(rig: Rig) -> None:
    ids = []
    for n in range(5):
        ids.append((await rig.create(f"clip {n}"))["id"])
        rig.clock.advance(1)
    pages: list[list[str]] = []
    after = ""
    while True:
        query = {"limit": "2", **({"after": after} if after else {})}
        page, _ = await rig.call("GET", "/v1/videos", params=query)
        assert page["object"] == "list"
        pages.append([video["id"] for video in page["data"]])
        assert (page["first_id"], page["last_id"]) == (pages[-1][0], pages[-1][-1])
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]
    ascending, _ = await rig.call("GET", "/v1/videos", params={"order": "asc", "limit": "100"})
    assert [video["id"] for video in ascending["data"]] == ids
    assert ascending["has_more"] is False


async def test_jobs_added_through_the_table_are_listed_and_read_like_created_ones(
    rig: Rig,
) -> None:
    created = (await rig.create("before"))["id"]
    params = CreateParams("seeded", "sora-2", "720x1280", "4")
    for n in range(3):
        rig.sim.table.start(params, job_id=f"video_seeded{n}")
    page, _ = await rig.call("GET", "/v1/videos", params={"limit": "10"})
    assert [video["id"] for video in page["data"]] == [
        "video_seeded2",
        "video_seeded1",
        "video_seeded0",
        created,
    ]
    seeded = await rig.video("video_seeded1")
    assert (seeded["status"], seeded["prompt"]) == ("queued", "seeded")
    assert rig.sim.stats.creates_accepted == 1  # seeding is not a create


async def test_list_of_nothing_and_bad_list_parameters(rig: Rig) -> None:
    empty, _ = await rig.call("GET", "/v1/videos")
    assert empty == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    for query, param in [
        ({"limit": "101"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"order": "newest"}, "order"),
        ({"after": "video_unknown"}, "after"),
    ]:
        body, _ = await rig.call("GET", "/v1/videos", params=query, expect=400)
        assert body["error"]["param"] == param


async def test_delete_only_finished_jobs(start_rig: StartRig) -> None:
    rig = await start_rig(fail_words=("glitch",))
    video, failing = await rig.create(), await rig.create("glitch")
    body, _ = await rig.call("DELETE", f"/v1/videos/{video['id']}", expect=400)
    assert_openai_error(body, code=None, param="video_id")
    rig.clock.advance(25)
    for job in (video, failing):
        deleted, _ = await rig.call("DELETE", f"/v1/videos/{job['id']}")
        assert deleted == {"id": job["id"], "object": "video.deleted", "deleted": True}
        await rig.call("GET", f"/v1/videos/{job['id']}", expect=404)
    await rig.call("DELETE", f"/v1/videos/{video['id']}", expect=404)
    assert rig.sim.jobs == {}


async def test_remix_needs_a_completed_source_and_makes_a_linked_job(rig: Rig) -> None:
    source = await rig.create(seconds="8", size="1280x720")
    path = f"/v1/videos/{source['id']}/remix"
    body, _ = await rig.call("POST", path, json={"prompt": "now at night"}, expect=400)
    assert_openai_error(body, code=None, param="video_id")
    rig.clock.advance(25)
    remix, _ = await rig.call("POST", path, json={"prompt": "now at night"})
    assert remix["id"] != source["id"]
    assert remix["remixed_from_video_id"] == source["id"]
    assert (remix["status"], remix["prompt"]) == ("queued", "now at night")
    assert (remix["seconds"], remix["size"], remix["model"]) == ("8", "1280x720", "sora-2")
    body, _ = await rig.call("POST", path, json={}, expect=400)
    assert_openai_error(body, code="missing_required_parameter", param="prompt")
    await rig.call("POST", "/v1/videos/video_nope/remix", json={"prompt": "x"}, expect=404)


# -- Azure dialect -----------------------------------------------------------------------------


async def test_azure_lifecycle_with_api_key_and_deployment(start_rig: StartRig) -> None:
    rig = await start_rig(deployments={"sora2-test"})
    form = with_image(sdk_form(prompt="a fox", model="sora2-test", seconds="4", size="720x1280"))
    video, _ = await rig.call("POST", "/openai/v1/videos", params=PREVIEW, data=form, headers=AZURE)
    assert (video["model"], video["status"]) == ("sora2-test", "queued")
    rig.clock.advance(25)
    path = f"/openai/v1/videos/{video['id']}"
    done, _ = await rig.call("GET", path, params={"api-version": "v1"}, headers=AZURE)
    assert done["status"] == "completed"
    body, response = await rig.call("GET", path + "/content", params=PREVIEW, headers=AZURE)
    assert (response.content_type, len(body)) == ("video/mp4", 4096)
    listed, _ = await rig.call("GET", "/openai/v1/videos", params=PREVIEW, headers=AZURE)
    assert [v["id"] for v in listed["data"]] == [video["id"]]
    remix, _ = await rig.call(
        "POST", path + "/remix", params=PREVIEW, json={"prompt": "at dusk"}, headers=AZURE
    )
    assert remix["model"] == "sora2-test"
    await rig.call("DELETE", path, params=PREVIEW, headers=AZURE)


@pytest.mark.parametrize(
    ("headers", "query", "status", "code"),
    [
        (BEARER, PREVIEW, 401, "401"),
        ({"api-key": "wrong"}, PREVIEW, 401, "401"),
        (AZURE, {}, 404, "404"),
        (AZURE, {"api-version": "2024-10-21"}, 400, "BadRequest"),
    ],
    ids=["bearer-instead-of-api-key", "wrong-key", "no-api-version", "old-api-version"],
)
async def test_azure_gate(
    rig: Rig, headers: dict[str, str], query: dict[str, str], status: int, code: str
) -> None:
    body, _ = await rig.call(
        "GET", "/openai/v1/videos", params=query, headers=headers, expect=status
    )
    assert body["error"]["code"] == code
    assert rig.sim.stats.lists == 0


async def test_azure_unknown_deployment_is_a_404_user_error(start_rig: StartRig) -> None:
    rig = await start_rig(deployments={"sora2-test"})
    body, _ = await rig.call(
        "POST",
        "/openai/v1/videos",
        params=PREVIEW,
        json={"prompt": "fox", "model": "sora-2"},
        headers=AZURE,
        expect=404,
    )
    assert body["error"]["type"] == "video_generation_user_error"
    assert body["error"]["param"] == "model"
    body, _ = await rig.call(
        "POST",
        "/openai/v1/videos",
        params=PREVIEW,
        json={"prompt": "fox"},
        headers=AZURE,
        expect=400,
    )
    assert_openai_error(body, code="missing_required_parameter", param="model")
    assert rig.sim.stats.creates_accepted == 0
