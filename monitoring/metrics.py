"""Every Prometheus series the proxy exports, on one app-owned registry.

A registry per ``Metrics`` (never the global one) lets several apps live in one process, as
tests do. Labels are bounded: route templates, provider, model and client-key names from
config, and fixed outcome words; never job ids, prompts or secrets. ``key_label=False`` drops
the ``key`` label (and the per-key budget gauge) for deployments with many keys.

Downstream requests and upstream calls, one sample per call, and queue waits, one per
attempt, are counted by ``monitoring.callstats`` in plain numbers and turned into series at
scrape time. Gauges of live state (health, panic, in-flight, poller lag) are read at scrape
time by ``monitoring.state.StateCollector``, so they can never drift from the state they show.

No ``*_created`` series (a timestamp per counter child: noise in every scrape), and the
process's own ``process_*`` series (CPU, memory, open files). Every known label value of the
labelled counters is exported at 0 from the start (scopes, reasons, stages and outcomes are
fixed words; providers and models come from config, again after a reload), so a panel shows 0
instead of "no data" until the first event.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.registry import Collector

from monitoring.callstats import Calls, CountedLatency, Latencies
from providers.base import ModerationStage

PREFIX = "sora_proxy_"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Renders take seconds to most of an hour; the low buckets keep simulated runs readable.
RENDER_BUCKETS = (1, 5, 10, 30, 60, 120, 180, 300, 600, 900, 1800, 3600)
ATTEMPT_BUCKETS = (1, 2, 3, 4, 5, 8)
# The bounded words of the labelled counters (tests check them against the code that counts).
REJECTION_SCOPES = ("key", "key_budget", "providers")
FAILOVER_REASONS = (
    "rate_limited", "submit_failed", "render_failed", "stalled", "output_moderated",
    "submit_unconfirmed",
)  # fmt: skip
JOB_OUTCOMES = ("completed", "failed", "moderated", "deadline_exceeded", "cancelled")
WEBHOOK_OUTCOMES = ("delivered", "retry", "gave_up", "lease_lost")
COPY_OUTCOMES = ("stored", "retried", "lost")
EVICTION_REASONS = ("age", "size", "deleted")
CONTENT_SOURCES = ("store", "upstream")
THUMBNAIL_OUTCOMES = ("made", "failed")
MODERATION_STAGES = tuple(stage.value for stage in ModerationStage)


_FAILOVERS_DOC = (
    "Moves of a render from one provider to another, by reason: rate_limited or submit_failed "
    "at create; render_failed, stalled, output_moderated or submit_unconfirmed after acceptance."
)
COPY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


_ORPHANS_DOC = (
    "Renders placed upstream whose job could not be stored and which could not be deleted "
    "there (they may still be billed)."
)


class Metrics:
    """The catalogue; see the README's metrics section for what each series means."""

    def __init__(
        self,
        *,
        key_label: bool = True,
        budgets: Mapping[str, float] | None = None,
        offers: Mapping[str, Collection[str]] | None = None,
    ):
        """``offers``: each configured provider's models (``add_providers``)."""
        # Process-wide; no registry of ours wants them. The library leaves it unannotated.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.key_label = key_label
        r = self.registry
        spend_labels = ["provider", "model", "key"] if key_label else ["provider", "model"]
        self.requests = CountedLatency(
            (PREFIX + "requests", "Downstream requests by route and status."),
            (PREFIX + "request_duration_seconds", "Downstream request latency."),
            ["route"], "status", LATENCY_BUCKETS,
        )  # fmt: skip
        self.upstream = CountedLatency(
            (PREFIX + "upstream_calls", "Calls to providers by operation and outcome."),
            (PREFIX + "upstream_call_duration_seconds", "Latency of calls to providers."),
            ["provider", "operation"], "outcome", LATENCY_BUCKETS,
        )  # fmt: skip
        r.register(self.requests)
        r.register(self.upstream)
        self.jobs_finished = Counter(
            PREFIX + "jobs_finished_total",
            "Finished jobs by the provider of their last attempt, model and outcome "
            "(completed, failed, moderated, deadline_exceeded, cancelled).",
            ["provider", "model", "outcome"], registry=r,
        )  # fmt: skip
        self.moderations = Counter(
            PREFIX + "moderation_failures_total",
            "Content-policy refusals by provider and stage (input, prompt, output).",
            ["provider", "stage"], registry=r,
        )  # fmt: skip
        self.failovers = Counter(
            PREFIX + "failovers_total", _FAILOVERS_DOC,
            ["reason", "from_provider", "to_provider"], registry=r,
        )  # fmt: skip
        self.rejections = Counter(
            PREFIX + "rejections_total",
            "Requests refused before reaching a provider, by scope: key (rate or renders in "
            "flight), key_budget, providers (every capable provider at its cap or 429).",
            ["scope"], registry=r,
        )  # fmt: skip
        self.orphans = Counter(
            PREFIX + "orphaned_renders_total", _ORPHANS_DOC, ["provider"], registry=r
        )
        self.refused_connections = Counter(
            PREFIX + "connections_refused_total",
            "Client connections closed at once because server.max_connections were open and "
            "none of them idle.",
            registry=r,
        )
        self.evicted_connections = Counter(
            PREFIX + "connections_evicted_total",
            "Idle client connections closed to make room for a new one at server.max_connections.",
            registry=r,
        )
        self.attempts = Histogram(
            PREFIX + "job_attempts", "Attempts a finished job took.",
            buckets=ATTEMPT_BUCKETS, registry=r,
        )  # fmt: skip
        self.render_seconds = Histogram(
            PREFIX + "render_duration_seconds",
            "Submit to completion of the attempt that rendered a completed job.",
            ["provider", "model"], buckets=RENDER_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_seconds = Latencies(
            PREFIX + "queue_wait_seconds", "Submit to the first sign of rendering, per attempt.",
            ["provider"], RENDER_BUCKETS,
        )  # fmt: skip
        r.register(self.queue_seconds)
        self.job_seconds = Histogram(
            PREFIX + "job_duration_seconds", "Create to a finished job, by outcome.",
            ["provider", "model", "outcome"], buckets=RENDER_BUCKETS, registry=r,
        )  # fmt: skip
        self.video_seconds = Counter(
            PREFIX + "video_seconds_total", "Seconds of completed video.",
            spend_labels, registry=r,
        )  # fmt: skip
        self.spend = Counter(
            PREFIX + "spend_usd_total", "What completed renders cost, in USD.",
            spend_labels, registry=r,
        )  # fmt: skip
        self._budget = Gauge(
            PREFIX + "key_daily_budget_usd", "A client key's configured daily budget.",
            ["key"], registry=r,
        ) if key_label else None  # fmt: skip
        self.webhook_deliveries = Counter(
            PREFIX + "webhook_deliveries_total",
            "Webhook delivery attempts by outcome: delivered, retry (failed, tried again "
            "later), gave_up (failed past webhooks.give_up_after), lease_lost (called off: "
            "this instance could not keep its claim on the event; another delivers it).",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.webhook_queue_depth = Gauge(
            PREFIX + "webhook_queue_depth", "Webhook events not yet delivered.", registry=r
        )
        self.webhook_oldest_seconds = Gauge(
            PREFIX + "webhook_oldest_undelivered_seconds",
            "Age of the oldest webhook event not yet delivered (0 when none).",
            registry=r,
        )
        for outcome in WEBHOOK_OUTCOMES:
            self.webhook_deliveries.labels(outcome)
        for scope in REJECTION_SCOPES:
            self.rejections.labels(scope)
        ProcessCollector(registry=r)
        # The children ``settled`` counts in, by their labels: ``labels()`` takes a lock and
        # checks its values on every call, five times per finished job otherwise (issue 21).
        # As bounded as the series themselves, which are never removed.
        self._finished: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self._rendered: dict[tuple[str, ...], tuple[Histogram, Counter, Counter]] = {}
        self._providers: set[str] = set()
        self.set_budgets(budgets or {})
        self.asset_copies = Counter(
            PREFIX + "asset_copies_total",
            "Tries to copy a finished video into the asset store by outcome (stored, retried, "
            "lost: given up once the upstream link expired).",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.asset_copy_seconds = Histogram(
            PREFIX + "asset_copy_seconds",
            "How long a successful copy took (video and the images the upstream had).",
            buckets=COPY_BUCKETS, registry=r,
        )  # fmt: skip
        self.asset_bytes = Gauge(
            PREFIX + "asset_bytes_stored",
            "Bytes in the asset store: the last retention sweep's count plus copies since.",
            registry=r,
        )  # fmt: skip
        self.asset_sweeps = Counter(
            PREFIX + "asset_sweeps",
            "Retention sweeps finished (each lists the asset store and sets asset_bytes_stored).",
            registry=r,
        )  # fmt: skip
        self.asset_evictions = Counter(
            PREFIX + "asset_evictions_total",
            "Copies removed from the asset store by reason (age, size, deleted).",
            ["reason"], registry=r,
        )  # fmt: skip
        self.content_answers = Counter(
            PREFIX + "content_answers_total",
            "Content answers by where the bytes came from (store, upstream).",
            ["source"], registry=r,
        )  # fmt: skip
        self.thumbnails = Counter(
            PREFIX + "thumbnails_total",
            "Thumbnails and sprite sheets made with ffmpeg by outcome (made, failed).",
            ["outcome"], registry=r,
        )  # fmt: skip
        for counter, words in (
            (self.asset_copies, COPY_OUTCOMES),
            (self.asset_evictions, EVICTION_REASONS),
            (self.content_answers, CONTENT_SOURCES),
            (self.thumbnails, THUMBNAIL_OUTCOMES),
        ):
            for word in words:
                counter.labels(word)
        self.add_providers(offers or {})

    def add_providers(self, offers: Mapping[str, Collection[str]]) -> None:
        """Export the series of these providers (name -> its models) at 0; again after a
        reload, for providers it added (a removed provider's series keep their counts)."""
        for provider, models in offers.items():
            for stage in MODERATION_STAGES:
                self.moderations.labels(provider, stage)
            for model in models:
                for outcome in JOB_OUTCOMES:
                    self.jobs_finished.labels(provider, model, outcome)
        self._providers |= set(offers)
        for source in self._providers:
            for target in self._providers - {source}:
                for reason in FAILOVER_REASONS:
                    self.failovers.labels(reason, source, target)

    def set_budgets(self, budgets: Mapping[str, float]) -> None:
        """Each key's configured daily budget (again after a reload)."""
        if self._budget is None:
            return
        self._budget.clear()
        for key, usd in budgets.items():
            self._budget.labels(key).set(usd)

    def route_requests(self, route: str) -> Calls:
        """Where the handler wrapper records each of ``route``'s requests:
        ``observe(status, seconds)``. Taken once per route, at start-up."""
        return self.requests.calls((route,))

    def observe_upstream(self, provider: str, operation: str, outcome: str, seconds: float) -> None:
        """One provider call; the signature of ``providers.metered.Observer``."""
        self.upstream.observe((provider, operation), outcome, seconds)

    def moderated(self, provider: str, stage: str) -> None:
        self.moderations.labels(provider, stage).inc()

    def orphaned(self, provider: str) -> None:
        self.orphans.labels(provider).inc()

    def connection_refused(self) -> None:
        self.refused_connections.inc()

    def connection_evicted(self) -> None:
        self.evicted_connections.inc()

    def failover(self, reason: str, source: str, target: str) -> None:
        self.failovers.labels(reason, source, target).inc()

    def rejected(self, scope: str) -> None:
        self.rejections.labels(scope).inc()

    def webhook_delivered(self, outcome: str) -> None:
        self.webhook_deliveries.labels(outcome).inc()

    def webhook_queue(self, depth: int, oldest_seconds: float) -> None:
        self.webhook_queue_depth.set(depth)
        self.webhook_oldest_seconds.set(oldest_seconds)

    def queued(self, provider: str, seconds: float) -> None:
        self.queue_seconds.observe((provider,), seconds)

    def settled(
        self,
        *,
        provider: str,
        model: str,
        key: str,
        outcome: str,
        attempts: int,
        job_seconds: float,
        render_seconds: float | None = None,
        video_seconds: int = 0,
        cost_usd: float = 0.0,
    ) -> None:
        """A job finished; ``render_seconds`` and the spend only for completed ones."""
        finished = self._finished.get((provider, model, outcome))
        if finished is None:
            finished = self._finished[provider, model, outcome] = (
                self.jobs_finished.labels(provider, model, outcome),
                self.job_seconds.labels(provider, model, outcome),
            )
        finished[0].inc()
        finished[1].observe(job_seconds)
        self.attempts.observe(attempts)
        if render_seconds is None:
            return
        labels = (provider, model, key) if self.key_label else (provider, model)
        rendered = self._rendered.get(labels)
        if rendered is None:
            rendered = self._rendered[labels] = (
                self.render_seconds.labels(provider, model),
                self.video_seconds.labels(*labels),
                self.spend.labels(*labels),
            )
        rendered[0].observe(render_seconds)
        rendered[1].inc(video_seconds)
        rendered[2].inc(cost_usd)

    def watch(self, collector: Collector) -> None:
        """Add a scrape-time collector of live state to this registry."""
        self.registry.register(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)
