"""Prometheus metrics of one process, in a registry of its own (no globals).

With several workers each process reports its own numbers; scrape them all or
aggregate in Prometheus.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from engine.engine import Recorded


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "questline_events_ingested_total",
            "Events accepted (new or duplicate).",
            registry=self.registry,
        )
        self.duplicates = Counter(
            "questline_events_duplicate_total",
            "Events acknowledged as duplicates.",
            registry=self.registry,
        )
        self.unlocks = Counter(
            "questline_unlocks_total",
            "Unlocks granted, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.sql_statements = Counter(
            "questline_sql_statements_total",
            "Statements sent to the history database (an executemany counts once).",
            registry=self.registry,
        )
        self.sql_commits = Counter(
            "questline_sql_commits_total",
            "Commits of the history database.",
            registry=self.registry,
        )
        self.unheard = Counter(
            "questline_events_unheard_total",
            "Events of a type no rule listens to (a typo in `type`?); recorded, counted nowhere.",
            registry=self.registry,
        )
        self.subscriptions = Gauge(
            "questline_active_subscriptions",
            "Live unlock subscriptions in this process.",
            registry=self.registry,
        )
        self.webhooks_sent = Counter(
            "questline_webhook_deliveries_sent_total",
            "Webhook deliveries a receiver accepted (2xx).",
            registry=self.registry,
        )
        self.webhooks_retried = Counter(
            "questline_webhook_deliveries_retried_total",
            "Webhook delivery attempts that failed and will be tried again.",
            registry=self.registry,
        )
        self.webhooks_failed = Counter(
            "questline_webhook_deliveries_failed_total",
            "Webhook deliveries given up on (dead letters, which can be redelivered).",
            registry=self.registry,
        )
        self.webhooks_pending_age = Gauge(
            "questline_webhook_pending_age_seconds",
            "Age of the oldest webhook delivery not yet delivered (0: none pending).",
            registry=self.registry,
        )
        self.latency = Histogram(
            "questline_request_seconds",
            "HTTP request latency.",
            ["path"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )

    def recorded(self, results: Sequence[Recorded]) -> None:
        self.events.inc(len(results))
        duplicates = sum(result.duplicate for result in results)
        if duplicates:
            self.duplicates.inc(duplicates)
        unheard = sum(bool(result.warnings) for result in results)
        if unheard:
            self.unheard.inc(unheard)
        for result in results:
            if not result.duplicate:
                for unlock in result.unlocks:
                    self.unlocks.labels(unlock.kind.value).inc()

    def track_subscriptions(self, count: Callable[[], int]) -> None:
        self.subscriptions.set_function(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
