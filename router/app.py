"""``create_app(config)``: routes, middlewares and the lifecycle of every long-lived resource.

Middlewares, outermost first: ``observe`` (request metrics), ``error_middleware`` (renders
every failure as the OpenAI envelope), ``authenticate`` (Bearer key on the API routes; a
signed content link is its own credential).

Cleanup contexts, in dependency order (torn down in reverse): providers (adapters and
embedded simulators), the job store (loads jobs), then the poller and dispatcher (resume
in-flight jobs). Readiness turns on when all have started and off first at shutdown.
Nothing is created at import time.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from monitoring.metrics import Metrics
from router import api_openai, api_relay, content, keys
from router.auth import KeyRing
from router.config import Config
from router.dispatch import Dispatcher
from router.errors import Handler, error_middleware
from router.jobs import Job
from router.jsonio import json_response
from router.links import CONTENT_PREFIX, LinkSigner
from router.poller import Poller
from router.pool import ProviderPool
from router.selection import Selector
from router.store import SqliteJobStore

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def create_app(config: Config, *, clock: Callable[[], float] = time.time) -> web.Application:
    app = web.Application(
        middlewares=[observe, error_middleware, authenticate],
        client_max_size=config.server.max_body_bytes,
    )
    app[keys.CONFIG] = config
    app[keys.CLOCK] = clock
    app[keys.METRICS] = Metrics()
    app[keys.KEYRING] = KeyRing(config.keys)
    app[keys.READY] = [False]
    app[keys.LINKS] = LinkSigner(config.server, clock)
    app.cleanup_ctx.extend([_providers, _store, _jobs])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    api_openai.add_routes(app)
    content.add_routes(app)
    api_relay.add_routes(app)
    return app


async def _providers(app: web.Application) -> AsyncIterator[None]:
    pool = ProviderPool()
    try:
        await pool.start(app[keys.CONFIG].providers)
        app[keys.POOL] = pool
        app[keys.SELECTOR] = Selector(pool, app[keys.CONFIG].models)
        yield
    finally:
        await pool.close()


async def _store(app: web.Application) -> AsyncIterator[None]:
    store = SqliteJobStore(app[keys.CONFIG].store.path)
    await store.open()
    app[keys.STORE] = store
    try:
        yield
    finally:
        await store.close()


async def _jobs(app: web.Application) -> AsyncIterator[None]:
    store, metrics = app[keys.STORE], app[keys.METRICS]

    def settled(job: Job) -> None:
        metrics.renders.labels(job.current.provider, job.model, job.state.value).inc()

    poller = Poller(store=store, pool=app[keys.POOL], clock=app[keys.CLOCK], on_settled=settled)
    app[keys.POLLER] = poller
    app[keys.DISPATCHER] = Dispatcher(
        selector=app[keys.SELECTOR], store=store, poller=poller, clock=app[keys.CLOCK]
    )
    poller.resume(store.unfinished())
    poller.start()
    app[keys.READY][0] = True
    try:
        yield
    finally:
        app[keys.READY][0] = False
        await poller.stop()


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Signed content links carry their own credential (router.links).
    if request.path not in PUBLIC_PATHS and not request.path.startswith(CONTENT_PREFIX):
        request[keys.CLIENT_KEY] = request.app[keys.KEYRING].authenticate(
            request.headers.get("Authorization")
        )
    return await handler(request)


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[keys.METRICS]
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        metrics.request_seconds.labels(route).observe(time.perf_counter() - started)
        metrics.requests.labels(route, str(status)).inc()


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ready = request.app[keys.READY][0]
    return json_response({"ready": ready}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[keys.METRICS].render(), content_type="text/plain", charset="utf-8"
    )
