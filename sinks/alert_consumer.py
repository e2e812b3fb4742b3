"""The alert consumer: reads the alerts topic with kafka-python and hands each alert to one target.

At-least-once: offsets are committed only after the batch's deliveries have finished and the target has
flushed, so a crash re-delivers at most one batch; the alert's idempotency key (`alert_id:sequence`)
makes that harmless for receivers. Within one run, (alert_id, sequence) pairs already handled are
skipped, which also absorbs the replay after a rebalance. Nothing stops the loop except a signal,
`idle_exit_seconds` or `max_alerts`: a message that is not an alert, or an alert that cannot be
delivered, goes to the dead-letter file with the reason.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from types import FrameType
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from schemas.alerts import ALERT_ADAPTER, Alert
from schemas.topics import ALERTS
from sinks.alert_delivery import AlertTarget, DeadLetterFile, Outcome

log = logging.getLogger(__name__)


def default_group(target_kind: str) -> str:
    """One group per kind of target, so a webhook and a JSONL archive each get every alert."""
    return f"clientpulse-alerts-{target_kind}"


@dataclass(frozen=True)
class ConsumerOptions:
    bootstrap: str
    group: str
    topic: str = ALERTS.name
    idle_exit_seconds: float | None = None
    """Exit after this long without a message once partitions are assigned (None: run until signalled)."""
    max_alerts: int | None = None
    """Exit after this many alerts were delivered (None: no limit)."""
    poll_timeout_ms: int = 500
    max_poll_records: int = 200
    # tansu completes a group join after about half the *session* timeout: 6 s joins in ~3 s.
    session_timeout_ms: int = 6_000
    heartbeat_interval_ms: int = 1_000
    # The heartbeat thread keeps us in the group while a slow webhook retries; only a batch that takes
    # longer than this gets us evicted (the commit then fails and the batch is re-read, see run()).
    max_poll_interval_ms: int = 300_000
    dedupe_capacity: int = 100_000
    client_config: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """Security keyword arguments for KafkaConsumer (clientpulse.security.kafka_python_config)."""


@dataclass
class ConsumerCounts:
    delivered: int = 0
    filtered: int = 0
    dead_lettered: int = 0
    """Alerts whose delivery failed for good (they are in the dead-letter file)."""
    duplicates_skipped: int = 0
    unparseable: int = 0
    """Messages that are not valid alerts (also in the dead-letter file)."""

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def summary(self) -> str:
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.as_dict().items())


class SeenAlerts:
    """The (alert_id, sequence) pairs handled in this run; the oldest are forgotten beyond `capacity`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        return False

    def add(self, key: str) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        if len(self._keys) > self.capacity:
            self._keys.popitem(last=False)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set `stop` instead of killing us mid-delivery; the old handlers come back afterwards.

    A second signal interrupts at once (a webhook may be retrying for minutes): the alert in flight is
    then not committed, so the next run delivers it again.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class AlertConsumer:
    def __init__(self, target: AlertTarget, options: ConsumerOptions, dead_letters: DeadLetterFile) -> None:
        self.target = target
        self.options = options
        self.dead_letters = dead_letters
        self.counts = ConsumerCounts()
        self.seen = SeenAlerts(options.dedupe_capacity)
        self.stop = threading.Event()

    def run(self, handle_signals: bool = True) -> ConsumerCounts:
        consumer = self._connect()
        try:
            with stop_on_signals(self.stop) if handle_signals else contextlib.nullcontext():
                self._loop(consumer)
        finally:
            consumer.close(autocommit=False)
            self.target.flush()
        return self.counts

    def _connect(self) -> KafkaConsumer:
        o = self.options
        consumer = KafkaConsumer(
            bootstrap_servers=o.bootstrap,
            group_id=o.group,
            client_id=f"{o.group}-consumer",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_poll_records=o.max_poll_records,
            session_timeout_ms=o.session_timeout_ms,
            heartbeat_interval_ms=o.heartbeat_interval_ms,
            max_poll_interval_ms=o.max_poll_interval_ms,
            **o.client_config,
        )
        consumer.subscribe([o.topic])
        return consumer

    def _loop(self, consumer: KafkaConsumer) -> None:
        idle_since: float | None = None  # starts once partitions are assigned: a group join takes seconds
        while not self.stop.is_set():
            batch = consumer.poll(timeout_ms=self.options.poll_timeout_ms)
            records = [r for part in batch.values() for r in part]
            now = time.monotonic()
            if records:
                self._handle_batch(consumer, records)
                idle_since = time.monotonic()
            elif idle_since is None:
                idle_since = now if consumer.assignment() else None
            elif self.options.idle_exit_seconds is not None and now - idle_since >= self.options.idle_exit_seconds:
                return

    def _handle_batch(self, consumer: KafkaConsumer, records: list[ConsumerRecord]) -> None:
        done: dict[TopicPartition, int] = {}
        try:
            for record in records:
                self._handle(record)
                done[TopicPartition(record.topic, record.partition)] = record.offset + 1
                if self.stop.is_set() or self._reached_max():
                    self.stop.set()
                    break
        finally:
            # Only what was handled is committed: after a stop mid-batch the rest is read again next run.
            self._commit(consumer, done)

    def _reached_max(self) -> bool:
        return self.options.max_alerts is not None and self.counts.delivered >= self.options.max_alerts

    def _commit(self, consumer: KafkaConsumer, done: dict[TopicPartition, int]) -> None:
        if not done:
            return
        self.target.flush()
        offsets = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in done.items()}
        try:
            consumer.commit(offsets)
        except CommitFailedError as exc:
            # We were evicted while delivering (a very slow batch): the partitions are re-read after the
            # rejoin, and the alerts handled here are skipped as duplicates, so nothing is lost or resent.
            log.warning("offset commit failed, the batch will be re-read: %s", exc)

    def _handle(self, record: ConsumerRecord) -> None:
        try:
            alert = ALERT_ADAPTER.validate_json(record.value or b"")
        except ValidationError as exc:
            self._dead_letter_record(record, exc)
            return
        if alert.idempotency_key in self.seen:
            self.counts.duplicates_skipped += 1
            return
        self._deliver(alert)
        self.seen.add(alert.idempotency_key)

    def _deliver(self, alert: Alert) -> None:
        result = self.target.deliver(alert)
        if result.outcome is Outcome.DELIVERED:
            self.counts.delivered += 1
        elif result.outcome is Outcome.FILTERED:
            self.counts.filtered += 1
        else:
            self.counts.dead_lettered += 1

    def _dead_letter_record(self, record: ConsumerRecord, exc: ValidationError) -> None:
        raw = record.value or b""
        try:
            value: dict[str, str] = {"value": raw.decode("utf-8")}
        except UnicodeDecodeError:
            value = {"value_base64": base64.b64encode(raw).decode()}
        error = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()[:5])
        origin = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        key = record.key.decode("utf-8", "replace") if record.key else None
        self.dead_letters.append({"error": f"not an alert: {error}", **origin, "key": key, **value})
        self.counts.unparseable += 1


def consume_alerts(
    target: AlertTarget, options: ConsumerOptions, dead_letters: DeadLetterFile, handle_signals: bool = True
) -> ConsumerCounts:
    """Run the consumer until a signal, `idle_exit_seconds` or `max_alerts`; returns the outcome counts."""
    return AlertConsumer(target, options, dead_letters).run(handle_signals)
