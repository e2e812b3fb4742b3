"""ClickHouse access through clickhouse-connect; the DSN is the only switch (chdb:// or http(s)://)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from sinks import kpi
from sinks.alerts import ALERT_COLUMNS, RISK_COLUMNS
from sinks.migrations import MIGRATIONS
from sinks.profiles import PROFILE_COLUMNS, TIER_CHANGE_COLUMNS
from sinks.rows import DEAD_LETTER_COLUMNS, columns_for
from streams.sla import SlaRules

log = logging.getLogger(__name__)
T = TypeVar("T")

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "raw_client_events": columns_for("client"),
    "raw_order_events": columns_for("order"),
    "raw_delivery_events": columns_for("delivery"),
    "raw_complaint_events": columns_for("complaint"),
    "raw_feedback_events": columns_for("feedback"),
    "dead_letters": DEAD_LETTER_COLUMNS,
    "client_profile_versions": tuple(name for name, _ in PROFILE_COLUMNS),
    "tier_history": tuple(name for name, _ in TIER_CHANGE_COLUMNS),
    "alerts": tuple(name for name, _ in ALERT_COLUMNS),
    "client_risk_history": tuple(name for name, _ in RISK_COLUMNS),
    "client_risk_texts": tuple(name for name, _ in kpi.RISK_TEXT_COLUMNS),
    "sla_targets": tuple(name for name, _ in kpi.SLA_TARGET_COLUMNS),
}
KPI_MIGRATION = 4
"""The migration that adds the KPI tables: applying it recomputes the KPIs of every event already stored."""


def connect(dsn: str | Mapping[str, Any], database: str | None = None, **settings: Any) -> Client:
    """Open a client; for chdb the directory is created and owned by this process.

    `dsn`: a DSN, or clientpulse.security.clickhouse_connect_kwargs(settings) (the DSN plus credentials and TLS).
    """
    kwargs: dict[str, Any] = {"dsn": dsn} if isinstance(dsn, str) else dict(dsn)
    if kwargs["dsn"].startswith("chdb://"):
        Path(kwargs["dsn"].removeprefix("chdb://")).mkdir(parents=True, exist_ok=True)
    if database:
        kwargs["database"] = database
    if settings:
        kwargs["settings"] = settings
    return clickhouse_connect.get_client(**kwargs)


def migrate(dsn: str | Mapping[str, Any], database: str) -> list[int]:
    """Apply pending migrations; returns the versions applied now. Safe to run any number of times."""
    bootstrap = connect(dsn)
    bootstrap.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    bootstrap.close()
    client = connect(dsn, database)
    try:
        client.command(MIGRATIONS[0].statements[0])  # schema_migrations itself
        done = {row[0] for row in client.query("SELECT version FROM schema_migrations FINAL").result_rows}
        applied: list[int] = []
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            for statement in migration.statements:  # each is IF NOT EXISTS: a half-applied run re-runs cleanly
                client.command(statement)
            if migration.version == KPI_MIGRATION:
                backfill_kpis(client)  # events stored before the KPI tables existed
            client.insert("schema_migrations", [[migration.version, migration.name]], column_names=["version", "name"])
            applied.append(migration.version)
        return applied
    finally:
        client.close()


def backfill_kpis(client: Client) -> None:
    """Recompute the KPIs of every stored event, a month at a time."""
    for (month,) in client.query(kpi.BACKFILL_MONTHS_SQL).result_rows:
        pairs = client.query(kpi.BACKFILL_KEYS_SQL, parameters={"month": month}).result_rows
        refresh_kpis(client, [(c, d) for c, d in pairs])


def refresh_kpis(client: Client, pairs: Sequence[tuple[str, date]]) -> None:
    """Recompute the KPI rows of the given (client_id, day) keys and their warehouse/region days."""
    for sql, params in kpi.refresh(pairs):
        client.command(sql, parameters=params)


@dataclass
class WriteStats:
    batches: int = 0
    rows: int = 0
    retries: int = 0
    seconds: float = 0.0
    kpi_keys: int = 0
    """(client, day) KPI keys recomputed."""
    kpi_seconds: float = 0.0


class ClickHouseWriter:
    """Writes one batch (rows per table) and returns only when it is durable, retrying with backoff.

    Blocking on failure is deliberate: the caller (the worker) does not ack the batch's offsets
    until this returns, so a ClickHouse outage pauses consumption instead of losing data.

    After the raw rows, the same call recomputes the KPI rows the batch touched (sinks/kpi.py) and
    renders the sentences of new risk reasons: all of it is durable before the offsets are acked, and
    a batch re-read after a crash recomputes the same rows. `sla` (the worker's settings) is written to
    `sla_targets` with the first batch, for the v_complaint_sla view.
    """

    def __init__(
        self,
        client: Client,
        *,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        sla: SlaRules | None = None,
        fault: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.stats = WriteStats()
        self._sla = sla
        self._fault = fault

    def write(self, batch: Mapping[str, Sequence[Sequence[Any]]]) -> int:
        started = time.perf_counter()
        written = 0
        if self._sla is not None:
            self._insert_with_retry("sla_targets", kpi.sla_target_rows(self._sla, datetime.now(UTC)))
            self._sla = None
        for table, rows in batch.items():
            if rows:
                self._insert_with_retry(table, rows)
                written += len(rows)
        risk_rows = batch.get("client_risk_history")
        if risk_rows:
            texts = kpi.risk_text_rows(risk_rows, TABLE_COLUMNS["client_risk_history"])
            self._insert_with_retry("client_risk_texts", texts)
        touched = kpi.touched(batch, TABLE_COLUMNS)
        if touched:
            kpi_started = time.perf_counter()
            self.stats.kpi_keys += self._retry("KPI refresh", lambda: self._refresh_kpis(touched))
            self.stats.kpi_seconds += time.perf_counter() - kpi_started
        self.stats.batches += 1
        self.stats.rows += written
        self.stats.seconds += time.perf_counter() - started
        return written

    def _refresh_kpis(self, touched: kpi.Touched) -> int:
        sql, params = kpi.discovery(touched)
        pairs = [(c, d) for c, d in self.client.query(sql, parameters=params).result_rows]
        refresh_kpis(self.client, pairs)
        return len(pairs)

    def read(self, what: str, sql: str, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """A parameterized read on the write path (the worker's event_id lookup), retried like the writes."""
        return self._retry(what, lambda: list(self.client.query(sql, parameters=dict(parameters)).result_rows))

    def _insert_with_retry(self, table: str, rows: Sequence[Sequence[Any]]) -> None:
        self._retry(
            f"insert into {table}", lambda: self.client.insert(table, rows, column_names=list(TABLE_COLUMNS[table]))
        )

    def _retry(self, what: str, action: Callable[[], T]) -> T:
        delay = 0.2
        while True:
            try:
                if self._fault is not None:
                    self._fault()
                return action()
            except Exception as exc:
                self.stats.retries += 1
                log.warning("%s failed (%s: %.300s); retrying in %.1fs", what, type(exc).__name__, exc, delay)
                self.sleep(delay)
                delay = min(delay * 2, self.max_backoff)


def clickhouse_fault(path: Path | None) -> Callable[[], None] | None:
    """Fault injection for outage tests and drills: while `path` exists, every ClickHouse call of the
    writer fails as if the server were unreachable (chdb runs in-process, so it cannot be stopped)."""
    if path is None:
        return None

    def fault() -> None:
        if path.exists():
            raise ConnectionError(f"ClickHouse made unavailable by the fault file {path}")

    return fault


READ_ONLY = {"readonly": 1}


def query_readonly(client: Client, sql: str, parameters: Mapping[str, Any] | None = None) -> tuple[list[str], list]:
    """Run a query with ClickHouse's own readonly=1 guard: DDL and DML are refused by the server."""
    result = client.query(sql, parameters=dict(parameters or {}), settings=READ_ONLY)
    return list(result.column_names), [list(r) for r in result.result_rows]
