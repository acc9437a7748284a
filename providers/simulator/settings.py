"""The knobs of a simulated upstream: render speed and the faults it injects.

Kept apart from the simulator server so config parsing can validate a ``simulate:`` block
without importing aiohttp's server side. Rates are probabilities drawn from the simulator's
seeded random source; word lists make a fault happen for exactly the prompts that contain
one of the words (case-insensitive), which is how tests and demos trigger a fault on purpose.

Two delays run in real time, to exercise a caller's timeouts, and tell apart the two ways a
create can go unanswered: ``latency`` holds every request before it is handled, and a caller
that gives up meanwhile is never served (nothing is created); ``slow_reply_words`` create the
job at once and hold only the answer back ``slow_reply_seconds`` (the render exists upstream
but the caller never hears of it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(slots=True, frozen=True, kw_only=True)
class SimulationSettings:
    render_seconds: float = 20.0  # queued -> completed takes this long
    queue_seconds: float = 0.0  # time spent queued before progress starts
    fail_rate: float = 0.0  # renders that fail near 90% with a provider error
    fail_words: tuple[str, ...] = ()  # prompts containing one of these fail near 90%
    moderation_prompt_rate: float = 0.0  # creates refused with 400 moderation_blocked
    moderation_prompt_words: tuple[str, ...] = ()
    moderation_input_rate: float = 0.0  # creates with an input image refused (real person)
    moderation_output_rate: float = 0.0  # renders that end failed/moderation_blocked after progress
    moderation_output_words: tuple[str, ...] = ()
    submit_error_rate: float = 0.0  # creates answered 500
    rate_limit_rate: float = 0.0  # creates answered 429 with Retry-After
    retry_after: float = 1.0  # seconds sent in Retry-After
    creates_per_minute: int | None = None  # the upstream's own quota; beyond it, 429
    stall_rate: float = 0.0  # renders that stop progressing and never finish
    stall_words: tuple[str, ...] = ()
    latency: float = 0.0  # seconds before every request is handled; a caller gone by then is not
    slow_reply_words: tuple[str, ...] = ()  # creates naming one: the job is made, the answer waits
    slow_reply_seconds: float = 60.0  # ... this long (real time), past a caller's timeout
    video_bytes: int = 65536  # size of the MP4 served for a completed render
    asset_ttl: float = 3600.0  # expires_at = completed_at + this
    seed: int | None = None  # seeds the fault draws; None means a fresh random source

    @classmethod
    def parse(cls, raw: object, path: str) -> tuple[SimulationSettings, list[str]]:
        """Build settings from a config mapping; returns every problem found, by dotted path."""
        if raw is None:
            return cls(), []
        if not isinstance(raw, Mapping):
            return cls(), [f"{path}: must be a mapping"]
        problems: list[str] = []
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            where = f"{path}.{key}"
            if key not in known:
                problems.append(f"{where}: unknown field")
                continue
            default = getattr(cls(), key)
            if key.endswith("_words"):
                if not isinstance(value, list) or not all(isinstance(w, str) and w for w in value):
                    problems.append(f"{where}: must be a list of non-empty strings")
                    continue
                values[key] = tuple(w.lower() for w in value)
            elif key.endswith("_rate"):
                if not _is_number(value) or not 0.0 <= float(value) <= 1.0:
                    problems.append(f"{where}: must be a number from 0 to 1")
                    continue
                values[key] = float(value)
            elif key in ("seed", "creates_per_minute"):
                if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                    problems.append(f"{where}: must be an integer")
                    continue
                if key == "creates_per_minute" and value is not None and value < 1:
                    problems.append(f"{where}: must be >= 1")
                    continue
                values[key] = value
            elif key == "video_bytes":
                if not isinstance(value, int) or isinstance(value, bool) or value < 64:
                    problems.append(f"{where}: must be an integer >= 64")
                    continue
                values[key] = value
            else:
                if not _is_number(value) or float(value) < 0:
                    problems.append(f"{where}: must be a number >= 0")
                    continue
                values[key] = float(value) if isinstance(default, float) else value
        if problems:
            return cls(), problems
        return cls(**values), []


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
