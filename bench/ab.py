"""``python -m bench.ab REV``: does this working tree cost less CPU per request than ``REV``?

The two proxies run at the same time, both pinned to the server core, each driven by its own
wrk on the client core; every round compares their CPU time per request over the same
seconds. The main bench measures one server after another, and on a shared machine whose speed
drifts by tens of percent within a minute that cannot resolve a change of a few percent (its
rounds of one code spread from 0.45x to 0.75x). Run side by side, both see the same machine at
every instant: two copies of one code measured 0.974-1.018 a round (medians 0.974-1.010), so
a median within ~3% of 1 means no difference.

What it measures is the CPU a request costs when two servers share a core, so caches are
colder than in the main bench and absolute numbers run higher; throughput is not compared
(the scheduler shares the core between threads, so a proxy with a busy writer thread gets
more of it). It answers "is the change cheaper, and by how much", not whether a target holds:
the targets stay with ``python -m bench``.

``REV`` is checked out into a temporary git worktree and runs with this checkout's virtualenv.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.client import Api, create_body
from bench.content import MIB, wait_stored
from bench.measure import Measured, measure
from bench.micro import QUEUED_RENDER_SECONDS
from bench.stack import ROOT, Route, Server, Stack, new_key
from bench.wrk import Load, drive, run_wrk

MODEL = "bench-ab"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("rev", help="the git revision to compare this working tree against")
    parser.add_argument(
        "--scenario",
        choices=["create", "gateway", "poll", "content", "stored"],
        default="create",
        help="gateway: creates on a model of two providers by a key with every limit set; "
        "content: 1 MiB downloads streamed from the upstream; stored: from the asset store",
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one round")
    parser.add_argument("--connections", type=int, default=32, help="per proxy")
    args = parser.parse_args()
    drive(_run(args))


async def _run(args: argparse.Namespace) -> None:
    key = new_key()
    # gateway: issue 21's set-up (two providers, balanced, a key with limits), as in bench.micro
    limited_key = new_key() if args.scenario == "gateway" else None
    with (
        tempfile.TemporaryDirectory(prefix="sora-bench-ab-") as tmp,
        _worktree(args.rev, Path(tmp) / "rev") as rev_root,
    ):
        async with Stack(Path(tmp) / "run", key) as stack:
            content = args.scenario in ("content", "stored")
            # content: a 1 MiB video, rendered long enough for the poller to see it finish
            # (a render the create's answer calls completed is never copied); creates: queued,
            # as a real upstream answers them (bench.micro); poll: a job completed at once
            render_seconds = 0.2 if content else 0.0
            if args.scenario in ("create", "gateway"):
                render_seconds = QUEUED_RENDER_SECONDS
            upstream = await stack.upstream(
                "upstream", render_seconds=render_seconds, video_bytes=MIB if content else 1024
            )
            # creates: polled once an hour, so the rounds measure creates, not the status reads
            # after them; the others: a job that completes at once
            interval = 3600.0 if args.scenario in ("create", "gateway") else 0.05
            routes = [Route(MODEL, upstream, poll_interval=interval)] * (2 if limited_key else 1)
            # creates: no copies, as in bench.micro (each instant render would be copied and
            # swept after it: background work, not the create's); None for revisions before
            # the asset store, whose config has no assets section
            stored: bool | None = None
            if content:
                stored = args.scenario == "stored"
            elif (rev_root / "router" / "assets").is_dir():
                stored = False
            before = await stack.proxy(
                "rev", routes, root=rev_root, limited_key=limited_key, stored=stored
            )
            after = await stack.proxy("tree", routes, limited_key=limited_key, stored=stored)
            client_key = limited_key or key
            loads = [
                await _load(args, server, client_key, stack.assets_dir(name) if stored else None)
                for server, name in ((before, "rev"), (after, "tree"))
            ]
            await asyncio.gather(*(run_wrk(load, 1.0) for load in loads))  # warm-up
            ratios = []
            print(
                f"{args.scenario}: CPU us per request (minor page faults per request),"
                f" {args.rev} against this working tree"
            )
            for index in range(args.rounds):
                runs = await _round(loads, (before, after), args.seconds)
                used = [run.cpu_us_per_request for run in runs]
                faults = [run.faults_per_request for run in runs]
                ratios.append(used[0] / used[1])
                print(
                    f"round {index + 1}: {args.rev} {used[0]:7.1f} ({faults[0]:.0f})"
                    f"  tree {used[1]:7.1f} ({faults[1]:.0f})  {args.rev}/tree {ratios[-1]:.3f}",
                    flush=True,
                )
            print(
                f"median {args.rev}/tree {statistics.median(ratios):.3f}"
                f" (lowest {min(ratios):.3f}, highest {max(ratios):.3f});"
                " above 1: the working tree is cheaper"
            )


async def _load(args: argparse.Namespace, server: Server, key: str, assets: Path | None) -> Load:
    """What wrk sends to ``server``; ``assets``: its asset store, to wait for the copy."""
    if args.scenario in ("create", "gateway"):
        url, method, body = f"{server.url}/v1/videos", "POST", create_body(MODEL)
        return Load(url=url, key=key, method=method, body=body, connections=args.connections)
    async with Api(server.url, key) as api:
        video_id = await api.create(MODEL)
        await api.wait_status(video_id, "completed")
        if assets is not None:
            await wait_stored(api, video_id, assets)
    path = f"/v1/videos/{video_id}" + ("/content" if args.scenario != "poll" else "")
    return Load(url=server.url + path, key=key, connections=args.connections)


async def _round(loads: list[Load], servers: tuple[Server, ...], seconds: float) -> list[Measured]:
    """One measured run of each server, both under load at once."""
    return list(
        await asyncio.gather(
            *(measure(server, load, seconds) for server, load in zip(servers, loads, strict=True))
        )
    )


@contextmanager
def _worktree(rev: str, path: Path) -> Iterator[Path]:
    """``rev`` checked out at ``path`` for as long as the block runs."""
    git = ["git", "-C", str(ROOT)]
    subprocess.run([*git, "worktree", "add", "--detach", str(path), rev], check=True)
    try:
        yield path
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(path)], check=True)


if __name__ == "__main__":
    main()
