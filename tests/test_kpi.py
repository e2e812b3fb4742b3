"""The pure parts of the KPI maintenance: which keys a batch touches, the statements that recompute them,
the reason sentences and SLA target rows. No ClickHouse here (tests/test_bi_views.py runs the SQL)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

import orjson
import pytest

from sinks import kpi
from sinks.migrations import BI_VIEWS, MIGRATIONS
from streams.sla import SlaRules

CST = timezone(timedelta(hours=8))
COLUMNS = {
    "raw_order_events": ("event_id", "event_type", "occurred_at", "client_id", "order_id", "units"),
    "raw_delivery_events": ("event_id", "occurred_at", "client_id", "delivery_id"),
    "raw_complaint_events": ("client_id", "occurred_at", "complaint_id", "event_type"),
    "raw_feedback_events": ("client_id", "occurred_at", "feedback_id"),
    "raw_client_events": ("client_id", "occurred_at", "name"),
    "client_profile_versions": ("client_id", "as_of"),
    "dead_letters": ("kafka_topic", "reason"),
}


def at(day: int, hour: int = 10, tz: timezone = UTC) -> datetime:
    return datetime(2025, 3, day, hour, tzinfo=tz)


def test_touched_reads_keys_and_entities_from_raw_rows_only() -> None:
    batch = {
        "raw_order_events": [
            ("e1", "order.created", at(3), "C1", "SO-1", 5),
            ("e2", "order.cancelled", at(4), "C1", "SO-1", 0),
            ("e3", "order.created", at(3), "C2", "SO-1", 7),
        ],
        "raw_delivery_events": [("e4", at(5), "C2", "DL-9")],
        "raw_complaint_events": [("C3", at(6), "CP-1", "complaint.opened")],
        "raw_feedback_events": [("C3", at(7), "FB-1")],
        "raw_client_events": [("C4", at(1), "Acme"), ("C1", at(2), "Beta")],
        "client_profile_versions": [("C9", at(9))],
        "dead_letters": [("t", "malformed_json")],
    }
    t = kpi.touched(batch, COLUMNS)
    assert t.keys == {
        ("C1", date(2025, 3, 3)), ("C1", date(2025, 3, 4)), ("C2", date(2025, 3, 3)), ("C2", date(2025, 3, 5)),
        ("C3", date(2025, 3, 6)), ("C3", date(2025, 3, 7)),
    }  # fmt: skip
    assert t.entities == {
        "order": {("C1", "SO-1"), ("C2", "SO-1")},  # an order id is unique within its client only
        "delivery": {("C2", "DL-9")},
        "complaint": {("C3", "CP-1")},
        "feedback": {("C3", "FB-1")},
    }
    assert t.master_changed == {"C4", "C1"}  # master data changes no day by itself
    assert t


def test_a_day_is_the_utc_day() -> None:
    # 07:30 in Shanghai on the 3rd is 23:30 UTC on the 2nd
    batch = {"raw_feedback_events": [("C1", at(3, 7, CST).replace(minute=30), "FB-1")]}
    assert kpi.touched(batch, COLUMNS).keys == {("C1", date(2025, 3, 2))}


def test_a_batch_without_raw_rows_touches_nothing() -> None:
    t = kpi.touched({"client_profile_versions": [("C1", at(1))], "raw_order_events": []}, COLUMNS)
    assert not t
    assert kpi.touched({"raw_client_events": [("C1", at(1), "x")]}, COLUMNS)  # but master data does


def test_discovery_passes_every_value_as_a_parameter() -> None:
    evil = "C1'); DROP TABLE raw_order_events; --"
    batch = {
        "raw_order_events": [("e1", "order.created", at(3), evil, "SO-'1", 5)],
        "raw_client_events": [(evil, at(1), "x")],
    }
    sql, params = kpi.discovery(kpi.touched(batch, COLUMNS))
    assert evil not in sql and "SO-'1" not in sql
    assert params["order_ids"] == [(evil, "SO-'1")]
    assert params["order_clients"] == [evil]
    assert params["master_clients"] == [evil]
    assert params["batch_keys"] == [(evil, date(2025, 3, 3))]
    assert params["delivery_ids"] == [] and params["delivery_clients"] == []
    # every placeholder of the statement has a value, and there is no other value
    assert set(re.findall(r"\{(\w+):", sql)) == set(params)


def test_refresh_recomputes_each_key_once_then_rolls_up_its_days(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kpi, "PAIRS_PER_STATEMENT", 3)
    pairs = [("C2", date(2025, 3, 2)), ("C1", date(2025, 3, 1)), ("C1", date(2025, 3, 2)), ("C3", date(2025, 3, 9))]
    pairs += [("C1", date(2025, 3, 1))]  # a repeated key is recomputed once
    statements = kpi.refresh(pairs)
    # per chunk of keys in day order: its detail, then the roll-ups of its keys and days
    assert [sql for sql, _ in statements] == [kpi.DETAIL_SQL, kpi.ROLLUP_SQL, kpi.DETAIL_SQL, kpi.ROLLUP_SQL]
    first, second = [p for sql, p in statements if sql == kpi.DETAIL_SQL]
    assert first == {
        "keys": [("C1", date(2025, 3, 1)), ("C1", date(2025, 3, 2)), ("C2", date(2025, 3, 2))],
        "clients": ["C1", "C2"],
        "lo": date(2025, 3, 1),
        "hi": date(2025, 3, 2),
    }
    assert second == {
        "keys": [("C3", date(2025, 3, 9))],
        "clients": ["C3"],
        "lo": date(2025, 3, 9),
        "hi": date(2025, 3, 9),
    }
    rollups = [p for sql, p in statements if sql == kpi.ROLLUP_SQL]
    assert rollups == [
        {"keys": first["keys"], "days": [date(2025, 3, 1), date(2025, 3, 2)]},
        {"keys": second["keys"], "days": [date(2025, 3, 9)]},
    ]
    assert kpi.refresh([]) == []


def test_the_recompute_statements_name_every_measure_and_bind_every_value() -> None:
    for sql in (kpi.DETAIL_SQL, kpi.ROLLUP_SQL):
        assert sql.startswith("INSERT INTO ")
        for name in kpi.MEASURE_NAMES:
            assert name in sql
        assert "@MEASURES@" not in sql
    assert set(re.findall(r"\{(\w+):", kpi.DETAIL_SQL)) == {"keys", "clients", "lo", "hi"}
    assert set(re.findall(r"\{(\w+):", kpi.ROLLUP_SQL)) == {"keys", "days"}


def test_unknown_measure_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown measures"):
        kpi._measures({"order": "1"})


def test_chunks_cover_everything_in_order() -> None:
    assert [list(c) for c in kpi.chunks([1, 2, 3, 4, 5], 2)] == [[1, 2], [3, 4], [5]]
    assert list(kpi.chunks([], 2)) == []


RISK_COLUMNS = ("client_id", "assessed_at", "score", "reasons_json")


def test_risk_texts_are_the_sentences_of_the_stored_evidence() -> None:
    reasons = [
        {"code": "contract_end", "points": 12.5, "evidence": {"contract_end": "2025-06-30", "days_left": 20}},
        {
            "code": "cadence_broken",
            "points": 30.0,
            "evidence": {"days_since_last_order": 19.5, "silence_in_gaps": 6.5, "typical_gap_days": 3.0},
        },
    ]
    row = ("C1", at(10), 43, orjson.dumps(reasons).decode())
    [(client, when, codes, english, chinese)] = kpi.risk_text_rows([row], RISK_COLUMNS)
    assert (client, when, codes) == ("C1", at(10), ["contract_end", "cadence_broken"])
    assert english == [
        "Contract ends 2025-06-30 (20 days) with no renewal on record",
        "No order for 19.5 days, 6.5x the usual gap of 3.0 days",
    ]
    assert chinese[0] == "合同将于 2025-06-30 到期（剩 20 天），尚无续约记录"
    assert kpi.risk_text_rows([("C2", at(11), 0, "[]")], RISK_COLUMNS) == [("C2", at(11), [], [], [])]


def test_sla_target_rows_carry_the_settings() -> None:
    rules = SlaRules(response_hours={"key": 1, "stable": 4, "potential": 12}, resolution_hours={
        "key": 10, "stable": 40, "potential": 100})  # fmt: skip
    now = at(1)
    assert kpi.sla_target_rows(rules, now) == [
        ("key", 1, 10, now),
        ("potential", 12, 100, now),
        ("stable", 4, 40, now),
    ]
    assert [r[:3] for r in kpi.sla_target_rows(SlaRules(), now)] == [
        ("key", 2, 24),
        ("potential", 24, 120),
        ("stable", 8, 72),
    ]


def test_migrations_run_in_order_and_the_bi_views_are_commented_in_their_ddl() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    [kpi_migration] = [m for m in MIGRATIONS if m.version == 4]
    views = {}
    for statement in kpi_migration.statements:
        found = re.match(r"CREATE VIEW IF NOT EXISTS (\w+) \(\n(.*?)\n\) AS ", statement, flags=re.S)
        if found:
            views[found.group(1)] = found.group(2)
            assert re.search(r"\nCOMMENT '.{20,}'$", statement), found.group(1)
    assert set(views) == set(BI_VIEWS)
    for view, columns in views.items():
        for line in columns.split(",\n"):
            assert " COMMENT '" in line, (view, line)
