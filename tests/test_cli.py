"""The command line as users run it: a child process, real broker, real chdb."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from schemas.events import EVENT_TYPES


def run(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None, timeout: float = 300):
    return subprocess.run(
        [sys.executable, "-m", "clientpulse.cli", *args],
        capture_output=True,
        input=stdin,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--no-such-option"], "no-such-option"),
        (["no-such-command"], "no-such-command"),
        (["generate", "--clients", "0", "--out", "x.jsonl"], "--clients"),
        (["generate", "--clients", "5"], "--out"),
        (["publish", "/definitely/not/here.jsonl"], "no such file"),
        (["sql"], "QUERY"),
        (["demo", "--days", "-3"], "--days"),
        (["evaluate", "--clients", "3"], "--clients"),
        (["alerts", "--webhook", "ftp://x"], "webhook"),
    ],
)
def test_bad_arguments_give_one_line_and_nonzero_exit(args: list[str], needle: str) -> None:
    result = run(*args)
    err = result.stderr.decode().strip()
    assert result.returncode == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("clientpulse: error:")
    assert needle in err


def test_schema_export_writes_one_schema_per_event_type(tmp_path: Path) -> None:
    result = run("schema", "export", str(tmp_path / "schemas"))
    assert result.returncode == 0, result.stderr
    files = sorted(p.name for p in (tmp_path / "schemas").iterdir())
    assert files == sorted([*(f"{t}.schema.json" for t in EVENT_TYPES), "alert.schema.json"])
    for name in files:
        schema = json.loads((tmp_path / "schemas" / name).read_text())
        assert schema["title"] == name.removesuffix(".schema.json")


def test_generate_is_deterministic_and_writes_labels(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    labels = tmp_path / "labels.json"
    args = ["generate", "--clients", "12", "--days", "40", "--seed", "3"]
    assert run(*args, "--out", str(a), "--labels", str(labels)).returncode == 0
    assert run(*args, "--out", str(b)).returncode == 0
    assert a.read_bytes() == b.read_bytes()
    client_ids = {json.loads(line)["client_id"] for line in a.read_text().splitlines()}
    assert {lab["client_id"] for lab in json.loads(labels.read_text())} == client_ids


@pytest.mark.integration
def test_sql_is_read_only_and_formats_results(settings) -> None:
    env = settings.env()
    assert run("migrate", env=env).returncode == 0
    ok = run("sql", "SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name",
             "--format", "json", env=env)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    names = [row["name"] for row in json.loads(ok.stdout)]
    assert "raw_order_events" in names and "order_events" in names
    as_csv = run("sql", "SELECT 1 AS one, 'a,b' AS two", "--format", "csv", env=env)
    assert as_csv.stdout.decode().splitlines() == ["one,two", '1,"a,b"']
    for statement in ("DROP TABLE raw_order_events", "INSERT INTO dead_letters (reason) VALUES ('x')",
                      "CREATE TABLE evil (a UInt8) ENGINE = Memory"):  # fmt: skip
        refused = run("sql", statement, env=env)
        assert refused.returncode == 1
        assert "readonly" in refused.stderr.decode().lower()
    still = run("sql", "SELECT count() AS n FROM system.tables WHERE name = 'raw_order_events'", "--format", "json",
                env=env)  # fmt: skip
    assert json.loads(still.stdout) == [{"n": 1}]


@pytest.mark.integration
def test_publish_reports_invalid_lines_and_sends_only_valid_ones(settings, tmp_path: Path) -> None:
    from kafka import KafkaConsumer

    env = settings.env()
    assert run("topics", "create", env=env).returncode == 0
    source = tmp_path / "all.jsonl"
    assert run("generate", "--clients", "4", "--days", "20", "--out", str(source)).returncode == 0
    lines = source.read_text().splitlines()
    bad_at = {3: "{oops", 7: json.dumps({**json.loads(lines[0]), "occurred_at": "2025-01-01T00:00:00"})}
    mixed = list(lines)
    for line_no, text in sorted(bad_at.items()):
        mixed.insert(line_no - 1, text)
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(mixed) + "\n")

    strict = run("publish", str(path), env=env)
    assert strict.returncode == 1
    err = strict.stderr.decode()
    assert "line 3:" in err and "line 7: occurred_at" in err
    assert f"published {len(lines)} event(s); 2 invalid line(s) not sent" in err

    lenient = run("publish", "-", "--skip-invalid", env=env, stdin=path.read_bytes())
    assert lenient.returncode == 0, lenient.stderr

    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=4000)  # fmt: skip
    consumer.subscribe(pattern=r"clientpulse\..*\.v1")
    seen = Counter(json.loads(m.value)["event_id"] for m in consumer)
    consumer.close()
    expected_ids = Counter(json.loads(line)["event_id"] for line in lines)
    assert seen == Counter({k: 2 * v for k, v in expected_ids.items()})  # each valid line, once per publish run


@pytest.mark.integration
def test_demo_accounts_for_every_event(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    assert run("generate", "--clients", "15", "--days", "30", "--seed", "4", "--out", str(events)).returncode == 0
    expected = Counter(json.loads(line)["event_type"] for line in events.read_text().splitlines())

    result = run("--data-dir", str(tmp_path / "data"), "demo", "--clients", "15", "--days", "30", "--seed", "4",
                 "--bad", "5", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    summary = json.loads(result.stdout)
    assert summary["events_by_type"] == dict(expected)
    assert summary["rejected_total"] == 5
    assert summary["accounted_for"] is True
    clients = {json.loads(line)["client_id"] for line in events.read_text().splitlines()}
    assert sum(summary["tier_mix"].values()) == len(clients)
    top = summary["top_clients_by_revenue"][0]
    shown = run("--data-dir", str(tmp_path / "data"), "profile", top["client_id"], "--json")
    assert shown.returncode == 0, shown.stderr
    profile = json.loads(shown.stdout)
    assert (profile["client_id"], profile["tier"], profile["revenue_365d"]) == (
        top["client_id"],
        top["tier"],
        top["revenue_365d"],
    )
    expected_orders = sum(
        1 for line in events.read_text().splitlines()
        if (e := json.loads(line))["client_id"] == top["client_id"] and e["event_type"] == "order.created"
    )  # fmt: skip
    assert profile["orders_lifetime"] <= expected_orders  # cancelled orders are excluded from the count
    missing = run("--data-dir", str(tmp_path / "data"), "profile", "NO-SUCH-CLIENT")
    assert missing.returncode == 1 and "no profile" in missing.stderr.decode()
    # a second demo in the same data dir starts clean and gives the same answer
    again = run("--data-dir", str(tmp_path / "data"), "demo", "--clients", "15", "--days", "30", "--seed", "4",
                "--bad", "5", "--json")  # fmt: skip
    assert json.loads(again.stdout)["events_by_type"] == dict(expected)


def test_demo_refuses_a_data_dir_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "clickhouse").mkdir()
    result = run("--data-dir", str(tmp_path), "demo", "--clients", "2", "--days", "2")
    assert result.returncode == 1
    assert "not made by a demo" in result.stderr.decode()


def test_evaluate_reports_quality_against_the_labels(tmp_path: Path) -> None:
    from producers.generator import generate

    result = run("evaluate", "--clients", "40", "--days", "200", "--seed", "5", "--json")
    assert result.returncode == 0, result.stderr.decode()
    quality = json.loads(result.stdout)
    for key in ("precision", "recall", "median_lead_days", "seasonal_flagged_share", "false_alerts_per_100_month"):
        assert key in quality
    labels = generate(clients=40, days=200, seed=5).labels  # recounted here, not taken from the report
    churners = {lab.client_id for lab in labels if lab.churns}
    assert quality["churners"] == len(churners)
    assert set(quality["missed"]) <= churners
    assert quality["detected"] == len(churners) - len(quality["missed"])
    assert 0 <= quality["precision"] <= 1 and 0 <= quality["recall"] <= 1
    assert quality["recall"] == round(quality["detected"] / len(churners), 3)


def test_evaluate_on_orders_alone_flags_some_not_all() -> None:
    result = run("evaluate", "--clients", "40", "--days", "200", "--seed", "5", "--orders-only", "--json")
    assert result.returncode == 0, result.stderr.decode()
    quality = json.loads(result.stdout)
    assert quality["sla_alerts"] == 0  # no complaints in an order export
    assert quality["flagged_clients"] < quality["clients"] / 2
