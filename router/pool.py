"""The running providers: one adapter per configured provider, built inside the loop.

A provider of kind ``simulator`` starts an in-process simulated upstream on a loopback
ephemeral port and is reached through the real ``openai`` adapter, over real HTTP, so the
default config exercises exactly the code paths a real upstream does.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from providers.base import Provider
from providers.metered import MeteredProvider, Moderated, Observer
from providers.registry import adapter_class
from providers.simulation import SimulationSettings
from providers.simulator import Simulator
from router.config import ProviderConfig

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PoolEntry:
    config: ProviderConfig
    adapter: Provider
    simulator: Simulator | None = None

    @property
    def name(self) -> str:
        return self.config.name


class ProviderPool:
    """Owns every adapter (and embedded simulator) for the life of the app.

    Each adapter is wrapped in a ``MeteredProvider`` reporting to ``observe`` and
    ``moderated``, so every upstream call is measured whoever makes it.
    """

    __slots__ = ("_entries", "_moderated", "_observe")

    def __init__(self, observe: Observer, moderated: Moderated) -> None:
        self._entries: dict[str, PoolEntry] = {}
        self._observe = observe
        self._moderated = moderated

    async def start(self, configs: Iterable[ProviderConfig]) -> None:
        for config in configs:
            entry = await _build(config)
            entry.adapter = MeteredProvider(entry.adapter, self._observe, self._moderated)
            self._entries[config.name] = entry

    async def close(self) -> None:
        for entry in self._entries.values():
            await entry.adapter.aclose()
            if entry.simulator is not None:
                await entry.simulator.stop()
        self._entries.clear()

    def get(self, name: str) -> PoolEntry | None:
        return self._entries.get(name)

    def __iter__(self) -> Iterator[PoolEntry]:
        return iter(self._entries.values())


async def _build(config: ProviderConfig) -> PoolEntry:
    if config.kind != "simulator":
        adapter = adapter_class(config.kind)(
            name=config.name,
            base_url=config.base_url,
            api_key=config.api_key,
            timeout=config.timeout,
            max_connections=config.max_concurrent,
            api_version=config.api_version,
        )
        return PoolEntry(config=config, adapter=adapter)
    # A private per-process secret, so the embedded upstream also exercises auth.
    secret = secrets.token_urlsafe(24)
    simulator = Simulator(config.simulate or SimulationSettings(), api_key=secret)
    root = await simulator.start()
    log.info("provider %s: simulated upstream at %s", config.name, root)
    adapter = adapter_class("openai")(
        name=config.name,
        base_url=f"{root}/v1",
        api_key=secret,
        timeout=config.timeout,
        max_connections=config.max_concurrent,
    )
    return PoolEntry(config=config, adapter=adapter, simulator=simulator)
