"""The shipped alert rules are valid Prometheus rules and name only series the proxy exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

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
