"""The event contract (schemas/): one test per rule, each checking that bad input fails *and* that the
message names the offending field, plus the topic registry and the JSON Schema export.

Forward-compatibility policy (what the tests in "forward compatibility" pin down):
- Unknown extra fields, at the envelope level and inside payloads (also nested ones), are accepted and
  ignored by the typed model (tolerant reader). They are not lost: the worker keeps the record's original
  bytes verbatim in ClickHouse `raw_json` (see tests/test_intake.py).
- Removing, retyping or redefining a field is a breaking change and bumps `schema_version`; an event whose
  `schema_version` is newer than `SCHEMA_VERSION` is rejected (dead-lettered) with a message saying so.
- Types are strict (`"5"` and `5.0` are not counts, `"true"` is not a boolean) and timestamps must carry a
  UTC offset.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.events import (
    EVENT_MODELS,
    EVENT_TYPES,
    SCHEMA_VERSION,
    ClientPayload,
    ComplaintCategory,
    ComplaintChannel,
    ComplaintPayload,
    Contact,
    DeliveryDelivered,
    DeliveryPayload,
    Envelope,
    FeedbackChannel,
    FeedbackPayload,
    Industry,
    OrderCreated,
    OrderPayload,
    RevisitOutcome,
    ServiceType,
    Severity,
    StorageRequirements,
    TimeRange,
    family_of,
)
from schemas.export import export
from schemas.topics import (
    ALERTS,
    ALL_TOPICS,
    DEAD_LETTER,
    FAMILIES,
    FAMILY_BY_TOPIC,
    INBOUND,
    INBOUND_TOPIC_NAMES,
    PROFILES,
    topic_for_event_type,
)
from schemas.validation import Rejection, parse_event

# ---------------------------------------------------------------- examples

CLIENT_PAYLOAD: dict[str, Any] = {
    "name": "Acme Cold Foods",
    "contacts": [{"name": "Li Wei", "role": "ops", "phone": "+86 (21) 5555-0100", "email": "li.wei@acme.example"}],
    "address": "1 Harbour Rd, Shanghai",
    "region": "east",
    "industry": "pharma_cold_chain",
    "goods_categories": ["vaccines", "reagents"],
    "storage": {"temperature_min_c": 2.0, "temperature_max_c": 8.0, "humidity_max_pct": 60.0, "hazardous_goods": False},
    "delivery_regions": ["SH", "JS"],
    "delivery_windows": [{"start": "08:00", "end": "17:30", "weekdays": [1, 2, 3, 4, 5]}],
    "contract_start": "2024-01-01",
    "contract_end": "2025-12-31",
    "account_manager": "Zhang San",
    "changed_by": "crm-sync",
}
ORDER_PAYLOAD: dict[str, Any] = {
    "order_id": "SO-1001",
    "warehouse_id": "WH-SH-1",
    "service_type": "outbound",
    "units": 120,
    "weight_kg": 350.5,
    "volume_m3": 2.25,
    "goods_value": "15800.00",
    "service_fee": "420.50",
    "currency": "CNY",
    "requested_window": {"start": "2024-05-02T08:00:00+08:00", "end": "2024-05-02T12:00:00+08:00"},
    "destination_region": "JS",
}
ORDER_CANCELLED_PAYLOAD: dict[str, Any] = {"order_id": "SO-1001", "warehouse_id": "WH-SH-1", "reason": "client request"}
DELIVERY_PAYLOAD: dict[str, Any] = {
    "delivery_id": "DL-77",
    "order_id": "SO-1001",
    "warehouse_id": "WH-SH-1",
    "carrier": "own-fleet",
    "vehicle_id": "沪A-12345",
    "destination_region": "JS",
    "promised_by": "2024-05-02T18:00:00+08:00",
    "delivered_at": "2024-05-02T16:45:00+08:00",
    "units": 120,
    "units_delivered": 118,
    "units_damaged": 1,
    "units_missing": 1,
    "temperature_excursion": False,
    "failure_reason": "",
}
COMPLAINT_PAYLOAD: dict[str, Any] = {
    "complaint_id": "CP-9",
    "order_id": "SO-1001",
    "category": "damage",
    "severity": "high",
    "channel": "portal",
    "description": "two cartons crushed",
    "resolution": "",
    "compensation_amount": "200.00",
    "currency": "CNY",
}
FEEDBACK_PAYLOAD: dict[str, Any] = {
    "feedback_id": "FB-3",
    "csat": 4,
    "nps": 8,
    "channel": "survey",
    "revisit_outcome": "positive",
    "comment": "good service",
}

PAYLOADS: dict[str, dict[str, Any]] = {
    "client.upserted": CLIENT_PAYLOAD,
    "order.created": ORDER_PAYLOAD,
    "order.updated": {**ORDER_PAYLOAD, "units": 130},
    "order.cancelled": ORDER_CANCELLED_PAYLOAD,
    "delivery.dispatched": {**DELIVERY_PAYLOAD, "delivered_at": None, "units_delivered": 0},
    "delivery.delivered": DELIVERY_PAYLOAD,
    "delivery.failed": {**DELIVERY_PAYLOAD, "delivered_at": None, "units_delivered": 0, "failure_reason": "no access"},
    "complaint.opened": COMPLAINT_PAYLOAD,
    "complaint.updated": {**COMPLAINT_PAYLOAD, "severity": "critical"},
    "complaint.resolved": {**COMPLAINT_PAYLOAD, "resolution": "refunded"},
    "complaint.reopened": COMPLAINT_PAYLOAD,
    "feedback.received": FEEDBACK_PAYLOAD,
}


def event(event_type: str = "order.created", payload: dict[str, Any] | None = None, **envelope: Any) -> dict[str, Any]:
    """A valid event document (JSON-shaped dict); keyword arguments override envelope fields."""
    doc: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": SCHEMA_VERSION,
        "occurred_at": "2024-05-01T08:30:00+08:00",
        "client_id": "C-ACME",
        "source": "test",
        "payload": copy.deepcopy(PAYLOADS[event_type] if payload is None else payload),
    }
    doc.update(envelope)
    return doc


def with_payload(event_type: str, **changes: Any) -> dict[str, Any]:
    """A valid event of `event_type` with payload fields changed (value `...` removes the field)."""
    payload = copy.deepcopy(PAYLOADS[event_type])
    for key, value in changes.items():
        if value is ...:
            payload.pop(key, None)
        else:
            payload[key] = value
    return event(event_type, payload)


def without(doc: dict[str, Any], field: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    del doc[field]
    return doc


def to_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def accepted(doc: dict[str, Any] | bytes | str) -> Envelope:
    result = parse_event(to_bytes(doc) if isinstance(doc, dict) else doc)
    assert not isinstance(result, Rejection), f"unexpectedly rejected: {result}"
    return result


def rejected(doc: dict[str, Any] | bytes | str, reason: str | None = None, *names: str) -> Rejection:
    """Assert the input is rejected (with `reason`, if given) and the detail names every one of `names`."""
    result = parse_event(to_bytes(doc) if isinstance(doc, dict) else doc)
    assert isinstance(result, Rejection), f"unexpectedly accepted: {result!r}"
    if reason is not None:
        assert result.reason == reason, result
    for name in names:
        assert re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", result.detail), f"{name!r} not named in: {result}"
    return result


def located(detail: str, loc: str) -> bool:
    """`describe` puts the field path first: `payload.units: Input should be ...`."""
    return any(part.startswith(f"{loc}: ") for part in detail.split("; "))


# ---------------------------------------------------------------- valid examples


def test_every_event_type_has_an_example() -> None:
    assert set(PAYLOADS) == set(EVENT_TYPES) == set(EVENT_MODELS)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_valid_example_parses_into_its_model_and_round_trips(event_type: str) -> None:
    doc = event(event_type)
    parsed = accepted(doc)
    assert type(parsed) is EVENT_MODELS[event_type]
    assert parsed.event_type == event_type
    assert parsed.family == family_of(event_type) == event_type.split(".")[0]
    assert parsed.event_id == uuid.UUID(doc["event_id"])
    assert parsed.client_id == doc["client_id"]

    again = parse_event(parsed.model_dump_json())
    assert again == parsed
    assert parse_event(parsed.model_dump_json().encode()) == parsed


def test_parse_event_accepts_str_as_well_as_bytes() -> None:
    doc = event("order.created")
    assert accepted(json.dumps(doc)) == accepted(to_bytes(doc))


def test_values_are_typed_after_parsing() -> None:
    order = accepted(event("order.created")).payload
    assert order.service_type is ServiceType.OUTBOUND
    assert order.service_fee == Decimal("420.50") and isinstance(order.service_fee, Decimal)
    assert order.requested_window.start == datetime(2024, 5, 2, 0, 0, tzinfo=UTC)
    client = accepted(event("client.upserted")).payload
    assert client.industry is Industry.PHARMA_COLD_CHAIN
    assert client.contract_start == date(2024, 1, 1)


# ---------------------------------------------------------------- envelope


@pytest.mark.parametrize("bad", ["not-a-uuid", "", "1234", "g" * 32, 5])
def test_event_id_must_be_a_uuid(bad: object) -> None:
    r = rejected(event(event_id=bad), "schema_violation", "event_id")
    assert located(r.detail, "event_id")


def test_event_id_missing() -> None:
    r = rejected(without(event(), "event_id"), "schema_violation", "event_id")
    assert "required" in r.detail.lower()


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("", id="empty"),
        pytest.param("C" * 65, id="65-chars"),
        pytest.param(" C-ACME", id="leading-space"),
        pytest.param("C-ACME ", id="trailing-space"),
        pytest.param("C-ACME\n", id="trailing-newline"),
        pytest.param("\tC-ACME", id="leading-tab"),
        pytest.param("   ", id="blank"),
        pytest.param(42, id="number"),
        pytest.param(None, id="null"),
    ],
)
def test_client_id_rules(bad: object) -> None:
    r = rejected(event(client_id=bad), "invalid_client_id", "client_id")
    assert located(r.detail, "client_id")


def test_client_id_missing() -> None:
    r = rejected(without(event(), "client_id"), "invalid_client_id", "client_id")
    assert "required" in r.detail.lower()


def test_client_id_limits_are_inclusive() -> None:
    assert accepted(event(client_id="C" * 64)).client_id == "C" * 64
    assert accepted(event(client_id="X")).client_id == "X"
    assert accepted(event(client_id="Acme Foods Ltd")).client_id == "Acme Foods Ltd"  # inner spaces are fine


def test_source_missing() -> None:
    r = rejected(without(event(), "source"), "schema_violation", "source")
    assert located(r.detail, "source") and "required" in r.detail.lower()


@pytest.mark.parametrize("bad", ["", "s" * 65])
def test_source_length(bad: str) -> None:
    r = rejected(event(source=bad), "schema_violation", "source")
    assert located(r.detail, "source")


def test_schema_version_zero() -> None:
    r = rejected(event(schema_version=0), "schema_violation", "schema_version")
    assert located(r.detail, "schema_version")


def test_schema_version_from_the_future_is_rejected_as_newer() -> None:
    future = SCHEMA_VERSION + 1
    r = rejected(event(schema_version=future), "schema_violation", "schema_version")
    assert located(r.detail, "schema_version")
    assert "newer" in r.detail
    assert str(future) in r.detail and str(SCHEMA_VERSION) in r.detail


@pytest.mark.parametrize("bad", ["1", 1.0, True, None])
def test_schema_version_is_a_strict_integer(bad: object) -> None:
    r = rejected(event(schema_version=bad), "schema_violation", "schema_version")
    assert located(r.detail, "schema_version")


def test_schema_version_missing() -> None:
    rejected(without(event(), "schema_version"), "schema_violation", "schema_version")


@pytest.mark.parametrize("naive", ["2024-05-01T08:30:00", "2024-05-01T08:30:00.123456", "2024-05-01 08:30:00"])
def test_occurred_at_must_be_timezone_aware(naive: str) -> None:
    r = rejected(event(occurred_at=naive), "naive_timestamp", "occurred_at")
    assert located(r.detail, "occurred_at")


@pytest.mark.parametrize("aware", ["2024-05-01T00:30:00Z", "2024-05-01T08:30:00+08:00", "2024-04-30T19:30:00-05:00"])
def test_occurred_at_with_any_offset_is_the_same_instant(aware: str) -> None:
    assert accepted(event(occurred_at=aware)).occurred_at == datetime(2024, 5, 1, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["1999-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "2101-01-01T00:00:00Z"])
def test_occurred_at_must_be_plausible(bad: str) -> None:
    r = rejected(event(occurred_at=bad), "schema_violation", "occurred_at")
    assert located(r.detail, "occurred_at")
    assert "2000" in r.detail and "2100" in r.detail


@pytest.mark.parametrize("edge", ["2000-01-01T00:00:00Z", "2100-12-31T23:59:59Z"])
def test_occurred_at_bounds_are_inclusive(edge: str) -> None:
    accepted(event(occurred_at=edge))


@pytest.mark.parametrize("bad", ["yesterday", 1714523400, "2024-13-01T00:00:00Z", ""])
def test_occurred_at_must_be_an_iso_datetime(bad: object) -> None:
    rejected(event(occurred_at=bad), "schema_violation", "occurred_at")


@pytest.mark.parametrize("bad", ["order.shipped", "orders.created", "ORDER.CREATED", "", "client"])
def test_unknown_event_type(bad: str) -> None:
    r = rejected(event(event_type="order.created", payload=ORDER_PAYLOAD) | {"event_type": bad}, "unknown_event_type")
    assert located(r.detail, "event_type")
    if bad:
        assert repr(bad) in r.detail  # the offending value is quoted


def test_missing_event_type() -> None:
    r = rejected(without(event(), "event_type"), "missing_event_type")
    assert located(r.detail, "event_type")


def test_missing_payload() -> None:
    r = rejected(without(event(), "payload"), "schema_violation", "payload")
    assert located(r.detail, "payload")


def test_payload_of_another_event_type_is_rejected() -> None:
    r = rejected(event("order.created", payload=COMPLAINT_PAYLOAD), "schema_violation")
    assert located(r.detail, "payload.order_id") or located(r.detail, "payload.warehouse_id")


# ---------------------------------------------------------------- bytes and JSON


@pytest.mark.parametrize(
    "raw",
    [b'{"event_id": ', b"not json", b"", b"   ", b"{'event_type': 'order.created'}", b'{"a": 1,}', b"\xef\xbb\xbf{}"],
)
def test_malformed_json(raw: bytes) -> None:
    r = rejected(raw, "malformed_json")
    assert "json" in r.detail.lower()


def test_truncated_valid_event_is_malformed_json() -> None:
    raw = to_bytes(event())
    rejected(raw[: len(raw) // 2], "malformed_json")


@pytest.mark.parametrize("raw", [b"[]", b"42", b'"order.created"', b"null"])
def test_json_that_is_not_an_object_is_rejected(raw: bytes) -> None:
    r = rejected(raw, "schema_violation")  # well-formed JSON, but not an event
    assert "object" in r.detail.lower()


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\xff\xfe" + to_bytes(event()), id="leading-garbage"),
        pytest.param(to_bytes(event(client_id="C-ACME")).replace(b"C-ACME", b"C-\xe9CME"), id="latin1-in-string"),
        pytest.param("{}".encode("utf-16"), id="utf-16"),
    ],
)
def test_non_utf8_bytes_are_rejected(raw: bytes) -> None:
    r = rejected(raw)
    assert r.reason in {"malformed_json", "not_utf8"}
    assert re.search(r"unicode|utf|json", r.detail, re.IGNORECASE), r


# ---------------------------------------------------------------- strict types


@pytest.mark.parametrize(
    ("event_type", "field", "value"),
    [
        ("order.created", "units", "5"),
        ("order.created", "units", 5.0),
        ("order.created", "units", True),
        ("order.created", "units", None),
        ("order.created", "weight_kg", "3.5"),
        ("order.created", "order_id", 1001),
        ("delivery.delivered", "units_delivered", "118"),
        ("delivery.delivered", "temperature_excursion", "true"),
        ("delivery.delivered", "temperature_excursion", 1),
        ("feedback.received", "csat", "4"),
        ("feedback.received", "nps", 8.0),
        ("client.upserted", "goods_categories", "vaccines"),
    ],
)
def test_strict_types(event_type: str, field: str, value: object) -> None:
    r = rejected(with_payload(event_type, **{field: value}), "schema_violation", f"payload.{field}")
    assert located(r.detail, f"payload.{field}")


def test_strict_boolean_inside_nested_object() -> None:
    storage = {**CLIENT_PAYLOAD["storage"], "hazardous_goods": "false"}
    r = rejected(with_payload("client.upserted", storage=storage), "schema_violation")
    assert located(r.detail, "payload.storage.hazardous_goods")


def test_integer_is_accepted_where_a_measure_is_a_float() -> None:
    assert accepted(with_payload("order.created", weight_kg=3)).payload.weight_kg == 3.0


def test_measures_must_be_finite() -> None:
    raw = to_bytes(with_payload("order.created", weight_kg=1.0)).replace(b'"weight_kg": 1.0', b'"weight_kg": NaN')
    assert b"NaN" in raw
    r = rejected(raw, "schema_violation")
    assert located(r.detail, "payload.weight_kg")


# ---------------------------------------------------------------- quantities and money


@pytest.mark.parametrize(
    ("event_type", "field", "value"),
    [
        ("order.created", "units", -1),
        ("order.created", "weight_kg", -0.5),
        ("order.created", "volume_m3", -0.01),
        ("order.created", "service_fee", "-1.00"),
        ("order.created", "service_fee", -1),
        ("order.created", "goods_value", "-0.01"),
        ("delivery.delivered", "units", -1),
        ("delivery.delivered", "units_damaged", -1),
        ("delivery.delivered", "units_missing", -1),
        ("delivery.delivered", "units_delivered", -1),
        ("complaint.opened", "compensation_amount", "-5.00"),
    ],
)
def test_quantities_must_not_be_negative(event_type: str, field: str, value: object) -> None:
    r = rejected(with_payload(event_type, **{field: value}), "schema_violation", f"payload.{field}")
    assert located(r.detail, f"payload.{field}")
    assert "greater than or equal to 0" in r.detail


def test_counts_have_an_upper_bound() -> None:
    r = rejected(with_payload("order.created", units=10_000_001), "schema_violation")
    assert located(r.detail, "payload.units")


@pytest.mark.parametrize(
    ("event_type", "field", "value"),
    [
        ("order.created", "service_fee", "12.345"),
        ("order.created", "service_fee", 12.345),
        ("order.created", "goods_value", "1.001"),
        ("complaint.opened", "compensation_amount", "0.125"),
    ],
)
def test_money_has_at_most_two_decimals(event_type: str, field: str, value: object) -> None:
    r = rejected(with_payload(event_type, **{field: value}), "schema_violation")
    assert located(r.detail, f"payload.{field}")
    assert "decimal places" in r.detail


@pytest.mark.parametrize("value", ["12.50", "12.5", "12", "0", "0.00"])
def test_money_with_up_to_two_decimals_is_exact(value: str) -> None:
    fee = accepted(with_payload("order.created", service_fee=value)).payload.service_fee
    assert fee == Decimal(value)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "twelve", ""])
def test_money_must_be_a_finite_number(value: str) -> None:
    r = rejected(with_payload("order.created", service_fee=value), "schema_violation")
    assert located(r.detail, "payload.service_fee")


def test_service_fee_is_required() -> None:
    r = rejected(with_payload("order.created", service_fee=...), "schema_violation")
    assert located(r.detail, "payload.service_fee") and "required" in r.detail.lower()


@pytest.mark.parametrize("event_type", ["order.created", "complaint.opened"])
@pytest.mark.parametrize("bad", ["cny", "CN", "CNYY", "C1Y", "", "CNY\n", "¥"])
def test_currency_is_three_uppercase_letters(event_type: str, bad: str) -> None:
    r = rejected(with_payload(event_type, currency=bad), "schema_violation")
    assert located(r.detail, "payload.currency")


@pytest.mark.parametrize("event_type", ["order.created", "complaint.opened"])
def test_currency_defaults_to_cny_and_accepts_iso_codes(event_type: str) -> None:
    assert accepted(with_payload(event_type, currency=...)).payload.currency == "CNY"
    assert accepted(with_payload(event_type, currency="USD")).payload.currency == "USD"


# ---------------------------------------------------------------- delivery


def test_damaged_plus_missing_must_not_exceed_units() -> None:
    r = rejected(
        with_payload("delivery.delivered", units=10, units_delivered=5, units_damaged=6, units_missing=5),
        "schema_violation",
        "units_damaged",
        "units_missing",
        "units",
    )
    assert located(r.detail, "payload")


def test_damaged_plus_missing_may_equal_units() -> None:
    p = accepted(with_payload("delivery.delivered", units=10, units_delivered=0, units_damaged=6, units_missing=4))
    assert p.payload.units_damaged + p.payload.units_missing == p.payload.units


@pytest.mark.parametrize("event_type", ["delivery.dispatched", "delivery.delivered", "delivery.failed"])
def test_delivered_must_not_exceed_units(event_type: str) -> None:
    r = rejected(
        with_payload(event_type, units=10, units_delivered=11, units_damaged=0, units_missing=0),
        "schema_violation",
        "units_delivered",
    )
    assert located(r.detail, "payload")


def test_delivery_unit_rule_from_python() -> None:
    with pytest.raises(ValidationError) as info:
        DeliveryPayload(
            delivery_id="D",
            order_id="O",
            promised_by=datetime(2024, 5, 2, tzinfo=UTC),
            units=1,
            units_damaged=1,
            units_missing=1,
        )
    message = str(info.value)
    assert "units_damaged" in message and "units_missing" in message


def test_delivered_needs_delivered_at() -> None:
    r = rejected(with_payload("delivery.delivered", delivered_at=None), "schema_violation", "payload.delivered_at")
    assert "delivery.delivered" in r.detail
    rejected(with_payload("delivery.delivered", delivered_at=...), "schema_violation", "payload.delivered_at")


def test_dispatched_does_not_need_delivered_at() -> None:
    assert accepted(with_payload("delivery.dispatched", delivered_at=None)).payload.delivered_at is None


@pytest.mark.parametrize("missing", [..., ""])
def test_failed_needs_failure_reason(missing: object) -> None:
    r = rejected(with_payload("delivery.failed", failure_reason=missing), "schema_violation", "payload.failure_reason")
    assert "delivery.failed" in r.detail


def test_failed_with_reason_is_accepted() -> None:
    assert accepted(with_payload("delivery.failed", failure_reason="address closed")).payload.failure_reason


@pytest.mark.parametrize("field", ["promised_by", "delivered_at"])
def test_delivery_timestamps_must_be_aware(field: str) -> None:
    r = rejected(with_payload("delivery.delivered", **{field: "2024-05-02T18:00:00"}), "naive_timestamp")
    assert located(r.detail, f"payload.{field}")


def test_promised_by_is_required() -> None:
    r = rejected(with_payload("delivery.dispatched", promised_by=...), "schema_violation")
    assert located(r.detail, "payload.promised_by") and "required" in r.detail.lower()


def test_delivered_event_from_python_needs_delivered_at() -> None:
    payload = DeliveryPayload(delivery_id="D", order_id="O", promised_by=datetime(2024, 5, 2, tzinfo=UTC), units=1)
    with pytest.raises(ValidationError, match=r"payload\.delivered_at"):
        DeliveryDelivered(
            event_id=uuid.uuid4(),
            event_type="delivery.delivered",
            schema_version=SCHEMA_VERSION,
            occurred_at=datetime(2024, 5, 2, tzinfo=UTC),
            client_id="C",
            source="test",
            payload=payload,
        )


# ---------------------------------------------------------------- order


def test_requested_window_end_before_start() -> None:
    window = {"start": "2024-05-02T12:00:00+08:00", "end": "2024-05-02T11:59:00+08:00"}
    r = rejected(with_payload("order.created", requested_window=window), "schema_violation")
    assert located(r.detail, "payload.requested_window")
    assert "end" in r.detail and "start" in r.detail


def test_requested_window_compares_instants_not_wall_clocks() -> None:
    # 10:00+08:00 is 02:00Z, before 09:00Z although the wall clock reads later
    window = {"start": "2024-05-02T10:00:00+08:00", "end": "2024-05-02T09:00:00Z"}
    assert accepted(with_payload("order.created", requested_window=window)).payload.requested_window
    reversed_window = {"start": "2024-05-02T09:00:00Z", "end": "2024-05-02T10:00:00+08:00"}
    rejected(with_payload("order.created", requested_window=reversed_window), "schema_violation")


def test_requested_window_may_be_empty_interval_or_absent() -> None:
    same = {"start": "2024-05-02T12:00:00+08:00", "end": "2024-05-02T12:00:00+08:00"}
    accepted(with_payload("order.created", requested_window=same))
    assert accepted(with_payload("order.created", requested_window=None)).payload.requested_window is None
    assert accepted(with_payload("order.created", requested_window=...)).payload.requested_window is None


def test_requested_window_must_be_aware() -> None:
    window = {"start": "2024-05-02T08:00:00", "end": "2024-05-02T12:00:00+08:00"}
    r = rejected(with_payload("order.created", requested_window=window), "naive_timestamp")
    assert located(r.detail, "payload.requested_window.start")


def test_time_range_from_python() -> None:
    start = datetime(2024, 5, 2, 12, tzinfo=UTC)
    with pytest.raises(ValidationError, match="end must not be before start"):
        TimeRange(start=start, end=start - timedelta(minutes=1))
    with pytest.raises(ValidationError, match="timezone"):
        TimeRange(start=start.replace(tzinfo=None), end=start)


def test_unknown_service_type() -> None:
    r = rejected(with_payload("order.created", service_type="teleport"), "schema_violation")
    assert located(r.detail, "payload.service_type")
    assert all(s.value in r.detail for s in ServiceType)  # the message lists what is allowed


@pytest.mark.parametrize("field", ["order_id", "warehouse_id", "units", "service_type"])
def test_order_required_fields(field: str) -> None:
    r = rejected(with_payload("order.created", **{field: ...}), "schema_violation")
    assert located(r.detail, f"payload.{field}")


@pytest.mark.parametrize("bad", ["", "X" * 65])
def test_order_id_length(bad: str) -> None:
    r = rejected(with_payload("order.cancelled", order_id=bad), "schema_violation")
    assert located(r.detail, "payload.order_id")


# ---------------------------------------------------------------- client


def test_contract_end_before_start() -> None:
    r = rejected(
        with_payload("client.upserted", contract_start="2024-05-01", contract_end="2024-04-30"),
        "schema_violation",
        "contract_end",
        "contract_start",
    )
    assert located(r.detail, "payload")


def test_open_ended_contract_is_fine() -> None:
    p = accepted(with_payload("client.upserted", contract_start="2024-05-01", contract_end=None)).payload
    assert p.contract_start == date(2024, 5, 1) and p.contract_end is None


def test_contract_dates_are_dates() -> None:
    r = rejected(with_payload("client.upserted", contract_start="May 1st"), "schema_violation")
    assert located(r.detail, "payload.contract_start")


def test_temperature_min_above_max() -> None:
    storage = {"temperature_min_c": 8.0, "temperature_max_c": 2.0}
    r = rejected(
        with_payload("client.upserted", storage=storage), "schema_violation", "temperature_min_c", "temperature_max_c"
    )
    assert located(r.detail, "payload.storage")


def test_temperature_range_from_python() -> None:
    with pytest.raises(ValidationError, match="temperature_min_c must not exceed temperature_max_c"):
        StorageRequirements(temperature_min_c=8.0, temperature_max_c=2.0)
    assert StorageRequirements(temperature_min_c=5.0, temperature_max_c=5.0).temperature_max_c == 5.0


@pytest.mark.parametrize(
    ("field", "value"), [("temperature_min_c", -81), ("temperature_max_c", 61), ("humidity_max_pct", 100.5)]
)
def test_storage_bounds(field: str, value: float) -> None:
    r = rejected(with_payload("client.upserted", storage={field: value}), "schema_violation")
    assert located(r.detail, f"payload.storage.{field}")


def test_humidity_above_100() -> None:
    r = rejected(with_payload("client.upserted", storage={"humidity_max_pct": 101}), "schema_violation")
    assert located(r.detail, "payload.storage.humidity_max_pct")
    assert "100" in r.detail


@pytest.mark.parametrize("bad", ["nope", "a@b", "a b@c.de", "@c.de", "a@@b.cd"])
def test_bad_email(bad: str) -> None:
    contacts = [{"name": "A"}, {"name": "B", "email": bad}]
    r = rejected(with_payload("client.upserted", contacts=contacts), "schema_violation")
    assert located(r.detail, "payload.contacts.1.email")
    assert "email" in r.detail.split(": ", 1)[1]


@pytest.mark.parametrize("bad", ["call me", "12", "+86-21-5555-0100 ext. 5", "++8621"])
def test_bad_phone(bad: str) -> None:
    r = rejected(with_payload("client.upserted", contacts=[{"name": "A", "phone": bad}]), "schema_violation")
    assert located(r.detail, "payload.contacts.0.phone")
    assert "phone" in r.detail.split(": ", 1)[1]


def test_contact_rules_from_python() -> None:
    with pytest.raises(ValidationError) as info:
        Contact(name="A", email="nope")
    assert [e["loc"] for e in info.value.errors()] == [("email",)]
    with pytest.raises(ValidationError) as info:
        Contact(name="A", phone="call me")
    assert [e["loc"] for e in info.value.errors()] == [("phone",)]
    ok = Contact(name="A", phone="+86 (21) 5555-0100", email="a@b.cn")
    assert ok.phone and ok.email


def test_contact_needs_a_name() -> None:
    r = rejected(with_payload("client.upserted", contacts=[{"email": "a@b.cn"}]), "schema_violation")
    assert located(r.detail, "payload.contacts.0.name")


def test_unknown_industry() -> None:
    r = rejected(with_payload("client.upserted", industry="mining"), "schema_violation")
    assert located(r.detail, "payload.industry")
    assert all(i.value in r.detail for i in Industry)


@pytest.mark.parametrize(
    ("field", "value", "loc"),
    [
        ("delivery_windows", [{"start": "24:00", "end": "17:00"}], "payload.delivery_windows.0.start"),
        ("delivery_windows", [{"start": "8:00", "end": "17:00"}], "payload.delivery_windows.0.start"),
        (
            "delivery_windows",
            [{"start": "08:00", "end": "17:00", "weekdays": [0]}],
            "payload.delivery_windows.0.weekdays.0",
        ),
        (
            "delivery_windows",
            [{"start": "08:00", "end": "17:00", "weekdays": [8]}],
            "payload.delivery_windows.0.weekdays.0",
        ),
        ("region", "", "payload.region"),
        ("name", "", "payload.name"),
    ],
)
def test_client_field_rules(field: str, value: object, loc: str) -> None:
    r = rejected(with_payload("client.upserted", **{field: value}), "schema_violation")
    assert located(r.detail, loc)


# ---------------------------------------------------------------- complaint


@pytest.mark.parametrize(("field", "enum"), [("category", ComplaintCategory), ("severity", Severity)])
@pytest.mark.parametrize("event_type", ["complaint.opened", "complaint.resolved"])
def test_complaint_vocabularies(event_type: str, field: str, enum: type) -> None:
    r = rejected(with_payload(event_type, **{field: "urgent-ish"}), "schema_violation")
    assert located(r.detail, f"payload.{field}")
    assert all(member.value in r.detail for member in enum)


def test_complaint_channel_vocabulary() -> None:
    r = rejected(with_payload("complaint.opened", channel="fax"), "schema_violation")
    assert located(r.detail, "payload.channel")


def test_complaint_defaults() -> None:
    p = accepted(with_payload("complaint.opened", channel=..., order_id=..., compensation_amount=...)).payload
    assert p.channel is ComplaintChannel.OTHER and p.order_id is None and p.compensation_amount == 0


# ---------------------------------------------------------------- feedback


@pytest.mark.parametrize(("field", "value"), [("csat", 0), ("csat", 6), ("nps", 11), ("nps", -1)])
def test_score_ranges(field: str, value: int) -> None:
    r = rejected(with_payload("feedback.received", **{field: value}), "schema_violation")
    assert located(r.detail, f"payload.{field}")


@pytest.mark.parametrize(("field", "value"), [("csat", 1), ("csat", 5), ("nps", 0), ("nps", 10)])
def test_score_bounds_are_inclusive(field: str, value: int) -> None:
    assert getattr(accepted(with_payload("feedback.received", **{field: value})).payload, field) == value


@pytest.mark.parametrize("absent", [..., None])
def test_feedback_needs_some_score(absent: object) -> None:
    doc = with_payload("feedback.received", csat=absent, nps=absent, revisit_outcome=absent)
    r = rejected(doc, "schema_violation", "csat", "nps", "revisit_outcome")
    assert located(r.detail, "payload")


@pytest.mark.parametrize("only", ["csat", "nps", "revisit_outcome"])
def test_any_one_score_is_enough(only: str) -> None:
    value = {"csat": 3, "nps": 0, "revisit_outcome": "negative"}[only]
    scores: dict[str, Any] = {"csat": ..., "nps": ..., "revisit_outcome": ...}
    doc = with_payload("feedback.received", **(scores | {only: value}))
    assert getattr(accepted(doc).payload, only) == value


def test_unknown_revisit_outcome_and_channel() -> None:
    r = rejected(with_payload("feedback.received", revisit_outcome="meh"), "schema_violation")
    assert located(r.detail, "payload.revisit_outcome")
    r = rejected(with_payload("feedback.received", channel="carrier pigeon"), "schema_violation")
    assert located(r.detail, "payload.channel")


# ---------------------------------------------------------------- several errors


def test_several_errors_are_all_reported() -> None:
    doc = with_payload("order.created", units=-1, currency="cny")
    doc["source"] = ""
    r = rejected(doc, "schema_violation")
    for loc in ("source", "payload.units", "payload.currency"):
        assert located(r.detail, loc), r


def test_many_errors_are_capped_with_a_count() -> None:
    doc = with_payload("order.created", units=-1, weight_kg=-1, volume_m3=-1, goods_value="-1", service_fee="-1")
    doc.update(source="", schema_version=0)
    r = rejected(doc, "schema_violation")
    assert re.search(r"\(\+\d+ more\)$", r.detail), r


# ---------------------------------------------------------------- forward compatibility


def test_unknown_envelope_fields_are_ignored() -> None:
    base = event("order.created")
    extended = {**copy.deepcopy(base), "trace_id": "abc", "tenant": {"id": 7}, "priority": None}
    parsed = accepted(extended)
    assert parsed == accepted(base)
    assert "trace_id" not in parsed.model_dump() and not hasattr(parsed, "trace_id")


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_unknown_payload_fields_are_ignored(event_type: str) -> None:
    base = event(event_type)
    extended = copy.deepcopy(base)
    extended["payload"]["added_in_a_later_minor_release"] = {"nested": [1, 2, 3]}
    parsed = accepted(extended)
    assert parsed == accepted(base)
    assert "added_in_a_later_minor_release" not in parsed.payload.model_dump()


def test_unknown_nested_fields_are_ignored() -> None:
    base = event("client.upserted")
    extended = copy.deepcopy(base)
    extended["payload"]["contacts"][0]["wechat_id"] = "liwei88"
    extended["payload"]["storage"]["light_sensitive"] = True
    extended["payload"]["delivery_windows"][0]["timezone"] = "Asia/Shanghai"
    assert accepted(extended) == accepted(base)


def test_unknown_fields_do_not_relax_the_known_ones() -> None:
    doc = with_payload("order.created", units=-1)
    doc["payload"]["units_v2"] = 5
    rejected(doc, "schema_violation", "payload.units")


# ---------------------------------------------------------------- construction from Python


def test_enum_fields_accept_value_strings_from_python() -> None:
    order = OrderPayload(order_id="SO", warehouse_id="WH", service_type="outbound", units=1, service_fee=Decimal("1"))
    assert order.service_type is ServiceType.OUTBOUND
    client = ClientPayload(name="Acme", region="east", industry="ecommerce")
    assert client.industry is Industry.ECOMMERCE
    complaint = ComplaintPayload(complaint_id="K", category="delay", severity="low", channel="wechat")
    assert (complaint.category, complaint.severity, complaint.channel) == (
        ComplaintCategory.DELAY,
        Severity.LOW,
        ComplaintChannel.WECHAT,
    )
    feedback = FeedbackPayload(feedback_id="F", channel="revisit_call", revisit_outcome="neutral")
    assert (feedback.channel, feedback.revisit_outcome) == (FeedbackChannel.REVISIT_CALL, RevisitOutcome.NEUTRAL)


def test_enum_fields_still_reject_unknown_strings_from_python() -> None:
    with pytest.raises(ValidationError) as info:
        OrderPayload(order_id="SO", warehouse_id="WH", service_type="teleport", units=1, service_fee=Decimal("1"))
    assert [e["loc"] for e in info.value.errors()] == [("service_type",)]


def test_other_fields_stay_strict_from_python() -> None:
    with pytest.raises(ValidationError) as info:
        OrderPayload(order_id="SO", warehouse_id="WH", service_type="outbound", units="1", service_fee=Decimal("1"))
    assert [e["loc"] for e in info.value.errors()] == [("units",)]


def test_event_built_in_python_round_trips_through_json() -> None:
    built = OrderCreated(
        event_id=uuid.uuid4(),
        event_type="order.created",
        schema_version=SCHEMA_VERSION,
        occurred_at=datetime(2024, 5, 1, 8, 30, tzinfo=timezone(timedelta(hours=8))),
        client_id="C-ACME",
        source="test",
        payload=OrderPayload(
            order_id="SO", warehouse_id="WH", service_type="storage", units=3, service_fee=Decimal("9.90")
        ),
    )
    assert parse_event(built.model_dump_json()) == built


def test_event_built_in_python_rejects_naive_and_future_versions() -> None:
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "event_type": "order.created",
        "schema_version": SCHEMA_VERSION,
        "occurred_at": datetime(2024, 5, 1, 8, 30, tzinfo=UTC),
        "client_id": "C-ACME",
        "source": "test",
        "payload": OrderPayload(
            order_id="SO", warehouse_id="WH", service_type="storage", units=3, service_fee=Decimal(1)
        ),
    }
    with pytest.raises(ValidationError) as info:
        OrderCreated(**{**fields, "occurred_at": datetime(2024, 5, 1, 8, 30)})
    assert [e["loc"] for e in info.value.errors()] == [("occurred_at",)]
    with pytest.raises(ValidationError, match="newer") as info:
        OrderCreated(**{**fields, "schema_version": SCHEMA_VERSION + 1})
    assert [e["loc"] for e in info.value.errors()] == [("schema_version",)]


def test_events_are_immutable() -> None:
    parsed = accepted(event("order.created"))
    with pytest.raises(ValidationError):
        parsed.client_id = "someone-else"  # type: ignore[misc]


# ---------------------------------------------------------------- topic registry


def test_one_inbound_topic_per_family() -> None:
    assert len(FAMILIES) == 5 and len(set(FAMILIES)) == 5
    assert set(INBOUND) == set(FAMILIES)
    assert {family_of(t) for t in EVENT_TYPES} == set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_inbound_topic_names_are_versioned(family: str) -> None:
    spec = INBOUND[family]
    assert re.fullmatch(r"clientpulse\.[a-z][a-z_]*\.v1", spec.name), spec.name
    assert spec.inbound
    assert FAMILY_BY_TOPIC[spec.name] == family
    assert spec.name in INBOUND_TOPIC_NAMES


def test_profiles_topic_is_compacted() -> None:
    assert PROFILES.configs.get("cleanup.policy") == "compact"
    assert PROFILES in ALL_TOPICS and not PROFILES.inbound


def test_dead_letter_and_alert_topics_exist_and_are_not_inbound() -> None:
    for spec in (DEAD_LETTER, ALERTS):
        assert spec in ALL_TOPICS
        assert not spec.inbound
        assert spec.name not in INBOUND_TOPIC_NAMES and spec.name not in FAMILY_BY_TOPIC
        assert re.fullmatch(r"clientpulse\.[a-z][a-z_]*\.v\d+", spec.name), spec.name


def test_topic_names_are_unique() -> None:
    names = [t.name for t in ALL_TOPICS]
    assert len(names) == len(set(names))
    assert len(ALL_TOPICS) == len(FAMILIES) + 3
    assert [t.name for t in ALL_TOPICS if t.inbound] == list(INBOUND_TOPIC_NAMES)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_topic_for_every_event_type(event_type: str) -> None:
    topic = topic_for_event_type(event_type)
    assert topic in INBOUND_TOPIC_NAMES
    assert FAMILY_BY_TOPIC[topic] == family_of(event_type)


def test_event_types_of_one_family_share_a_topic() -> None:
    assert len({topic_for_event_type(t) for t in EVENT_TYPES}) == len(FAMILIES)


@pytest.mark.parametrize("bad", ["shipment.created", "orders.created", "", "deadletter.x", "profiles"])
def test_topic_for_unknown_family_raises(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown event family") as info:
        topic_for_event_type(bad)
    assert repr(bad) in str(info.value)


# ---------------------------------------------------------------- JSON Schema export


def test_export_writes_one_valid_schema_per_event_type(tmp_path: Path) -> None:
    target = tmp_path / "out" / "schemas"  # does not exist yet
    written = export(target)
    assert {p.name for p in written} == {f"{t}.schema.json" for t in EVENT_TYPES} | {"alert.schema.json"}
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in written)
    for path in written:
        if path.name == "alert.schema.json":
            continue  # tests/test_alert_schema.py
        event_type = path.name.removesuffix(".schema.json")
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["$schema"].startswith("https://json-schema.org/")
        assert schema["title"] == event_type
        assert event_type in schema["$id"] and f"v{SCHEMA_VERSION}" in schema["$id"]
        tag = schema["properties"]["event_type"]
        assert tag.get("const", None) == event_type or tag.get("enum") == [event_type], tag
        assert {"event_id", "event_type", "schema_version", "occurred_at", "client_id", "source", "payload"} <= set(
            schema["required"]
        )


def test_export_is_repeatable(tmp_path: Path) -> None:
    first = {p.name: p.read_text() for p in export(tmp_path)}
    second = {p.name: p.read_text() for p in export(tmp_path)}
    assert first == second


def test_exported_schemas_keep_the_tolerant_reader_policy(tmp_path: Path) -> None:
    """No schema may forbid unknown fields: that would contradict the forward-compatibility policy."""
    for path in export(tmp_path):
        schema = json.loads(path.read_text())
        objects = [schema, *schema.get("$defs", {}).values()]
        for obj in objects:
            assert obj.get("additionalProperties", True) is not False, (path.name, obj.get("title"))


def test_exported_schemas_validate_examples_with_jsonschema(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schemas = {p.name.removesuffix(".schema.json"): json.loads(p.read_text()) for p in export(tmp_path)}
    schemas.pop("alert")  # tests/test_alert_schema.py
    for event_type, schema in schemas.items():
        validator = jsonschema.Draft202012Validator(schema)
        validator.validate(event(event_type))
    negative = with_payload("order.created", units=-1)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schemas["order.created"]).validate(negative)
    wrong_tag = event("order.created") | {"event_type": "order.updated"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schemas["order.created"]).validate(wrong_tag)


# ---------------------------------------------------------------- docs/contract.md stays true

CONTRACT_DOC = Path(__file__).resolve().parent.parent / "docs" / "contract.md"


def doc_examples() -> list[dict[str, Any]]:
    blocks = re.findall(r"```json\n(.*?)```", CONTRACT_DOC.read_text(encoding="utf-8"), re.DOTALL)
    return [json.loads(block) for block in blocks]


def test_contract_doc_examples_are_valid_and_cover_every_family() -> None:
    examples = doc_examples()
    assert examples
    for doc in examples:
        parsed = accepted(doc)
        assert parsed.schema_version == SCHEMA_VERSION
    assert {family_of(doc["event_type"]) for doc in examples} == set(FAMILIES)


def test_contract_doc_names_every_event_type_topic_and_dead_letter_header() -> None:
    text = CONTRACT_DOC.read_text(encoding="utf-8")
    for event_type in EVENT_TYPES:
        assert f"`{event_type}`" in text, event_type
        assert re.search(rf"`{re.escape(event_type)}`.*`{re.escape(topic_for_event_type(event_type))}`", text)
    for spec in ALL_TOPICS:
        assert f"`{spec.name}`" in text, spec.name
    for header in ("reason", "detail", "topic", "partition", "offset"):
        assert f"`clientpulse.dlq.{header}`" in text, header
