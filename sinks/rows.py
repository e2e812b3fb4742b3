"""Pure mapping from validated events (and rejections) to ClickHouse rows. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from schemas.events import (
    ClientPayload,
    ComplaintPayload,
    DeliveryPayload,
    Envelope,
    FeedbackPayload,
    OrderCancelledPayload,
    OrderPayload,
)
from sinks.migrations import RAW_TABLES
from sinks.pii import mask_contacts, mask_raw


@dataclass(frozen=True)
class Origin:
    """Where a record came from in Kafka; the dead-letter key and an audit trail for raw rows."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


ENVELOPE_COLUMNS = ("event_id", "event_type", "schema_version", "occurred_at", "client_id", "source")
ORIGIN_COLUMNS = ("raw_json", "kafka_topic", "kafka_partition", "kafka_offset")
CONTENT_COLUMNS = ("content_hash",)
"""streams.dedupe.fingerprint of the event: tells a harmless re-publication from a reused event_id."""

PAYLOAD_COLUMNS: dict[str, tuple[str, ...]] = {
    "client": (
        "name", "region", "industry", "address", "contacts_json", "goods_categories",
        "storage_temp_min_c", "storage_temp_max_c", "storage_humidity_max_pct", "hazardous_goods",
        "delivery_regions", "delivery_windows_json", "contract_start", "contract_end",
        "account_manager", "changed_by",
    ),
    "order": (
        "order_id", "warehouse_id", "service_type", "units", "weight_kg", "volume_m3", "goods_value",
        "service_fee", "currency", "window_start", "window_end", "destination_region", "cancel_reason",
    ),
    "delivery": (
        "delivery_id", "order_id", "warehouse_id", "carrier", "vehicle_id", "destination_region",
        "promised_by", "delivered_at", "units", "units_delivered", "units_damaged", "units_missing",
        "temperature_excursion", "failure_reason",
    ),
    "complaint": (
        "complaint_id", "order_id", "category", "severity", "channel", "description", "resolution",
        "compensation_amount", "currency",
    ),
    "feedback": ("feedback_id", "csat", "nps", "channel", "revisit_outcome", "comment"),
}  # fmt: skip

DEAD_LETTER_COLUMNS = (
    "kafka_topic", "kafka_partition", "kafka_offset", "kafka_key", "raw_value", "reason", "detail", "rejected_at",
)  # fmt: skip


def columns_for(family: str) -> tuple[str, ...]:
    return ENVELOPE_COLUMNS + PAYLOAD_COLUMNS[family] + ORIGIN_COLUMNS + CONTENT_COLUMNS


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _payload_values(p: Any, store_contact_pii: bool) -> tuple[Any, ...]:
    if isinstance(p, ClientPayload):
        s = p.storage
        contacts = [c.model_dump() for c in p.contacts]
        return (
            p.name, p.region, p.industry.value, p.address,
            _json(contacts if store_contact_pii else mask_contacts(contacts)),
            list(p.goods_categories), s.temperature_min_c, s.temperature_max_c, s.humidity_max_pct,
            s.hazardous_goods, list(p.delivery_regions), _json([w.model_dump() for w in p.delivery_windows]),
            p.contract_start, p.contract_end, p.account_manager, p.changed_by,
        )  # fmt: skip
    if isinstance(p, OrderPayload):
        w = p.requested_window
        return (
            p.order_id, p.warehouse_id, p.service_type.value, p.units, p.weight_kg, p.volume_m3, p.goods_value,
            p.service_fee, p.currency, w.start if w else None, w.end if w else None, p.destination_region, "",
        )  # fmt: skip
    if isinstance(p, OrderCancelledPayload):
        return (p.order_id, p.warehouse_id, "", 0, 0.0, 0.0, 0, 0, "", None, None, "", p.reason)
    if isinstance(p, DeliveryPayload):
        return (
            p.delivery_id, p.order_id, p.warehouse_id, p.carrier, p.vehicle_id, p.destination_region,
            p.promised_by, p.delivered_at, p.units, p.units_delivered, p.units_damaged, p.units_missing,
            p.temperature_excursion, p.failure_reason,
        )  # fmt: skip
    if isinstance(p, ComplaintPayload):
        return (
            p.complaint_id, p.order_id or "", p.category.value, p.severity.value, p.channel.value,
            p.description, p.resolution, p.compensation_amount, p.currency,
        )  # fmt: skip
    if isinstance(p, FeedbackPayload):
        outcome = p.revisit_outcome.value if p.revisit_outcome else ""
        return (p.feedback_id, p.csat, p.nps, p.channel.value, outcome, p.comment)
    raise TypeError(f"no row mapping for payload {type(p).__name__}")


def event_row(
    event: Envelope, origin: Origin, content_hash: int | None = None, *, store_contact_pii: bool = False
) -> tuple[str, tuple[Any, ...]]:
    """(raw table, row in `columns_for(family)` order) for one valid event.

    Contact phone numbers and e-mails are masked (sinks/pii.py) in `contacts_json` and in `raw_json`
    unless `store_contact_pii`. `content_hash` defaults to streams.dedupe.fingerprint(event)."""
    envelope = (
        event.event_id, event.event_type, event.schema_version, event.occurred_at, event.client_id, event.source,
    )  # fmt: skip
    value = origin.value if store_contact_pii else mask_raw(origin.value)
    raw = value.decode("utf-8", "replace")
    if content_hash is None:
        from streams.dedupe import fingerprint

        content_hash = fingerprint(event)
    payload = _payload_values(event.payload, store_contact_pii)  # type: ignore[attr-defined]
    row = envelope + payload + (raw, origin.topic, origin.partition, origin.offset, content_hash)
    return RAW_TABLES[event.family], row


UNMASKABLE = b"(not stored: contact masking failed on these bytes; the dead-letter topic has the original)"


def dead_letter_row(
    origin: Origin, reason: str, detail: str, rejected_at: datetime, *, store_contact_pii: bool = False
) -> tuple[Any, ...]:
    """One `dead_letters` row: the original bytes (contact PII masked unless `store_contact_pii`). Never raises
    for any bytes: a dead letter must always be storable."""
    key = origin.key.decode("utf-8", "replace") if origin.key is not None else ""
    value = origin.value
    if not store_contact_pii:
        try:
            value = mask_raw(value)
        except Exception:  # a bug in masking must neither leak PII nor lose the dead letter
            value = UNMASKABLE
    return (origin.topic, origin.partition, origin.offset, key, value, reason, detail, rejected_at)
