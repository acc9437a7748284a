"""``python -m bench.pool [FILE ...]``: judge the ratio targets on pooled rounds.

One run's median round still moves by about 0.05 from run to run on a shared machine (issue 7
ended blocked inside that noise), so a target is judged on every round of several runs at
once: the median of all their proxy/floor throughput ratios, with the spread beside it. Beside
it stands the CPU ratio (the floor's CPU per request over the proxy's): on a machine whose
other core is busy, the load generator may be the limit and throughput ratios drift towards 1,
while CPU per request still says what the proxy costs. With no FILE it pools every
``bench/results/*.json``; runs that lack a scenario are passed over.

``python -m bench.fleet`` results (``*-fleet.json``) pool the same way: each backend's client
poll against the floor run beside it in its round (runs from 2026-12-04 13:30 UTC on, when
``bench.fleet_rates`` began to pair them), under "client poll, <backend> (fleet)".
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import orjson

from bench.report import RESULTS

__all__ = ["SCENARIOS", "pooled", "pooled_faults", "pooled_fleet"]

# results key -> (what the table calls it, the share of the floor issue 21 asks for)
SCENARIOS = {
    "client_poll": ("client poll", 0.8),
    "create": ("create", 0.6),
    "create_gateway": ("create, 2 providers + key limits", 0.6),
    "content_1mib": ("content 1 MiB", 0.8),
}


def pooled(files: list[Path]) -> dict[str, list[tuple[float, float]]]:
    """Every round of each A/B scenario over ``files`` (``python -m bench`` results), as
    (throughput ratio, CPU ratio) pairs, each proxy over floor as the table reads them."""
    found: dict[str, list[tuple[float, float]]] = {key: [] for key in SCENARIOS}
    for path in files:
        micro = orjson.loads(path.read_bytes()).get("micro", {})
        for key, rounds in found.items():
            for run in micro.get(key, {}).get("rounds", []):
                proxy, floor = run["proxy"], run["floor"]
                rounds.append(
                    (
                        proxy["rps"] / floor["rps"],
                        floor["cpu_us_per_request"] / proxy["cpu_us_per_request"],
                    )
                )
    return found


def pooled_fleet(files: list[Path]) -> dict[str, list[tuple[float, float]]]:
    """Every client poll round of each backend over ``files`` (``python -m bench.fleet``
    results whose floor runs are paired with the backends), as (throughput ratio, CPU ratio)
    pairs, backend over the floor run beside it."""
    found: dict[str, list[tuple[float, float]]] = {}
    for path in files:
        poll = orjson.loads(path.read_bytes()).get("rates", {}).get("client poll", {})
        floors = poll.get("floor", {})
        for name, runs in poll.items():
            if name == "floor" or name not in floors:
                continue  # the floor itself, or a run from before the pairing
            for run, floor in zip(runs["rounds"], floors[name], strict=True):
                found.setdefault(name, []).append(
                    (
                        run["rps"] / floor["rps"],
                        floor["cpu_us_per_request"] / run["cpu_us_per_request"],
                    )
                )
    return found


def pooled_faults(files: list[Path]) -> dict[str, tuple[list[float], list[float]]]:
    """Minor page faults per request of every round, (proxy, floor), for runs that recorded
    them (``bench.measure`` has since issue 21's third content pass)."""
    found: dict[str, tuple[list[float], list[float]]] = {key: ([], []) for key in SCENARIOS}
    for path in files:
        micro = orjson.loads(path.read_bytes()).get("micro", {})
        for key, (proxy, floor) in found.items():
            for run in micro.get(key, {}).get("rounds", []):
                if "minor_faults_per_request" in run["proxy"]:
                    proxy.append(run["proxy"]["minor_faults_per_request"])
                    floor.append(run["floor"]["minor_faults_per_request"])
    return found


def _spread(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.3f}x "
        f"(lowest {min(values):.3f}, highest {max(values):.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pool", description=__doc__)
    parser.add_argument("files", nargs="*", type=Path, help="results JSON (default: all)")
    args = parser.parse_args()
    files = args.files or sorted(RESULTS.glob("*.json"))
    print(f"{len(files)} runs pooled")
    faults = pooled_faults(files)
    for key, rounds in pooled(files).items():
        name, share = SCENARIOS[key]
        if not rounds:
            print(f"{name}: no rounds")
            continue
        _print_ratios(name, share, rounds)
        proxy_faults, floor_faults = faults[key]
        if proxy_faults:
            print(
                f"    minor page faults per request, medians of {len(proxy_faults)} rounds:"
                f" proxy {statistics.median(proxy_faults):.1f},"
                f" floor {statistics.median(floor_faults):.1f}"
            )
    poll_share = SCENARIOS["client_poll"][1]
    for backend, rounds in pooled_fleet(files).items():
        _print_ratios(f"client poll, {backend} (fleet)", poll_share, rounds)


def _print_ratios(name: str, share: float, rounds: list[tuple[float, float]]) -> None:
    throughput, cpu = [r[0] for r in rounds], [r[1] for r in rounds]
    verdict = "pass" if statistics.median(throughput) >= share else "FAIL"
    print(f"{name}, {len(rounds)} rounds:")
    print(f"    throughput {_spread(throughput)}, target >= {share}x: {verdict}")
    print(f"    CPU per request, floor/proxy: {_spread(cpu)}")


if __name__ == "__main__":
    main()
