"""Following a job in the logs (issue 16): one line per lifecycle event with the job id, the
request id, the provider and the outcome; every line of a request carries its id."""

from __future__ import annotations

import contextlib
import io
import logging
import sys

import openai
import orjson
import pytest

from router.cli import main
from router.logs import (
    MAX_REQUEST_ID,
    PROCESS_HANDLER,
    REQUEST_ID,
    JsonFormatter,
    RequestIdFilter,
    TextFormatter,
    configure_logging,
    request_id_from,
)
from tests.conftest import ProxyFactory, finished_job, sim_provider
from tests.log_capture import CapturedLogs, process_logging_undone
from tests.ops.test_cli import SHIPPED

TRACE = {"X-Request-Id": "trace-16"}


async def test_a_render_is_routed_created_and_completed_under_its_request_id(
    proxy_factory: ProxyFactory, logs: CapturedLogs
) -> None:
    proxy = await proxy_factory(
        [sim_provider("a", price=0.05), sim_provider("b", price=0.1)],
        routing={"strategy": "cheapest"},
    )
    video = await proxy.client().videos.create(prompt="a cat", extra_headers=TRACE)
    await finished_job(proxy, video.id)
    assert logs.events(video.id) == ["routed", "created", "completed"]
    routed, created, completed = logs.lines(job_id=video.id)
    for line in (routed, created, completed):
        assert (line["request_id"], line["provider"]) == ("trace-16", "a")
        assert line["logger"] == "sora_proxy.jobs"
        assert line["level"] == "INFO"
    assert routed["message"] == "routed to a: cheapest: a ($0.05/s), then b ($0.1/s)"
    assert created["outcome"] in ("queued", "in_progress")  # the state the create answered
    assert completed["outcome"] == "completed"  # written by the poller, outside the request
    assert "a cat" not in str(logs.lines())  # prompts are never logged


async def test_a_failover_at_submit_says_from_where_to_where_and_why(
    proxy_factory: ProxyFactory, logs: CapturedLogs
) -> None:
    proxy = await proxy_factory(
        [sim_provider("a", price=0.05, submit_error_rate=1.0), sim_provider("b", price=0.1)],
        routing={"strategy": "cheapest"},
    )
    video = await proxy.client().videos.create(prompt="a cat", extra_headers=TRACE)
    assert logs.events(video.id) == ["routed", "failover", "routed", "created"]
    failover = logs.lines(job_id=video.id, event="failover")[0]
    assert (failover["provider"], failover["outcome"]) == ("b", "submit_failed")
    assert failover["message"] == "failover from a to b (submit_failed)"
    second = logs.lines(job_id=video.id, event="routed")[1]
    assert second["message"].endswith("passed over: a submit_failed")
    # Every line written while the request ran carries its id, not only the lifecycle ones.
    warning = logs.lines(logger="router.jobs.dispatch", level="WARNING")[0]
    assert warning["request_id"] == "trace-16"


async def test_a_render_failing_everywhere_logs_failover_then_failed_with_its_class(
    proxy_factory: ProxyFactory, logs: CapturedLogs
) -> None:
    doomed = {"fail_words": ["doom"]}
    proxy = await proxy_factory(
        [sim_provider("a", price=0.05, **doomed), sim_provider("b", price=0.1, **doomed)],
        routing={"strategy": "cheapest"},
    )
    video = await proxy.client().videos.create(prompt="doom", extra_headers=TRACE)
    job = await finished_job(proxy, video.id)
    assert logs.events(video.id) == [
        "routed", "created", "routed", "failover", "failed",
    ]  # fmt: skip
    failover = logs.lines(job_id=video.id, event="failover")[0]
    assert (failover["outcome"], failover["request_id"]) == ("render_failed", "trace-16")
    failed = logs.lines(job_id=video.id, event="failed")[0]
    assert failed["outcome"] == job.error_code
    assert (failed["provider"], failed["request_id"], failed["level"]) == ("b", "trace-16", "INFO")


async def test_moderation_is_logged_with_its_stage(
    proxy_factory: ProxyFactory, logs: CapturedLogs
) -> None:
    proxy = await proxy_factory(
        [sim_provider("a", moderation_prompt_words=["forbidden"], moderation_output_words=["racy"])]
    )
    client = proxy.client()
    with pytest.raises(openai.BadRequestError):
        await client.videos.create(prompt="forbidden", extra_headers={"X-Request-Id": "p-1"})
    prompt = logs.lines(event="moderated", request_id="p-1")
    assert [(m["provider"], m["outcome"]) for m in prompt] == [("a", "prompt")]
    video = await client.videos.create(prompt="racy", extra_headers={"X-Request-Id": "o-1"})
    await finished_job(proxy, video.id)
    output = logs.lines(event="moderated", job_id=video.id)
    assert [(m["outcome"], m["request_id"]) for m in output] == [("output", "o-1")]


def test_request_ids_from_clients_are_bounded_and_printable() -> None:
    assert request_id_from("abc-123_X.y") == "abc-123_X.y"
    assert request_id_from("x" * MAX_REQUEST_ID) == "x" * MAX_REQUEST_ID
    for bad in (None, "", "x" * (MAX_REQUEST_ID + 1), "a b", "a\nb", "caf\u00e9", "a\x00"):
        made = request_id_from(bad)
        assert made.startswith("req_") and made != bad
    assert request_id_from(None) != request_id_from(None)


def test_the_text_format_appends_fields_and_keeps_a_traceback_below() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom %s", ("now",), None)
    record.job_id, record.provider = "video_1", "a"
    assert TextFormatter().format(record).endswith("ERROR x: boom now job_id=video_1 provider=a")
    try:
        raise ValueError("inner")
    except ValueError:
        record.exc_info = sys.exc_info()
    record.exc_text = None
    first, *rest = TextFormatter().format(record).splitlines()
    assert first.endswith("boom now job_id=video_1 provider=a")
    assert rest[-1] == "ValueError: inner"


def test_the_json_format_is_one_object_per_line_with_the_request_id() -> None:
    stream = io.StringIO()
    configure_logging("debug", "json", stream)  # undone after the test (tests/conftest.py)
    token = REQUEST_ID.set("r-9")
    logging.getLogger("t").info("one %d", 1, extra={"job_id": "video_2"})
    REQUEST_ID.reset(token)
    try:
        raise KeyError("k")
    except KeyError:
        logging.getLogger("t").exception("two")
    one, two = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert set(one) == {"time", "level", "logger", "message", "request_id", "job_id"}
    assert (one["message"], one["request_id"], one["job_id"], one["level"]) == (
        "one 1", "r-9", "video_2", "INFO",
    )  # fmt: skip
    assert one["time"].endswith("Z")
    assert "request_id" not in two and "KeyError" in two["exception"]


def test_the_process_log_writes_to_stderr_as_it_is_at_each_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A test that runs router.cli.main under capsys sets logging up while its stderr is a
    # capture, closed when that test ends: every line logged after it, in any later test, was
    # a "Logging error" (ValueError: I/O operation on closed file) on the old code.
    gone = io.StringIO()
    with contextlib.redirect_stderr(gone):
        configure_logging("info", "text")
    gone.close()
    logging.getLogger("router.t").warning("after that stderr closed")
    err = capsys.readouterr().err
    assert "after that stderr closed" in err and "Logging error" not in err


def test_the_logging_a_test_sets_up_is_undone_after_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    level = root.level
    with process_logging_undone():
        assert main(["check", "--config", str(SHIPPED)]) == 0  # sets the process's logging up
        assert root.level == logging.INFO
        assert PROCESS_HANDLER in {h.name for h in root.handlers}
    assert root.level == level and PROCESS_HANDLER not in {h.name for h in root.handlers}


def test_a_caller_named_request_id_wins_over_the_current_one() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    record.request_id = "creator"
    token = REQUEST_ID.set("poller")
    try:
        RequestIdFilter().filter(record)
    finally:
        REQUEST_ID.reset(token)
    assert orjson.loads(JsonFormatter().format(record))["request_id"] == "creator"
