"""The benchmark's upstream: the project's simulator in its own process, plus a stats route.

``sora-proxy simulate`` runs the same simulator, but its request counters live only in memory;
the scale scenario must count upstream status reads from the upstream's side, so this wrapper
adds ``GET /bench/stats`` (no auth, outside the simulated API) answering ``SimulatorStats``
and the job count as JSON. Everything else is the simulator, unchanged.

    python -m bench.upstream --port 9000 --api-key K --render-seconds 0 --video-bytes 1048576
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

import orjson
import uvloop
from aiohttp import web

from providers.simulator.server import Simulator
from providers.simulator.settings import SimulationSettings

STATS_PATH = "/bench/stats"


async def _serve(settings: SimulationSettings, port: int, api_key: str) -> None:
    simulator = Simulator(settings, api_key=api_key)

    async def stats(request: web.Request) -> web.Response:
        counts = {**dataclasses.asdict(simulator.stats), "jobs": len(simulator.jobs)}
        return web.Response(body=orjson.dumps(counts), content_type="application/json")

    simulator.app.router.add_get(STATS_PATH, stats)
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
