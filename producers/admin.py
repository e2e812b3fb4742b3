"""Topic administration with kafka-python: create the registry's topics idempotently."""

from __future__ import annotations

from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from schemas.topics import ALL_TOPICS, INBOUND_TOPIC_NAMES


@dataclass(frozen=True)
class TopicReport:
    created: list[str]
    existing: list[str]


class TopicLayoutError(RuntimeError):
    """An existing inbound topic has another partition count than configured (breaks co-partitioning)."""


def create_topics(bootstrap: str, partitions: int, replication_factor: int = 1, **client_config: object) -> TopicReport:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="clientpulse-admin", **client_config)
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(t.name, partitions, replication_factor, topic_configs=dict(t.configs))
            for t in ALL_TOPICS
            if t.name not in existing
        ]
        created: list[str] = []
        for topic in wanted:  # one by one: a concurrent creator makes only its own topic fail
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        _check_partitions(admin, partitions)
        return TopicReport(created=created, existing=sorted(existing & {t.name for t in ALL_TOPICS}))
    finally:
        admin.close()


def _check_partitions(admin: KafkaAdminClient, partitions: int) -> None:
    counts = {d["name"]: len(d["partitions"]) for d in admin.describe_topics(list(INBOUND_TOPIC_NAMES))}
    wrong = {name: n for name, n in counts.items() if n != partitions}
    if wrong:
        raise TopicLayoutError(f"inbound topics must all have {partitions} partitions (key = client_id), found {wrong}")
