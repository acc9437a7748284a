"""The status table of upstream-apis.md 6.3, word for word; unknown words keep jobs in flight."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from providers.base import UpstreamStatus
from providers.statuses import normalise, parse_progress
from router.records.job import JobState
from tests.conftest import ALICE, ProxyFactory, local_store, wait_for
from tests.fake_upstream import ScriptedFactory

# Copied from upstream-apis.md section 6.3, the contract this table implements.
DOC_TABLE = {
    UpstreamStatus.QUEUED: "queued, pending, submitted, not_start, notstarted, preparing, created, "
    "starting, unknown, preprocessing",
    UpstreamStatus.IN_PROGRESS: "in_progress, processing, running, generating",
    UpstreamStatus.COMPLETED: "completed, complete, success, succeeded, finished, done",
    UpstreamStatus.FAILED: "failed, failure, fail, error, cancelled, canceled, expired",
}
CASES = [(word, status) for status, words in DOC_TABLE.items() for word in words.split(", ")]


@pytest.mark.parametrize(("word", "status"), CASES, ids=[w for w, _ in CASES])
def test_every_word_of_the_table_maps_as_listed_in_any_case(
    word: str, status: UpstreamStatus
) -> None:
    for spelling in (word, word.upper(), word.title(), f" {word} "):
        assert normalise(spelling) is status, spelling


def test_relay_words_are_in_the_table() -> None:
    for word in ("NOT_START", "SUBMITTED", "QUEUED", "IN_PROGRESS", "SUCCESS", "FAILURE"):
        assert normalise(word) is not UpstreamStatus.UNRECOGNISED


def test_an_unknown_word_is_logged_and_unrecognised(caplog: pytest.LogCaptureFixture) -> None:
    word = f"warming_up_{uuid.uuid4().hex[:8]}"
    with caplog.at_level(logging.WARNING, logger="providers.statuses"):
        assert normalise(word) is UpstreamStatus.UNRECOGNISED
        assert normalise(word.upper()) is UpstreamStatus.UNRECOGNISED
    logged = [r for r in caplog.records if word in r.getMessage()]
    assert len(logged) == 1  # once per word, not once per poll


@pytest.mark.parametrize(
    ("raw", "progress"),
    [
        (None, None),
        (45, 45),
        (45.7, 45),
        ("30%", 30),
        (" 100% ", 100),
        ("150%", 100),
        (-3, 0),
        ("soon", None),
        (True, None),
    ],
)
def test_progress_reads_ints_and_percent_strings(raw: Any, progress: int | None) -> None:
    assert parse_progress(raw) == progress


async def test_an_unknown_word_keeps_the_job_in_flight_end_to_end(
    scripted: ScriptedFactory, proxy_factory: ProxyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """An OpenAI-shaped upstream says a word nobody knows: the job waits, then completes."""
    upstream = await scripted()
    word = f"rendering_frames_{uuid.uuid4().hex[:8]}"
    answer = {"status": word, "progress": 30}
    upstream.reply("POST", "/v1/videos", {"id": "up-1", "status": "queued", "progress": 0})
    upstream.answer("GET", "/v1/videos/up-1", lambda _: web.json_response({"id": "up-1", **answer}))
    upstream.reply("GET", "/v1/videos/up-1/content", body=b"mp4!", content_type="video/mp4")
    proxy = await proxy_factory(
        [
            {
                "name": "odd",
                "kind": "openai",
                "base_url": f"{upstream.url}/v1",
                "models": {"sora-2": {"price_per_second": 0.1}},
                "poll_interval": 0.02,
            }
        ]
    )

    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ALICE}"}) as http:
        async with http.post(f"{proxy.url}/v1/videos", json={"prompt": "p"}) as response:
            video_id = (await response.json())["id"]

        async def polled_five_times() -> bool:
            return sum(1 for s in upstream.seen if s.path == "/v1/videos/up-1") >= 5

        with caplog.at_level(logging.WARNING, logger="providers.statuses"):
            await wait_for(polled_five_times)
        assert any(word in r.getMessage() for r in caplog.records)
        job = local_store(proxy.app).get(video_id)
        assert job is not None and job.state is JobState.QUEUED and job.error_code is None

        async def completed() -> bool:
            return job.state is JobState.COMPLETED

        answer["status"] = "completed"
        await wait_for(completed)
        async with http.get(f"{proxy.url}/v1/videos/{video_id}/content") as response:
            assert await response.read() == b"mp4!"
