"""`clientpulse demo`: the whole pipeline on one machine, no servers to install.

Broker (tansu) and worker run as child processes, exactly as in production; this process only
orchestrates, publishes, watches the worker's committed offsets and reads the result afterwards
(chdb allows one owning process at a time, so it opens ClickHouse only once the worker is gone).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from clientpulse.broker import LocalBroker, free_port
from clientpulse.progress import ProgressProbe
from clientpulse.security import clickhouse_connect_kwargs, kafka_python_config, redacted_dsn
from clientpulse.settings import Settings

MARKER = "clientpulse-demo.json"
READY_TIMEOUT_S = 60
DRAIN_TIMEOUT_S = 600


class DemoError(RuntimeError):
    pass


def bad_records(n: int, seed: int) -> list[tuple[str, bytes | None, bytes]]:
    """(topic, key, value) records that must be dead-lettered: one of each kind, round robin."""
    from schemas.topics import INBOUND

    orders = INBOUND["order"].name
    kinds: list[tuple[bytes | None, bytes]] = [
        (b"C-BAD", b'{"event_id": "not json'),
        (b"C-BAD", b'{"event_type": "order.created", "units": "five"}'),
        (b"C-BAD", b'{"event_type": "order.teleported", "client_id": "C-BAD"}'),
        (b"C-BAD", b"\xff\xfe not utf-8"),
    ]
    out = []
    for i in range(n):
        key, value = kinds[i % len(kinds)]
        out.append((orders, key, value.replace(b"C-BAD", f"C-BAD{seed}-{i}".encode())))
    return out


def _prepare_data_dir(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    marker = data_dir / MARKER
    state_dirs = [data_dir / "clickhouse", data_dir / "faust"]
    if any(d.exists() for d in state_dirs) and not marker.exists():
        raise DemoError(f"{data_dir} holds data not made by a demo; pass --data-dir with an empty or new directory")
    for d in state_dirs:  # a previous demo's state: the broker is new, so its offsets would not match
        shutil.rmtree(d, ignore_errors=True)
    marker.write_text(json.dumps({"started_at": datetime.now(UTC).isoformat()}) + "\n")


def _child_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, **settings.env()}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "clientpulse.cli", *args]


def run_demo(settings: Settings, *, clients: int, days: int, seed: int, bad: int, quiet: bool) -> dict[str, Any]:
    console = Console(stderr=True, quiet=quiet)
    started = time.monotonic()
    data_dir = settings.data_dir.resolve()
    _prepare_data_dir(data_dir)
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)

    broker = LocalBroker(log_path=logs / "broker.log").start()
    # A free port for faust's web server: a second demo (or a worker) on this machine must not collide.
    settings = settings.model_copy(
        update={"kafka_bootstrap": broker.bootstrap, "data_dir": data_dir, "worker_web_port": free_port()}
    )
    console.print(f"[bold]broker[/] tansu on {broker.bootstrap}")
    worker: subprocess.Popen[bytes] | None = None
    try:
        env = _child_env(settings)
        subprocess.run(_cli("topics", "create"), env=env, check=True, capture_output=True)
        subprocess.run(_cli("migrate"), env=env, check=True, capture_output=True)
        console.print(f"[bold]clickhouse[/] {redacted_dsn(settings.clickhouse_dsn)} migrated")
        with open(logs / "worker.log", "ab") as worker_log:
            worker = subprocess.Popen(_cli("worker"), env=env, stdout=worker_log, stderr=subprocess.STDOUT)
        ready_s = _wait_ready(settings, worker)
        console.print(f"[bold]worker[/] pid {worker.pid} ready in {ready_s:.1f}s, log {logs / 'worker.log'}")

        from producers.generator import generate
        from producers.publisher import Publisher

        t0 = time.monotonic()
        history = generate(clients=clients, days=days, seed=seed)
        generated_s = time.monotonic() - t0
        console.print(f"[bold]generated[/] {len(history.events):,} events for {clients} clients x {days} days "
                      f"in {generated_s:.1f}s")  # fmt: skip
        published = Counter(e.event_type for e in history.events)
        t0 = time.monotonic()
        with Publisher(settings.kafka_bootstrap, **kafka_python_config(settings)) as pub:
            for e in history.events:
                pub.publish_validated(e)
            for topic, key, value in bad_records(bad, seed):
                pub.publish_unchecked(topic, key, value)
        publish_s = time.monotonic() - t0
        total = len(history.events) + bad
        console.print(f"[bold]published[/] {total:,} records ({bad} deliberately malformed) "
                      f"in {publish_s:.1f}s")  # fmt: skip

        processing_s = publish_s + _wait_until_committed(settings, total, worker, console)
        _stop(worker)
        worker = None
        summary = _summarize(settings, published, bad)
        summary["worker_ready_s"] = round(ready_s, 1)
    finally:
        if worker is not None:
            _stop(worker)
        broker.stop()
    summary.update(
        clients=clients,
        days=days,
        seed=seed,
        published=len(history.events) + bad,
        elapsed_s=round(time.monotonic() - started, 1),
        processing_s=round(processing_s, 1),
        events_per_s=round(total / processing_s, 1) if processing_s else None,
        data_dir=str(data_dir),
        clickhouse_dsn=redacted_dsn(settings.clickhouse_dsn),
    )
    return summary


def _wait_ready(settings: Settings, worker: subprocess.Popen[bytes]) -> float:
    from streams.worker import ready_file

    started = time.monotonic()
    while not ready_file(settings).exists():
        if worker.poll() is not None:
            raise DemoError(f"worker exited with code {worker.returncode}; see its log")
        if time.monotonic() - started > READY_TIMEOUT_S:
            raise DemoError(f"worker not ready within {READY_TIMEOUT_S}s; see its log")
        time.sleep(0.05)
    return time.monotonic() - started


def _wait_until_committed(settings: Settings, total: int, worker: subprocess.Popen[bytes], console: Console) -> float:
    """Seconds until the worker has committed every record (= written to ClickHouse)."""
    probe = ProgressProbe(settings.kafka_bootstrap, settings.app_id, **kafka_python_config(settings))
    started = time.monotonic()
    columns = (TextColumn("[bold]processing[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("events", total=total)
            while True:
                if worker.poll() is not None:
                    raise DemoError(f"worker exited with code {worker.returncode}; see its log")
                committed = probe.committed()
                bar.update(task, completed=committed)
                if committed >= total:
                    return time.monotonic() - started
                if time.monotonic() - started > DRAIN_TIMEOUT_S:
                    left = total - committed
                    raise DemoError(f"worker did not finish within {DRAIN_TIMEOUT_S}s ({left} records left)")
                time.sleep(0.25)
    finally:
        probe.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _summarize(settings: Settings, published: Counter[str], bad: int) -> dict[str, Any]:
    from sinks.clickhouse import connect, query_readonly

    client = connect(clickhouse_connect_kwargs(settings), settings.clickhouse_database)
    try:
        _, rows = query_readonly(client, "SELECT event_type, count() FROM events GROUP BY event_type ORDER BY 1")
        stored = {t: int(n) for t, n in rows}
        _, rows = query_readonly(
            client, "SELECT reason, count(), any(detail) FROM dead_letter_events GROUP BY reason ORDER BY 2 DESC"
        )
        rejected = [{"reason": r, "count": int(n), "example": d} for r, n, d in rows]
        _, rows = query_readonly(client, "SELECT tier, count() FROM client_profiles GROUP BY tier ORDER BY tier")
        tier_mix = {t: int(n) for t, n in rows}
        _, rows = query_readonly(
            client,
            "SELECT client_id, name, tier, abc_class, revenue_365d, orders_365d FROM client_profiles "
            "ORDER BY revenue_365d DESC, client_id LIMIT 5",
        )
        top_clients = [
            {"client_id": c, "name": n, "tier": t, "abc_class": a, "revenue_365d": str(r), "orders_365d": int(o)}
            for c, n, t, a, r, o in rows
        ]
        _, rows = query_readonly(
            client, "SELECT kind, status, count() FROM alerts FINAL GROUP BY kind, status ORDER BY kind, status"
        )
        alert_counts = [{"kind": k, "status": st, "count": int(n)} for k, st, n in rows]
        _, rows = query_readonly(
            client,
            "SELECT r.client_id, p.name, p.tier, r.score, r.reasons_json FROM client_risk AS r "
            "LEFT JOIN client_profiles AS p USING (client_id) WHERE r.at_risk "
            "ORDER BY r.score DESC, r.client_id LIMIT 5",
        )
        watchlist = [
            {"client_id": c, "name": n, "tier": t, "score": int(sc), "reasons": [x["code"] for x in json.loads(rj)]}
            for c, n, t, sc, rj in rows
        ]
    finally:
        client.close()
    rejected_total = sum(r["count"] for r in rejected)
    accounted = stored == dict(published) and rejected_total == bad
    return {
        "run_id": str(uuid.uuid4()),
        "events_by_type": stored,
        "events_total": sum(stored.values()),
        "rejected_total": rejected_total,
        "rejected_by_reason": rejected,
        "tier_mix": tier_mix,
        "top_clients_by_revenue": top_clients,
        "alerts": alert_counts,
        "churn_watchlist": watchlist,
        "accounted_for": accounted,
        "expected_by_type": dict(published),
    }


def print_summary(summary: dict[str, Any]) -> None:
    from rich.table import Table

    console = Console()
    table = Table("event type", "in ClickHouse", "published", title="clientpulse demo: events")
    for event_type, expected in sorted(summary["expected_by_type"].items()):
        table.add_row(event_type, f"{summary['events_by_type'].get(event_type, 0):,}", f"{expected:,}")
    table.add_row("[bold]total", f"[bold]{summary['events_total']:,}", f"{sum(summary['expected_by_type'].values()):,}")
    console.print(table)
    if summary["rejected_by_reason"]:
        dlq = Table("reason", "count", "example", title="dead-lettered")
        for r in summary["rejected_by_reason"]:
            dlq.add_row(r["reason"], str(r["count"]), r["example"][:90])
        console.print(dlq)
    tiers = Table("tier", "clients", title="tier mix")
    for tier, n in summary["tier_mix"].items():
        tiers.add_row(tier, str(n))
    console.print(tiers)
    top = Table("client", "name", "tier", "ABC", "revenue 365d", "orders 365d", title="top clients by revenue")
    for c in summary["top_clients_by_revenue"]:
        top.add_row(
            c["client_id"], c["name"] or "", c["tier"], c["abc_class"], c["revenue_365d"], str(c["orders_365d"])
        )
    console.print(top)
    alerts = Table("kind", "status", "messages", title="alerts (clientpulse.alerts.v1)")
    for a in summary["alerts"]:
        alerts.add_row(a["kind"], a["status"], f"{a['count']:,}")
    console.print(alerts)
    watch = Table("client", "name", "tier", "risk", "reasons", title="churn watchlist (top 5 at risk now)")
    for w in summary["churn_watchlist"]:
        watch.add_row(w["client_id"], w["name"] or "", w["tier"] or "", str(w["score"]), ", ".join(w["reasons"]))
    console.print(watch)
    verdict = "[green]every record accounted for[/]" if summary["accounted_for"] else "[red]MISMATCH[/]"
    console.print(
        f"{verdict}: {summary['events_total']:,} events + {summary['rejected_total']} dead letters; "
        f"processed in {summary['processing_s']}s ({summary['events_per_s']:,} events/s), "
        f"{summary['elapsed_s']}s in all"
    )
    data_dir = summary["data_dir"]
    console.print(f"data: {summary['clickhouse_dsn']}")
    console.print(
        f'query it: clientpulse --data-dir {data_dir} sql "SELECT event_type, count() FROM events GROUP BY event_type"'
    )
    console.print(f"see it:   clientpulse --data-dir {data_dir} dashboard   (or run the demo with --serve)")
