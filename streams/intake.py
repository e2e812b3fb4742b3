"""Intake rules: which Kafka records become events and which go to the dead-letter topic, and why.

Pure: plain records in, plain decisions out. The faust agent only moves bytes around this.
"""

from __future__ import annotations

import traceback
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.events import Envelope
from schemas.topics import FAMILY_BY_TOPIC
from schemas.validation import Rejection, parse_event
from sinks.rows import Origin, dead_letter_row, event_row

DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Rejected:
    origin: Origin
    reason: str
    detail: str


def admit(origin: Origin, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Envelope | Rejected:
    """Decode and check one record: the contract, then the routing rules the contract implies."""
    if not origin.value:
        return Rejected(origin, "empty_value", "record has no value")
    if len(origin.value) > max_bytes:
        return Rejected(origin, "too_large", f"record is {len(origin.value)} bytes, limit is {max_bytes}")
    parsed = parse_event(origin.value)
    if isinstance(parsed, Rejection):
        return Rejected(origin, parsed.reason, parsed.detail)
    expected_family = FAMILY_BY_TOPIC.get(origin.topic)
    if expected_family is not None and parsed.family != expected_family:
        return Rejected(
            origin, "wrong_topic", f"event_type {parsed.event_type} does not belong on topic {origin.topic}"
        )
    if origin.key is None:
        return Rejected(origin, "missing_key", "record key is null; it must equal client_id")
    if origin.key != parsed.client_id.encode():
        key = origin.key.decode("utf-8", "replace")[:80]
        return Rejected(origin, "key_mismatch", f"record key {key!r} differs from client_id {parsed.client_id!r}")
    return parsed


@dataclass
class BatchPlan:
    """What one consumed batch turns into: rows per ClickHouse table and the dead letters to publish."""

    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    events: list[Envelope] = field(default_factory=list)
    sources: list[Origin] = field(default_factory=list)
    """Where each of `events` was read from (same order)."""
    rejected: list[Rejected] = field(default_factory=list)
    per_type: Counter[str] = field(default_factory=Counter)


def plan_batch(origins: Iterable[Origin], now: datetime, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> BatchPlan:
    plan = BatchPlan()
    for origin in origins:
        try:
            result = admit(origin, max_bytes)
            if not isinstance(result, Rejected):
                table, row = event_row(result, origin)
        except Exception as exc:
            result = Rejected(origin, "internal_error", _summary(exc))
        if isinstance(result, Rejected):
            plan.rejected.append(result)
            plan.rows.setdefault("dead_letters", []).append(dead_letter_row(origin, result.reason, result.detail, now))
            plan.per_type[f"rejected:{result.reason}"] += 1
            continue
        plan.rows.setdefault(table, []).append(row)
        plan.events.append(result)
        plan.sources.append(origin)
        plan.per_type[result.event_type] += 1
    return plan


def _summary(exc: BaseException) -> str:
    """`ValueError: msg (at sinks/rows.py:88 in event_row)`: enough to find the bug, no payload data."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename.rsplit('/', 2)[-1]}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    return f"{type(exc).__name__}: {str(exc)[:300]}{where}"
