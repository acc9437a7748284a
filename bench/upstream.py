"""The benchmark's upstream: the project's simulator in its own process, plus a stats route.

``sora-proxy simulate`` runs the same simulator, but its request counters live only in memory;
the scale scenario must count upstream status reads from the upstream's side, so this wrapper
adds ``GET /bench/stats`` (no auth, outside the simulated API) answering ``SimulatorStats``
and the job count as JSON. ``POST /bench/seed?start=I&count=N&model=M`` adds the renders of
seeded jobs ``I`` to ``I+N-1`` (``bench.seed.upstream_id``) to the job table directly, as
accepted creates, so the fleet's scale runs reach a million renders in seconds. Everything
else is the simulator, unchanged.

    python -m bench.upstream --port 9000 --api-key K --render-seconds 0 --video-bytes 1048576
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

import orjson
import uvloop
from aiohttp import web

from bench.client import PROMPT
from bench.seed import upstream_id
from providers.simulator.jobs import CreateParams
from providers.simulator.server import Simulator
from providers.simulator.settings import SimulationSettings

STATS_PATH = "/bench/stats"
SEED_PATH = "/bench/seed"


async def _serve(settings: SimulationSettings, port: int, api_key: str) -> None:
    simulator = Simulator(settings, api_key=api_key)

    async def stats(request: web.Request) -> web.Response:
        counts = {**dataclasses.asdict(simulator.stats), "jobs": len(simulator.jobs)}
        return web.Response(body=orjson.dumps(counts), content_type="application/json")

    async def seed(request: web.Request) -> web.Response:
        start, count = int(request.query["start"]), int(request.query["count"])
        params = CreateParams(PROMPT, request.query["model"], "720x1280", "4")
        for index in range(start, start + count):
            simulator.table.start(params, job_id=upstream_id(index))
        return web.Response(body=orjson.dumps({"jobs": len(simulator.jobs)}))

    simulator.app.router.add_get(STATS_PATH, stats)
    simulator.app.router.add_post(SEED_PATH, seed)
    await simulator.start("127.0.0.1", port)
    try:
        await asyncio.Event().wait()
    finally:
        await simulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--render-seconds", type=float, required=True)
    parser.add_argument("--video-bytes", type=int, default=SimulationSettings().video_bytes)
    args = parser.parse_args()
    raw = {"render_seconds": args.render_seconds, "video_bytes": args.video_bytes}
    settings, problems = SimulationSettings.parse(raw, "upstream")
    if problems:
        parser.error("; ".join(problems))
    uvloop.run(_serve(settings, args.port, args.api_key))


if __name__ == "__main__":
    main()
