"""The running providers: one adapter per configured provider, built inside the loop.

A provider of kind ``simulator`` starts an in-process simulated upstream on a loopback
ephemeral port and is reached through the real adapter of its ``format`` (``openai`` unless
it says otherwise), over real HTTP, so the default config exercises exactly the code paths a
real upstream does.

``apply`` takes a reloaded provider list. A provider whose connection (base URL, key, API
version, timeout) is unchanged keeps its adapter and session and only takes the new config; a
changed connection gets a new adapter. A provider no longer configured is retired: iteration
(selection, probes) skips it, but ``get`` still finds it, so its jobs keep polling it until
they finish and their videos can still be downloaded. Replaced and retired adapters close at
shutdown, never under a call in flight.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from providers.base import Provider
from providers.fieldmap import FieldMap
from providers.metered import MeteredProvider, Moderated, Observer
from providers.registry import build_adapter
from providers.scrubber import Scrubber
from providers.simulator.server import FORMAT_PREFIXES, Simulator
from providers.simulator.settings import SimulationSettings
from router.config.model import Config, ProviderConfig

log = logging.getLogger(__name__)
UNKNOWN_POLL_INTERVAL = 5.0  # seconds: a render on a provider gone from the config and retirement


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
    ``moderated``, so every upstream call is measured whoever makes it. Every adapter shares
    ``scrubber``, which knows every secret of the proxy (``learn_secrets``).
    """

    __slots__ = ("_entries", "_moderated", "_observe", "_replaced", "_retired", "scrubber")

    def __init__(self, observe: Observer, moderated: Moderated) -> None:
        self.scrubber = Scrubber()
        self._entries: dict[str, PoolEntry] = {}
        self._retired: dict[str, PoolEntry] = {}  # removed from the config; still polled
        self._replaced: list[PoolEntry] = []  # superseded adapters, closed at shutdown
        self._observe = observe
        self._moderated = moderated

    def learn_secrets(self, config: Config) -> None:
        """Teach the scrubber every secret ``config`` holds (at start and on each reload)."""
        self.scrubber.learn(
            [p.api_key for p in config.providers]
            + [config.server.admin_key, config.server.link_secret],
            [k.key_sha256 for k in config.keys],
        )

    async def start(self, configs: Iterable[ProviderConfig]) -> None:
        for config in configs:
            self._entries[config.name] = await self._build(config)

    async def apply(self, configs: Iterable[ProviderConfig]) -> None:
        """Take a reloaded provider list (already checked by ``reload_problems``)."""
        entries: dict[str, PoolEntry] = {}
        for config in configs:
            old = self._entries.get(config.name) or self._retired.get(config.name)
            if old is not None and _connection(old.config) == _connection(config):
                old.config = config
                entries[config.name] = old
                continue
            entries[config.name] = await self._build(config)
            if old is not None:
                self._replaced.append(old)
        for name, entry in (*self._entries.items(), *self._retired.items()):
            if name not in entries:
                self._retired[name] = entry
        for name in entries:
            self._retired.pop(name, None)
        self._entries = entries

    def reload_problems(self, configs: Iterable[ProviderConfig]) -> list[str]:
        """Changes a reload cannot make: a provider's kind, or a simulator's behaviour or
        format (its renders in flight live inside the running simulator)."""
        problems = []
        for index, config in enumerate(configs):
            old = self._entries.get(config.name) or self._retired.get(config.name)
            if old is None:
                continue
            path = f"providers[{index}]"
            if old.config.kind != config.kind:
                problems.append(f"{path}.kind: cannot change on reload; restart or use a new name")
            elif old.config.simulate != config.simulate:
                problems.append(
                    f"{path}.simulate: cannot change on reload; restart or use a new name"
                )
            elif old.config.format != config.format:
                problems.append(
                    f"{path}.format: cannot change on reload; restart or use a new name"
                )
        return problems

    async def close(self) -> None:
        everything = [*self._entries.values(), *self._retired.values(), *self._replaced]
        for entry in everything:
            await entry.adapter.aclose()
            if entry.simulator is not None:
                await entry.simulator.stop()
        self._entries.clear()
        self._retired.clear()
        self._replaced.clear()

    def get(self, name: str) -> PoolEntry | None:
        """A configured or retired provider: jobs and videos on a removed one still reach it."""
        return self._entries.get(name) or self._retired.get(name)

    def poll_interval(self, name: str) -> float:
        """Seconds between status reads of a render on provider ``name``; a provider no longer
        known at all (neither configured nor retired) gets ``UNKNOWN_POLL_INTERVAL``."""
        entry = self.get(name)
        return entry.config.poll_interval if entry is not None else UNKNOWN_POLL_INTERVAL

    def __iter__(self) -> Iterator[PoolEntry]:
        return iter(self._entries.values())

    async def _build(self, config: ProviderConfig) -> PoolEntry:
        entry = await _build(config, self.scrubber)
        entry.adapter = MeteredProvider(entry.adapter, self._observe, self._moderated)
        return entry


def _connection(config: ProviderConfig) -> tuple[object, ...]:
    """What the adapter and its session are built from."""
    return (
        config.kind,
        config.base_url,
        config.api_key,
        config.api_version,
        config.timeout,
        config.simulate,
        config.content_hosts,
        config.allow_private_addresses,
        config.max_reply_bytes,
        config.format,
        config.render_estimate,
        tuple(_field_maps(config).items()),
    )


async def _build(config: ProviderConfig, scrubber: Scrubber) -> PoolEntry:
    boundary = {
        "scrubber": scrubber,
        "content_hosts": config.content_hosts,
        "allow_private_addresses": config.allow_private_addresses,
        "max_reply_bytes": config.max_reply_bytes,
    }
    if config.kind != "simulator":
        adapter = build_adapter(
            config.kind,
            name=config.name,
            base_url=config.base_url,
            api_key=config.api_key,
            timeout=config.timeout,
            api_version=config.api_version,
            render_estimate=config.render_estimate,
            field_maps=_field_maps(config),
            **boundary,
        )
        return PoolEntry(config=config, adapter=adapter)
    # A private per-process secret, so the embedded upstream also exercises auth.
    secret = secrets.token_urlsafe(24)
    simulator = Simulator(config.simulate or SimulationSettings(), api_key=secret)
    root = await simulator.start()
    log.info("provider %s: simulated %s upstream at %s", config.name, config.format, root)
    adapter = build_adapter(
        config.format,
        name=config.name,
        base_url=root + FORMAT_PREFIXES[config.format],
        api_key=secret,
        timeout=config.timeout,
        api_version=config.api_version,
        render_estimate=config.render_estimate,
        field_maps=_field_maps(config),
        **boundary,
    )
    return PoolEntry(config=config, adapter=adapter, simulator=simulator)


def _field_maps(config: ProviderConfig) -> dict[str, FieldMap]:
    """Upstream model -> how its inputs are named, for the kinds whose models need it (fal)."""
    return {m.upstream_model: m.fields for m in config.models.values() if m.fields is not None}
