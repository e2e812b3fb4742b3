"""Latency of the BI views on a year of 10,000 clients in embedded ClickHouse (chdb).

    .venv/bin/python -m benchmarks.bi_views [--clients 10000] [--days 365] [--runs 10] [--data-dir DIR] [--reuse]

Fill (skipped with --reuse when DIR already holds the database): the synthetic generator in chunks of
`--chunk` clients, each chunk with its own seed and its client ids shifted so that they are unique
(C00001..C10000). Every chunk goes through the real `ClickHouseWriter` in batches of `--batch` events
in event-time order, so the KPI tables are built by the same incremental recompute as in the worker
(the raw_json column is left empty to save time and disk). Profiles, churn risk and alerts come from the
worker's pure functions, once per client as of its latest event (`profile.replay`, `tiered_snapshot`,
`assess_batch`), which is what the views need; the worker would also have written intermediate versions.

Measured: the KPI maintenance cost of worker-sized batches (5,000 events) on the full database, then
median and 95th percentile of `--runs` runs (after one warm-up) of each BI query, and of baselines that
compute the same KPIs directly from the raw FINAL views, in the same run.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from producers.generator import generate
from schemas.events import Envelope
from schemas.topics import topic_for_event_type
from sinks.clickhouse import ClickHouseWriter, connect, migrate
from sinks.profiles import profile_row
from sinks.rows import Origin, event_row
from streams.assessing import RiskConfig, assess_batch
from streams.profile import replay
from streams.tiering import TierRules, tiered_snapshot

DATABASE = "clientpulse"
SEED = 20_250_101
ROOT = Path(__file__).resolve().parent.parent

# (name, BI query, baseline: the same KPI from the raw FINAL views, or None)
_YEAR = "(SELECT as_of_day FROM v_as_of) - 365"
QUERIES: list[tuple[str, str, str | None]] = [
    (
        "kpi year, client grain: top 50 clients",
        "SELECT key, sum(orders) AS o, sum(revenue) AS r, sum(on_time_deliveries) / sum(deliveries) AS on_time "
        f"FROM v_kpi_daily WHERE grain = 'client' AND day > {_YEAR} GROUP BY key ORDER BY r DESC LIMIT 50",
        f"""WITH {_YEAR} AS since
SELECT o.client_id AS key, o.o, o.r, d.on_time FROM (
    SELECT client_id, countIf(NOT cancelled) AS o, sumIf(fee, NOT cancelled) AS r FROM (
        SELECT client_id, order_id, min(occurred_at) AS placed, max(event_type = 'order.cancelled') AS cancelled,
            argMax(service_fee, tuple(event_type != 'order.cancelled', occurred_at)) AS fee
        FROM order_events GROUP BY client_id, order_id)
    WHERE toDate(placed) > since GROUP BY client_id) AS o
LEFT JOIN (
    SELECT client_id, avg(on_time) AS on_time FROM (
        SELECT client_id, delivery_id,
            argMaxIf(event_type = 'delivery.delivered' AND ifNull(delivered_at <= promised_by, false), occurred_at,
                     event_type != 'delivery.dispatched') AS on_time,
            maxIf(occurred_at, event_type != 'delivery.dispatched') AS outcome_at
        FROM delivery_events GROUP BY client_id, delivery_id HAVING outcome_at > toDateTime64(0, 3, 'UTC'))
    WHERE toDate(outcome_at) > since GROUP BY client_id) AS d ON o.client_id = d.client_id
ORDER BY o.r DESC LIMIT 50""",
    ),
    (
        "kpi year, warehouse grain: daily series",
        "SELECT day, key, orders, revenue, on_time_rate, complaints FROM v_kpi_daily "
        f"WHERE grain = 'warehouse' AND day > {_YEAR} ORDER BY day, key",
        f"""WITH {_YEAR} AS since
SELECT toDate(placed) AS day, warehouse_id, countIf(NOT cancelled), sumIf(fee, NOT cancelled) FROM (
    SELECT client_id, order_id, min(occurred_at) AS placed, max(event_type = 'order.cancelled') AS cancelled,
        argMax(service_fee, tuple(event_type != 'order.cancelled', occurred_at)) AS fee,
        argMax(warehouse_id, tuple(event_type != 'order.cancelled', occurred_at)) AS warehouse_id
    FROM order_events GROUP BY client_id, order_id)
WHERE day > since GROUP BY day, warehouse_id ORDER BY day, warehouse_id""",
    ),
    (
        "kpi year, region grain: daily series",
        "SELECT day, key, orders, revenue, on_time_rate, nps FROM v_kpi_daily "
        f"WHERE grain = 'region' AND day > {_YEAR} ORDER BY day, key",
        f"""WITH {_YEAR} AS since
SELECT toDate(outcome_at) AS day, region, count(), avg(on_time) FROM (
    SELECT client_id, delivery_id,
        argMaxIf(event_type = 'delivery.delivered' AND ifNull(delivered_at <= promised_by, false), occurred_at,
                 event_type != 'delivery.dispatched') AS on_time,
        argMaxIf(destination_region, occurred_at, event_type != 'delivery.dispatched') AS region,
        maxIf(occurred_at, event_type != 'delivery.dispatched') AS outcome_at
    FROM delivery_events GROUP BY client_id, delivery_id HAVING outcome_at > toDateTime64(0, 3, 'UTC'))
WHERE day > since GROUP BY day, region ORDER BY day, region""",
    ),
    (
        "kpi year, one client: daily series",
        f"SELECT * FROM v_kpi_daily WHERE grain = 'client' AND key = 'C04242' AND day > {_YEAR} ORDER BY day",
        f"""WITH {_YEAR} AS since
SELECT toDate(placed) AS day, countIf(NOT cancelled), sumIf(fee, NOT cancelled) FROM (
    SELECT order_id, min(occurred_at) AS placed, max(event_type = 'order.cancelled') AS cancelled,
        argMax(service_fee, tuple(event_type != 'order.cancelled', occurred_at)) AS fee
    FROM order_events WHERE client_id = 'C04242' GROUP BY order_id)
WHERE day > since GROUP BY day ORDER BY day""",
    ),
    ("v_client_360, all clients", "SELECT * FROM v_client_360", None),
    ("v_client_360, one client", "SELECT * FROM v_client_360 WHERE client_id = 'C04242'", None),
    ("v_churn_watchlist", "SELECT * FROM v_churn_watchlist", None),
    ("v_tier_mix", "SELECT * FROM v_tier_mix", None),
    ("v_abc_pareto, all clients", "SELECT * FROM v_abc_pareto", None),
    (
        "v_complaint_sla, open or breached",
        "SELECT * FROM v_complaint_sla WHERE status != 'resolved' OR resolution_breached",
        None,
    ),
    (
        "v_complaint_sla, breach rates per tier",
        "SELECT tier, count(), avg(response_breached), avg(resolution_breached) FROM v_complaint_sla GROUP BY tier",
        None,
    ),
]


def doc_queries() -> list[tuple[str, str, None]]:
    text = (ROOT / "docs" / "analytics.md").read_text()
    out = []
    for section in text.split("\n### ")[1:]:
        heading = section.splitlines()[0]
        for sql in re.findall(r"```sql\n(.*?)```", section, flags=re.S):
            out.append((f"docs: {heading.strip()}", sql, None))
    return out


# ---------------------------------------------------------------- fill


def _renamed(events: list[Envelope], offset: int) -> list[Envelope]:
    """Client C00001 of chunk k becomes C{k * chunk + 1}: unique ids across chunks."""
    names: dict[str, str] = {}
    out = []
    for e in events:
        new = names.get(e.client_id)
        if new is None:
            new = names[e.client_id] = f"C{int(e.client_id[1:]) + offset:05d}"
        out.append(e.model_copy(update={"client_id": new}))
    return out


def _raw_batch(events: list[Envelope]) -> dict[str, list[tuple[Any, ...]]]:
    batch: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for e in events:
        table, row = event_row(e, Origin(topic_for_event_type(e.event_type), 0, 0, e.client_id.encode(), b""))
        batch[table].append(row)
    return batch


def _profile_rows(events: list[Envelope]) -> dict[str, list[tuple[Any, ...]]]:
    by_client: dict[str, list[Envelope]] = defaultdict(list)
    for e in events:
        by_client[e.client_id].append(e)
    items = []
    rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for client_id, client_events in by_client.items():
        profile = replay(client_id, client_events)
        if profile.last_event_at is None:
            continue
        snap, change = tiered_snapshot(profile, profile.last_event_at, TierRules())
        rows["client_profile_versions"].append(profile_row(snap))
        items.append((profile, snap, change))
    assessed = assess_batch(items, lambda _: None, RiskConfig(), datetime.now(UTC))
    for table, table_rows in assessed.rows.items():
        rows[table].extend(table_rows)
    return rows


def fill(client: Client, clients: int, days: int, chunk: int, batch: int) -> dict[str, float]:
    writer = ClickHouseWriter(client)
    started = time.perf_counter()
    generated = written = 0
    for k in range(math.ceil(clients / chunk)):
        n = min(chunk, clients - k * chunk)
        t0 = time.perf_counter()
        events = _renamed(generate(clients=n, days=days, seed=SEED + k).events, k * chunk)
        generated += len(events)
        t1 = time.perf_counter()
        for i in range(0, len(events), batch):
            writer.write(_raw_batch(events[i : i + batch]))
        t2 = time.perf_counter()
        writer.write(_profile_rows(events))
        written += len(events)
        print(
            f"  chunk {k + 1}: {len(events):,} events, generated in {t1 - t0:.0f} s, written with KPIs in "
            f"{t2 - t1:.0f} s (KPI recompute so far {writer.stats.kpi_seconds:.0f} s), profiles "
            f"{time.perf_counter() - t2:.0f} s",
            flush=True,
        )
    return {
        "events": generated,
        "seconds": time.perf_counter() - started,
        "write_seconds": writer.stats.seconds,
        "kpi_seconds": writer.stats.kpi_seconds,
        "batches": writer.stats.batches,
    }


def wait_for_merges(client: Client, limit: float = 300) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if client.query("SELECT count() FROM system.merges").result_rows[0][0] == 0:
            break
        time.sleep(1)
    return time.perf_counter() - started


def worker_batches(client: Client, clients: int, days: int, chunk: int, size: int = 5_000, n: int = 5) -> list[float]:
    """KPI maintenance on the full database: worker-sized batches of the last chunk's latest events, written
    again (a replay recomputes the same keys as the first delivery did)."""
    k = math.ceil(clients / chunk) - 1
    events = _renamed(generate(clients=min(chunk, clients - k * chunk), days=days, seed=SEED + k).events, k * chunk)
    writer = ClickHouseWriter(client)
    seconds = []
    for i in range(n):
        part = events[len(events) - (i + 1) * size : len(events) - i * size]
        before = writer.stats.kpi_seconds
        writer.write(_raw_batch(part))
        seconds.append(writer.stats.kpi_seconds - before)
    return seconds


# ---------------------------------------------------------------- timing


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def timed(run: Callable[[], int], runs: int) -> tuple[float, float, int]:
    rows = run()  # warm-up
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), p95(seconds), rows


def sizes(client: Client) -> list[tuple[str, int]]:
    tables = (
        "raw_order_events", "raw_delivery_events", "raw_complaint_events", "raw_feedback_events",
        "kpi_detail_daily", "kpi_daily", "client_profile_versions",
    )  # fmt: skip
    return [(t, client.query(f"SELECT count() FROM {t}").result_rows[0][0]) for t in tables]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--chunk", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=25_000, help="events per writer batch while filling")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/clientpulse-bench"))
    parser.add_argument("--reuse", action="store_true", help="keep an existing database instead of refilling")
    args = parser.parse_args()

    dsn = f"chdb://{args.data_dir.resolve() / 'clickhouse'}"
    if not (args.reuse and (args.data_dir / "clickhouse").exists()):
        shutil.rmtree(args.data_dir, ignore_errors=True)
        migrate(dsn, DATABASE)
        client = connect(dsn, DATABASE)
        print(f"filling {args.clients:,} clients x {args.days} days ...", flush=True)
        stats = fill(client, args.clients, args.days, args.chunk, args.batch)
        print(
            f"filled {stats['events']:,} events in {stats['seconds']:.0f} s: writer {stats['write_seconds']:.0f} s "
            f"in {stats['batches']} batches, of which KPI recompute {stats['kpi_seconds']:.0f} s"
        )
    else:
        client = connect(dsn, DATABASE)
    print(f"waited {wait_for_merges(client):.0f} s for background merges")
    for table, n in sizes(client):
        print(f"  {table:26} {n:>12,} rows")

    kpi = worker_batches(client, args.clients, args.days, args.chunk)
    print(
        f"KPI recompute per 5,000-event batch on the full database: median {statistics.median(kpi) * 1000:.0f} ms, "
        f"max {max(kpi) * 1000:.0f} ms"
    )
    wait_for_merges(client)

    print(f"\n{'query':52} {'rows':>7} {'median':>9} {'p95':>9}   baseline (raw FINAL views) median / p95")
    for name, sql, baseline in QUERIES + doc_queries():
        median, high, rows = timed(lambda s=sql: len(client.query(s).result_rows), args.runs)
        line = f"{name[:52]:52} {rows:>7} {median * 1000:>7.0f}ms {high * 1000:>7.0f}ms"
        if baseline is not None:
            b_median, b_high, _ = timed(lambda s=baseline: len(client.query(s).result_rows), max(3, args.runs // 2))
            line += f"   {b_median * 1000:>7.0f}ms / {b_high * 1000:.0f}ms"
        print(line, flush=True)
    client.close()


if __name__ == "__main__":
    main()
