"""The proxy's log lines as the JSON format writes them, captured in-process for assertions;
and the process's logging, as a test that runs ``router.cli.main`` sets it up, undone after it."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from router.logs import PROCESS_HANDLER, JsonFormatter, RequestIdFilter


class CapturedLogs:
    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    def lines(self, **fields: object) -> list[dict[str, Any]]:
        """Every line so far, parsed; with ``fields``, those whose fields all match."""
        parsed = [orjson.loads(line) for line in self._stream.getvalue().splitlines()]
        return [p for p in parsed if all(p.get(k) == v for k, v in fields.items())]

    def events(self, job_id: str) -> list[str]:
        """The lifecycle events of ``job_id``, in order."""
        return [line["event"] for line in self.lines(job_id=job_id) if "event" in line]


@contextmanager
def captured_logs() -> Iterator[CapturedLogs]:
    """INFO and above from every logger, in the JSON format, with the request-id filter, as
    ``router.logs.configure_logging`` sets up the process."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield CapturedLogs(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@contextmanager
def process_logging_undone() -> Iterator[None]:
    """Remove the handler ``router.logs.configure_logging`` installs (``router.cli.main`` does,
    as the command would) and restore the root level, once the block ends: the handler writes
    to the stderr of the moment, a later test's captured one, and INFO would make every proxy
    of every later test write each of its lines there (the autouse fixture in conftest)."""
    root = logging.getLogger()
    level = root.level
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h.name == PROCESS_HANDLER]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
