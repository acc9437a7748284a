"""The shipped ``config.yaml`` shows routing at work (issue 16): both simulated providers take
renders, and each "routed" log line says why."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from pathlib import Path

from router.config.load import load_config
from tests.conftest import start_proxy
from tests.log_capture import CapturedLogs
from tests.proxy_process import ROOT


async def test_a_burst_on_the_demo_config_uses_both_providers_and_says_why(
    tmp_path: Path, logs: CapturedLogs
) -> None:
    shipped = load_config(ROOT / "config.yaml", env={})
    config = replace(
        shipped,
        server=replace(shipped.server, port=0),
        store=replace(shipped.store, path=str(tmp_path / "demo.db")),
    )
    proxy = await start_proxy(config)
    try:
        client = proxy.client("sk-local-demo")
        videos = await asyncio.gather(
            *(client.videos.create(prompt=f"clip {n}", seconds="4") for n in range(3))
        )
    finally:
        await proxy.stop()
    routed = {v.id: logs.lines(job_id=v.id, event="routed")[0] for v in videos}
    providers = sorted(line["provider"] for line in routed.values())
    assert providers == ["sim-cheap", "sim-cheap", "sim-fast"]
    # Price x 4 s, plus 0.06 USD a second of expected time (only the submit latency is known
    # before a first render completes, hence the unfixed last digits).
    cheap_first = re.compile(
        r"routed to sim-cheap: balanced: sim-cheap \(score 0\.3[23]\d\), "
        r"then sim-fast \(score 0\.4[01]\d\)"
    )
    spilled = re.compile(
        r"routed to sim-fast: balanced: sim-fast \(score 0\.4[01]\d\); "
        r"not candidates: sim-cheap at its limits"
    )
    for line in routed.values():
        pattern = cheap_first if line["provider"] == "sim-cheap" else spilled
        assert pattern.fullmatch(line["message"]), line["message"]
