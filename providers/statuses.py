"""The one table that turns any upstream status word into an ``UpstreamStatus``.

Every adapter goes through ``normalise``; no adapter compares status strings itself. Words are
matched case-insensitively (relays answer ``SUCCESS``, OpenAI ``completed``). A word missing
from the table is reported as ``UNRECOGNISED``, which keeps a job in flight: an upstream
inventing a new word must never fail renders that are fine. It is logged once per word, for
the first ``REPORTED_MAX`` words, clipped to ``WORD_LOG_LIMIT`` characters: an upstream that
invents a long word on every poll must not grow the log or the memory without end.
"""

from __future__ import annotations

import logging

from providers.base import UpstreamStatus
from providers.scrubber import clip

log = logging.getLogger(__name__)

STATUS_WORDS: dict[str, UpstreamStatus] = {
    **dict.fromkeys(
        (
            "queued",
            "pending",
            "submitted",
            "not_start",
            "notstarted",
            "preparing",
            "created",
            "starting",
            "unknown",
            "preprocessing",
            "in_queue",
        ),
        UpstreamStatus.QUEUED,
    ),
    **dict.fromkeys(
        ("in_progress", "processing", "running", "generating"), UpstreamStatus.IN_PROGRESS
    ),
    **dict.fromkeys(
        ("completed", "complete", "success", "succeeded", "finished", "done"),
        UpstreamStatus.COMPLETED,
    ),
    **dict.fromkeys(
        ("failed", "failure", "fail", "error", "cancelled", "canceled", "expired"),
        UpstreamStatus.FAILED,
    ),
}

REPORTED_MAX = 64  # distinct unrecognised words remembered (and logged) per process
WORD_LOG_LIMIT = 40  # characters of an unrecognised word kept and logged
# Upstreams that refuse content in free text (a relay's fail_reason, OpenRouter's error
# string, an operation's message) say so in one of these, in their words or a relay's own.
MODERATION_WORDS = (
    "moderation",
    "content polic",
    "content_policy",
    "content_filter",
    "guardrail",
    "safety filter",
    "responsible ai",
    "sensitivecontent",
    "违规",
    "审核",
    "敏感",
)

_reported: set[str] = set()


def normalise(word: object) -> UpstreamStatus:
    """Map an upstream status word; unknown words are logged and kept in flight."""
    text = str(word).strip().lower() if word is not None else ""
    status = STATUS_WORDS.get(text)
    if status is not None:
        return status
    word = clip(text, WORD_LOG_LIMIT)
    if word not in _reported and len(_reported) < REPORTED_MAX:
        _reported.add(word)
        more = "" if len(_reported) < REPORTED_MAX else "; no more new words will be logged"
        log.warning("unrecognised upstream status %r: keeping the job in flight%s", word, more)
    return UpstreamStatus.UNRECOGNISED


def reported_progress(status: UpstreamStatus, value: object) -> int | None:
    """A completed job is at 100 whatever figure came with it; otherwise the upstream's own."""
    return 100 if status is UpstreamStatus.COMPLETED else parse_progress(value)


def parse_progress(value: object) -> int | None:
    """An int, a float or an ``"NN%"`` string, clamped to 0..100; None when absent or unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().rstrip("%").strip()
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    return int(min(max(number, 0.0), 100.0))


def mentions_moderation(text: str | None) -> bool:
    """Whether an upstream's free-text reason names a content-policy refusal."""
    folded = (text or "").casefold()
    return any(word in folded for word in MODERATION_WORDS)
