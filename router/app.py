"""``create_app(config)``: routes and the lifecycle of every long-lived resource.

Every route's handler is wrapped at registration (``fronted``): take or make the request id
(``router.logs``: every log line of the request carries it), authenticate the client key, run
the handler, render every failure as the OpenAI envelope, record request metrics, and write
the access log line when it is on. A wrapper rather than an aiohttp middleware: with any
middleware aiohttp adds two coroutine layers to every request (bench/README.md, "Figures behind
the design"). A catch-all route, last, answers paths no route takes with the OpenAI envelope's
404 or 405, and allowed origins' CORS preflights (``router.access.cors``). Headers every answer
carries (``X-Request-Id``, CORS) are added by ``router.api.stamp``.

Cleanup contexts, in dependency order (torn down in reverse): the Redis client when the store
backend is redis (``router.runtime.redis_connection``), the fleet's limits and bus (redis only,
``router.runtime.fleet``), providers (adapters and embedded simulators), health
(``router.runtime.health``: selector and probes), the shared health board (redis only), the job
store (loads jobs), characters and the webhook outbox (``router.runtime.side_stores``), the
asset store with its copier and retention (``router.assets``: resume unfinished copies), the
poller and dispatcher (resume in-flight jobs), then the frozen heap
(``router.runtime.heap``: keeps full GC passes off requests).
Readiness turns on when all have started and off first at shutdown.
Nothing is created at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path

from aiohttp import hdrs, web

from monitoring.metrics import Metrics
from monitoring.state import StateCollector
from router import appkeys as keys
from router.access.auth import ClientKey, KeyRing
from router.access.cors import CorsPolicy
from router.access.links import CONTENT_PREFIX, LinkSigner
from router.api import admin as api_admin
from router.api import cancel as api_cancel
from router.api import characters as api_characters
from router.api import content
from router.api import events as api_events
from router.api import follow_ups as api_follow_ups
from router.api import models as api_models
from router.api import openai as api_openai
from router.api import openapi as api_openapi
from router.api import relay as api_relay
from router.api.stamp import REQUEST_ID_HEADER, stamp_answer
from router.assets.build import asset_store, copies_to_resume, copy_leases
from router.assets.copier import AssetCopier
from router.assets.retention import Retention
from router.assets.thumbnails import Thumbnailer
from router.config.live import LiveConfig
from router.config.model import Config
from router.errors import Handler, PayloadTooLarge, failure_response
from router.events.local import LocalJobEvents
from router.jobs.dispatch import Dispatcher
from router.jobs.idempotency import Idempotency
from router.jobs.operations import Sender
from router.jobs.poller import Poller
from router.jobs.retry import RetryPolicy
from router.jobs.views import StoredViews
from router.jobs.webhooks import Webhooks
from router.jsonio import json_headers, json_response
from router.limits.local import Limits, completed_today
from router.logs import (
    ACCESS_LOGGER,
    NEW_REQUEST_IDS,
    REQUEST_ID,
    ServerLog,
    request_id_from,
)
from router.routing.pool import ProviderPool
from router.runtime.allocator import kept_heap
from router.runtime.fleet import fleet_health, fleet_limits
from router.runtime.health import health_context, live_state
from router.runtime.heap import frozen_heap
from router.runtime.redis_connection import redis_context
from router.runtime.shared_jobs import shared_jobs
from router.runtime.side_stores import side_stores
from router.runtime.storewatch import store_watch
from router.store.sqlite import SqliteJobStore

LINGER = 1.0  # seconds the rest of an unread body is drained before an early answer goes out
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
UNMATCHED = "unmatched"  # the route label of requests no route took

access_log = logging.getLogger(ACCESS_LOGGER)


def create_app(
    config: Config,
    *,
    clock: Callable[[], float] = time.time,
    config_path: Path | None = None,
    log_access: bool = False,
) -> web.Application:
    """The proxy for ``config``; ``config_path`` is the file ``router.runtime.reload`` re-reads;
    ``log_access``: one log line per request (``sora_proxy.access``, at INFO)."""
    # keepalive_timeout also closes a connection still sending its headers; an answer given
    # before the body arrived (408, 413) waits at most LINGER for the rest; what aiohttp's
    # parser refuses is logged without a traceback (issue 15)
    app = web.Application(
        client_max_size=config.server.max_body_bytes,
        handler_args={
            "keepalive_timeout": config.server.header_timeout,
            "lingering_time": LINGER,
            "logger": ServerLog(logging.getLogger("aiohttp.server")),
        },
    )
    app[keys.CONFIG] = LiveConfig(config, config_path)
    app[keys.CLOCK] = clock
    app[keys.STARTED] = clock()
    app[keys.METRICS] = Metrics(
        key_label=config.metrics.key_label,
        budgets={k.name: k.daily_budget_usd for k in config.keys if k.daily_budget_usd},
        offers={p.name: list(p.models) for p in config.providers},
    )
    app[keys.KEYRING] = KeyRing(config.keys)
    app[keys.LIMITS] = Limits(config, clock)
    app[keys.READY] = [False]
    app[keys.POLL_HEADERS] = json_headers(
        {"openai-poll-after-ms": str(config.server.poll_after_ms)}
    )
    app[keys.LINKS] = LinkSigner(config.server, clock)
    app[keys.CORS] = CorsPolicy(config.server.cors_origins)
    app.cleanup_ctx.extend(
        [
            redis_context,
            fleet_limits,
            _providers,
            health_context,
            fleet_health,
            _store,
            store_watch,
            side_stores,
            _assets,
            _jobs,
            _webhooks,
            frozen_heap,
            kept_heap,
        ]
    )
    routes = (
        *_ROUTES,
        # fixed /v1/videos/... paths before api_openai's /v1/videos/{video_id}
        *api_models.ROUTES,
        *api_characters.ROUTES,
        *api_follow_ups.ROUTES,
        *api_openai.ROUTES,
        *api_cancel.ROUTES,
        *api_events.ROUTES,
        *content.ROUTES,
        *api_relay.ROUTES,
        *api_admin.ROUTES,
        *api_openapi.ROUTES,
    )
    # resources made for their path, registered where its first route is; aiohttp adds the
    # routes that follow on the same path to it, as it would to a resource of its own making
    made = {api_openai.VIDEO_PATH: api_openai.VideoPath}
    for route in routes:
        make = made.pop(route.path, None)
        if make is not None:
            app.router.register_resource(make())
        handler = fronted(app, route.handler, route.path, needs_client_key(route.path), log_access)
        web.RouteDef(route.method, route.path, handler, route.kwargs).register(app.router)
    catch_all = AnyPath("/{path}")
    app.router.register_resource(catch_all)
    catch_all.add_route("*", fronted(app, unmatched, UNMATCHED, authenticate=False, log=log_access))
    return app


class AnyPath(web.DynamicResource):
    """The catch-all's resource: it matches every request target, so every request no route
    takes is answered in the envelope. A route pattern could not: it starts with ``/`` (so
    ``OPTIONS *`` fell to aiohttp's plain-text 404), and ``.*`` stopped at an encoded line
    break (``%0A``). aiohttp indexes it under ``/``, the last place it looks."""

    def _match(self, path: str) -> dict[str, str]:
        return {"path": path}


async def _providers(app: web.Application) -> AsyncIterator[None]:
    metrics = app[keys.METRICS]
    pool = ProviderPool(metrics.observe_upstream, metrics.moderated)
    pool.learn_secrets(app[keys.CONFIG].current)
    try:
        await pool.start(app[keys.CONFIG].current.providers)
        app[keys.POOL] = pool
        yield
    finally:
        await pool.close()


async def _store(app: web.Application) -> AsyncIterator[None]:
    """The job store with its events and the views client reads go through: SQLite (one
    process) or Redis (a fleet: ``router.runtime.shared_jobs``)."""
    config = app[keys.CONFIG].current
    if config.store.backend == "redis":
        async with shared_jobs(app):
            app[keys.IDEMPOTENCY] = Idempotency(app[keys.STORE])
            yield
        return
    events = LocalJobEvents()
    store = SqliteJobStore(config.store.path, on_change=events.deliver)
    await store.open()
    try:
        app[keys.EVENTS], app[keys.STORE] = events, store
        app[keys.VIEWS] = StoredViews(store)
        app[keys.IDEMPOTENCY] = Idempotency(store)
        yield
    finally:
        await store.close()
        events.close()


async def _assets(app: web.Application) -> AsyncIterator[None]:
    config = app[keys.CONFIG].current
    settings = config.assets
    assets = asset_store(config)
    await assets.open()
    metrics, clock = app[keys.METRICS], app[keys.CLOCK]
    retention = Retention(
        assets=assets, jobs=app[keys.STORE], config=settings, metrics=metrics, clock=clock
    )
    thumbnailer = (
        Thumbnailer(concurrency=settings.thumbnail_concurrency) if settings.thumbnails else None
    )
    copier = AssetCopier(
        assets=assets,
        jobs=app[keys.STORE],
        pool=app[keys.POOL],
        config=settings,
        metrics=metrics,
        clock=clock,
        thumbnailer=thumbnailer,
        leases=copy_leases(app.get(keys.REDIS), app.get(keys.INSTANCE), clock),
        on_stored=retention.stored,
    )
    app[keys.ASSETS], app[keys.COPIER], app[keys.RETENTION] = assets, copier, retention
    copier.resume(await copies_to_resume(app[keys.STORE], config, clock()))
    copier.start()
    sweeping = asyncio.create_task(retention.run(), name="asset-retention")
    try:
        yield
    finally:
        sweeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeping
        await copier.stop()
        await assets.close()


async def _jobs(app: web.Application) -> AsyncIterator[None]:
    store, metrics = app[keys.STORE], app[keys.METRICS]

    config = app[keys.CONFIG].current
    policy = RetryPolicy.from_config(config.routing)
    poller = Poller(
        store=store,
        pool=app[keys.POOL],
        clock=app[keys.CLOCK],
        health=app[keys.HEALTH],
        policy=policy,
        metrics=metrics,
        limits=app[keys.LIMITS],
        tracking=app.get(keys.TRACKING),
    )
    app[keys.POLLER] = poller
    dispatcher = Dispatcher(
        selector=app[keys.SELECTOR],
        store=store,
        poller=poller,
        clock=app[keys.CLOCK],
        policy=policy,
        metrics=metrics,
        limits=app[keys.LIMITS],
        routing=app[keys.CONFIG].current.routing,
        sender=Sender(app[keys.CHARACTERS]),
    )
    poller.resubmit = dispatcher.resubmit
    poller.completed = app[keys.COPIER].submit
    app[keys.DISPATCHER] = dispatcher
    metrics.watch(StateCollector(partial(live_state, app)))
    if isinstance(store, SqliteJobStore):
        # one process: every job in flight is this one's to poll again, and its holds
        unfinished = store.unfinished()
        today = await completed_today(store, config, app[keys.CLOCK]())
        app[keys.LIMITS].restore(unfinished, today)
        await poller.resume(unfinished)
    # a fleet: the poll plan in Redis has every job in flight, and the counters hold today's
    # spend; holds of renders in flight live while their instance renews them (README)
    poller.start()
    app[keys.READY][0] = True
    try:
        yield
    finally:
        app[keys.READY][0] = False
        await poller.stop()


async def _webhooks(app: web.Application) -> AsyncIterator[None]:
    """Events of jobs that settle, delivered from the outbox; missed ones added at start."""
    hooks = Webhooks(
        outbox=app[keys.OUTBOX],
        config=app[keys.CONFIG],
        store=app[keys.STORE],
        events=app[keys.EVENTS],
        metrics=app[keys.METRICS],
        clock=app[keys.CLOCK],
        views=app[keys.VIEWS],
    )
    app[keys.WEBHOOKS] = hooks
    await hooks.start()
    try:
        yield
    finally:
        await hooks.stop()


def needs_client_key(path: str) -> bool:
    """Signed content links carry their own credential (``router.access.links``); the admin API
    checks the admin key itself (``router.api.admin``)."""
    return (
        path not in PUBLIC_PATHS
        and not path.startswith(CONTENT_PREFIX)
        and not path.startswith(api_admin.ADMIN_PREFIX)
    )


def client_key(request: web.Request) -> ClientKey:
    """The client key the request's ``Authorization`` header names, or a 401."""
    return request.app[keys.KEYRING].authenticate(request.headers.get("Authorization", ""))


def fronted(
    app: web.Application, handler: Handler, route: str, authenticate: bool, log: bool = False
) -> Handler:
    """``handler`` behind what every request goes through; ``route`` labels its metrics;
    ``log``: write the access log line. What the wrapper needs of ``app`` is looked up once,
    here: the key ring (reloads change it in place), metrics and the CORS policy."""
    keyring = app[keys.KEYRING]
    observe = app[keys.METRICS].route_requests(route).observe
    cors = app[keys.CORS] or None

    async def front(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        headers = request.headers
        given = headers.get(REQUEST_ID_HEADER)
        request_id = next(NEW_REQUEST_IDS) if given is None else request_id_from(given)
        # aiohttp runs every request in a task of its own, in a copy of the connection's
        # context, so the id goes with that task and needs no reset
        REQUEST_ID.set(request_id)
        response: web.StreamResponse
        try:
            if authenticate:
                request[keys.CLIENT_KEY] = keyring.authenticate(headers.get(hdrs.AUTHORIZATION, ""))
            response = await handler(request)
        except web.HTTPRequestEntityTooLarge:
            response = body_too_large(request).to_response()
        except Exception as exc:
            response = failure_response(request, exc)
        seconds = time.perf_counter() - started
        observe(response.status, seconds)
        if log and access_log.isEnabledFor(logging.INFO):
            access_log.info(
                "%s %s",
                request.method,
                request.path,  # never the query: a signed link's signature is there
                extra={"status": response.status, "duration_ms": round(seconds * 1000, 3)},
            )
        if not response.prepared:  # a streamed answer stamped itself before sending
            stamp_answer(request, response, request_id, cors)
        return response

    return front


def body_too_large(request: web.Request) -> PayloadTooLarge:
    """The 413, naming the limit (aiohttp's own exception does not carry it)."""
    limit = request.app[keys.CONFIG].current.server.max_body_bytes
    return PayloadTooLarge(
        f"Request body is larger than this server accepts: the limit is {limit} bytes "
        "(server.max_body_bytes), uploads included."
    )


async def unmatched(request: web.Request) -> web.StreamResponse:
    """The catch-all route: 405 when another method has a route here, else 404. The client key
    is checked first, as on the routes themselves, so a wrong key learns no route. A CORS
    preflight from an allowed origin (always unmatched: no route takes OPTIONS) needs no key."""
    preflight = request.app[keys.CORS].preflight(request)
    if preflight is not None:
        return preflight
    if needs_client_key(request.path):
        client_key(request)
    catch_all = request.match_info.route.resource
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not catch_all:
            allowed |= (await resource.resolve(request))[1]
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 once start-up has finished and every provider has been probed once (pass or
    fail), and while the shared store's Redis (if any) answers; 503 otherwise and from the
    start of shutdown, naming what it waits for."""
    app = request.app
    waiting = []
    if not app[keys.READY][0]:
        waiting.append("startup")  # also from the start of shutdown
    checker = app.get(keys.HEALTH_CHECKER)
    if checker is None or not checker.first_round.is_set():
        waiting.append("first_probe_round")
    liveness = app.get(keys.REDIS_LIVENESS)
    if liveness is not None and not liveness.up:
        waiting.append("redis")  # cannot store a job now: send creates elsewhere
    store = app.get(keys.STORE)
    if store is not None and not store.writable:
        waiting.append("store_writes")  # ``router.runtime.storewatch`` probes until it can
    if waiting:
        return json_response({"ready": False, "waiting_for": waiting}, status=503)
    return json_response({"ready": True})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[keys.METRICS].render(), content_type="text/plain", charset="utf-8"
    )


_ROUTES = (web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics))
