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
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import orjson
from faust.types import EventT

from clientpulse.settings import Settings
from schemas.topics import DEAD_LETTER, INBOUND_TOPIC_NAMES, PROFILES
from sinks.clickhouse import ClickHouseWriter, connect
from sinks.rows import Origin
from streams.commit_guard import CommitGuard, disable_gap_filling, strict_commit_head
from streams.intake import Rejected, plan_batch
from streams.profile import ClientProfile, ProfileSnapshot
from streams.profiling import profile_batch
from streams.tansu_compat import patch_faust_highwaters
from streams.tiering import TierChange

log = logging.getLogger(__name__)

DLQ_HEADER_PREFIX = "clientpulse.dlq."


def create_app(settings: Settings) -> faust.App:
    patch_faust_highwaters(settings.kafka_bootstrap)
    disable_gap_filling()
    strict_commit_head(INBOUND_TOPIC_NAMES)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
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
        web_bind="127.0.0.1" if settings.embedded_clickhouse else "0.0.0.0",
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
    state: dict[str, Any] = {}

    @app.task
    async def open_clickhouse() -> None:
        # chdb lives in this process; one thread owns all calls into it.
        state["executor"] = ThreadPoolExecutor(1, thread_name_prefix="clickhouse")
        client = connect(settings.clickhouse_dsn, settings.clickhouse_database)
        state["writer"] = ClickHouseWriter(client)

    guard = CommitGuard()

    @app.timer(2.0)
    async def guard_commits() -> None:
        await guard.check(app.consumer, idle=state.get("batches_in_flight", 0) == 0)

    @app.on_rebalance_complete.connect
    async def mark_ready(sender: faust.App, **_: Any) -> None:
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

    async def handle_batch(events: list[EventT]) -> None:
        # Never touch profiles before the table is recovered: faust can hand us records it fetched
        # before recovery finished (the race behind faust-streaming #596); they wait here and are
        # applied to the recovered profiles (re-deliveries of them are harmless: apply is idempotent).
        recovery = app.tables.recovery
        while "writer" not in state or not recovery.completed.is_set() or app.rebalancing or app.in_recovery:
            await asyncio.sleep(0.05)
        origins = [_origin(e) for e in events]
        plan = plan_batch(origins, datetime.now(UTC), settings.max_message_bytes)
        updates = profile_batch(plan.events, lambda client_id: _load(profiles, client_id))
        rows = {**plan.rows, **updates.rows}
        loop = asyncio.get_running_loop()
        write = loop.run_in_executor(state["executor"], state["writer"].write, rows)
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            # Stopping: finish the durable write and store the profiles it reflects, since faust acks
            # (and then commits) these offsets on the way out.
            await write
            _store_profiles(profiles, updates.profiles)
            raise
        # After the ClickHouse write, never before: a changelog entry must not get ahead of the rows
        # (a replay would then see no version change and emit nothing). faust flushes the changelog
        # before it commits these offsets.
        _store_profiles(profiles, updates.profiles)
        pending = [await _publish_profile(profiles_topic, snap, updates.tier_changes) for snap in updates.snapshots]
        if plan.rejected:
            pending += await _publish_dead_letters(dead_letter_topic, plan.rejected)
        await asyncio.gather(*pending)

    return app


def ready_file(settings: Settings) -> Path:
    return settings.data_dir / "run" / f"{settings.app_id}.ready"


def _origin(event: EventT) -> Origin:
    m = event.message
    return Origin(topic=m.topic, partition=m.partition, offset=m.offset, key=m.key, value=m.value or b"")


def _store_profiles(table: Any, changed: dict[str, ClientProfile]) -> None:
    for client_id, profile in changed.items():
        table[client_id.encode()] = profile.to_bytes()


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
    worker = Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
