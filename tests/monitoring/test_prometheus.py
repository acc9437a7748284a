"""Every shipped dashboard and alert expression returns data from a real Prometheus (issue 6).

Debian's ``prometheus`` (installed by ``scripts/test`` when missing) scrapes the proxy on
loopback every second while known traffic runs; then each expression goes through the HTTP
query API. An alert's condition holds only while it fires, so a rule is evaluated with its
final comparison turned into a subtraction: the series it compares must exist.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import ALICE, BOB, ProxyFactory, RunningProxy, wait_for
from tests.metrics_traffic import run_traffic, traffic_proxy
from tests.proxy_process import free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
RULES = ROOT / "monitoring" / "alerts.yml"
TEMPLATE_VALUES = {"$__rate_interval": "1m", "$provider": ".*"}
LAST_COMPARISON = re.compile(r"\s(==|!=|>=|<=|>|<)\s(?!.*\s(==|!=|>=|<=|>|<)\s)", re.S)


def dashboard_exprs() -> list[tuple[str, str]]:
    return [
        (f"{path.stem}: {panel['title']}", target["expr"])
        for path in DASHBOARDS
        for panel in json.loads(path.read_text())["panels"]
        for target in panel["targets"]
    ]


def rule_exprs() -> list[tuple[str, str]]:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    return [(rule["alert"], LAST_COMPARISON.sub(" - ", rule["expr"])) for rule in rules]


def concrete(expr: str) -> str:
    for variable, value in TEMPLATE_VALUES.items():
        expr = expr.replace(variable, value)
    return expr


@pytest.fixture
async def prometheus(
    tmp_path: Path, proxy_factory: ProxyFactory
) -> AsyncIterator[tuple[str, RunningProxy]]:
    # budgets on both keys, so the budget gauge (and its alert) have something to show
    keys = [
        {"name": "alice", "key": ALICE, "daily_budget_usd": 10},
        {"name": "bob", "key": BOB, "daily_budget_usd": 10},
    ]
    proxy = await traffic_proxy(proxy_factory, keys=keys)
    target = proxy.url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {"job_name": "sora-proxy", "static_configs": [{"targets": [target]}]}
                ],
            }
        )
    )
    url = f"http://127.0.0.1:{free_port()}"
    process = subprocess.Popen(  # noqa: ASYNC220 - Popen returns at once
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={url.removeprefix('http://')}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    async def ready() -> bool:
        assert process.poll() is None, "prometheus exited"
        try:
            async with aiohttp.ClientSession() as s, s.get(f"{url}/-/ready") as r:
                return r.status == 200
        except aiohttp.ClientConnectionError:
            return False

    try:
        await wait_for(ready, within=30)
        yield url, proxy
    finally:
        process.terminate()
        process.wait(timeout=15)


async def query(session: aiohttp.ClientSession, url: str, expr: str) -> list[Any]:
    async with session.get(f"{url}/api/v1/query", params={"query": expr}) as response:
        body = await response.json()
    assert body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


async def test_every_dashboard_and_alert_expression_returns_series(
    prometheus: tuple[str, RunningProxy],
) -> None:
    url, proxy = prometheus
    await run_traffic(proxy)
    async with aiohttp.ClientSession() as session:

        async def scraped_after_traffic() -> bool:
            # a few scrapes since the last render settled, so rate() sees the change
            up = await query(session, url, "count_over_time(sora_proxy_jobs_finished_total[3s])")
            return len(up) > 0 and min(float(r["value"][1]) for r in up) >= 3

        await wait_for(scraped_after_traffic, within=30)
        empty = []
        for name, expr in dashboard_exprs() + rule_exprs():
            if not await query(session, url, concrete(expr)):
                empty.append(f"{name}: {expr}")
        # The error panel: two 404s on a route, each seen by a scrape, make a 4xx rate there.
        title = "overview: Error responses per second by route (4xx, 5xx)"
        four, five = (expr for name, expr in dashboard_exprs() if name == title)
        assert '"4.."' in four and '"5.."' in five
        missing = 'sora_proxy_requests_total{route="/v1/videos/{video_id}",status="404"}'
        for count in (1, 2):
            async with session.get(
                f"{proxy.url}/v1/videos/video_missing", headers={"Authorization": f"Bearer {ALICE}"}
            ) as response:
                assert response.status == 404

            async def scraped(count: int = count) -> bool:
                found = await query(session, url, missing)
                return bool(found) and float(found[0]["value"][1]) == count

            await wait_for(scraped, within=30)
        client_errors = await query(session, url, four.replace("$__rate_interval", "1m"))
        by_route = {r["metric"]["route"]: float(r["value"][1]) for r in client_errors}
        assert by_route["/v1/videos/{video_id}"] > 0
    assert len(dashboard_exprs()) >= 16
    assert not empty, "\n".join(empty)


def test_dashboards_have_stable_uids_and_a_datasource_variable() -> None:
    uids = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        uids.add(board["uid"])
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}"
    assert uids == {"sora-proxy-overview", "sora-proxy-provider"}
