"""Prometheus metrics of one worker, in a registry of its own (served at /metrics on its web port).

Counted per batch, never per event, so the hot path pays one `inc(n)` per label value and batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client import Counter as PromCounter

CONTENT_TYPE = "text/plain; version=0.0.4"  # aiohttp adds the charset itself

_ROW_BUCKETS = (1, 10, 50, 100, 500, 1000, 5000, 10000, 50000)
_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = PromCounter(
            "clientpulse_events", "Valid events taken in, by event type.", ["event_type"], registry=r
        )
        self.invalid = PromCounter(
            "clientpulse_invalid_events", "Records dead-lettered, by reason code.", ["reason"], registry=r
        )
        self.sink_seconds = Histogram(
            "clientpulse_sink_batch_seconds", "Time to write one batch to ClickHouse.", buckets=_SECONDS_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.sink_rows = Histogram(
            "clientpulse_sink_batch_rows", "Rows written per ClickHouse batch.", buckets=_ROW_BUCKETS, registry=r
        )
        self.sink_retries = PromCounter(
            "clientpulse_sink_retries", "ClickHouse writes that failed and were retried.", registry=r
        )
        self.lag = Gauge(
            "clientpulse_consumer_lag", "Records not yet read, per inbound partition.", ["topic", "partition"],
            registry=r,
        )  # fmt: skip
        self.alerts = PromCounter(
            "clientpulse_alerts_emitted",
            "Alert messages published, by kind and status.",
            ["kind", "status"],
            registry=r,
        )
        self.profiles = Gauge("clientpulse_profiles", "Client profiles held by this worker.", registry=r)
        self.ready = Gauge("clientpulse_ready", "1 once the worker consumes and writes, else 0.", registry=r)

    def count_batch(self, per_type: Mapping[str, int]) -> None:
        """`per_type` as `streams.intake.BatchPlan.per_type`: event types, and `rejected:<reason>`."""
        for key, n in per_type.items():
            if key.startswith("rejected:"):
                self.invalid.labels(key.removeprefix("rejected:")).inc(n)
            else:
                self.events.labels(key).inc(n)

    def count_alerts(self, alerts: Iterable[tuple[str, str]]) -> None:
        for (kind, status), n in Counter(alerts).items():
            self.alerts.labels(kind, status).inc(n)

    def record_write(self, seconds: float, rows: int) -> None:
        self.sink_seconds.observe(seconds)
        self.sink_rows.observe(rows)

    def set_lag(self, lag: Mapping[tuple[str, int], int]) -> None:
        for (topic, partition), n in lag.items():
            self.lag.labels(topic, str(partition)).set(max(0, n))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
