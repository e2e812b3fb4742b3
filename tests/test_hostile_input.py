"""Hostile input: whatever arrives, it is dead-lettered with a precise reason and the worker goes on.

Hypothesis builds the hostile records, one strategy per kind the issue names (malformed JSON, wrong
types, too large, non-UTF-8, null or mismatched keys, unknown event types, a schema_version from the
future, timestamps far ahead or before 2000, a reused event_id with different content, ...). Each record
carries the reason it must be rejected with, decided by how it was built, never by asking our code.

- Pure properties, many examples in milliseconds: `admit`/`plan_batch` give exactly that reason, never
  raise, and account for every record; fingerprints survive re-serialization; `isolate` finds exactly
  the events a step raises for.
- One end-to-end run: >= 10,000 hostile records interleaved with a generated history, published as raw
  bytes to the real broker, consumed by the real `clientpulse worker` process into real chdb. The worker
  stays alive, every hostile record is in `dead_letter_events` with its reason, every valid event is in
  the raw views exactly once, and the profiles saw only valid events.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from producers.admin import create_topics
from producers.generator import generate
from producers.publisher import Publisher
from schemas.events import EVENT_TYPES, family_of
from schemas.topics import INBOUND, topic_for_event_type
from schemas.validation import Rejection, parse_event
from sinks.clickhouse import connect
from sinks.rows import Origin
from streams.dedupe import fingerprint
from streams.intake import Rejected, admit, plan_batch
from streams.quarantine import isolate

MAX_BYTES = 4096
SKEW = timedelta(hours=24)
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
"""The intake clock of the pure tests (the generated history lies in 2025)."""


# ---------------------------------------------------------------- hostile records


@dataclass(frozen=True)
class Record:
    kind: str
    topic: str
    key: bytes | None
    value: bytes
    reason: str | None
    """The dead-letter reason it must get; None for a valid record (admitted)."""
    names: str = ""
    """A field the rejection detail must name."""
    original: int | None = None
    """Index of the valid event it copies (reused ids, equal re-publications): published after it."""


def _docs(events: Sequence[Any]) -> list[dict[str, Any]]:
    return [json.loads(e.model_dump_json()) for e in events]


def _enc(doc: Any, ascii_only: bool = True) -> bytes:
    return json.dumps(doc, ensure_ascii=ascii_only).encode()


def _key(doc: dict[str, Any]) -> bytes:
    return doc["client_id"].encode()


def _topic(doc: dict[str, Any]) -> str:
    return topic_for_event_type(doc["event_type"])


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        doc = doc[part]
    doc[last] = value


_OFFSETS = st.integers(-12 * 4, 14 * 4).map(lambda q: timezone(timedelta(minutes=15 * q)))
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)  # no lone surrogates: JSON can't carry them

# Wrong types and out-of-contract values per event type (path -> candidates); all are schema_violation.
_ENVELOPE_WRONG: dict[str, list[Any]] = {
    "event_id": [123, True, ["x"], {"a": 1}, "not-a-uuid", None],
    "schema_version": ["1", 1.0, True, None, [1], 0, -3],
    "source": [1, None, ["oms"], {}, "", "s" * 65],
    "occurred_at": [1714550400, True, None, "yesterday", "2024-13-01T00:00:00Z", "2025-02-30T10:00:00Z"],
    "payload": ["x", 1, [], None, True],
}
_PAYLOAD_WRONG: dict[str, dict[str, list[Any]]] = {
    "order": {
        "units": ["5", 5.5, True, None, [5], -1, 10_000_001],
        "service_fee": [True, [1], {"x": 1}, None, "12.345", -1, "abc"],
        "order_id": [1001, None, ["SO"], ""],
        "service_type": [1, "teleport", None],
        "currency": ["cny", "CN", 156],
    },
    "order.cancelled": {"order_id": [1001, None, ""], "reason": [5, ["x"], "r" * 501]},
    "delivery": {
        "units": ["7", 7.0, False, -2],
        "promised_by": [1714550400, "tomorrow", None, "2024-05-02T25:00:00Z"],
        "temperature_excursion": ["true", 1, None],
        "delivery_id": [7, None, ""],
        "units_delivered": [10_000_001, "1", -1],
    },
    "complaint": {
        "severity": [1, "urgent", None],
        "category": [None, 3, "weather"],
        "complaint_id": [7, ""],
        "compensation_amount": [True, "-5", "1.001"],
    },
    "feedback": {"csat": ["5", 5.0, 0, 6, True], "nps": [11, "9", -1], "channel": [3, "fax", None]},
    "client": {
        "name": [1, "", None],
        "contacts": ["li", {"name": "x"}, [{"phone": "x"}], [{"name": "A", "email": "nope"}]],
        "industry": [2, "mining"],
        "region": [None, 5, ""],
    },
}


def _payload_wrong(event_type: str) -> dict[str, list[Any]]:
    return _PAYLOAD_WRONG.get(event_type) or _PAYLOAD_WRONG[family_of(event_type)]


def _instant(lo: datetime, hi: datetime) -> st.SearchStrategy[datetime]:
    span = int((hi - lo).total_seconds())
    return st.integers(0, span).map(lambda s: lo + timedelta(seconds=s))


def hostile(docs: list[dict[str, Any]], now: datetime) -> st.SearchStrategy[Record]:
    """Every kind of bad record, built from the valid documents `docs` (a record's `original` indexes it)."""
    index = st.integers(0, len(docs) - 1)
    ids = st.uuids(version=4).map(str)

    @st.composite
    def base(draw: st.DrawFn) -> tuple[int, dict[str, Any]]:
        i = draw(index)
        doc = copy.deepcopy(docs[i])
        if draw(st.booleans()):
            doc["event_id"] = draw(ids)  # a fresh id, or the valid event's own: both must be rejected
        return i, doc

    @st.composite
    def malformed(draw: st.DrawFn) -> Record:
        _, doc = draw(base())
        raw = _enc(doc, draw(st.booleans()))
        how = draw(st.sampled_from(["truncate", "bom", "junk"]))
        if how == "truncate":
            value = raw[: draw(st.integers(1, len(raw) - 1))]
        elif how == "bom":
            value = b"\xef\xbb\xbf" + raw
        else:
            value = raw + draw(st.sampled_from([b"}", b",", b"x", b"{}", b"\x00"]))
        return Record("malformed_json", _topic(doc), _key(doc), value, "malformed_json")

    @st.composite
    def non_utf8(draw: st.DrawFn) -> Record:
        _, doc = draw(base())
        raw = _enc(doc, ascii_only=False)
        bad = draw(st.sampled_from([b"\xff", b"\xfe", b"\xc3\x28", b"\x80", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88"]))
        at = draw(st.integers(0, len(raw)))
        return Record("non_utf8", _topic(doc), _key(doc), raw[:at] + bad + raw[at:], "malformed_json")

    @st.composite
    def wrong_type(draw: st.DrawFn) -> Record:
        _, doc = draw(base())
        fields = {**_ENVELOPE_WRONG, **{f"payload.{k}": v for k, v in _payload_wrong(doc["event_type"]).items()}}
        path = draw(st.sampled_from(sorted(fields)))
        _set(doc, path, draw(st.sampled_from(fields[path])))
        return Record("wrong_type", _topic(doc), _key(doc), _enc(doc), "schema_violation", names=path)

    @st.composite
    def too_large(draw: st.DrawFn) -> Record:
        _, doc = draw(base())
        doc["padding"] = "x" * draw(st.integers(MAX_BYTES, 2 * MAX_BYTES))  # an unknown field: only the size is wrong
        return Record("too_large", _topic(doc), _key(doc), _enc(doc), "too_large")

    @st.composite
    def empty(draw: st.DrawFn) -> Record:
        _, doc = draw(base())
        return Record("empty", _topic(doc), draw(st.sampled_from([_key(doc), None])), b"", "empty_value")

    @st.composite
    def null_key(draw: st.DrawFn) -> Record:
        _, doc = draw(base())
        return Record("null_key", _topic(doc), None, _enc(doc), "missing_key")

    @st.composite
    def key_mismatch(draw: st.DrawFn) -> Record:
        _, doc = draw(base())
        right = _key(doc)
        key = draw(
            st.one_of(
                st.binary(max_size=40),
                st.sampled_from([right.lower(), right + b" ", b" " + right, right[:-1], right + b"\xff", b""]),
            ).filter(lambda k: k != right)
        )
        return Record("key_mismatch", _topic(doc), key, _enc(doc), "key_mismatch")

    @st.composite
    def wrong_topic(draw: st.DrawFn) -> Record:
        _, doc = draw(base())
        topic = draw(st.sampled_from([t.name for f, t in INBOUND.items() if f != family_of(doc["event_type"])]))
        return Record("wrong_topic", topic, _key(doc), _enc(doc), "wrong_topic")

    @st.composite
    def unknown_type(draw: st.DrawFn) -> Record:
        _, doc = draw(base())
        doc["event_type"] = draw(
            st.one_of(_TEXT, st.sampled_from(["order.teleported", "ORDER.CREATED", "order", "order.created "])).filter(
                lambda t: t not in EVENT_TYPES
            )
        )
        return Record("unknown_type", draw(st.sampled_from(sorted(t.name for t in INBOUND.values()))), _key(doc),
                      _enc(doc), "unknown_event_type")  # fmt: skip

    @st.composite
    def missing_type(draw: st.DrawFn) -> Record:
        _, doc = draw(base())
        topic = _topic(doc)
        del doc["event_type"]
        return Record("missing_type", topic, _key(doc), _enc(doc), "missing_event_type")

    @st.composite
    def future_version(draw: st.DrawFn) -> Record:
        _, doc = draw(base())
        doc["schema_version"] = draw(st.integers(2, 10**12))
        return Record("future_version", _topic(doc), _key(doc), _enc(doc), "schema_violation", names="schema_version")

    def _dated(kind: str, instants: st.SearchStrategy[datetime], reason: str, names: str = "") -> Any:
        @st.composite
        def build(draw: st.DrawFn) -> Record:
            _, doc = draw(base())
            doc["occurred_at"] = draw(instants).astimezone(draw(_OFFSETS)).isoformat()
            return Record(kind, _topic(doc), _key(doc), _enc(doc), reason, names=names)

        return build()

    # Far ahead: at least an hour beyond the allowed skew (so the seconds between building and intake
    # cannot matter), up to the end of 2100; later than 2100 or before 2000 breaks the contract itself.
    far_future = _dated(
        "far_future", _instant(now + SKEW + timedelta(hours=1), datetime(2100, 12, 31, tzinfo=UTC)), "from_the_future"
    )
    after_2100 = _dated(
        "after_2100",
        _instant(datetime(2101, 1, 2, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC)),
        "schema_violation",
        "occurred_at",
    )
    before_2000 = _dated(
        "before_2000",
        _instant(datetime(1, 1, 2, tzinfo=UTC), datetime(1999, 12, 30, tzinfo=UTC)),
        "schema_violation",
        "occurred_at",
    )

    @st.composite
    def naive(draw: st.DrawFn) -> Record:
        _, doc = draw(base())
        doc["occurred_at"] = datetime.fromisoformat(doc["occurred_at"]).replace(tzinfo=None).isoformat()
        return Record("naive", _topic(doc), _key(doc), _enc(doc), "naive_timestamp")

    @st.composite
    def bad_client_id(draw: st.DrawFn) -> Record:
        _, doc = draw(base())
        cid = doc["client_id"]
        doc["client_id"] = draw(st.sampled_from(["", " " + cid, cid + " ", "x" * 65, 5, None, [cid]]))
        return Record("bad_client_id", _topic(doc), cid.encode(), _enc(doc), "invalid_client_id")

    @st.composite
    def reused(draw: st.DrawFn) -> Record:
        i = draw(index)
        doc = copy.deepcopy(docs[i])
        change = draw(st.sampled_from(["source", "occurred_at", "payload"]))
        if change == "source":
            doc["source"] = draw(st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=64).filter(
                lambda s: s != docs[i]["source"]
            ))  # fmt: skip
        elif change == "occurred_at":
            at = datetime.fromisoformat(doc["occurred_at"]) - timedelta(seconds=draw(st.integers(1, 10**6)))
            doc["occurred_at"] = at.isoformat()
        else:  # a different fact under the same id: another order id, complaint id, ...
            payload = doc["payload"]
            field = next(k for k in payload if k.endswith("_id") or k == "name")
            payload[field] = payload[field] + "-" + str(draw(st.integers(0, 999)))
        return Record("reused_id", _topic(doc), _key(doc), _enc(doc), "event_id_reused", original=i)

    return st.one_of(
        malformed(), non_utf8(), wrong_type(), too_large(), empty(), null_key(), key_mismatch(), wrong_topic(),
        unknown_type(), missing_type(), future_version(), far_future, after_2100, before_2000, naive(),
        bad_client_id(), reused(),
    )  # fmt: skip


def equal_copies(docs: list[dict[str, Any]]) -> st.SearchStrategy[Record]:
    """The same event published again, byte-different but equal in content: admitted, stored once."""

    @st.composite
    def build(draw: st.DrawFn) -> Record:
        i = draw(st.integers(0, len(docs) - 1))
        doc = copy.deepcopy(docs[i])
        if draw(st.booleans()):  # the same instant, another offset
            doc["occurred_at"] = datetime.fromisoformat(doc["occurred_at"]).astimezone(draw(_OFFSETS)).isoformat()
        if draw(st.booleans()):
            doc["x_trace_id"] = draw(_TEXT)  # an unknown field: ignored, kept in raw_json only
        for money in ("service_fee", "goods_value", "compensation_amount"):
            if money in doc["payload"] and draw(st.booleans()):
                doc["payload"][money] = float(Decimal(doc["payload"][money]))  # "12.50" -> 12.5
        if draw(st.booleans()):
            doc = dict(reversed(list(doc.items())))
        value = json.dumps(doc, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 1]))).encode()
        return Record("equal_copy", _topic(doc), _key(doc), value, None, original=i)

    return build()


def _origin(r: Record, offset: int = 0) -> Origin:
    return Origin(topic=r.topic, partition=0, offset=offset, key=r.key, value=r.value)


def _valid_origin(doc: dict[str, Any], offset: int = 0) -> Origin:
    return Origin(topic=_topic(doc), partition=0, offset=offset, key=_key(doc), value=_enc(doc))


# ---------------------------------------------------------------- pure properties

DOCS = _docs(generate(clients=8, days=60, seed=21).events)
FAST = hsettings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(hostile(DOCS, NOW))
def test_admit_rejects_each_hostile_record_with_its_reason(record: Record) -> None:
    if record.reason == "event_id_reused":
        original = _valid_origin(DOCS[record.original])  # type: ignore[index]
        plan = plan_batch([original, _origin(record, 1)], NOW, MAX_BYTES, max_future_skew=SKEW).without_reused({})
        assert [a.origin for a in plan.admitted] == [original]
        assert [(r.origin.offset, r.reason) for r in plan.rejected] == [(1, "event_id_reused")]
        assert str(DOCS[record.original]["event_id"]) in plan.rejected[0].detail  # type: ignore[index]
        return
    result = admit(_origin(record), MAX_BYTES, NOW, SKEW)
    assert isinstance(result, Rejected), f"{record.kind} admitted: {record.value[:300]!r}"
    assert result.reason == record.reason, (record.kind, result.detail, record.value[:300])
    assert result.detail and record.names in result.detail


@FAST
@given(equal_copies(DOCS))
def test_an_equal_copy_is_admitted_with_the_same_fingerprint(record: Record) -> None:
    original = _valid_origin(DOCS[record.original])  # type: ignore[index]
    plan = plan_batch([original, _origin(record, 1)], NOW, MAX_BYTES, max_future_skew=SKEW)
    assert plan.rejected == []
    first, again = plan.admitted
    assert first.fingerprint == again.fingerprint
    assert plan.without_reused({}) is plan
    # ... also against what is already stored under that id (a later batch)
    stored = {(first.event.client_id, first.event.event_id): frozenset({first.fingerprint})}
    later = plan_batch([_origin(record, 2)], NOW, MAX_BYTES, max_future_skew=SKEW)
    assert later.without_reused(stored) is later


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(hostile(DOCS, NOW), equal_copies(DOCS)), max_size=60), st.randoms(use_true_random=False))
def test_plan_batch_accounts_for_every_record(records: list[Record], rnd: random.Random) -> None:
    # valid events, then the records (a reused id or an equal copy always after its original)
    valid = rnd.sample(range(len(DOCS)), k=min(40, len(DOCS)))
    originals = sorted({r.original for r in records if r.original is not None} | set(valid))
    origins = [_valid_origin(DOCS[i], offset=n) for n, i in enumerate(originals)]
    origins += [_origin(r, offset=len(origins) + n) for n, r in enumerate(records)]

    plan = plan_batch(origins, NOW, MAX_BYTES, max_future_skew=SKEW).without_reused({})

    expected = Counter(f"rejected:{r.reason}" for r in records if r.reason is not None)
    expected.update(DOCS[i]["event_type"] for i in originals)
    expected.update(DOCS[r.original]["event_type"] for r in records if r.reason is None)  # type: ignore[index]
    assert plan.per_type == expected
    assert len(plan.admitted) + len(plan.rejected) == len(origins)
    assert len(plan.rows.get("dead_letters", [])) == len(plan.rejected)
    assert {str(e.event_id) for e in plan.events} == {str(DOCS[i]["event_id"]) for i in originals}


@hsettings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300), st.one_of(st.none(), st.binary(max_size=20)))
def test_arbitrary_bytes_are_rejected_never_raised(value: bytes, key: bytes | None) -> None:
    plan = plan_batch([Origin(INBOUND["order"].name, 0, 0, key, value)], NOW, MAX_BYTES, max_future_skew=SKEW)
    assert len(plan.rejected) == 1 and plan.rejected[0].reason != "internal_error", plan.rejected[0].detail


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats() | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=6,
)


def _paths(doc: Any, prefix: str = "") -> list[str]:
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in [prefix + k, *_paths(v, prefix + k + ".")]]
    return []


@hsettings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_json_value_in_any_field_is_decided_by_the_contract_not_by_a_crash(data: st.DataObject) -> None:
    """No value, in no field, makes our own code raise (that would be `internal_error`)."""
    template = data.draw(st.sampled_from(DOCS))
    doc = copy.deepcopy(template)
    _set(doc, data.draw(st.sampled_from(_paths(doc))), data.draw(_JSON))
    origin = Origin(_topic(template), 0, 0, _key(template), _enc(doc))
    plan = plan_batch([origin], NOW, 10**6, max_future_skew=SKEW)
    assert all(r.reason != "internal_error" for r in plan.rejected), plan.rejected[0].detail


def test_the_skew_limit_is_inclusive_and_configurable() -> None:
    doc = copy.deepcopy(DOCS[0])
    doc["occurred_at"] = (NOW + SKEW).isoformat()
    assert not isinstance(admit(_valid_origin(doc), MAX_BYTES, NOW, SKEW), Rejected)
    doc["occurred_at"] = (NOW + SKEW + timedelta(milliseconds=1)).isoformat()
    r = admit(_valid_origin(doc), MAX_BYTES, NOW, SKEW)
    assert isinstance(r, Rejected) and r.reason == "from_the_future" and "24 h" in r.detail
    assert not isinstance(admit(_valid_origin(doc), MAX_BYTES, NOW, SKEW * 2), Rejected)
    assert not isinstance(admit(_valid_origin(doc), MAX_BYTES, None, SKEW), Rejected)  # no clock: no check


def test_a_date_that_overflows_utc_is_a_contract_violation_not_a_crash() -> None:
    for at in ("0001-01-01T00:00:00+08:00", "9999-12-31T23:00:00-05:00"):
        doc = copy.deepcopy(DOCS[0]) | {"occurred_at": at}
        r = parse_event(_enc(doc))
        assert isinstance(r, Rejection) and r.reason == "schema_violation" and "occurred_at" in r.detail, r


def test_reused_ids_against_stored_fingerprints() -> None:
    a, b = DOCS[0], copy.deepcopy(DOCS[0]) | {"source": "another-system"}
    plan = plan_batch([_valid_origin(b)], NOW, MAX_BYTES)
    fp_a = plan_batch([_valid_origin(a)], NOW, MAX_BYTES).admitted[0].fingerprint
    key = (a["client_id"], UUID(a["event_id"]))
    assert plan.without_reused({key: frozenset({fp_a})}).rejected[0].reason == "event_id_reused"
    assert plan.without_reused({key: frozenset({0})}) is plan  # stored before fingerprints existed: unknown
    assert plan.without_reused({key: frozenset({0, plan.admitted[0].fingerprint})}) is plan
    other_client = ("C-SOMEONE-ELSE", UUID(a["event_id"]))
    assert plan.without_reused({other_client: frozenset({fp_a})}) is plan  # identity is (client_id, event_id)


def test_fingerprint_is_stable_and_content_sensitive() -> None:
    event = parse_event(_enc(DOCS[5]))
    assert fingerprint(event) == fingerprint(parse_event(_enc(DOCS[5])))  # type: ignore[arg-type]
    assert fingerprint(event) > 0  # never 0 (0 means unknown)
    moved = copy.deepcopy(DOCS[5]) | {"occurred_at": "2025-06-01T00:00:00Z"}
    assert fingerprint(parse_event(_enc(moved))) != fingerprint(event)  # type: ignore[arg-type]


# ---------------------------------------------------------------- poison pills: isolate (pure)


@hsettings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("ABCD"), st.integers(0, 9)), max_size=40),
    st.integers(5, 40),
)
def test_isolate_finds_exactly_the_events_a_step_raises_for(items: list[tuple[str, int]], limit: int) -> None:
    """A state-dependent bug, like a column overflow: the step raises once a client's running total of the
    events it is given passes `limit`. The events to dead-letter are those that would push it over."""

    @dataclass(frozen=True)
    class Ev:
        client_id: str
        amount: int
        n: int

    events = [Ev(c, a, n) for n, (c, a) in enumerate(items)]
    calls = 0

    def step(batch: Sequence[Ev]) -> dict[str, int]:
        nonlocal calls
        calls += 1
        totals: dict[str, int] = {}
        for e in batch:
            totals[e.client_id] = totals.get(e.client_id, 0) + e.amount
            if totals[e.client_id] > limit:
                raise OverflowError(f"{e.client_id} total {totals[e.client_id]} > {limit}")
        return totals

    expected_bad, totals = set(), {}
    for e in events:  # independently: a running total that skips what would overflow
        if totals.get(e.client_id, 0) + e.amount > limit:
            expected_bad.add(e.n)
        else:
            totals[e.client_id] = totals.get(e.client_id, 0) + e.amount

    result, failures = isolate(events, step)
    assert {e.n for e, _ in failures} == expected_bad
    assert all(isinstance(exc, OverflowError) for _, exc in failures)
    assert result == {c: t for c, t in totals.items()}
    if not expected_bad:
        assert calls == 1  # nothing extra while nothing raises


# ---------------------------------------------------------------- end to end: the real worker

TARGET = 10_000
PER_EXAMPLE = 50


def _collect(docs: list[dict[str, Any]], now: datetime, n: int, run_seed: int) -> list[tuple[int, Record]]:
    """(position, record) pairs drawn by hypothesis: `n` hostile records plus equal copies; a record at
    position p is published just before valid event p (a reused id or a copy: after its original)."""
    out: list[tuple[int, Record]] = []
    positions = st.integers(0, len(docs))

    @st.composite
    def placed(draw: st.DrawFn, records: st.SearchStrategy[Record]) -> tuple[int, Record]:
        r = draw(records)
        lo = 0 if r.original is None else r.original + 1
        return draw(st.integers(lo, len(docs))) if r.original is not None else draw(positions), r

    @seed(run_seed)
    @hsettings(
        max_examples=n // PER_EXAMPLE + 1,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(
        st.lists(placed(hostile(docs, now)), min_size=PER_EXAMPLE, max_size=PER_EXAMPLE),
        st.lists(placed(equal_copies(docs)), max_size=3),
    )
    def draw_some(bad: list[tuple[int, Record]], copies: list[tuple[int, Record]]) -> None:
        out.extend(bad + copies)

    draw_some()
    return out


def _has_pii_keys(value: bytes) -> bool:
    return b'"phone"' in value or b'"email"' in value


@pytest.mark.integration
def test_ten_thousand_hostile_records_through_the_real_worker(settings, worker_factory) -> None:
    started = time.monotonic()
    run_seed = int(os.environ.get("CLIENTPULSE_HOSTILE_SEED", random.randrange(2**32)))
    history = generate(clients=20, days=60, seed=31)
    valid = history.events
    docs = _docs(valid)
    placed = _collect(docs, datetime.now(UTC), TARGET, run_seed)
    hostile_records = [r for _, r in placed if r.reason is not None]
    copies = [r for _, r in placed if r.reason is None]
    assert len(hostile_records) >= TARGET, len(hostile_records)
    assert {r.kind for r in hostile_records} >= {
        "malformed_json", "non_utf8", "wrong_type", "too_large", "null_key", "key_mismatch", "unknown_type",
        "future_version", "far_future", "before_2000", "reused_id",
    }  # fmt: skip

    by_position: dict[int, list[Record]] = {}
    for position, record in placed:
        by_position.setdefault(position, []).append(record)
    s = settings.model_copy(update={"max_message_bytes": MAX_BYTES})
    create_topics(s.kafka_bootstrap, s.partitions)
    worker = worker_factory(s).start()
    sent = 0
    with Publisher(s.kafka_bootstrap) as pub:
        for p in range(len(valid) + 1):
            for r in by_position.get(p, ()):
                pub.publish_unchecked(r.topic, r.key, r.value)
                sent += 1
            if p < len(valid):
                pub.publish_validated(valid[p])
                sent += 1
    generated_and_sent = time.monotonic() - started
    worker.wait_committed(sent, timeout=240)
    assert worker.process.poll() is None, "the worker died"
    assert worker.stop() == 0
    client = connect(s.clickhouse_dsn, s.clickhouse_database)
    try:
        dead = client.query(
            "SELECT kafka_topic, kafka_key, reason, detail, hex(raw_value) FROM dead_letter_events"
        ).result_rows
        stored = client.query("SELECT event_id, event_type, client_id, source, occurred_at FROM events").result_rows
        profiles = client.query("SELECT client_id, last_event_at, too_late FROM client_profiles").result_rows
    finally:
        client.close()

    # every hostile record is dead-lettered, with its reason (values carrying contacts are stored masked)
    def comparable(topic: str, key: str, reason: str, value: bytes) -> tuple[str, str, str, bytes | None]:
        return topic, key, reason, None if _has_pii_keys(value) else value

    expected_dead = Counter(
        comparable(r.topic, (r.key or b"").decode("utf-8", "replace"), r.reason, r.value)  # type: ignore[arg-type]
        for r in hostile_records
    )
    got_dead = Counter(comparable(t, k, reason, bytes.fromhex(v)) for t, k, reason, _, v in dead)
    assert got_dead == expected_dead, (run_seed, (got_dead - expected_dead).most_common(5),
                                       (expected_dead - got_dead).most_common(5))  # fmt: skip
    assert not [d for d in dead if d[2] == "internal_error"]

    # every valid event exactly once, as published first (a reused id never replaced it)
    assert len(stored) == len(valid) == len({e.event_id for e in valid})
    expected_rows = {(e.event_id, e.event_type, e.client_id, e.source, e.occurred_at) for e in valid}
    assert {(UUID(str(i)), t, c, src, at.replace(tzinfo=UTC)) for i, t, c, src, at in stored} == expected_rows
    assert Counter(t for _, t, *_ in stored) == Counter(e.event_type for e in valid)

    # the profiles saw only valid events: none dated ahead, none made the real ones too late
    last: dict[str, datetime] = {}
    for e in valid:
        last[e.client_id] = max(last.get(e.client_id, e.occurred_at), e.occurred_at)
    assert {c: (at.replace(tzinfo=UTC), late) for c, at, late in profiles} == {c: (t, 0) for c, t in last.items()}

    print(
        f"\nhostile run (seed {run_seed}): {sent} records sent = {len(valid)} valid + {len(copies)} equal copies + "
        f"{len(hostile_records)} hostile; dead-lettered {len(dead)}: {dict(Counter(d[2] for d in dead))}; "
        f"generated+sent in {generated_and_sent:.1f}s, total {time.monotonic() - started:.1f}s"
    )


# ---------------------------------------------------------------- poison pills through the real worker


def _big_order(client_id: str, n: int, units: int) -> dict[str, Any]:
    return {
        "event_id": str(UUID(int=0xB16 << 64 | n, version=4)),
        "event_type": "order.created",
        "schema_version": 1,
        "occurred_at": (datetime(2025, 1, 20, 8, 0, tzinfo=UTC) + timedelta(minutes=n)).isoformat(),
        "client_id": client_id,
        "source": "oms",
        "payload": {
            "order_id": f"BIG-{n}",
            "warehouse_id": "WH-BIG",
            "service_type": "outbound",
            "units": units,
            "service_fee": "10.00",
        },
    }


@pytest.mark.integration
def test_a_poison_pill_is_dead_lettered_and_its_partition_goes_on(settings, worker_factory) -> None:
    """A real bug path, no fault injection: valid orders of 10 million units each. The 430th within a
    week pushes the client's `units_7d` past what its UInt32 column holds, so that profile row can never
    be inserted (before the fix, the writer retried that batch forever and the whole worker stalled).
    Now the domain step raises for it, and that event alone is dead-lettered (internal_error, with a
    traceback summary), along with every later one that overflows again; all else is processed."""
    from kafka import KafkaConsumer

    limit = 2**32 - 1
    units = 10_000_000
    n_big = 436
    fits = limit // units  # 429 orders fit, every later one overflows
    big = [_big_order("C-HUGE", n, units) for n in range(n_big)]
    after = copy.deepcopy(DOCS[0]) | {"client_id": "C-HUGE", "event_id": str(UUID(int=1, version=4))}
    after = {**after, "event_type": "feedback.received", "occurred_at": "2025-01-21T09:00:00+00:00",
             "payload": {"feedback_id": "FB-AFTER", "csat": 2, "channel": "survey"}}  # fmt: skip
    others = generate(clients=10, days=30, seed=41).events

    create_topics(settings.kafka_bootstrap, settings.partitions)
    worker = worker_factory().start()
    with Publisher(settings.kafka_bootstrap) as pub:
        for i in range(max(len(others), len(big))):
            if i < len(others):
                pub.publish_validated(others[i])
            if i < len(big):
                pub.publish_unchecked(_topic(big[i]), b"C-HUGE", _enc(big[i]))
        pub.publish_unchecked(_topic(after), b"C-HUGE", _enc(after))
    total = len(others) + n_big + 1
    worker.wait_committed(total)
    assert worker.process.poll() is None
    log = worker.log()
    assert worker.stop() == 0

    client = connect(settings.clickhouse_dsn, settings.clickhouse_database)
    try:
        q = lambda sql: client.query(sql).result_rows  # noqa: E731
        dead = q("SELECT reason, detail, kafka_key FROM dead_letter_events")
        huge_orders = q("SELECT count(), sum(units) FROM order_events WHERE client_id = 'C-HUGE'")[0]
        profile = q("SELECT orders_lifetime, units_lifetime, units_7d, csat_latest FROM client_profiles "
                    "WHERE client_id = 'C-HUGE'")  # fmt: skip
        by_type = dict(q("SELECT event_type, count() FROM events WHERE client_id != 'C-HUGE' GROUP BY 1"))
    finally:
        client.close()

    assert len(dead) == n_big - fits
    assert {(r, k) for r, _, k in dead} == {("internal_error", "C-HUGE")}
    assert all("ColumnOverflow: units_7d" in d and "sinks/profiles.py" in d for _, d, _ in dead), dead[0]
    assert huge_orders == (fits, fits * units)
    assert profile == [(fits, fits * units, fits * units, 2)]  # the event after the poison was applied
    assert by_type == dict(Counter(e.event_type for e in others))  # nobody else lost anything
    assert "dead-lettered" in log and "ColumnOverflow" in log

    consumer = KafkaConsumer(
        "clientpulse.deadletter.v1", bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
        consumer_timeout_ms=4000,
    )  # fmt: skip
    records = list(consumer)
    consumer.close()
    reasons = Counter(dict(r.headers)["clientpulse.dlq.reason"].decode() for r in records)
    assert reasons == Counter({"internal_error": n_big - fits})
    assert all(json.loads(r.value)["payload"]["order_id"] >= f"BIG-{fits}" for r in records)


def test_the_contract_documents_every_reason_code() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "contract.md").read_text(encoding="utf-8")
    table = {m for m in re.findall(r"^\| `([a-z_]+)` \|", text, re.MULTILINE)}
    reasons = {"empty_value", "too_large", "malformed_json", "missing_event_type", "unknown_event_type"}
    reasons |= {"naive_timestamp", "invalid_client_id", "schema_violation", "wrong_topic", "missing_key"}
    reasons |= {"key_mismatch", "from_the_future", "event_id_reused", "internal_error"}
    assert reasons <= table, reasons - table
