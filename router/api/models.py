"""Discovery: ``GET /v1/models`` (OpenAI's list shape) and ``GET /v1/videos/models`` (what each
catalogue model can do here).

Both list only the catalogue models the caller's key may use. ``/v1/videos/models`` adds, per
model, the sizes and seconds of its catalogue entry, which features some configured provider
offers for it (remix, edit, extend, characters, and a reference image, which every kind takes),
how many providers serve it, and the range of their prices per second (USD; null when no
provider serving it has a price). Worked out from the config in force and the adapters'
``features`` on each call: cheap, and never stale after a reload.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from providers.base import FEATURES
from router import appkeys as keys
from router.config.model import Config, ModelSpec
from router.jsonio import json_response
from router.routing.pool import ProviderPool

OWNER = "sora-api-proxy"


async def list_models(request: web.Request) -> web.Response:
    created = int(request.app[keys.STARTED])
    data = [
        {"id": name, "object": "model", "created": created, "owned_by": OWNER}
        for name in _allowed(request)
    ]
    return json_response({"object": "list", "data": data})


async def video_models(request: web.Request) -> web.Response:
    config = request.app[keys.CONFIG].current
    pool = request.app[keys.POOL]
    data = [_describe(config.models[name], config, pool) for name in _allowed(request)]
    return json_response({"object": "list", "data": data})


def _allowed(request: web.Request) -> list[str]:
    allowed = request[keys.CLIENT_KEY].models
    catalogue = request.app[keys.CONFIG].current.models
    return [name for name in catalogue if allowed is None or name in allowed]


def _describe(spec: ModelSpec, config: Config, pool: ProviderPool) -> dict[str, Any]:
    features: set[str] = set()
    prices: list[float] = []
    serving = 0
    for provider in config.providers:
        offer = provider.models.get(spec.name)
        entry = pool.get(provider.name)
        if offer is None or entry is None:
            continue
        serving += 1
        features |= entry.adapter.features
        sizes = offer.sizes or spec.sizes
        prices += [p for size in sizes if (p := offer.price_for(size)) is not None]
    return {
        "id": spec.name,
        "object": "video.model",
        "sizes": list(spec.sizes),
        "seconds": [str(s) for s in spec.seconds],
        "default_size": spec.default_size,
        "default_seconds": str(spec.default_seconds),
        "features": {
            **{feature: feature in features for feature in FEATURES},
            "input_reference": serving > 0,
        },
        "providers": serving,
        "price_per_second": {
            "currency": "USD",
            "min": min(prices, default=None),
            "max": max(prices, default=None),
        },
    }


ROUTES = (
    web.get("/v1/models", list_models),
    web.get("/v1/videos/models", video_models),
)
