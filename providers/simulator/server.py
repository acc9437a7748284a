"""A fake upstream video provider over real HTTP, for tests, demos and benchmarks.

One aiohttp server speaks every upstream wire format over one in-memory job table::

    /v1/videos...               OpenAI Videos API     Authorization: Bearer <key>
                                (edits, extensions, characters included)
    /openai/v1/videos...        Azure OpenAI Sora 2   api-key: <key>, ?api-version=preview|v1
    /v2/videos/generations...   relay task dialect    Authorization: Bearer <key>
    /openrouter/api/v1/...      OpenRouter videos     Authorization: Bearer <key>
    /gemini/v1beta/...          Gemini API (Veo)      x-goog-api-key: <key>
    /xai/v1/videos...           xAI Grok Imagine      Authorization: Bearer <key>
    /ark/api/v3/contents/...    Ark tasks (Seedance)  Authorization: Bearer <key>
    /fal/{model}...             fal queue API         Authorization: Key <key>
    /files/{id}.mp4             the CDN link          no auth

Each format's base URL, as a provider of that kind names it, is the root plus its prefix
(``FORMAT_PREFIXES``; ``openai`` is ``/v1``, ``azure`` and ``relay`` the root itself).

This module owns the server: the route table above, the injected latency, starting and
stopping. A handler whose caller disconnects is cancelled, so a request still waiting out its
latency when the caller gives up is never handled (as if lost on the way), and a held answer
stops holding. What sits behind it lives beside it: jobs, their clock-driven progress and the
fault each create draws in ``providers.simulator.jobs``; the OpenAI and Azure handlers
in ``providers.simulator.openai``; the relay's in ``providers.simulator.relay``; what the
dialects share in ``providers.simulator.http``; media bytes in ``providers.simulator.media``.
None of them may import from ``router`` or ``monitoring``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable, Collection

from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from providers.simulator.ark import ArkApi
from providers.simulator.fal import FalApi
from providers.simulator.follow_ups import FollowUpApi
from providers.simulator.gemini import GeminiApi
from providers.simulator.jobs import JobTable, SimulatedCharacter, SimulatedJob, SimulatorStats
from providers.simulator.openai import VideosApi
from providers.simulator.openrouter import OpenRouterApi
from providers.simulator.relay import RelayApi
from providers.simulator.settings import SimulationSettings
from providers.simulator.xai import XaiApi

__all__ = ["Simulator", "SimulatorStats", "serve_forever"]

_log = logging.getLogger(__name__)

_MAX_BODY = 32 * 1024**2  # input images may be up to 20 MiB; aiohttp's default cap is 1 MiB
# The task formats, each mounted at its prefix over the shared job table.
_TASK_FORMATS = (
    ("/openrouter/api/v1", OpenRouterApi),
    ("/gemini/v1beta", GeminiApi),
    ("/xai/v1", XaiApi),
    ("/ark/api/v3", ArkApi),
    ("/fal", FalApi),
)
# Provider kind -> the path its base_url adds to the simulator's root.
FORMAT_PREFIXES = {
    "openai": "/v1",
    "azure": "",
    "relay": "",
    "openrouter": "/openrouter/api/v1",
    "gemini": "/gemini/v1beta",
    "xai": "/xai/v1",
    "ark": "/ark/api/v3",
    "fal": "/fal",
}


class Simulator:
    """The simulated upstream. Build it, ``await start()``, point a provider at ``base_url``.

    Tests may read ``jobs`` (id -> job, in creation order), ``characters``, ``stats``,
    ``settings`` and ``api_key``, and swap ``settings`` while it runs (each request reads them
    afresh); ``app`` is the aiohttp application, for embedding in another runner.
    """

    def __init__(
        self,
        settings: SimulationSettings,
        *,
        api_key: str = "",
        deployments: Collection[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key = api_key  # empty: every request is let in
        self._table = JobTable(settings, clock)
        self._deployments = None if deployments is None else frozenset(deployments)
        self._runner: web.AppRunner | None = None
        self._base_url = ""
        self.app = self._build_app()

    @property
    def settings(self) -> SimulationSettings:
        return self._table.settings

    @settings.setter
    def settings(self, settings: SimulationSettings) -> None:
        self._table.settings = settings

    @property
    def stats(self) -> SimulatorStats:
        return self._table.stats

    @property
    def jobs(self) -> dict[str, SimulatedJob]:
        return self._table.jobs

    @property
    def table(self) -> JobTable:
        """The job table behind every dialect, for harnesses that add many jobs at once
        (the bench seeds a million renders here instead of a million creates over HTTP)."""
        return self._table

    @property
    def characters(self) -> dict[str, SimulatedCharacter]:
        return self._table.characters

    def _build_app(self) -> web.Application:
        videos = VideosApi(
            self._table, key_matches=self._key_matches, deployments=self._deployments
        )
        openai = web.Application(middlewares=[videos.openai_gate])
        azure = web.Application(middlewares=[videos.azure_gate])
        follow_ups = FollowUpApi(self._table, videos)
        for sub, create in ((openai, videos.create_openai), (azure, videos.create_azure)):
            # fixed paths before /videos/{video_id}, which would take "characters" as an id
            sub.router.add_post("/videos/edits", follow_ups.edit)
            sub.router.add_post("/videos/extensions", follow_ups.extend)
            sub.router.add_post("/videos/characters", follow_ups.create_character)
            sub.router.add_get("/videos/characters/{character_id}", follow_ups.get_character)
            sub.router.add_post("/videos", create)
            sub.router.add_get("/videos", videos.list_videos)
            sub.router.add_get("/videos/{video_id}", videos.retrieve)
            sub.router.add_delete("/videos/{video_id}", videos.delete)
            sub.router.add_get("/videos/{video_id}/content", videos.content)
            sub.router.add_post("/videos/{video_id}/remix", videos.remix)
        relay_api = RelayApi(self._table, key_matches=self._key_matches)
        relay = web.Application(middlewares=[relay_api.gate])
        relay.router.add_post("/videos/generations", relay_api.create)
        relay.router.add_get("/videos/generations/{task_id}", relay_api.retrieve)
        app = web.Application(middlewares=[self._latency], client_max_size=_MAX_BODY)
        app.add_subapp("/v1", openai)
        app.add_subapp("/openai/v1", azure)
        app.add_subapp("/v2", relay)
        app.router.add_get("/files/{video_id}.mp4", relay_api.file)
        for prefix, dialect in _TASK_FORMATS:
            app.add_subapp(prefix, dialect(self._table, key_matches=self._key_matches).app())
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 picks a free port); returns the root URL."""
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        runner = web.AppRunner(self.app, access_log=None, handler_cancellation=True)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._base_url = str(URL.build(scheme="http", host=host, port=runner.addresses[0][1]))
        return self._base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        if not self._base_url:
            raise RuntimeError("simulator not started")
        return self._base_url

    @web.middleware
    async def _latency(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # Real time, not the injected clock: latency exists to exercise the caller's timeouts.
        if self.settings.latency > 0:
            try:
                await asyncio.sleep(self.settings.latency)
            except asyncio.CancelledError:  # the caller gave up: this request never arrived
                self._table.stats.abandoned += 1
                raise
        return await handler(request)

    def _key_matches(self, given: str) -> bool:
        # Read at each request, so a key changed after start takes effect.
        return not self.api_key or hmac.compare_digest(given.encode(), self.api_key.encode())


async def serve_forever(
    settings: SimulationSettings, *, host: str, port: int, api_key: str
) -> None:
    """Run a simulator until cancelled (the ``sora-proxy simulate`` command)."""
    simulator = Simulator(settings, api_key=api_key)
    url = await simulator.start(host, port)
    prefixes = ", ".join(f"{kind} {prefix or '/'}" for kind, prefix in FORMAT_PREFIXES.items())
    _log.info("simulated upstream at %s (%s)", url, prefixes)
    try:
        await asyncio.Event().wait()
    finally:
        await simulator.stop()
