"""streams.intake: which Kafka records become rows and which are dead-lettered, and why (pure, no broker)."""

from __future__ import annotations

import copy
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.events import EVENT_TYPES, SCHEMA_VERSION, Envelope, family_of
from schemas.topics import FAMILIES, INBOUND, topic_for_event_type
from schemas.validation import Rejection, parse_event
from sinks.migrations import RAW_TABLES
from sinks.rows import DEAD_LETTER_COLUMNS, Origin, columns_for, event_row
from streams.intake import DEFAULT_MAX_MESSAGE_BYTES, Rejected, admit, plan_batch

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

PAYLOADS: dict[str, dict[str, Any]] = {
    "client": {"name": "Acme", "region": "east", "industry": "ecommerce", "contacts": [{"name": "Li"}]},
    "order": {
        "order_id": "SO-1",
        "warehouse_id": "WH-1",
        "service_type": "outbound",
        "units": 5,
        "service_fee": "12.50",
    },
    "order.cancelled": {"order_id": "SO-1", "reason": "duplicate"},
    "delivery": {
        "delivery_id": "DL-1",
        "order_id": "SO-1",
        "promised_by": "2024-05-02T18:00:00+08:00",
        "delivered_at": "2024-05-02T17:00:00+08:00",
        "units": 5,
        "units_delivered": 5,
        "failure_reason": "gate closed",
    },
    "complaint": {"complaint_id": "CP-1", "category": "delay", "severity": "medium"},
    "feedback": {"feedback_id": "FB-1", "channel": "survey", "csat": 5},
}

# one event type per family, for the per-family tests
FAMILY_EXAMPLE: dict[str, str] = {
    "client": "client.upserted",
    "order": "order.created",
    "delivery": "delivery.delivered",
    "complaint": "complaint.opened",
    "feedback": "feedback.received",
}


def event(event_type: str, client_id: str = "C-ACME", **envelope: Any) -> dict[str, Any]:
    payload = PAYLOADS.get(event_type) or PAYLOADS[family_of(event_type)]
    doc = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": SCHEMA_VERSION,
        "occurred_at": "2024-05-01T08:30:00+08:00",
        "client_id": client_id,
        "source": "test",
        "payload": copy.deepcopy(payload),
    }
    doc.update(envelope)
    return doc


_offsets = iter(range(1_000_000))


def record(
    value: dict[str, Any] | bytes,
    *,
    topic: str | None = None,
    key: bytes | str | None = "client_id",
    partition: int = 3,
    offset: int | None = None,
) -> Origin:
    """An in-memory Kafka record. Defaults: the right topic for the event and key = client_id."""
    if isinstance(value, dict):
        raw = json.dumps(value, ensure_ascii=False).encode()
        if topic is None:
            topic = topic_for_event_type(value["event_type"])
        if key == "client_id":
            key = value["client_id"].encode()
    else:
        raw = value
        if key == "client_id":
            key = b"C-ACME"
    assert not isinstance(key, str)
    return Origin(
        topic=topic or INBOUND["order"].name,
        partition=partition,
        offset=next(_offsets) if offset is None else offset,
        key=key,
        value=raw,
    )


def rejected(origin: Origin, reason: str, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Rejected:
    result = admit(origin, max_bytes)
    assert isinstance(result, Rejected), f"unexpectedly admitted: {result!r}"
    assert result.reason == reason, result
    assert result.origin is origin
    assert result.detail
    return result


def admitted(origin: Origin, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Envelope:
    result = admit(origin, max_bytes)
    assert isinstance(result, Envelope), f"unexpectedly rejected: {result!r}"
    return result


# ---------------------------------------------------------------- rejections


def test_empty_value() -> None:
    rejected(record(b""), "empty_value")


def test_too_large() -> None:
    origin = record(event("order.created"))
    size = len(origin.value)
    r = rejected(origin, "too_large", max_bytes=size - 1)
    assert str(size) in r.detail and str(size - 1) in r.detail


def test_size_limit_is_inclusive() -> None:
    origin = record(event("order.created"))
    admitted(origin, max_bytes=len(origin.value))


def test_size_is_checked_before_parsing() -> None:
    rejected(record(b"{" * 100), "too_large", max_bytes=10)


@pytest.mark.parametrize("raw", [b"{not json", b'{"event_id": ', b"\xff\xfe\x00"])
def test_malformed_json(raw: bytes) -> None:
    r = rejected(record(raw), "malformed_json")
    expected = parse_event(raw)
    assert isinstance(expected, Rejection) and r.detail == expected.detail


def test_contract_violation_passes_reason_and_detail_through() -> None:
    doc = event("order.created")
    doc["payload"]["units"] = -1
    origin = record(doc)
    expected = parse_event(origin.value)
    assert isinstance(expected, Rejection)
    r = rejected(origin, expected.reason)
    assert r.detail == expected.detail
    assert "payload.units" in r.detail


def test_unknown_event_type() -> None:
    doc = event("order.created") | {"event_type": "order.teleported"}
    r = rejected(record(doc, topic=INBOUND["order"].name), "unknown_event_type")
    assert "event_type" in r.detail


def test_order_event_on_the_deliveries_topic() -> None:
    doc = event("order.created")
    topic = INBOUND["delivery"].name
    r = rejected(record(doc, topic=topic), "wrong_topic")
    assert "order.created" in r.detail and topic in r.detail


@pytest.mark.parametrize("event_type", EVENT_TYPES)
@pytest.mark.parametrize("family", FAMILIES)
def test_every_event_type_is_only_admitted_on_its_family_topic(event_type: str, family: str) -> None:
    origin = record(event(event_type), topic=INBOUND[family].name)
    if family_of(event_type) == family:
        assert admitted(origin).event_type == event_type
    else:
        r = rejected(origin, "wrong_topic")
        assert event_type in r.detail and INBOUND[family].name in r.detail


def test_missing_key() -> None:
    r = rejected(record(event("order.created"), key=None), "missing_key")
    assert "client_id" in r.detail


@pytest.mark.parametrize("key", [b"C-OTHER", b"c-acme", b"C-ACME ", b" C-ACME", b"", b"\xff\xfe"])
def test_key_mismatch(key: bytes) -> None:
    r = rejected(record(event("order.created", client_id="C-ACME"), key=key), "key_mismatch")
    assert "'C-ACME'" in r.detail  # names the client_id
    assert repr(key.decode("utf-8", "replace")) in r.detail  # and the key it got


def test_key_equal_to_a_non_ascii_client_id_is_accepted() -> None:
    doc = event("client.upserted", client_id="客户-001")
    assert admitted(record(doc, key="客户-001".encode())).client_id == "客户-001"


def test_contract_is_checked_before_routing() -> None:
    """A broken record is dead-lettered for what is wrong with it, not for where it was sent."""
    doc = event("order.created")
    doc["payload"]["units"] = "5"
    r = admit(record(doc, topic=INBOUND["delivery"].name, key=None))
    assert isinstance(r, Rejected) and r.reason == "schema_violation"


# ---------------------------------------------------------------- accepted rows


@pytest.mark.parametrize("family", FAMILIES)
def test_valid_event_becomes_a_row_in_its_family_table(family: str) -> None:
    doc = event(FAMILY_EXAMPLE[family], client_id=f"C-{family.upper()}")
    origin = record(doc, partition=7, offset=4242)
    parsed = admitted(origin)

    table, row = event_row(parsed, origin)
    columns = columns_for(family)
    assert table == RAW_TABLES[family] and family in table
    assert len(row) == len(columns)
    at = dict(zip(columns, row, strict=True))
    assert at["client_id"] == doc["client_id"]
    assert at["event_id"] == uuid.UUID(doc["event_id"])
    assert at["event_type"] == doc["event_type"]
    assert at["schema_version"] == SCHEMA_VERSION
    assert at["kafka_topic"] == INBOUND[family].name
    assert (at["kafka_partition"], at["kafka_offset"]) == (7, 4242)
    assert at["raw_json"] == origin.value.decode()

    plan = plan_batch([origin], NOW)
    assert plan.rows == {table: [row]}
    assert plan.events == [parsed]
    assert plan.rejected == []
    assert plan.per_type == Counter({doc["event_type"]: 1})


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_type_maps_to_a_full_row(event_type: str) -> None:
    origin = record(event(event_type))
    table, row = event_row(admitted(origin), origin)
    assert table == RAW_TABLES[family_of(event_type)]
    assert len(row) == len(columns_for(family_of(event_type)))


def test_payload_values_land_in_their_columns() -> None:
    doc = event("delivery.delivered")
    origin = record(doc)
    _, row = event_row(admitted(origin), origin)
    at = dict(zip(columns_for("delivery"), row, strict=True))
    payload = doc["payload"]
    for column in ("delivery_id", "order_id", "units", "units_delivered", "failure_reason"):
        assert at[column] == payload[column], column
    assert at["delivered_at"] == datetime.fromisoformat(payload["delivered_at"])


def test_unknown_fields_are_kept_verbatim_in_raw_json() -> None:
    doc = event("feedback.received")
    doc["survey_wave"] = "2024-Q2"
    doc["payload"]["sentiment_model"] = {"name": "v3", "score": 0.93}
    origin = record(doc)
    _, row = event_row(admitted(origin), origin)
    raw = row[columns_for("feedback").index("raw_json")]
    assert raw == origin.value.decode()
    assert json.loads(raw) == doc


# ---------------------------------------------------------------- batches


def mixed_batch() -> tuple[list[Origin], Counter[str], list[Origin]]:
    """A batch with several valid events per type and a record per rejection reason; expected counts; the bad."""
    origins: list[Origin] = []
    expected: Counter[str] = Counter()
    for i, event_type in enumerate(EVENT_TYPES):
        for _ in range(1 + i % 3):
            origins.append(record(event(event_type, client_id=f"C-{i}")))
            expected[event_type] += 1
    bad_units = event("order.created")
    bad_units["payload"]["units"] = -5
    bad: list[tuple[str, Origin]] = [
        ("empty_value", record(b"")),
        ("too_large", record(b'{"x": "' + b"y" * 2000 + b'"}')),
        ("malformed_json", record(b"{oops")),
        ("schema_violation", record(bad_units)),
        (
            "unknown_event_type",
            record(event("order.created") | {"event_type": "order.lost"}, topic=INBOUND["order"].name),
        ),
        ("wrong_topic", record(event("complaint.opened"), topic=INBOUND["feedback"].name)),
        ("missing_key", record(event("feedback.received"), key=None)),
        ("key_mismatch", record(event("client.upserted", client_id="C-1"), key=b"C-2")),
        ("key_mismatch", record(event("order.updated", client_id="C-1"), key=b"C-3")),
    ]
    for position, (reason, origin) in enumerate(bad):
        origins.insert(3 * position + 1, origin)  # interleave rejections with valid records
        expected[f"rejected:{reason}"] += 1
    return origins, expected, [origin for _, origin in bad]


def test_plan_batch_counts_add_up() -> None:
    origins, expected, _ = mixed_batch()
    plan = plan_batch(origins, NOW, max_bytes=1024)

    assert plan.per_type == expected
    assert sum(plan.per_type.values()) == len(origins)
    assert len(plan.events) + len(plan.rejected) == len(origins)
    assert len(plan.rows["dead_letters"]) == len(plan.rejected)
    assert sum(len(rows) for table, rows in plan.rows.items() if table != "dead_letters") == len(plan.events)
    for family in FAMILIES:
        n = sum(count for t, count in expected.items() if t in EVENT_TYPES and family_of(t) == family)
        assert len(plan.rows[RAW_TABLES[family]]) == n, family
        assert all(len(row) == len(columns_for(family)) for row in plan.rows[RAW_TABLES[family]])


def test_plan_batch_keeps_input_order() -> None:
    origins, _, bad = mixed_batch()
    plan = plan_batch(origins, NOW, max_bytes=1024)
    good = [o for o in origins if not any(o is b for b in bad)]
    assert [str(e.event_id) for e in plan.events] == [json.loads(o.value)["event_id"] for o in good]
    assert [r.origin for r in plan.rejected] == bad


def test_plan_batch_passes_max_bytes_on() -> None:
    origin = record(event("order.created"))
    assert plan_batch([origin], NOW, max_bytes=len(origin.value)).per_type == Counter({"order.created": 1})
    assert plan_batch([origin], NOW, max_bytes=len(origin.value) - 1).per_type == Counter({"rejected:too_large": 1})


def test_plan_batch_of_nothing() -> None:
    plan = plan_batch([], NOW)
    assert plan.rows == {} and plan.events == [] and plan.rejected == [] and sum(plan.per_type.values()) == 0


def test_dead_letter_rows_keep_original_bytes_and_origin() -> None:
    origins = [
        Origin(topic=INBOUND["order"].name, partition=2, offset=17, key=b"C-9", value=b"\xff\xfe not utf-8 {"),
        Origin(
            topic=INBOUND["delivery"].name, partition=0, offset=99, key=None, value=record(event("order.created")).value
        ),
        Origin(topic=INBOUND["client"].name, partition=5, offset=0, key=b"\xc3\x28", value=b""),
    ]
    plan = plan_batch(origins, NOW)
    assert len(plan.rejected) == len(origins)
    rows = plan.rows["dead_letters"]
    assert len(rows) == len(origins)
    for origin, rejection, row in zip(origins, plan.rejected, rows, strict=True):
        assert len(row) == len(DEAD_LETTER_COLUMNS)
        at = dict(zip(DEAD_LETTER_COLUMNS, row, strict=True))
        assert at["raw_value"] == origin.value and isinstance(at["raw_value"], bytes)
        assert (at["kafka_topic"], at["kafka_partition"], at["kafka_offset"]) == (
            origin.topic,
            origin.partition,
            origin.offset,
        )
        expected_key = "" if origin.key is None else origin.key.decode("utf-8", "replace")
        assert at["kafka_key"] == expected_key
        assert (at["reason"], at["detail"]) == (rejection.reason, rejection.detail)
        assert at["rejected_at"] == NOW
        assert rejection.origin is origin
    assert [r.reason for r in plan.rejected] == ["malformed_json", "wrong_topic", "empty_value"]


def test_a_bug_while_mapping_one_record_dead_letters_it_and_keeps_the_rest(monkeypatch) -> None:
    """Poison pill: an exception inside our own code for one event must not stop the batch.

    The bug is simulated by patching the pure row mapper (our code, not Kafka/ClickHouse)."""
    import streams.intake as intake

    good = _valid_origin_for_bug_test("C1")
    poison = _valid_origin_for_bug_test("C-BUG")
    real = intake.event_row

    def buggy(event, origin, *args, **kwargs):
        if event.client_id == "C-BUG":
            raise ZeroDivisionError("division by zero")
        return real(event, origin, *args, **kwargs)

    monkeypatch.setattr(intake, "event_row", buggy)
    plan = intake.plan_batch([good, poison], datetime(2025, 3, 1, tzinfo=UTC))
    assert [e.client_id for e in plan.events] == ["C1"]
    assert [(r.reason, r.origin.key) for r in plan.rejected] == [("internal_error", b"C-BUG")]
    assert "ZeroDivisionError: division by zero" in plan.rejected[0].detail
    assert len(plan.rows["dead_letters"]) == 1


def _valid_origin_for_bug_test(client_id: str) -> Origin:
    import uuid

    doc = {
        "event_id": str(uuid.uuid4()),
        "event_type": "feedback.received",
        "schema_version": 1,
        "occurred_at": "2025-02-01T08:00:00Z",
        "client_id": client_id,
        "source": "survey",
        "payload": {"feedback_id": "F1", "csat": 4, "channel": "survey"},
    }
    return Origin("clientpulse.feedback.v1", 0, 0, client_id.encode(), json.dumps(doc).encode())


# ---------------------------------------------------------------- time plausibility, reused ids, poison pills


def test_an_event_dated_beyond_the_skew_is_from_the_future() -> None:
    ahead = record(event("order.created", occurred_at="2024-06-02T12:00:01Z"))  # NOW + 24 h + 1 s
    just = record(event("order.created", occurred_at="2024-06-02T20:00:00+08:00"))  # NOW + 24 h exactly
    plan = plan_batch([ahead, just], NOW)
    assert [(r.origin, r.reason) for r in plan.rejected] == [(ahead, "from_the_future")]
    assert "24.0 h ahead" in plan.rejected[0].detail and plan.sources == [just]
    assert plan_batch([ahead], NOW, max_future_skew=timedelta(hours=48)).rejected == []


def test_a_reused_event_id_in_one_batch_keeps_the_first_and_dead_letters_the_other() -> None:
    first = event("complaint.opened")
    same_again = json.loads(json.dumps(first)) | {"occurred_at": "2024-05-01T00:30:00Z"}  # same instant, UTC
    other = json.loads(json.dumps(first)) | {"source": "another-desk"}
    origins = [record(first), record(same_again), record(other)]
    plan = plan_batch(origins, NOW).without_reused({})
    assert plan.sources == origins[:2]
    assert [(r.origin, r.reason) for r in plan.rejected] == [(origins[2], "event_id_reused")]
    assert first["event_id"] in plan.rejected[0].detail
    assert plan.per_type == Counter({"complaint.opened": 2, "rejected:event_id_reused": 1})
    assert len(plan.rows["dead_letters"]) == 1 and len(plan.rows[RAW_TABLES["complaint"]]) == 2


def test_poisoned_events_become_internal_error_dead_letters() -> None:
    origins = [record(event("order.created")) for _ in range(3)]
    plan = plan_batch(origins, NOW)
    try:
        raise ArithmeticError("profile fold failed")
    except ArithmeticError as exc:
        failed = plan.without_poisoned([(plan.events[1], exc)])
    assert failed.sources == [origins[0], origins[2]]
    assert [(r.origin, r.reason) for r in failed.rejected] == [(origins[1], "internal_error")]
    assert failed.rejected[0].detail.startswith("ArithmeticError: profile fold failed (at tests/test_intake.py:")
    assert failed.per_type == Counter({"order.created": 2, "rejected:internal_error": 1})
    assert plan.without_poisoned([]) is plan
