"""The config in force: handlers read ``current`` on every request; a reload replaces it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from router.config.model import Config


@dataclass(slots=True)
class LiveConfig:
    current: Config
    path: Path | None = None  # the file to reload (``router.runtime.reload``); None: built in code
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one reload at a time
