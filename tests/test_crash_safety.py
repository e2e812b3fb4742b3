"""Crash safety: a worker killed with SIGKILL at random moments loses and double-counts nothing.

About 50,000 events (2% published twice) stream through a worker that is
killed five times — at random points of progress and during its own recovery — and restarted each
time. Afterwards the raw tables, the profiles and the KPI views equal what this test recomputes
from the generated events, and no alert was emitted twice under different ids. A larger run:
`python -m benchmarks.crash_run --clients 1000 --kills 20`.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections import Counter, defaultdict
from typing import Any

import pytest
from kafka import KafkaConsumer

from clientpulse.progress import ProgressProbe
from producers.admin import create_topics
from producers.generator import generate
from schemas.topics import ALERTS
from sinks.clickhouse import connect
from tests.test_bi_views import COUNTS, oracle
from tests.test_profiles_pipeline import _assert_profiles_match, _profiles_in_clickhouse, _publish

pytestmark = pytest.mark.integration

CLIENTS, DAYS, SEED, KILLS = 110, 365, 31, 5


def _kill_at_random_moments(settings, worker_factory, total: int, kills: int, rng: random.Random) -> list[str]:
    """Kill the running worker `kills` times: odd kills at a random share of progress, even ones a random
    0.5-4 s after a restart (while it recovers its tables). Returns what each kill interrupted."""
    probe = ProgressProbe(settings.kafka_bootstrap, settings.app_id)
    marks = sorted(rng.uniform(0.1, 0.9) for _ in range(kills))
    happened = []
    try:
        worker = worker_factory().start()
        for i in range(kills):
            if i % 2 == 0:
                target = int(marks[i] * total)
                deadline = time.monotonic() + 120
                while probe.committed() < target and time.monotonic() < deadline:
                    assert worker.process.poll() is None, worker.log()[-3000:]
                    time.sleep(0.02)
            else:
                time.sleep(rng.uniform(0.5, 4.0))
            committed = probe.committed()
            assert worker.stop(signal.SIGKILL) == -signal.SIGKILL
            happened.append(f"kill {i + 1}: {committed}/{total} committed")
            worker = worker_factory().start()
        worker.wait_ready(timeout=60)
        worker.wait_committed(total, timeout=240)
        assert worker.stop() == 0
    finally:
        probe.close()
    return happened


def _with_near_duplicates(events: list, share: float, within: int, seed: int) -> list:
    rng = random.Random(seed)
    keyed = [(float(i), e) for i, e in enumerate(events)]
    keyed += [
        (rng.uniform(i + 0.5, i + within), events[i]) for i in rng.sample(range(len(events)), int(len(events) * share))
    ]
    return [e for _, e in sorted(keyed, key=lambda pair: pair[0])]


def _query(settings, sql: str) -> list[dict[str, Any]]:
    client = connect(settings.clickhouse_dsn, settings.clickhouse_database)
    try:
        result = client.query(sql)
        return [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]
    finally:
        client.close()


def _alerts_on_topic(settings) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(
        ALERTS.name, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, consumer_timeout_ms=3000,
    )  # fmt: skip
    try:
        return [json.loads(m.value) for m in consumer]
    finally:
        consumer.close()


@pytest.mark.xfail(
    strict=False,
    reason="open (issue 6): passes in about 3 runs of 5. Seen failing: after repeated SIGKILLs, some during "
    "table recovery, a profile missed 4 of a client's 132 deliveries that the raw tables held. Suspected: "
    "faust-streaming's fetch-before-recovery race (#596) dropping re-delivered records of a batch written "
    "before the kill. `python -m benchmarks.crash_run` shows the first difference of a failing run.",
)
def test_five_sigkills_lose_and_double_count_nothing(settings, worker_factory) -> None:
    print("\n".join(drill(settings, worker_factory, CLIENTS, DAYS, SEED, KILLS, min_events=50_000)))


def drill(settings, worker_factory, clients: int, days: int, seed: int, kills: int, min_events: int = 0) -> list[str]:
    """Publish a generated history, kill the worker `kills` times, then compare everything with the
    truth (raises AssertionError on a difference). Also run at larger sizes by benchmarks/crash_run.py."""
    history = generate(clients=clients, days=days, seed=seed).events
    assert len(history) >= min_events
    # in the generator's order, 2% published twice shortly after (a redelivery comes within minutes;
    # one a year late would lie past the profile's 120-day reordering horizon: docs/profile.md)
    stream = _with_near_duplicates(history, share=0.02, within=2000, seed=6)
    create_topics(settings.kafka_bootstrap, settings.partitions)
    _publish(settings.kafka_bootstrap, stream)

    happened = _kill_at_random_moments(settings, worker_factory, len(stream), kills, random.Random(seed))

    # raw events: every distinct event once, per type
    by_type = Counter(e.event_type for e in history)
    rows = _query(
        settings, "SELECT event_type, count() AS n, uniqExact(event_id) AS ids FROM events GROUP BY event_type"
    )
    assert {r["event_type"]: r["n"] for r in rows} == dict(by_type)
    assert all(r["n"] == r["ids"] for r in rows)

    # profiles: equal to the independent recount
    _assert_profiles_match(_profiles_in_clickhouse(settings), history)

    # KPIs per client per day: equal to the independent oracle
    expected = oracle(history).grain("client")
    got = {(r["key"], r["day"]): r for r in _query(settings, "SELECT * FROM v_kpi_daily WHERE grain = 'client'")}
    assert set(got) == set(expected)
    for key, want in expected.items():
        assert {n: got[key][n] for n in COUNTS} == {n: want[n] for n in COUNTS}, key
        assert got[key]["revenue"] == want["revenue"], key

    # alerts: one id per episode. Every message on the topic is in ClickHouse; per complaint at most one
    # SLA alert id; per client, churn episodes never overlap (a second id while one is open would be a
    # duplicate raise); one downgrade alert per downgrade in the tier history.
    stored = _query(settings, "SELECT * FROM alerts FINAL")
    ids = {(a["alert_id"], a["sequence"]) for a in stored}
    topic = _alerts_on_topic(settings)
    assert topic and {(a["alert_id"], a["sequence"]) for a in topic} <= {(str(i), s) for i, s in ids}
    sla_ids: dict[str, set[str]] = defaultdict(set)
    churn: dict[str, list[dict[str, Any]]] = defaultdict(list)
    downgrades: Counter[str] = Counter()
    for a in stored:
        if a["kind"] == "sla_breach":
            sla_ids[a["complaint_id"]].add(str(a["alert_id"]))
        elif a["kind"] == "churn_risk":
            churn[a["client_id"]].append(a)
        elif a["status"] == "raised":
            downgrades[a["client_id"]] += 1
    assert all(len(v) == 1 for v in sla_ids.values()), {k: v for k, v in sla_ids.items() if len(v) > 1}
    for client_id, messages in churn.items():
        open_id = None
        for a in sorted(messages, key=lambda a: (a["occurred_at"], a["sequence"])):
            if a["status"] == "raised":
                assert open_id is None, (client_id, "raised again while", open_id, "was open")
                open_id = a["alert_id"]
            elif a["status"] == "resolved":
                assert a["alert_id"] == open_id, client_id
                open_id = None
            else:
                assert a["alert_id"] == open_id, (client_id, a["status"])
    tier_rows = _query(
        settings, "SELECT client_id, count() AS n FROM client_tier_history WHERE old_tier = 'key' GROUP BY client_id"
    )
    assert dict(downgrades) == {r["client_id"]: r["n"] for r in tier_rows}
    happened.append(
        f"compared: {len(history)} events in {len(rows)} types, {len(expected)} client-days of KPIs, "
        f"{len(stored)} alert messages"
    )
    return happened
