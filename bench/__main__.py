"""``python -m bench``: every scenario of issue 7, one table, one JSON file.

The runner pins itself to core 1 (with wrk and the simulators); the proxy and the floor
servers run on core 0. Run it on an otherwise idle machine: the numbers are ratios against
floors measured in the same run, but a busy neighbour still adds noise.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.content import ContentSettings, run_content
from bench.micro import MicroSettings, run_micro
from bench.report import Row, print_table, results_stem, write_json
from bench.scale import ScaleSettings, run_scale
from bench.stack import Stack, new_key
from bench.wrk import drive


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one measured run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="proxy-then-floor rounds per scenario, odd (the median round counts)",
    )
    parser.add_argument(
        "--scale",
        default="1000,10000,100000",
        help="jobs in flight, comma-separated (e.g. 1000,10000,100000)",
    )
    parser.add_argument(
        "--scale-poll-interval",
        type=float,
        default=30.0,
        help="upstream poll interval (s) in the scale runs",
    )
    parser.add_argument("--only", choices=["micro", "content", "scale"], help="run one part only")
    parser.add_argument("--profile", action="store_true", help="also profile the proxy with py-spy")
    args = parser.parse_args()
    drive(_run(args))


async def _run(args: argparse.Namespace) -> None:
    key = new_key()
    stem = results_stem()
    rows: list[Row] = []
    details: dict[str, object] = {"arguments": vars(args)}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sora-bench-") as tmp:
        if args.only in (None, "micro"):
            async with Stack(Path(tmp) / "micro", key) as stack:
                settings = MicroSettings(
                    seconds=args.seconds,
                    rounds=args.rounds,
                    profile_to=stem.with_name(stem.name + "-profile") if args.profile else None,
                )
                found, details["micro"] = await run_micro(stack, settings)
                rows += found
        if args.only in (None, "content"):
            async with Stack(Path(tmp) / "content", key) as stack:
                content = ContentSettings(seconds=args.seconds, rounds=min(args.rounds, 3))
                found, details["content"] = await run_content(stack, content)
                rows += found
        if args.only in (None, "scale"):
            async with Stack(Path(tmp) / "scale", key) as stack:
                scale = ScaleSettings(
                    sizes=tuple(int(n) for n in args.scale.split(",")),
                    poll_interval=args.scale_poll_interval,
                    profile_to=stem.with_name(stem.name + "-profile-scale")
                    if args.profile
                    else None,
                )
                found, details["scale"] = await run_scale(stack, scale)
                rows += found
    details["elapsed_s"] = round(time.monotonic() - started, 1)
    print_table(rows)
    path = stem.with_suffix(".json")
    write_json(path, rows, details)
    print(f"\n{path}")


if __name__ == "__main__":
    main()
