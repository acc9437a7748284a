"""Log lines an operator can follow: request ids, job fields, and the text or JSON format.

Every line carries the request id of the request it was written for: ``fronted`` (``router.app``)
sets ``REQUEST_ID`` for the handler's task, and ``RequestIdFilter`` copies it into each record,
so code that logs needs no request in hand. Work done outside a request (the poller) names the
request itself through ``extra``, which the filter leaves alone.

Fields a record may carry through ``extra`` (``FIELDS``): ``request_id``, ``job_id``,
``provider``, ``outcome``, ``event``, and on access log lines ``status`` and ``duration_ms``.
The text format appends them as ``key=value`` after the message; the JSON format writes one
object per line with ``time``, ``level``, ``logger``, ``message`` and those fields. Nothing
here reads a secret: what is logged is what callers pass.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import time
from contextvars import ContextVar
from typing import Any, TextIO

import orjson
from aiohttp.http_exceptions import HttpProcessingError

FORMATS = ("text", "json")
FIELDS = ("request_id", "job_id", "provider", "outcome", "event", "status", "duration_ms")
ACCESS_LOGGER = "sora_proxy.access"
PROCESS_HANDLER = "sora-proxy"  # the name of the root handler configure_logging installs
MAX_REQUEST_ID = 128  # characters of a client's X-Request-Id we take; longer ones are replaced

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

# A random prefix per process and a counter: unique across restarts and workers without a
# system call per request (a request id is a label to grep for, not a secret). ``next`` on it
# runs no Python frame: the handler wrapper takes one per request that brings none.
NEW_REQUEST_IDS = map(f"req_{os.urandom(6).hex()}_".__add__, map(str, itertools.count(1)))


def new_request_id() -> str:
    return next(NEW_REQUEST_IDS)


def request_id_from(header: str | None) -> str:
    """The client's ``X-Request-Id`` when it is 1-128 printable ASCII characters without
    spaces (it lands in log lines and headers: nothing that could split either), else a new
    one."""
    if (
        header
        and len(header) <= MAX_REQUEST_ID
        and header.isascii()
        and header.isprintable()
        and " " not in header
    ):
        return header
    return new_request_id()


class RequestIdFilter(logging.Filter):
    """Stamp each record with the current request's id unless the caller named one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class ServerLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger for the app's connections (``handler_args``). A request its
    parser refuses (broken framing, a bad URL or header) is the client's mistake, answered 400
    by aiohttp itself: one WARNING line with its class and status, never a traceback nor its
    text (which quotes the client's bytes, a signed link's query among them). Anything else
    stays an ERROR with its traceback."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self.logger.warning(
                "a request aiohttp could not parse: %s (%s)", type(exc_info).__name__, exc_info.code
            )
            return
        self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        pairs = [
            f"{name}={value}"
            for name in FIELDS
            if (value := getattr(record, name, None)) is not None
        ]
        if not pairs:
            return line
        head, newline, rest = line.partition("\n")  # keep a traceback below the fields
        return f"{head} {' '.join(pairs)}{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": _iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def _iso_time(created: float) -> str:
    millis = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


class CurrentStderr:
    """``sys.stderr`` as it is at each write, not as it was when logging was set up (as
    logging's own last-resort handler does): a stderr replaced and closed since, such as a
    test's captured one, must not turn every later line into a "Logging error"."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str, fmt: str, stream: TextIO | None = None) -> None:
    """The process's one log handler (named ``PROCESS_HANDLER``): ``level`` (a logging level
    name), ``fmt`` in ``FORMATS``, written to ``stream`` or else to the current stderr."""
    handler = logging.StreamHandler(stream if stream is not None else CurrentStderr())
    handler.set_name(PROCESS_HANDLER)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
