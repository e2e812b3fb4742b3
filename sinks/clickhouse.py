"""ClickHouse access through clickhouse-connect; the DSN is the only switch (chdb:// or http(s)://)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from sinks.alerts import ALERT_COLUMNS, RISK_COLUMNS
from sinks.migrations import MIGRATIONS
from sinks.profiles import PROFILE_COLUMNS, TIER_CHANGE_COLUMNS
from sinks.rows import DEAD_LETTER_COLUMNS, columns_for

log = logging.getLogger(__name__)

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
}


def connect(dsn: str, database: str | None = None, **settings: Any) -> Client:
    """Open a client; for chdb the directory is created and owned by this process."""
    if dsn.startswith("chdb://"):
        Path(dsn.removeprefix("chdb://")).mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"dsn": dsn}
    if database:
        kwargs["database"] = database
    if settings:
        kwargs["settings"] = settings
    return clickhouse_connect.get_client(**kwargs)


def migrate(dsn: str, database: str) -> list[int]:
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
            client.insert("schema_migrations", [[migration.version, migration.name]], column_names=["version", "name"])
            applied.append(migration.version)
        return applied
    finally:
        client.close()


@dataclass
class WriteStats:
    batches: int = 0
    rows: int = 0
    retries: int = 0
    seconds: float = 0.0


class ClickHouseWriter:
    """Writes one batch (rows per table) and returns only when it is durable, retrying with backoff.

    Blocking on failure is deliberate: the caller (the worker) does not ack the batch's offsets
    until this returns, so a ClickHouse outage pauses consumption instead of losing data.
    """

    def __init__(
        self,
        client: Client,
        *,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.stats = WriteStats()

    def write(self, batch: Mapping[str, Sequence[Sequence[Any]]]) -> int:
        started = time.perf_counter()
        written = 0
        for table, rows in batch.items():
            if rows:
                self._insert_with_retry(table, rows)
                written += len(rows)
        self.stats.batches += 1
        self.stats.rows += written
        self.stats.seconds += time.perf_counter() - started
        return written

    def _insert_with_retry(self, table: str, rows: Sequence[Sequence[Any]]) -> None:
        delay = 0.2
        while True:
            try:
                self.client.insert(table, rows, column_names=list(TABLE_COLUMNS[table]))
                return
            except Exception as exc:
                self.stats.retries += 1
                log.warning("insert into %s failed (%s); retrying in %.1fs", table, type(exc).__name__, delay)
                self.sleep(delay)
                delay = min(delay * 2, self.max_backoff)


READ_ONLY = {"readonly": 1}


def query_readonly(client: Client, sql: str, parameters: Mapping[str, Any] | None = None) -> tuple[list[str], list]:
    """Run a query with ClickHouse's own readonly=1 guard: DDL and DML are refused by the server."""
    result = client.query(sql, parameters=dict(parameters or {}), settings=READ_ONLY)
    return list(result.column_names), [list(r) for r in result.result_rows]
