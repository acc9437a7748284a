"""Every typed key of app and request state; handlers never use string keys."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from monitoring.health import ProviderHealth
from monitoring.metrics import Metrics
from router.auth import ClientKey, KeyRing
from router.config import Config
from router.dispatch import Dispatcher
from router.links import LinkSigner
from router.poller import Poller
from router.pool import ProviderPool
from router.selection import Selector
from router.store import JobStore

CONFIG = web.AppKey("config", Config)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
METRICS = web.AppKey("metrics", Metrics)
KEYRING = web.AppKey("keyring", KeyRing)
POOL = web.AppKey("pool", ProviderPool)
SELECTOR = web.AppKey("selector", Selector)
HEALTH = web.AppKey("health", ProviderHealth)
STORE = web.AppKey("store", JobStore)
POLLER = web.AppKey("poller", Poller)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
LINKS = web.AppKey("links", LinkSigner)
READY = web.AppKey("ready", list[bool])  # one mutable cell: flipped by startup and shutdown

POLL_HEADERS = web.AppKey("poll_headers", dict[str, str])  # JSON + openai-poll-after-ms, built once

CLIENT_KEY = web.RequestKey("client_key", ClientKey)
