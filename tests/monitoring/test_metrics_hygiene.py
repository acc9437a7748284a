"""What ``/metrics`` carries before any traffic (issue 16): no ``*_created`` series, the
process's own ``process_*`` series, and every known label value of the labelled counters at 0,
again for a provider a reload adds."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import yaml

from monitoring.metrics import FAILOVER_REASONS, JOB_OUTCOMES, MODERATION_STAGES, REJECTION_SCOPES
from router import appkeys as keys
from router.jobs.retry import RATE_LIMITED, SUBMIT_FAILED, AttemptFailure
from tests.conftest import ProxyFactory, sim_provider
from tests.monitoring.test_metrics import scrape, value

ADMIN = "sk-admin-metrics"


def test_the_failover_reasons_are_the_ones_the_jobs_count() -> None:
    counted = {RATE_LIMITED, SUBMIT_FAILED} | {failure.value for failure in AttemptFailure}
    assert set(FAILOVER_REASONS) == counted


async def test_a_fresh_proxy_exports_known_labels_at_zero_and_no_created_series(
    proxy_factory: ProxyFactory,
) -> None:
    proxy = await proxy_factory([sim_provider("a"), sim_provider("b")])
    text, samples = await scrape(proxy)
    assert "_created" not in text
    for name in ("cpu_seconds_total", "resident_memory_bytes", "open_fds", "start_time_seconds"):
        assert f"\nprocess_{name} " in text, name
    rejections = {
        scope: value(samples, "sora_proxy_rejections_total", scope=scope)
        for scope in REJECTION_SCOPES
    }
    assert rejections == dict.fromkeys(REJECTION_SCOPES, 0.0)
    for provider in ("a", "b"):
        for stage in MODERATION_STAGES:
            labels = {("provider", provider), ("stage", stage)}
            assert samples[("sora_proxy_moderation_failures_total", frozenset(labels))] == 0
        for outcome in JOB_OUTCOMES:
            labels = {("provider", provider), ("model", "sora-2"), ("outcome", outcome)}
            assert samples[("sora_proxy_jobs_finished_total", frozenset(labels))] == 0
    for reason in FAILOVER_REASONS:
        labels = {("reason", reason), ("from_provider", "a"), ("to_provider", "b")}
        assert samples[("sora_proxy_failovers_total", frozenset(labels))] == 0
    assert not any(
        dict(labels).get("from_provider") == dict(labels).get("to_provider")
        for name, labels in samples
        if name == "sora_proxy_failovers_total"
    )


async def test_a_provider_added_by_a_reload_is_exported_at_zero(
    proxy_factory: ProxyFactory, tmp_path: Path
) -> None:
    proxy = await proxy_factory([sim_provider("a")], server={"admin_key": ADMIN})
    path = tmp_path / "reloaded.yaml"
    document = {
        "server": {"admin_key": ADMIN},
        "store": {"path": str(tmp_path / "jobs.db")},
        "keys": [{"name": "alice", "key": "sk-test-alice"}],
        "providers": [sim_provider("a"), sim_provider("c")],
    }
    path.write_text(yaml.safe_dump(document))
    proxy.app[keys.CONFIG].path = path  # as serve --config does
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{proxy.url}/admin/reload", headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
    _, samples = await scrape(proxy)
    labels = {("reason", "stalled"), ("from_provider", "a"), ("to_provider", "c")}
    assert samples[("sora_proxy_failovers_total", frozenset(labels))] == 0
    stage = frozenset({("provider", "c"), ("stage", "input")})
    assert samples[("sora_proxy_moderation_failures_total", stage)] == 0
