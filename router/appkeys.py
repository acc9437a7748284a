"""Every typed key of app and request state; handlers never use string keys."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from multidict import CIMultiDictProxy

from monitoring.board_sync import HealthSync
from monitoring.health import HealthChecker, ProviderHealth
from monitoring.metrics import Metrics
from router.access.auth import ClientKey, KeyRing
from router.access.cors import CorsPolicy
from router.access.links import LinkSigner
from router.assets.base import AssetStore
from router.assets.copier import AssetCopier
from router.assets.retention import Retention
from router.config.live import LiveConfig
from router.events.base import JobEvents
from router.fleet.bus import Bus
from router.jobs.dispatch import Dispatcher
from router.jobs.idempotency import Idempotency
from router.jobs.poller import Poller, TrackingFactory
from router.jobs.views import Views
from router.jobs.webhooks import Webhooks
from router.limits.local import Limits
from router.routing.pool import ProviderPool
from router.routing.selection import Selector
from router.store.base import JobStore
from router.store.characters import CharacterStore
from router.store.outbox import WebhookOutbox
from router.store.redis_client import RedisClient
from router.store.redis_liveness import RedisLiveness

CONFIG = web.AppKey("config", LiveConfig)  # the config in force; reloads replace .current
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
METRICS = web.AppKey("metrics", Metrics)
KEYRING = web.AppKey("keyring", KeyRing)
POOL = web.AppKey("pool", ProviderPool)
SELECTOR = web.AppKey("selector", Selector)
HEALTH = web.AppKey("health", ProviderHealth)
HEALTH_CHECKER = web.AppKey("health_checker", HealthChecker)  # readiness: first_round
STORE: web.AppKey[JobStore] = web.AppKey("store")  # the source of truth: SQLite or Redis
# what client reads go through: the store's own jobs (SQLite) or the poll cache (router.jobs.views)
VIEWS: web.AppKey[Views] = web.AppKey("views")
# redis only: the poller's tracking on the fleet's poll plan (router.runtime.shared_jobs)
TRACKING: web.AppKey[TrackingFactory] = web.AppKey("tracking")
# every stored change of a job, once (router.events): poll cache, SSE, webhooks, asset copies
EVENTS: web.AppKey[JobEvents] = web.AppKey("events")
# the shared Redis client, only when store.backend is redis (router.runtime.redis_connection)
REDIS: web.AppKey[RedisClient] = web.AppKey("redis")
OUTBOX = web.AppKey("outbox", WebhookOutbox)  # webhook events until delivered
WEBHOOKS = web.AppKey("webhooks", Webhooks)
CHARACTERS = web.AppKey("characters", CharacterStore)  # the proxy's own characters and clips
STARTED: web.AppKey[float] = web.AppKey("started")  # when the app was built (injected clock)
REDIS_LIVENESS = web.AppKey("redis_liveness", RedisLiveness)  # with REDIS: /readyz reads it
POLLER = web.AppKey("poller", Poller)
ASSETS = web.AppKey("assets", AssetStore)  # where finished videos are kept
COPIER = web.AppKey("copier", AssetCopier)
RETENTION = web.AppKey("retention", Retention)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
IDEMPOTENCY = web.AppKey("idempotency", Idempotency)
LIMITS = web.AppKey("limits", Limits)
LINKS = web.AppKey("links", LinkSigner)
CORS = web.AppKey("cors", CorsPolicy)  # server.cors_origins; needs a restart to change
# a fleet's (store.backend redis; router.runtime.fleet): the bus, this instance's id among the
# fleet's, and the health board's sync
BUS: web.AppKey[Bus] = web.AppKey("bus")
INSTANCE = web.AppKey("instance", str)
HEALTH_SYNC = web.AppKey("health_sync", HealthSync)
READY = web.AppKey("ready", list[bool])  # one mutable cell: flipped by startup and shutdown

# JSON + openai-poll-after-ms, built once (``router.jsonio.json_headers``)
POLL_HEADERS = web.AppKey("poll_headers", CIMultiDictProxy[str])

CLIENT_KEY = web.RequestKey("client_key", ClientKey)
