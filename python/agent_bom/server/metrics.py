"""Prometheus metrics: ingest outcomes and the outbox, one registry per app."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from agent_bom.outbox import OutboxStore

if TYPE_CHECKING:
    from agent_bom.server.ingest import IngestResult

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class _OutboxCollector(Collector):
    """Read at scrape time from the store, so every process reports the same truth."""

    def __init__(self, store: OutboxStore) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rows = GaugeMetricFamily(
            "agent_bom_outbox_rows", "Outbox rows by status.", labels=["status"]
        )
        for status, n in self.store.stats()["totals"].items():
            rows.add_metric([status], n)
        yield rows
        attempts = GaugeMetricFamily(
            "agent_bom_delivery_attempts", "Delivery attempts by outcome.", labels=["outcome"]
        )
        with self.store.transaction() as cur:
            cur.execute(
                "SELECT CASE WHEN status_code BETWEEN 200 AND 299 THEN 'delivered' "
                "WHEN status_code IS NULL THEN 'network_error' ELSE 'http_error' END, COUNT(*) "
                "FROM delivery_attempts GROUP BY 1"
            )
            for outcome, n in cur.fetchall():
                attempts.add_metric([outcome], int(n))
        yield attempts


class Metrics:
    def __init__(self, store: OutboxStore) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "agent_bom_ingest_events",
            "Events posted, by outcome and rejection code.",
            ["outcome", "code"],
            registry=self.registry,
        )
        self.store_failures = Counter(
            "agent_bom_store_failures",
            "Requests that failed in the store (rolled back).",
            registry=self.registry,
        )
        self.lag = Histogram(
            "agent_bom_ingest_lag_seconds",
            "From an event's created_at to its acceptance.",
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 21600, 86400, float("inf")),
            registry=self.registry,
        )
        self.registry.register(_OutboxCollector(store))

    def observe(self, result: IngestResult) -> None:
        counts: dict[tuple[str, str], int] = {}
        for e in result.events:
            key = (e.status, e.code or "")
            counts[key] = counts.get(key, 0) + 1
        for (status, code), n in counts.items():
            self.events.labels(status, code).inc(n)
        for lag in result.lags:
            self.lag.observe(max(lag, 0.0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
