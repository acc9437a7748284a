"""Every Prometheus series the proxy exports, on one app-owned registry.

A registry per ``Metrics`` (never the global one) lets several apps live in one process, as
tests do. Labels are bounded: route templates, provider and model names from config, outcome
words; never job ids, prompts or secrets.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RENDER_BUCKETS = (1, 5, 10, 30, 60, 120, 180, 300, 600, 900, 1800, 3600)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "sora_proxy_requests_total",
            "Downstream requests by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "sora_proxy_request_duration_seconds",
            "Downstream request latency.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.renders = Counter(
            "sora_proxy_renders_total",
            "Finished jobs by provider, model and outcome.",
            ["provider", "model", "outcome"],
            registry=r,
        )
        self.render_seconds = Histogram(
            "sora_proxy_job_duration_seconds",
            "Time from create to a finished job.",
            ["provider", "model"],
            buckets=RENDER_BUCKETS,
            registry=r,
        )
        self.jobs_in_flight = Gauge(
            "sora_proxy_jobs_in_flight",
            "Jobs not finished yet, by the provider rendering them.",
            ["provider"],
            registry=r,
        )

        # Labelled children cached per (route, status): .labels() is costly on the hot path.
        self._request_children: dict[tuple[str, int], tuple[Histogram, Counter]] = {}

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        children = self._request_children.get((route, status))
        if children is None:
            children = (
                self.request_seconds.labels(route),
                self.requests.labels(route, str(status)),
            )
            self._request_children[route, status] = children
        children[0].observe(seconds)
        children[1].inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
