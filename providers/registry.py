"""Kind name -> adapter class. A new wire format registers here and nowhere else.

``build_adapter`` is how the pool makes an adapter from a provider's settings, so the settings
only some kinds take (a render-time estimate for the task kinds) reach only those.
``geometry`` says what sizes and lengths a kind can ask for exactly, for the config's checks;
the OpenAI, Azure and relay kinds take the catalogue's ``WxH`` and seconds as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from providers.ark import ArkSeedanceProvider
from providers.azure import AzureVideosProvider
from providers.base import Provider
from providers.fal import FalQueueProvider
from providers.fieldmap import FieldMap
from providers.gemini import GeminiVeoProvider
from providers.openai import OpenAIVideosProvider
from providers.openrouter import OpenRouterProvider
from providers.relay import RelayProvider
from providers.sizes import Geometry
from providers.tasks import TaskProvider
from providers.xai import XaiVideoProvider

# Each takes the keyword arguments of ``HttpProvider.__init__``.
AdapterFactory = Callable[..., Provider]

ADAPTERS: dict[str, AdapterFactory] = {
    "openai": OpenAIVideosProvider,
    "azure": AzureVideosProvider,
    "relay": RelayProvider,
    "openrouter": OpenRouterProvider,
    "gemini": GeminiVeoProvider,
    "xai": XaiVideoProvider,
    "ark": ArkSeedanceProvider,
    "fal": FalQueueProvider,
}
# The kinds whose render is a task read by id (``providers.tasks``).
TASK_KINDS: dict[str, type[TaskProvider]] = {
    "openrouter": OpenRouterProvider,
    "gemini": GeminiVeoProvider,
    "xai": XaiVideoProvider,
    "ark": ArkSeedanceProvider,
    "fal": FalQueueProvider,
}


# Every kind a provider may name in config: the wire formats above, and ``simulator``, which
# runs an embedded simulated upstream (``providers.simulator``) reached through the adapter of
# its ``format`` (openai unless the provider says otherwise).
KINDS = (*ADAPTERS, "simulator")


def adapter_class(kind: str) -> AdapterFactory:
    try:
        return ADAPTERS[kind]
    except KeyError:
        raise ValueError(f"no adapter for provider kind {kind!r}") from None


def geometry(kind: str, fields: FieldMap | None = None) -> Geometry | None:
    """What ``kind`` (with a model's ``fields``, for fal) can ask for exactly; None when it
    takes ``WxH`` and seconds as they are."""
    if fields is not None:
        return fields.geometry()
    task = TASK_KINDS.get(kind)
    return None if task is None else task.geometry


def build_adapter(
    kind: str,
    *,
    name: str,
    base_url: str,
    api_key: str,
    timeout: float,
    api_version: str = "",
    render_estimate: float | None = None,
    field_maps: Mapping[str, FieldMap] | None = None,
    **boundary: Any,
) -> Provider:
    """An adapter of ``kind``; ``render_estimate`` reaches only the task kinds, ``field_maps``
    (upstream model -> its inputs) only fal, and ``boundary`` (the scrubber, content hosts,
    private addresses, reply cap of ``HttpProvider``) every kind."""
    factory = adapter_class(kind)
    common = {
        "name": name,
        "base_url": base_url,
        "api_key": api_key,
        "timeout": timeout,
        **boundary,
    }
    if kind == "fal":
        return factory(render_estimate=render_estimate, field_maps=field_maps, **common)
    if kind in TASK_KINDS:
        return factory(render_estimate=render_estimate, **common)
    return factory(api_version=api_version, **common)
