"""Client poll, create and content: the proxy against its floor, in the same run, same cores.

Three simulators serve every scenario here, with a 1, a 32 and a 128 MiB MP4, all rendering
instantly. The proxy reaches them through four providers (one catalogue model each):

* ``bench-1mb``: poll interval 0.05 s, so a job completes at once; its finished job is the
  one polled (client poll) and downloaded (content);
* ``bench-32mb`` and ``bench-128mb``: the same for the larger files, to see whether memory
  follows file size. Flat means the 128 MiB downloads take less than one 32 MiB file more than
  the 32 MiB ones (each size's highest peak of three alternated runs): 32 connections
  buffering whole files would take 3 GiB more. (The 1 MiB runs read lower: short downloads
  spend more of their time between requests than with full buffers in flight, so the
  1 -> 32 MiB step measures that, not file size.)
* ``bench-create``: a fourth simulator whose renders take a day, polled once an hour, so a
  create is answered ``queued`` as every real upstream answers it, and the create runs
  measure the create path alone: not the status reads that follow it (the scale scenario
  measures those), and not the settling of a render finished at once, which no real upstream
  does (until 2026-12-04 the bench's creates went to the instant 1 MiB simulator and every
  one also settled its job: bench/README.md, "Issue 21, fourth pass");
* ``bench-gateway``: the set-up an outside harness measured (issue 21): two providers of the
  same model (both on that simulator, polled once an hour), ordered by the balanced
  strategy, created on by a second client key with every limit set (``LIMITED_KEY``). Its
  creates pay for choosing between two candidates and for the key's rate, concurrency and
  budget checks, which ``bench-create`` (one provider, an unlimited key) does not.

The floor server stands in front of the 1 MiB simulator and answers polls with the exact bytes
the proxy answered (checked before measuring); a second one passes creates through to the
simulator the proxy's creates go to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.client import Api, create_body
from bench.measure import Measured, Paired, measure, paired
from bench.profile import Hotspot, profile
from bench.report import Row, at_least, below
from bench.stack import Route, Server, Stack, new_key
from bench.wrk import Load

__all__ = ["QUEUED_RENDER_SECONDS", "MicroSettings", "run_micro"]

MIB = 2**20
_FLAT = 32 * MIB  # memory is "flat" when it grows by less than one 32 MiB file
# Runs per large file size, alternated; each size's highest RSS peak counts. One run each
# read 63 to 95 MiB for 32 MiB files in runs of the same code (the allocator hands memory
# back between runs or keeps it), so one low reading could fail or pass the check alone.
_RSS_ROUNDS = 3
# A render no bench run outlives: its create is answered "queued", and nothing settles it.
QUEUED_RENDER_SECONDS = 86_400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class MicroSettings:
    seconds: float = 3.0  # one measured run
    rounds: int = 5  # proxy-then-floor rounds per scenario; the median round counts
    connections: int = 32
    profile_to: Path | None = None  # profile the proxy's three paths into FILE-<path>.txt


async def run_micro(stack: Stack, settings: MicroSettings) -> tuple[list[Row], dict[str, Any]]:
    limited_key = new_key()
    small = await stack.upstream("upstream-1mb", render_seconds=0, video_bytes=MIB)
    large = await stack.upstream("upstream-32mb", render_seconds=0, video_bytes=32 * MIB)
    huge = await stack.upstream("upstream-128mb", render_seconds=0, video_bytes=128 * MIB)
    queued = await stack.upstream(
        "upstream-queued", render_seconds=QUEUED_RENDER_SECONDS, video_bytes=1024
    )
    proxy = await stack.proxy(
        "proxy",
        [
            Route("bench-1mb", small, 0.05),
            Route("bench-32mb", large, 0.05),
            Route("bench-128mb", huge, 0.05),
            Route("bench-create", queued, 3600.0),
            Route("bench-gateway", queued, 3600.0),
            Route("bench-gateway", queued, 3600.0),
        ],
        limited_key=limited_key,
        stored=False,  # content streams from the upstream: bench.content measures the store
    )
    async with Api(proxy.url, stack.key) as api:
        small_id, large_id = await api.create("bench-1mb"), await api.create("bench-32mb")
        huge_id = await api.create("bench-128mb")
        video = await api.wait_status(small_id, "completed")
        await api.wait_status(large_id, "completed")
        await api.wait_status(huge_id, "completed")
    async with Api(small.root, small.key) as api:
        # the floor passes ids through, so it downloads a job made on the simulator directly
        upstream_id = await api.create("bench-1mb")
    floor = await stack.floor(small, {small_id: orjson.loads(video)})
    create_floor = await stack.floor(queued, {}, name="floor-create")
    async with Api(floor.url, stack.key) as api:
        if await api.get_bytes(f"/v1/videos/{small_id}") != video:
            raise RuntimeError("the floor does not answer the bytes the proxy answered")
    small_path, large_path = f"/v1/videos/{small_id}", f"/v1/videos/{large_id}"

    def load(server: Server, path: str, *, key: str | None = None, **how: Any) -> Load:
        connections = settings.connections
        return Load(url=server.url + path, key=key or stack.key, connections=connections, **how)

    async def pair(
        path: str,
        floor_path: str | None = None,
        proxy_key: str | None = None,
        against: Server = floor,
        **how: Any,
    ) -> Paired:
        return await paired(
            (proxy, load(proxy, path, key=proxy_key, **how)),
            (against, load(against, floor_path or path, **how)),
            seconds=settings.seconds,
            rounds=settings.rounds,
        )

    poll_rounds = await pair(small_path)
    content_rounds = await pair(small_path + "/content", f"/v1/videos/{upstream_id}/content")
    # 32 connections take ~5 s per 128 MiB download here: more than wrk's usual 5 s limit
    slow: dict[str, Any] = {"timeout": 60.0}
    large_runs: list[Measured] = []
    huge_runs: list[Measured] = []
    for _ in range(_RSS_ROUNDS):  # alternated: neither size inherits the other's heap alone
        large_runs.append(
            await measure(proxy, load(proxy, large_path + "/content", **slow), settings.seconds)
        )
        huge_runs.append(
            await measure(
                proxy, load(proxy, f"/v1/videos/{huge_id}/content", **slow), settings.seconds
            )
        )
    content_large = max(large_runs, key=lambda run: run.rss_peak)
    content_huge = max(huge_runs, key=lambda run: run.rss_peak)
    create_how: dict[str, Any] = {"method": "POST", "body": create_body("bench-create")}
    create_rounds = await pair("/v1/videos", against=create_floor, **create_how)
    gateway_how: dict[str, Any] = {"method": "POST", "body": create_body("bench-gateway")}
    gateway_rounds = await pair("/v1/videos", None, limited_key, create_floor, **gateway_how)
    poll, content = poll_rounds.median, content_rounds.median
    hotspots: dict[str, dict[str, list[Hotspot]]] = {}
    if settings.profile_to is not None:
        profiled: tuple[tuple[str, str, str | None, dict[str, Any]], ...] = (
            ("poll", small_path, None, {}),
            ("create", "/v1/videos", None, create_how),
            ("gateway", "/v1/videos", limited_key, gateway_how),
            ("content", small_path + "/content", None, {}),
        )
        for name, path, key, how in profiled:
            out = settings.profile_to.with_name(f"{settings.profile_to.name}-{name}.txt")
            hotspots[name] = await profile(
                proxy, load(proxy, path, key=key, **how), settings.seconds, out
            )

    rows = [
        *_ab_rows("client poll", poll_rounds, "req/s", ">= 0.8x floor", 0.8),
        Row(scenario="client poll", metric="p50 ms", proxy=poll[0].wrk.p50_ms,
            reference=poll[1].wrk.p50_ms),
        Row(scenario="client poll", metric="p99 ms", proxy=poll[0].wrk.p99_ms,
            reference=poll[1].wrk.p99_ms, target="< 5 ms", check=below(5.0)),
        *_ab_rows("create", create_rounds, "req/s", ">= 0.6x floor", 0.6),
        *_ab_rows("create, 2 providers + key limits", gateway_rounds, "req/s", ">= 0.6x floor",
                  0.6),
        *_ab_rows("content 1 MiB", content_rounds, "downloads/s", ">= 0.8x floor", 0.8),
        Row(scenario="content", metric="proxy RSS MiB, 1 MiB files", proxy=_mib(content[0])),
        Row(scenario="content", metric=f"proxy RSS MiB, 32 MiB files, top of {_RSS_ROUNDS}",
            proxy=_mib(content_large)),
        Row(scenario="content", metric=f"proxy RSS MiB, 128 MiB files, top of {_RSS_ROUNDS}",
            proxy=_mib(content_huge)),
        Row(scenario="content", metric="RSS growth MiB, 1 -> 32 MiB files",
            proxy=(content_large.rss_peak - content[0].rss_peak) / MIB),
        Row(scenario="content", metric="RSS growth MiB, 32 -> 128 MiB files",
            proxy=(content_huge.rss_peak - content_large.rss_peak) / MIB,
            target="< 32 MiB (one file)", check=below(_FLAT / MIB)),
    ]  # fmt: skip
    details = {
        "client_poll": poll_rounds.to_json(),
        "create": create_rounds.to_json(),
        "create_gateway": gateway_rounds.to_json(),
        "content_1mib": content_rounds.to_json(),
        "content_32mib": {"proxy": [run.to_json() for run in large_runs]},
        "content_128mib": {"proxy": [run.to_json() for run in huge_runs]},
        "profile": hotspots,
    }
    return rows, details


def _ab_rows(scenario: str, runs: Paired, unit: str, target: str, share: float) -> list[Row]:
    """The median round's rows, and the spread of the ratio over every round."""
    proxy, floor = runs.median
    ratios = runs.ratios
    return [
        Row(scenario=scenario, metric=unit, proxy=proxy.wrk.rps, reference=floor.wrk.rps,
            target=target, check=at_least(share)),
        Row(scenario=scenario, metric=f"ratio, lowest of {len(ratios)} rounds", proxy=min(ratios)),
        Row(scenario=scenario, metric=f"ratio, highest of {len(ratios)} rounds",
            proxy=max(ratios)),
        Row(scenario=scenario, metric="server CPU us/req", proxy=proxy.cpu_us_per_request,
            reference=floor.cpu_us_per_request),
        Row(scenario=scenario, metric="server core busy %", proxy=100 * proxy.server_util,
            reference=100 * floor.server_util),
        Row(scenario=scenario, metric="server context switches/req",
            proxy=proxy.switches_per_request, reference=floor.switches_per_request),
        Row(scenario=scenario, metric="server minor page faults/req",
            proxy=proxy.faults_per_request, reference=floor.faults_per_request),
    ]  # fmt: skip


def _mib(run: Measured) -> float:
    return run.rss_peak / MIB
