"""Kind name -> adapter class. A new wire format registers here and nowhere else."""

from __future__ import annotations

from collections.abc import Callable

from providers.azure import AzureVideosProvider
from providers.base import Provider
from providers.openai import OpenAIVideosProvider
from providers.relay import RelayProvider

# Each takes the keyword arguments of ``HttpProvider.__init__``.
AdapterFactory = Callable[..., Provider]

ADAPTERS: dict[str, AdapterFactory] = {
    "openai": OpenAIVideosProvider,
    "azure": AzureVideosProvider,
    "relay": RelayProvider,
}


# Every kind a provider may name in config: the wire formats above, and ``simulator``, which
# runs an embedded simulated upstream (``providers.simulator``) reached through the openai
# adapter.
KINDS = (*ADAPTERS, "simulator")


def adapter_class(kind: str) -> AdapterFactory:
    try:
        return ADAPTERS[kind]
    except KeyError:
        raise ValueError(f"no adapter for provider kind {kind!r}") from None
