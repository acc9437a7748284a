"""The adapters fixture the provider tests share: adapters built against a loopback base URL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from providers.http import HttpProvider

UPSTREAM_KEY = "sk-upstream-secret"  # the key every adapter built here sends


@pytest.fixture
async def adapters() -> AsyncIterator[Callable[..., Any]]:
    """Build adapters of a class against a base URL; every one is closed after the test."""
    built: list[HttpProvider] = []

    def make(cls: type[HttpProvider], base_url: str, **extra: Any) -> Any:
        adapter = cls(name="up", base_url=base_url, api_key=UPSTREAM_KEY, timeout=5, **extra)
        built.append(adapter)
        return adapter

    yield make
    for adapter in built:
        await adapter.aclose()
