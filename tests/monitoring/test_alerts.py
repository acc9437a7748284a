"""The shipped alert rules are valid Prometheus rules, name only series the proxy exports, and
the 5xx ratio alert fires where it should (``promtool test rules``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from monitoring.metrics import Metrics
from monitoring.state import StateCollector, StateSnapshot

EMPTY = StateSnapshot({}, False, 0, 0)
RULES = Path(__file__).resolve().parents[2] / "monitoring" / "alerts.yml"


def test_promtool_accepts_the_alert_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_series_in_the_rules_is_exported() -> None:
    metrics = Metrics(budgets={"some-key": 1.0})  # the budget gauge exists only with budgets
    families = [*metrics.registry.collect(), *StateCollector(lambda: EMPTY).describe()]
    exported = set()
    for family in families:
        # A family is named without the suffixes its samples carry.
        exported |= {family.name, f"{family.name}_total", f"{family.name}_bucket"}
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    used = {name for rule in rules for name in re.findall(r"sora_proxy_[a-z_]+", rule["expr"])}
    assert used
    assert used <= exported, used - exported


def test_the_server_error_ratio_alert_fires_above_five_percent(tmp_path: Path) -> None:
    """``promtool test rules`` on synthetic series: 10% 5xx fires after its 5 minutes, 2% does
    not, and no 5xx at all (no 5xx series) is a ratio of 0, not an empty one."""
    cases = tmp_path / "ratio_test.yml"
    cases.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(RULES)],
                "evaluation_interval": "1m",
                "tests": [
                    _ratio_case(errors_per_minute=10, firing=True),
                    _ratio_case(errors_per_minute=2, firing=False),
                ],
            }
        )
    )
    result = subprocess.run(
        ["promtool", "test", "rules", str(cases)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _ratio_case(errors_per_minute: int, firing: bool) -> dict[str, Any]:
    """100 answers a minute on one route, ``errors_per_minute`` of them 502s."""
    route = 'route="/v1/videos"'
    alert = {
        "exp_labels": {"severity": "critical"},
        "exp_annotations": {
            "summary": "Over 5% of answers are 5xx (no provider took the render, or the proxy "
            "failed)"
        },
    }
    return {
        "interval": "1m",
        "input_series": [
            {
                "series": f'sora_proxy_requests_total{{{route},status="200"}}',
                "values": f"0+{100 - errors_per_minute}x30",
            },
            {
                "series": f'sora_proxy_requests_total{{{route},status="502"}}',
                "values": f"0+{errors_per_minute}x30",
            },
        ],
        "alert_rule_test": [
            {
                "eval_time": "20m",
                "alertname": "SoraProxyServerErrorRatioHigh",
                "exp_alerts": [alert] if firing else [],
            }
        ],
    }
