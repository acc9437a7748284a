"""The official ``openai`` SDK, unchanged, against the proxy over loopback (issue 2, point 1)."""

from __future__ import annotations

import aiohttp
import openai
import pytest

from tests.conftest import ALICE, BOB, RunningProxy, local_store

PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


async def upstream_bytes(proxy: RunningProxy, provider: str, upstream_id: str) -> bytes:
    """The asset exactly as the upstream serves it, fetched from the simulator directly."""
    sim = proxy.simulator(provider)
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{sim.base_url}/v1/videos/{upstream_id}/content",
            headers={"Authorization": f"Bearer {sim.api_key}"},
        ) as response,
    ):
        assert response.status == 200
        return await response.read()


def attempt_of(proxy: RunningProxy, video_id: str) -> tuple[str, str]:
    job = local_store(proxy.app).get(video_id)
    assert job is not None
    return job.current.provider, job.current.upstream_id


async def test_create_and_poll_then_download_matches_upstream(proxy: RunningProxy) -> None:
    client = proxy.client()
    video = await client.videos.create_and_poll(
        prompt="a red kite over the sea", model="sora-2", seconds="4", size="1280x720"
    )
    assert video.status == "completed"
    assert video.progress == 100
    assert video.id.startswith("video_") and len(video.id) == len("video_") + 48
    assert (video.model, video.size, video.seconds) == ("sora-2", "1280x720", "4")
    assert video.completed_at is not None and video.error is None

    content = await client.videos.download_content(video.id)
    provider, upstream_id = attempt_of(proxy, video.id)
    assert upstream_id != video.id  # the upstream id never leaks
    assert content.content == await upstream_bytes(proxy, provider, upstream_id)
    assert content.content[4:8] == b"ftyp"

    thumbnail = await client.videos.download_content(video.id, variant="thumbnail")
    assert thumbnail.content[:4] == b"RIFF"


async def test_create_returns_queued_video_object_with_every_field(proxy: RunningProxy) -> None:
    video = await proxy.client().videos.create(prompt="a lighthouse at dusk")
    assert video.status in ("queued", "in_progress")
    # catalogue defaults: sora-2, its first size and seconds
    assert (video.model, video.size, video.seconds) == ("sora-2", "720x1280", "4")
    wire = video.model_dump()
    for field in (
        "id",
        "object",
        "model",
        "status",
        "progress",
        "created_at",
        "completed_at",
        "expires_at",
        "prompt",
        "size",
        "seconds",
        "remixed_from_video_id",
        "error",
    ):
        assert field in wire


async def test_input_reference_upload_reaches_the_upstream(proxy: RunningProxy) -> None:
    client = proxy.client()
    video = await client.videos.create(
        prompt="animate this",
        input_reference=("frame.png", PNG_1x1, "image/png"),
    )
    provider, upstream_id = attempt_of(proxy, video.id)
    upstream_job = proxy.simulator(provider).jobs[upstream_id]
    assert upstream_job.input_bytes == PNG_1x1
    done = await client.videos.poll(video.id)
    assert done.status == "completed"


async def test_list_pages_through_own_jobs_only(proxy: RunningProxy) -> None:
    alice, bob = proxy.client(ALICE), proxy.client(BOB)
    mine = [(await alice.videos.create(prompt=f"shot {i}")).id for i in range(5)]
    theirs = (await bob.videos.create(prompt="not yours")).id

    first = await alice.videos.list(limit=2, order="asc")
    assert [v.id for v in first.data] == mine[:2]
    assert first.has_more is True
    seen = [v.id async for v in alice.videos.list(limit=2, order="asc")]
    assert seen == mine
    newest_first = await alice.videos.list(order="desc")
    assert [v.id for v in newest_first.data] == mine[::-1]
    assert theirs not in seen
    assert [v.id for v in (await bob.videos.list()).data] == [theirs]


async def test_remix_goes_to_the_provider_of_the_source(proxy: RunningProxy) -> None:
    client = proxy.client()
    source = await client.videos.create_and_poll(prompt="a paper boat", model="sora-2")
    remix = await client.videos.remix(source.id, prompt="the same boat, at night")
    assert remix.remixed_from_video_id == source.id
    assert remix.id != source.id
    assert attempt_of(proxy, remix.id)[0] == attempt_of(proxy, source.id)[0]
    done = await client.videos.poll(remix.id)
    assert done.status == "completed"
    assert len((await client.videos.download_content(remix.id)).content) > 0


async def test_delete_forgets_the_job(proxy: RunningProxy) -> None:
    client = proxy.client()
    video = await client.videos.create_and_poll(prompt="a short clip", model="sora-2")
    deleted = await client.videos.delete(video.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (video.id, True, "video.deleted")
    with pytest.raises(openai.NotFoundError):
        await client.videos.retrieve(video.id)
    assert video.id not in [v.id for v in (await client.videos.list()).data]


async def test_wrong_key_is_an_authentication_error(proxy: RunningProxy) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        await proxy.client("sk-not-a-key").videos.create(prompt="x")
    assert caught.value.code == "invalid_api_key"


async def test_unsupported_seconds_is_a_bad_request_naming_seconds(proxy: RunningProxy) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await proxy.client().videos.create(prompt="x", seconds="7")  # type: ignore[arg-type]
    assert caught.value.param == "seconds"
    assert "'4'" in caught.value.message


async def test_other_keys_jobs_and_unknown_ids_are_not_found(proxy: RunningProxy) -> None:
    alice, bob = proxy.client(ALICE), proxy.client(BOB)
    video = await alice.videos.create_and_poll(prompt="private", model="sora-2")
    for call in (bob.videos.retrieve, bob.videos.download_content, bob.videos.delete):
        with pytest.raises(openai.NotFoundError):
            await call(video.id)
    with pytest.raises(openai.NotFoundError):
        await bob.videos.remix(video.id, prompt="steal it")
    with pytest.raises(openai.NotFoundError):
        await alice.videos.retrieve("video_" + "0" * 48)
    assert (await alice.videos.retrieve(video.id)).status == "completed"


async def test_polls_carry_poll_after_header(proxy: RunningProxy) -> None:
    client = proxy.client()
    video = await client.videos.create(prompt="pace me")
    raw = await client.videos.with_raw_response.retrieve(video.id)
    assert raw.headers["openai-poll-after-ms"] == "50"
