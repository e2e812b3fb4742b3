"""Intake rules: which Kafka records become events and which go to the dead-letter topic, and why.

Pure: plain records in, plain decisions out. The faust agent only moves bytes around this. A batch goes
through three decisions, each returning a new `BatchPlan`:

1. `plan_batch`: each record on its own: size, contract, time plausibility, routing (`admit`).
2. `BatchPlan.without_reused`: event ids already stored (or earlier in the batch) with other content
   (`event_id_reused`), given the stored fingerprints the worker looked up (streams/dedupe.py).
3. `BatchPlan.without_poisoned`: events the domain step raised for (`internal_error`), as found by
   streams/quarantine.py.
"""

from __future__ import annotations

import traceback
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any
from uuid import UUID

from schemas.events import Envelope
from schemas.topics import FAMILY_BY_TOPIC
from schemas.validation import Rejection, parse_event
from sinks.rows import Origin, dead_letter_row, event_row
from streams.dedupe import Known, fingerprint, reused

DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
DEFAULT_MAX_FUTURE_SKEW = timedelta(hours=24)


@dataclass(frozen=True)
class Rejected:
    origin: Origin
    reason: str
    detail: str


def admit(
    origin: Origin,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    now: datetime | None = None,
    max_future_skew: timedelta | None = DEFAULT_MAX_FUTURE_SKEW,
) -> Envelope | Rejected:
    """Decode and check one record: the contract, then time plausibility against `now` (the wall clock
    at intake; skipped when None), then the routing rules the contract implies."""
    if not origin.value:
        return Rejected(origin, "empty_value", "record has no value")
    if len(origin.value) > max_bytes:
        return Rejected(origin, "too_large", f"record is {len(origin.value)} bytes, limit is {max_bytes}")
    parsed = parse_event(origin.value)
    if isinstance(parsed, Rejection):
        return Rejected(origin, parsed.reason, parsed.detail)
    if now is not None and max_future_skew is not None and parsed.occurred_at > now + max_future_skew:
        ahead = (parsed.occurred_at - now).total_seconds() / 3600
        return Rejected(
            origin,
            "from_the_future",
            f"occurred_at {parsed.occurred_at.isoformat()} is {ahead:.1f} h ahead of the intake clock "
            f"({now.isoformat()}); at most {max_future_skew.total_seconds() / 3600:g} h are allowed",
        )
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


@dataclass(frozen=True)
class Admitted:
    """A valid event of the batch, its raw-table row and its content fingerprint."""

    event: Envelope
    origin: Origin
    table: str
    row: tuple[Any, ...]
    fingerprint: int


@dataclass
class BatchPlan:
    """What one consumed batch turns into: rows per ClickHouse table and the dead letters to publish."""

    admitted: list[Admitted] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    rejected_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    """When the batch was taken in (wall clock): the dead letters' `rejected_at`."""
    store_contact_pii: bool = False

    @property
    def events(self) -> list[Envelope]:
        return [a.event for a in self.admitted]

    @property
    def sources(self) -> list[Origin]:
        """Where each of `events` was read from (same order)."""
        return [a.origin for a in self.admitted]

    @cached_property
    def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        rows: dict[str, list[tuple[Any, ...]]] = {}
        for a in self.admitted:
            rows.setdefault(a.table, []).append(a.row)
        for r in self.rejected:
            row = dead_letter_row(
                r.origin, r.reason, r.detail, self.rejected_at, store_contact_pii=self.store_contact_pii
            )
            rows.setdefault("dead_letters", []).append(row)
        return rows

    @cached_property
    def per_type(self) -> Counter[str]:
        """Event types and `rejected:<reason>`: what the metrics count."""
        counts: Counter[str] = Counter(a.event.event_type for a in self.admitted)
        counts.update(f"rejected:{r.reason}" for r in self.rejected)
        return counts

    def keys(self) -> list[tuple[str, UUID]]:
        """(client_id, event_id) of the admitted events: what to look up in the raw tables."""
        return [(a.event.client_id, a.event.event_id) for a in self.admitted]

    def without_reused(self, known: Known) -> BatchPlan:
        """Dead-letter events whose id is stored, or earlier in this batch, with a different fingerprint."""
        verdicts = reused([(*key, a.fingerprint) for key, a in zip(self.keys(), self.admitted, strict=True)], known)
        if all(v is None for v in verdicts):
            return self
        keep, rejected = [], list(self.rejected)
        for a, stored in zip(self.admitted, verdicts, strict=True):
            if stored is None:
                keep.append(a)
                continue
            rejected.append(
                Rejected(
                    a.origin,
                    "event_id_reused",
                    f"event_id {a.event.event_id} of client {a.event.client_id!r} was already used for an event "
                    f"with different content (fingerprint {stored:016x}, this one {a.fingerprint:016x}); "
                    "a new fact needs a new event_id",
                )
            )
        return replace(self, admitted=keep, rejected=rejected)

    def without_poisoned(self, failures: Sequence[tuple[Envelope, BaseException]]) -> BatchPlan:
        """Dead-letter the events the domain step raised for (`internal_error`, with a traceback summary)."""
        if not failures:
            return self
        errors = {id(event): exc for event, exc in failures}
        keep, rejected = [], list(self.rejected)
        for a in self.admitted:
            exc = errors.get(id(a.event))
            if exc is None:
                keep.append(a)
            else:
                rejected.append(Rejected(a.origin, "internal_error", _summary(exc)))
        return replace(self, admitted=keep, rejected=rejected)


def plan_batch(
    origins: Iterable[Origin],
    now: datetime,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    *,
    max_future_skew: timedelta | None = DEFAULT_MAX_FUTURE_SKEW,
    store_contact_pii: bool = False,
) -> BatchPlan:
    """Admit or reject each record. `now` is the wall clock at intake: the `from_the_future` reference and
    the dead letters' `rejected_at`."""
    admitted: list[Admitted] = []
    rejected: list[Rejected] = []
    for origin in origins:
        try:
            result = admit(origin, max_bytes, now, max_future_skew)
            if not isinstance(result, Rejected):
                fp = fingerprint(result)
                table, row = event_row(result, origin, fp, store_contact_pii=store_contact_pii)
                admitted.append(Admitted(result, origin, table, row, fp))
                continue
        except Exception as exc:
            result = Rejected(origin, "internal_error", _summary(exc))
        rejected.append(result)
    return BatchPlan(admitted, rejected, now, store_contact_pii)


SUMMARY_FRAMES = 3


def _summary(exc: BaseException) -> str:
    """`ValueError: msg (at sinks/rows.py:88 in event_row < streams/intake.py:170 in plan_batch)`: the
    exception and the innermost frames, enough to find the bug; no payload data, no full traceback."""
    frames = traceback.extract_tb(exc.__traceback__)[-SUMMARY_FRAMES:]
    where = " < ".join(f"{'/'.join(f.filename.rsplit('/', 2)[-2:])}:{f.lineno} in {f.name}" for f in reversed(frames))
    return f"{type(exc).__name__}: {str(exc)[:300]}" + (f" (at {where})" if where else "")
