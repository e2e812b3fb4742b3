"""End to end on real parts: tansu broker, `clientpulse worker` process, chdb.

Expected values are recomputed here from the generated input, never read back from our code.
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import pytest

from producers.admin import create_topics
from producers.generator import generate
from producers.publisher import Publisher
from schemas.topics import INBOUND, topic_for_event_type
from sinks.clickhouse import connect

pytestmark = pytest.mark.integration


def _bad_records(template: dict) -> list[tuple[str, bytes, bytes, str]]:
    """(topic, key, value, expected reason) for each kind of bad input the issue names."""

    def variant(**changes: object) -> dict:
        doc = json.loads(json.dumps(template))
        for dotted, value in changes.items():
            target = doc
            *path, last = dotted.split("__")
            for part in path:
                target = target[part]
            if value is _DROP:
                target.pop(last)
            else:
                target[last] = value
        return doc

    topic = topic_for_event_type(template["event_type"])
    key = template["client_id"].encode()
    enc = lambda d: json.dumps(d).encode()  # noqa: E731
    return [
        (topic, key, b'{"event_id": "0b7c", "event_type": ', "malformed_json"),
        (topic, key, enc(variant(payload__units="12")), "schema_violation"),
        (topic, key, enc(variant(payload__service_fee=-5)), "schema_violation"),
        (topic, key, enc(variant(event_type="order.teleported")), "unknown_event_type"),
        (topic, key, enc(variant(occurred_at="2025-03-01T10:00:00")), "naive_timestamp"),
        (topic, key, enc(variant(client_id=_DROP)), "invalid_client_id"),
    ]


_DROP = object()


def _publish(bootstrap: str, events: list, bad: list[tuple[str, bytes, bytes, str]] = ()) -> None:
    with Publisher(bootstrap) as pub:
        for e in events:
            pub.publish_validated(e)
        for topic, key, value, _ in bad:
            pub.publish_unchecked(topic, key, value)


def _bi_snapshot(settings) -> dict:
    """What an analyst would see: the BI views (FINAL applied by the views)."""
    client = connect(settings.clickhouse_dsn, settings.clickhouse_database)
    try:
        q = lambda sql: client.query(sql).result_rows  # noqa: E731
        return {
            "by_type": dict(q("SELECT event_type, count() FROM events GROUP BY event_type")),
            "distinct_ids": q("SELECT uniqExact(event_id) FROM events")[0][0],
            "fee_by_client": dict(
                q("SELECT client_id, sum(service_fee) FROM order_events WHERE event_type='order.created' GROUP BY 1")
            ),
            "units_damaged": q("SELECT sum(units_damaged) FROM delivery_events")[0][0],
            "dead_letters": sorted(q("SELECT reason, raw_value FROM dead_letter_events")),
            "raw_order_rows": q("SELECT count() FROM raw_order_events")[0][0],
        }
    finally:
        client.close()


def test_valid_events_land_exactly_and_bad_ones_are_dead_lettered(settings, worker_factory):
    history = generate(clients=25, days=60, seed=11)
    events = history.events
    template = json.loads(next(e for e in events if e.event_type == "order.created").model_dump_json())
    bad = _bad_records(template)
    create_topics(settings.kafka_bootstrap, settings.partitions)
    worker = worker_factory().start()
    _publish(settings.kafka_bootstrap, events, bad)
    worker.wait_committed(len(events) + len(bad))
    assert worker.stop() == 0

    snap = _bi_snapshot(settings)
    expected_by_type = Counter(e.event_type for e in events)
    assert snap["by_type"] == dict(expected_by_type)
    assert snap["distinct_ids"] == len({e.event_id for e in events})
    expected_fee: dict[str, Decimal] = {}
    for e in events:
        if e.event_type == "order.created":
            expected_fee[e.client_id] = expected_fee.get(e.client_id, Decimal(0)) + e.payload.service_fee
    assert snap["fee_by_client"] == expected_fee
    assert snap["units_damaged"] == sum(e.payload.units_damaged for e in events if e.family == "delivery")
    assert snap["dead_letters"] == sorted((reason, value.decode("utf-8", "replace")) for _, _, value, reason in bad)


def test_dead_letters_reach_the_dead_letter_topic_with_reason_and_origin(settings, worker_factory):
    from kafka import KafkaConsumer

    create_topics(settings.kafka_bootstrap, settings.partitions)
    worker = worker_factory().start()
    topic = INBOUND["delivery"].name
    with Publisher(settings.kafka_bootstrap) as pub:
        pub.publish_unchecked(topic, b"C1", b"not json at all")
    worker.wait_committed(1)
    consumer = KafkaConsumer(
        "clientpulse.deadletter.v1",
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    records = list(consumer)
    consumer.close()
    worker.stop()
    assert len(records) == 1
    record = records[0]
    headers = {k: v.decode() for k, v in record.headers}
    assert record.value == b"not json at all"
    assert record.key == b"C1"
    assert headers["clientpulse.dlq.reason"] == "malformed_json"
    assert headers["clientpulse.dlq.topic"] == topic
    assert headers["clientpulse.dlq.offset"] == "0"
    assert "Invalid JSON" in headers["clientpulse.dlq.detail"]


def test_publishing_the_same_events_twice_leaves_bi_results_unchanged(settings, worker_factory):
    history = generate(clients=15, days=45, seed=5)
    events = history.events
    create_topics(settings.kafka_bootstrap, settings.partitions)

    first = worker_factory().start()
    _publish(settings.kafka_bootstrap, events)
    first.wait_committed(len(events))
    first.stop()
    before = _bi_snapshot(settings)

    second = worker_factory().start()  # same consumer group: resumes from the committed offsets
    _publish(settings.kafka_bootstrap, events)
    second.wait_committed(2 * len(events))
    second.stop()
    after = _bi_snapshot(settings)

    raw_before, raw_after = before.pop("raw_order_rows"), after.pop("raw_order_rows")
    assert after == before
    n_orders = sum(1 for e in events if e.family == "order")
    assert raw_before == n_orders
    # The raw table may hold extra copies (until a merge collapses them); the views hide them.
    assert raw_after >= n_orders  # at-least-once: re-reads after a restart may add more raw copies
    assert before["by_type"] == dict(Counter(e.event_type for e in events))
