"""Alerts end to end: tansu -> `clientpulse worker` -> alerts topic + ClickHouse, detected by the event-time timer.

Scenario (expectations derived from the events and the documented default rules, not from the code):
- client QUIET orders daily, then stops; the worker must raise a churn_risk alert for it although no
  QUIET event ever arrives again, only because the event-time clock (driven by client TICK's daily
  orders) passes QUIET's cadence deadline;
- client SLOW opens a complaint that nobody answers; the SLA breach must be raised after the response
  target (24 h for a potential-tier client) and escalated after the resolution target (120 h), again
  with no further SLOW event;
- every alert on the topic is in ClickHouse and vice versa; a restart of the worker emits no alert
  for the same episode under a different id.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from producers.admin import create_topics
from producers.publisher import Publisher
from schemas.alerts import ALERT_ADAPTER, Alert
from schemas.events import EVENT_MODELS, ComplaintPayload, Envelope, OrderPayload
from schemas.topics import ALERTS
from sinks.clickhouse import connect

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 3, 1, tzinfo=UTC)  # a Monday, 09:00 in China
QUIET_DAYS, TOTAL_DAYS = 30, 50


def _event(event_type: str, at: datetime, client: str, payload: Any, n: int) -> Envelope:
    return EVENT_MODELS[event_type](
        event_id=uuid.UUID(int=n),
        event_type=event_type,
        schema_version=1,
        occurred_at=at,
        client_id=client,
        source="test",
        payload=payload,
    )


def _order(client: str, day: int, n: int) -> Envelope:
    payload = OrderPayload(
        order_id=f"SO-{client}-{day}", warehouse_id="WH-SH1", service_type="storage", units=20,
        service_fee=Decimal("150.00"),
    )  # fmt: skip
    return _event("order.created", T0 + timedelta(days=day), client, payload, n)


def scenario() -> list[Envelope]:
    events = []
    n = 1
    for day in range(TOTAL_DAYS):
        events.append(_order("TICK", day, n))
        n += 1
        if day < QUIET_DAYS:
            events.append(_order("QUIET", day, n))
            n += 1
    complaint = ComplaintPayload(complaint_id="CP-SLOW-1", category="damage", severity="high")
    events.append(_event("complaint.opened", T0 + timedelta(days=40, hours=2), "SLOW", complaint, n))
    return sorted(events, key=lambda e: e.occurred_at)


def _publish(bootstrap: str, events: list[Envelope]) -> None:
    with Publisher(bootstrap) as pub:
        for e in events:
            pub.publish_validated(e)


def _alerts_on_topic(bootstrap: str, at_least: int, timeout: float = 30.0) -> list[Alert]:
    """Every message on the alerts topic; reads until `at_least` arrived and the topic stays quiet."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(ALERTS.name, p) for p in sorted(consumer.partitions_for_topic(ALERTS.name) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        out: list[Alert] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=1000)
            out += [ALERT_ADAPTER.validate_json(m.value) for records in batch.values() for m in records]
            if not batch and len(out) >= at_least:
                return out
        raise AssertionError(f"only {len(out)} of at least {at_least} alerts on the topic")
    finally:
        consumer.close()


def _alert_rows(settings) -> list[dict[str, Any]]:
    client = connect(settings.clickhouse_dsn, settings.clickhouse_database)
    try:
        result = client.query("SELECT * FROM alerts FINAL ORDER BY client_id, alert_id, sequence")
        return [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]
    finally:
        client.close()


def test_timer_raises_churn_and_sla_alerts_without_further_events(settings, worker_factory) -> None:
    events = scenario()
    create_topics(settings.kafka_bootstrap, settings.partitions)
    # Three phases, as a live stream would deliver them: before day 20, up to day 42 (SLOW's response
    # target has passed, its resolution target not yet), the rest. A restart after the first phase:
    # deadlines must come back from the risk table.
    cut1 = sum(1 for e in events if e.occurred_at < T0 + timedelta(days=20))
    cut2 = sum(1 for e in events if e.occurred_at < T0 + timedelta(days=43))
    # idle partitions stop holding the event-time clock back after 1 s (5 s by default)
    settings = settings.model_copy(update={"idle_clock_seconds": 1.0})
    quiet_for = 3.0  # > idle_clock_seconds + the 1 s timer: the clock has caught up with the stream
    worker = worker_factory(settings).start()
    _publish(settings.kafka_bootstrap, events[:cut1])
    worker.wait_committed(cut1)
    assert worker.stop(signal.SIGTERM) == 0
    worker = worker_factory(settings).start()
    _publish(settings.kafka_bootstrap, events[cut1:cut2])
    worker.wait_committed(cut2)
    time.sleep(quiet_for)
    _publish(settings.kafka_bootstrap, events[cut2:])
    worker.wait_committed(len(events))
    time.sleep(quiet_for)
    assert worker.stop() == 0

    rows = _alert_rows(settings)
    on_topic = _alerts_on_topic(settings.kafka_bootstrap, at_least=len(rows))

    # every message once on the topic (at-least-once may repeat a message: same id, same sequence)
    keys = {(a.alert_id, a.sequence) for a in on_topic}
    assert keys == {(r["alert_id"], r["sequence"]) for r in rows}
    # one episode per (client, kind): no alert repeated under a different id
    episodes: dict[tuple[str, str], set[uuid.UUID]] = {}
    for a in on_topic:
        episodes.setdefault((a.client_id, a.kind.value), set()).add(a.alert_id)
    assert all(len(ids) == 1 for ids in episodes.values()), episodes

    quiet = [a for a in on_topic if a.client_id == "QUIET" and a.kind.value == "churn_risk"]
    assert quiet, f"no churn alert for the client that stopped ordering: {[a.client_id for a in on_topic]}"
    raised = min(quiet, key=lambda a: a.sequence)
    last_order = T0 + timedelta(days=QUIET_DAYS - 1)
    silence_days = (raised.occurred_at - last_order).total_seconds() / 86_400
    # typical gap 1 day, floored at 2: k=3 gives 6 days; the alert needs a longer silence, and it must
    # come from the timer, long before the history ends (TICK's last order)
    assert 6 <= silence_days <= 14, silence_days
    assert raised.status.value == "raised" and raised.score >= 45
    assert "cadence_broken" in [r.code for r in raised.reasons]
    assert raised.reasons[0].evidence["days_since_last_order"] >= 6
    assert {a.code for a in raised.actions} >= {"account_manager_visit"}

    slow = sorted((a for a in on_topic if a.client_id == "SLOW"), key=lambda a: a.sequence)
    opened = T0 + timedelta(days=40, hours=2)
    assert [a.status.value for a in slow] == ["raised", "escalated"], [(a.status, a.reasons) for a in slow]
    assert slow[0].kind.value == "sla_breach" and slow[0].complaint_id == "CP-SLOW-1"
    assert slow[0].reasons[0].code == "sla_response" and slow[1].reasons[0].code == "sla_resolution"
    assert slow[0].occurred_at >= opened + timedelta(hours=24)
    assert slow[1].occurred_at >= opened + timedelta(hours=120)
    assert slow[0].alert_id == slow[1].alert_id

    tick = [a for a in on_topic if a.client_id == "TICK" and a.kind.value == "churn_risk"]
    assert not tick, "a client ordering every day must not be flagged"

    client = connect(settings.clickhouse_dsn, settings.clickhouse_database)
    try:
        risk = dict(client.query("SELECT client_id, score FROM client_risk").result_rows)
        states = client.query("SELECT client_id, status FROM alert_states WHERE kind = 'churn_risk'").result_rows
    finally:
        client.close()
    assert risk["QUIET"] >= 45 and risk.get("TICK", 0) < 45
    assert ("QUIET", raised.status.value) in states or ("QUIET", "escalated") in states
    print(json.dumps({"alerts": len(on_topic), "quiet_silence_days": round(silence_days, 1)}))
