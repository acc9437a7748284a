"""``python -m bench.fleet``: what the fleet costs, in one run (issues 17 and 21).

* rates (``bench.fleet_rates``): poll, create and content on the SQLite backend and on the
  Redis backend with 1 and 2 workers: throughput, proxy CPU per request (all workers), Redis
  round trips, commands and CPU per request;
* memory (``bench.redis_memory``): Redis memory per job at each ``--memory`` size;
* scale (``bench.fleet_scale``): jobs in flight on the Redis backend at each ``--scale`` size,
  seeded through the store: Redis memory per job, proxy RSS, upstream reads per second against
  what the configuration allows, client-poll p99 under load.

Same cores and same table as ``python -m bench``; the JSON goes to
``bench/results/<UTC timestamp>-fleet.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench.fleet_rates import RateSettings, run_rates
from bench.fleet_scale import ScaleSettings, run_scale
from bench.redis_memory import measure_memory
from bench.report import Row, print_table, results_stem, write_json
from bench.stack import Stack, new_key
from bench.wrk import drive

_PARTS = ("rates", "memory", "scale")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one measured run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every rate contender")
    parser.add_argument("--workers", default="1,2", help="worker counts of the redis contenders")
    parser.add_argument("--memory", default="100000", help="jobs stored, comma-separated")
    parser.add_argument("--scale", default="10000,100000,1000000", help="jobs in flight per step")
    parser.add_argument(
        "--scale-poll-interval", type=float, default=30.0, help="poll interval (s) at scale"
    )
    parser.add_argument(
        "--scale-poll-rpm", type=int, default=600, help="the provider's poll_rpm at scale"
    )
    parser.add_argument(
        "--scale-creates", type=int, default=100, help="jobs created through the proxy at scale"
    )
    parser.add_argument("--only", choices=_PARTS, action="append", help="run these parts only")
    args = parser.parse_args()
    drive(_run(args))


async def _run(args: argparse.Namespace) -> None:
    parts = args.only or _PARTS
    key = new_key()
    stem = results_stem()
    rows: list[Row] = []
    details: dict[str, object] = {"arguments": vars(args), "load_average": os.getloadavg()}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sora-bench-fleet-") as tmp:
        if "rates" in parts:
            async with Stack(Path(tmp) / "rates", key) as stack:
                settings = RateSettings(
                    seconds=args.seconds,
                    rounds=args.rounds,
                    workers=_numbers(args.workers),
                )
                found, details["rates"] = await run_rates(stack, settings)
                rows += found
        if "memory" in parts:
            found, details["memory"] = await measure_memory(
                Path(tmp) / "memory", _numbers(args.memory)
            )
            rows += found
        if "scale" in parts:
            async with Stack(Path(tmp) / "scale", key) as stack:
                scale = ScaleSettings(
                    sizes=_numbers(args.scale),
                    poll_interval=args.scale_poll_interval,
                    poll_rpm=args.scale_poll_rpm,
                    creates=args.scale_creates,
                )
                found, details["scale"] = await run_scale(stack, scale)
                rows += found
    details["elapsed_s"] = round(time.monotonic() - started, 1)
    details["load_average_after"] = os.getloadavg()
    print_table(rows)
    path = stem.with_name(stem.name + "-fleet.json")
    write_json(path, rows, details)
    print(f"\n{path}")


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in text.split(","))


if __name__ == "__main__":
    main()
