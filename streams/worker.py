"""The faust worker: consume every inbound topic, triage each record, write batches to ClickHouse.

Offsets are committed only after ClickHouse holds the batch: faust's `take_events` acks a batch's
events after the loop body returns, and the body returns only once the write is durable and the
dead letters are acknowledged by Kafka.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import faust
import orjson
from faust.types import EventT

from clientpulse.logs import logging_config
from clientpulse.security import aiokafka_config, clickhouse_connect_kwargs, faust_broker_credentials
from clientpulse.settings import Settings
from schemas.alerts import Alert
from schemas.events import Envelope
from schemas.topics import ALERTS, DEAD_LETTER, INBOUND_TOPIC_NAMES, PROFILES
from sinks.clickhouse import ClickHouseWriter, clickhouse_fault, connect
from sinks.rows import Origin
from streams.alerting import OPEN_EPISODES_SQL, OpenEpisode, RiskState, adopt_open_episode
from streams.assessing import RiskBatch, as_datetime, assess_batch
from streams.commit_guard import CommitGuard, disable_gap_filling, strict_commit_head
from streams.dedupe import Known, known_from_rows, lookup
from streams.event_clock import Deadlines, EventClock
from streams.intake import BatchPlan, Rejected, plan_batch
from streams.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from streams.metrics import WorkerMetrics
from streams.profile import ClientProfile, ProfileSnapshot, epoch_seconds, snapshot
from streams.profiling import ProfileBatch, profile_batch
from streams.quarantine import isolate
from streams.tansu_compat import patch_faust_highwaters
from streams.tiering import TierChange

log = logging.getLogger(__name__)

DLQ_HEADER_PREFIX = "clientpulse.dlq."


def create_app(settings: Settings) -> faust.App:
    patch_faust_highwaters(settings.kafka_bootstrap, aiokafka_config(settings))
    disable_gap_filling()
    strict_commit_head(INBOUND_TOPIC_NAMES)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        # SASL/TLS (clientpulse.security): faust has no TLS URL scheme; its consumer, producer and topic
        # creation take the protocol from these credentials (None = PLAINTEXT).
        broker_credentials=faust_broker_credentials(settings),
        datadir=str(settings.data_dir / "faust"),
        # The profile table lives in memory and is rebuilt from its changelog topic on start;
        # rocksdict:// keeps it on disk instead (faster restarts for very many clients).
        store=settings.table_store,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        # A brand-new consumer group must read the topics from the beginning, not from "now".
        consumer_auto_offset_reset="earliest",
        # Rebalance and session timeouts: on tansu a group join completes after about half the
        # rebalance timeout, so faust's 60 s default meant a ~30 s start. 6 s joins in ~3 s and is
        # still far above our batch write time. Heartbeat must stay well below the session timeout.
        broker_rebalance_timeout=6.0,
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        # kafka-python style max_poll_interval: a ClickHouse outage blocks the agent while the
        # writer retries; a large value keeps the group from evicting us meanwhile.
        broker_max_poll_interval=300.0,
        # The leader-assignor topic is only needed for faust's leader-election features we don't use.
        topic_disable_leader=True,
        web_enabled=settings.worker_web_port > 0,
        web_port=settings.worker_web_port or 6066,
        web_bind=settings.worker_web_bind,  # loopback unless told: metrics and the dashboard are not public
        # Larger in-memory buffers let take_events fill whole batches instead of many small ones.
        stream_buffer_maxsize=max(4096, settings.sink_batch_size * 2),
    )
    source = app.topic(*INBOUND_TOPIC_NAMES, key_serializer="raw", value_serializer="raw")
    dead_letter_topic = app.topic(DEAD_LETTER.name, key_serializer="raw", value_serializer="raw")
    profiles_topic = app.topic(PROFILES.name, key_serializer="raw", value_serializer="raw")
    # Client profiles, keyed by client_id bytes. use_partitioner: the changelog partition is chosen by
    # the key's murmur2 hash, the same hash our producers use for the inbound topics, so the table stays
    # co-partitioned with its input even though one batch holds events of several partitions.
    profiles = app.Table(
        "client_profiles",
        default=None,
        partitions=settings.partitions,
        use_partitioner=True,
        key_type=bytes,  # bytes types make faust use the raw codec, also when it reads the changelog back
        value_type=bytes,
    )
    # Alert memory per client (streams.alerting.RiskState), beside the profile: profiles stay a pure
    # function of the events, while this depends on when the client was assessed.
    risks = app.Table(
        "client_risk",
        default=None,
        partitions=settings.partitions,
        use_partitioner=True,
        key_type=bytes,
        value_type=bytes,
    )
    alerts_topic = app.topic(ALERTS.name, key_serializer="raw", value_serializer="raw")
    state: dict[str, Any] = {}
    adoptable: dict[str, OpenEpisode] = {}  # open churn episodes in ClickHouse (see _adopt_open_episodes)
    metrics = WorkerMetrics()
    clock = EventClock(idle_seconds=settings.idle_clock_seconds)
    deadlines = Deadlines()
    # One writer at a time: batches and the event-time timer both change tables and write ClickHouse.
    turn = asyncio.Lock()

    @app.task
    async def open_clickhouse() -> None:
        # chdb lives in this process; one thread owns all calls into it.
        state["executor"] = ThreadPoolExecutor(1, thread_name_prefix="clickhouse")
        loop = asyncio.get_running_loop()
        # A ClickHouse server that is down at start is waited for, like one that goes down later.
        client = await loop.run_in_executor(state["executor"], _connect_with_retry, settings)
        fault = clickhouse_fault(settings.fault_clickhouse_down_file)
        state["writer"] = ClickHouseWriter(client, sla=settings.sla, fault=fault)  # sla_targets for the BI views

    if settings.embedded_clickhouse and settings.worker_web_port > 0:
        # chdb admits one process, and while the worker runs it is this one: it serves the read-only
        # dashboard at /dashboard/ on its loopback web port, on the thread that owns chdb.
        from clientpulse.dashboard import mount_on_faust

        mount_on_faust(
            app, clickhouse_connect_kwargs(settings), settings.clickhouse_database, lambda: state.get("executor")
        )

    guard = CommitGuard(INBOUND_TOPIC_NAMES)

    @app.timer(2.0)
    async def guard_commits() -> None:
        await guard.check(app.consumer, idle=state.get("batches_in_flight", 0) == 0)
        metrics.ready.set(int(_ready()))
        if "writer" in state:  # retries happen inside a write that may not return for a while: count live
            retries = state["writer"].stats.retries
            metrics.sink_retries.inc(retries - state.get("retries_seen", 0))
            state["retries_seen"] = retries
        metrics.profiles.set(len(profiles))
        if app.consumer is not None:
            metrics.set_lag(_lag())

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(metrics.exposition(), content_type=METRICS_CONTENT_TYPE)

    @app.page("/health/live")
    async def live(web: Any, request: Any) -> Any:
        return web.json({"status": "live"})  # the event loop answers: the process is not wedged

    @app.page("/health/ready")
    async def ready(web: Any, request: Any) -> Any:
        ok = _ready()
        return web.json({"status": "ready" if ok else "starting"}, status=200 if ok else 503)

    @app.timer(1.0)
    async def event_time_timer() -> None:
        # Absence of events: when the stream is idle the clock follows the wall clock, and clients whose
        # deadline passed (a cadence silence, an SLA due time, a reminder) are assessed without any event.
        if not _ready() or not clock.progress:
            return
        async with turn:
            await _refresh_deadlines()
            now = clock.tick(_lagging())
            if now is not None:
                await assess_due(now)

    @app.on_rebalance_complete.connect
    async def mark_ready(sender: faust.App, **_: Any) -> None:
        deadlines.stale = True  # partitions moved: rebuild from the local part of the risk table
        # Readiness for local orchestration (demo, tests): partitions assigned, offsets sought.
        ready_file(settings).parent.mkdir(parents=True, exist_ok=True)
        ready_file(settings).write_text(json.dumps({"pid": os.getpid(), "ready_at": datetime.now(UTC).isoformat()}))

    @app.agent(source)
    async def intake(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(settings.sink_batch_size, within=settings.sink_batch_seconds):
            state["batches_in_flight"] = state.get("batches_in_flight", 0) + 1
            try:
                await handle_batch(events)
            finally:
                state["batches_in_flight"] -= 1

    read: dict[tuple[str, int], int] = {}  # highest inbound offset processed, per partition

    def _lagging() -> set[tuple[str, int]]:
        """Inbound partitions with records not yet processed (unknown end offset counts as lagging)."""
        consumer = app.consumer
        out = set()
        for tp in consumer.assignment():
            if tp.topic not in INBOUND_TOPIC_NAMES:
                continue
            end = consumer.highwater(tp)
            key = (tp.topic, tp.partition)
            position = read[key] + 1 if key in read else consumer._committed_offset.get(tp) or 0
            if end is None or end < 0 or position < end:
                out.add(key)
        return out

    def _lag() -> dict[tuple[str, int], int]:
        """Records not yet processed per inbound partition (by the fetch high watermark)."""
        consumer = app.consumer
        out = {}
        for tp in consumer.assignment():
            end = consumer.highwater(tp) if tp.topic in INBOUND_TOPIC_NAMES else None
            if end is not None and end >= 0:
                key = (tp.topic, tp.partition)
                out[key] = end - (read[key] + 1 if key in read else consumer._committed_offset.get(tp) or 0)
        return out

    async def _refresh_deadlines() -> None:
        # At start and after a rebalance: the deadlines of this worker's clients, from the risk table.
        if deadlines.stale:
            await _adopt_open_episodes()
            deadlines.rebuild((k.decode(), RiskState.from_bytes(v).due_at) for k, v in risks.items() if v)

    async def _adopt_open_episodes() -> None:
        """After a crash ClickHouse may hold a churn raise whose risk state never reached the changelog:
        re-reading the batch must continue that episode, not raise a second one under another id."""
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(
            state["executor"], state["writer"].read, "open episodes", OPEN_EPISODES_SQL, {}
        )
        mine = {tp.partition for tp in app.consumer.assignment() if tp.topic in INBOUND_TOPIC_NAMES}
        adoptable.clear()
        for client_id, *rest in rows:
            if client_partition(client_id, settings.partitions) in mine:
                adoptable[client_id] = OpenEpisode(*rest)

    def _adopt_due(items: Sequence[tuple[Any, ...]]) -> None:
        # Only once the client is assessed at or after the episode's raise: a replay from earlier
        # offsets (a rebuild) must first reach that instant, or it would resolve the episode early.
        for _, snap, _ in items:
            found = adoptable.get(snap.client_id)
            if found is None or snap.as_of < datetime.fromisoformat(found.episode):
                continue
            del adoptable[snap.client_id]
            adopted = adopt_open_episode(_load_risk(risks, snap.client_id), snap.client_id, found)
            if adopted is not None:
                risks[snap.client_id.encode()] = adopted.to_bytes()
                log.warning("continuing open churn episode %s of %s found in ClickHouse", found.episode, snap.client_id)

    def _ready() -> bool:
        recovery = app.tables.recovery
        return "writer" in state and recovery.completed.is_set() and not app.rebalancing and not app.in_recovery

    async def handle_batch(events: list[EventT]) -> None:
        # Never touch profiles before the table is recovered: faust can hand us records it fetched
        # before recovery finished (the race behind faust-streaming #596); they wait here and are
        # applied to the recovered profiles (re-deliveries of them are harmless: apply is idempotent).
        while not _ready():
            await asyncio.sleep(0.05)
        async with turn:
            await _refresh_deadlines()
            origins = [_origin(e) for e in events]
            now = datetime.now(UTC)
            plan = plan_batch(
                origins,
                now,
                settings.max_message_bytes,
                max_future_skew=timedelta(hours=settings.max_future_skew_hours),
                store_contact_pii=settings.store_contact_pii,
            )
            plan = plan.without_reused(await _stored_fingerprints(plan.keys()))  # event_id_reused
            for origin in origins:
                key = (origin.topic, origin.partition)
                read[key] = max(read.get(key, -1), origin.offset)
            for origin, event in zip(plan.sources, plan.events, strict=True):
                clock.observe((origin.topic, origin.partition), epoch_seconds(event.occurred_at))
            clock_now = clock.settle(_lagging())

            def domain_step(events: Sequence[Envelope]) -> tuple[ProfileBatch, dict[str, int], RiskBatch]:
                # Pure in the events (the loads re-read the tables), so quarantine may run it again.
                updates = profile_batch(events, lambda client_id: _load(profiles, client_id), settings.tiers)
                items, later = _as_of_clock(updates, clock_now)
                _adopt_due(items)
                return updates, later, assess_batch(items, lambda c: _load_risk(risks, c), settings.risk_config, now)

            # Poison pills: events the domain step raises for are dead-lettered (internal_error), not retried.
            (updates, later, assessed), poisoned = isolate(plan.events, domain_step)
            if poisoned:
                plan = plan.without_poisoned(poisoned)
                log.error("dead-lettered %d event(s) whose processing raised: %s", len(poisoned), _details(plan))
            rows = _merge_rows(plan.rows, updates.rows, assessed.rows)
            await write_rows(rows, lambda: _store(updates.profiles, assessed))
            pending = [await _publish_profile(profiles_topic, snap, updates.tier_changes) for snap in updates.snapshots]
            pending += [await _publish_alert(alerts_topic, a) for a in assessed.alerts]
            if plan.rejected:
                pending += await _publish_dead_letters(dead_letter_topic, plan.rejected)
            await asyncio.gather(*pending)
            metrics.count_batch(plan.per_type)
            metrics.count_alerts((a.kind.value, a.status.value) for a in assessed.alerts)
            deadlines.update(assessed.deadlines)
            deadlines.update({c: min(t, deadlines.due_at.get(c, t)) for c, t in later.items()})
            if clock_now is not None:
                await assess_due(clock_now)

    async def _stored_fingerprints(keys: list[tuple[str, UUID]]) -> Known:
        """The stored content fingerprints of a batch's event ids: one primary-key lookup query per batch."""
        loop = asyncio.get_running_loop()
        rows: list[tuple[Any, ...]] = []
        for sql, params in lookup(keys):
            rows += await loop.run_in_executor(state["executor"], state["writer"].read, "event_id lookup", sql, params)
        return known_from_rows(rows)

    async def assess_due(now: int) -> None:
        """The event-time timer's work: assess clients whose deadline is at or before `now`, as of `now`
        (also those this batch changed: they were assessed as of their own latest event)."""
        due = deadlines.due(now)
        if not due:
            return
        items = []
        for client_id in due:
            profile = _load(profiles, client_id)
            if profile is not None:
                items.append((profile, snapshot(profile, as_datetime(now)), None))
        emitted_at = datetime.now(UTC)
        _adopt_due(items)
        assessed, broken = isolate(
            items,
            lambda its: assess_batch(its, lambda c: _load_risk(risks, c), settings.risk_config, emitted_at),
            client_of=lambda item: item[0].client_id,
        )
        if broken:  # no event to dead-letter: log it; the client's deadline is dropped until its next event
            log.error("risk assessment raised for %s", "; ".join(f"{i[0].client_id}: {e!r}"[:300] for i, e in broken))
        await write_rows(assessed.rows, lambda: _store({}, assessed), store_on_cancel=False)
        await asyncio.gather(*[await _publish_alert(alerts_topic, a) for a in assessed.alerts])
        metrics.count_alerts((a.kind.value, a.status.value) for a in assessed.alerts)
        deadlines.update({c: assessed.deadlines.get(c) for c in due})

    async def write_rows(rows: dict[str, list[tuple[Any, ...]]], store: Any, store_on_cancel: bool = True) -> None:
        """ClickHouse first, then the tables: a changelog entry must not get ahead of the rows (a replay
        would then see no change and write nothing). faust flushes the changelog before it commits."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        write = loop.run_in_executor(state["executor"], state["writer"].write, rows)
        try:
            await asyncio.shield(write)
            metrics.record_write(loop.time() - started, sum(len(r) for r in rows.values()))
        except asyncio.CancelledError:
            # Stopping: finish the durable write; a batch also stores what it reflects, since faust acks
            # (and then commits) its offsets on the way out. The timer has no offsets: its clients keep
            # their deadlines in the risk table and are assessed again after the restart (the producer
            # may already be stopped, so storing now would crash the shutdown).
            await write
            if store_on_cancel:
                store()
            raise
        store()

    def _store(changed: dict[str, ClientProfile], assessed: RiskBatch) -> None:
        _store_profiles(profiles, changed)
        for client_id, risk in assessed.states.items():
            risks[client_id.encode()] = risk.to_bytes()

    return app


def client_partition(client_id: str, partitions: int) -> int:
    """The partition our producers (kafka-python's default partitioner) send a client's events to."""
    from kafka.partitioner.default import murmur2

    return (murmur2(client_id.encode()) & 0x7FFFFFFF) % partitions


def _connect_with_retry(settings: Settings, max_backoff: float = 30.0) -> Any:
    """Open ClickHouse, waiting with backoff while it is unreachable (logged without the password)."""
    delay = 0.5
    while True:
        try:
            return connect(clickhouse_connect_kwargs(settings), settings.clickhouse_database)
        except Exception as exc:
            log.warning("ClickHouse unreachable (%s); retrying in %.1fs", type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, max_backoff)


def ready_file(settings: Settings) -> Path:
    return settings.data_dir / "run" / f"{settings.app_id}.ready"


def _origin(event: EventT) -> Origin:
    m = event.message
    return Origin(topic=m.topic, partition=m.partition, offset=m.offset, key=m.key, value=m.value or b"")


def _store_profiles(table: Any, changed: dict[str, ClientProfile]) -> None:
    for client_id, profile in changed.items():
        table[client_id.encode()] = profile.to_bytes()


def _as_of_clock(updates: ProfileBatch, clock_now: int | None) -> tuple[list[Any], dict[str, int]]:
    """The batch's changed clients to assess, each as of its latest event or the event-time clock,
    whichever is earlier: a client read ahead of a lagging topic is assessed as of the clock (its other
    events may still be on their way) and again, through its deadline, once the clock reaches it."""
    changes = {c.client_id: c for c in updates.tier_changes}
    items, later = [], {}
    for snap in updates.snapshots:
        profile = updates.profiles[snap.client_id]
        if clock_now is not None and profile.watermark is not None and profile.watermark > clock_now:
            later[snap.client_id] = profile.watermark
            snap = replace(snapshot(profile, as_datetime(clock_now)), tier=snap.tier)
        items.append((profile, snap, changes.get(snap.client_id)))
    return items, later


def _details(plan: BatchPlan) -> str:
    return "; ".join(sorted({r.detail for r in plan.rejected if r.reason == "internal_error"}))


def _load_risk(table: Any, client_id: str) -> RiskState | None:
    stored = table.get(client_id.encode())
    return RiskState.from_bytes(stored) if stored else None


def _merge_rows(*parts: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    for part in parts:
        for table, rows in part.items():
            out.setdefault(table, []).extend(rows)
    return out


async def _publish_alert(topic: faust.TopicT, alert: Alert) -> Any:
    return await topic.send(key=alert.client_id.encode(), value=alert.model_dump_json().encode())


def _load(table: Any, client_id: str) -> ClientProfile | None:
    stored = table.get(client_id.encode())
    return ClientProfile.from_bytes(stored) if stored else None


async def _publish_profile(topic: faust.TopicT, snap: ProfileSnapshot, changes: list[TierChange]) -> Any:
    """One message per changed profile on the compacted profiles topic; a tier change rides along."""
    body = snap.to_json_dict()
    change = next((c for c in changes if c.client_id == snap.client_id), None)
    body["tier_change"] = (
        {"old": change.old, "new": change.new, "at": change.at.isoformat()} if change is not None else None
    )
    return await topic.send(key=snap.client_id.encode(), value=orjson.dumps(body))


async def _publish_dead_letters(topic: faust.TopicT, rejected: list[Rejected]) -> list[Any]:
    """Original bytes as the value, origin and reason as headers (the Kafka Connect DLQ convention)."""
    futures = []
    for r in rejected:
        o = r.origin
        headers = {
            f"{DLQ_HEADER_PREFIX}reason": r.reason.encode(),
            f"{DLQ_HEADER_PREFIX}detail": r.detail.encode(),
            f"{DLQ_HEADER_PREFIX}topic": o.topic.encode(),
            f"{DLQ_HEADER_PREFIX}partition": str(o.partition).encode(),
            f"{DLQ_HEADER_PREFIX}offset": str(o.offset).encode(),
        }
        futures.append(await topic.send(key=o.key, value=o.value, headers=headers))
    return futures


def run_worker(settings: Settings) -> None:
    """Run the faust worker in the foreground until SIGINT/SIGTERM."""
    from faust.worker import Worker

    ready_file(settings).unlink(missing_ok=True)
    app = create_app(settings)
    logging.getLogger("clickhouse_connect").setLevel(logging.WARNING)
    worker = Worker(
        app,
        loglevel=settings.log_level,
        quiet=True,
        # one handler, text or JSON lines, with secrets and contact data redacted (clientpulse.logs)
        logging_config=logging_config(settings.log_level, settings.log_format, settings.secrets()),
    )
    worker.execute_from_commandline()
