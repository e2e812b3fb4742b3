"""Publisher SDK against the real local broker: keys, topics, validation, errors surfaced."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer

from clientpulse.broker import LocalBroker
from producers.admin import create_topics
from producers.generator import generate
from producers.publisher import Publisher, PublishError
from schemas.topics import topic_for_event_type

pytestmark = pytest.mark.integration


def test_events_go_to_their_family_topic_keyed_by_client_id(broker: LocalBroker) -> None:
    create_topics(broker.bootstrap, 4)
    events = generate(clients=5, days=15, seed=2).events
    with Publisher(broker.bootstrap) as pub:
        pub.publish_many(events)
    assert pub.stats.acked == len(events) and pub.stats.failed == 0

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=4000)
    consumer.subscribe(pattern=r"clientpulse\..*\.v1")
    seen = {(m.topic, m.key.decode(), m.value) for m in consumer}
    consumer.close()
    expected = {(topic_for_event_type(e.event_type), e.client_id, e.model_dump_json().encode()) for e in events}
    assert seen == expected


def test_an_event_that_breaks_the_contract_is_refused_before_sending(broker: LocalBroker) -> None:
    event = generate(clients=1, days=5, seed=1).events[0]
    broken = event.model_copy(update={"client_id": ""})  # model_copy skips validation: the SDK must not
    with Publisher(broker.bootstrap) as pub, pytest.raises(ValueError, match="client_id"):
        pub.publish(broken)
    assert pub.stats.sent == 0


def test_delivery_errors_reach_the_caller(tmp_path) -> None:
    event = generate(clients=1, days=5, seed=1).events[0]
    b = LocalBroker(log_path=tmp_path / "b.log").start()
    create_topics(b.bootstrap, 1)
    pub = Publisher(b.bootstrap, request_timeout_ms=1500, retries=0, max_block_ms=2000)
    pub.publish(event)
    pub.flush()  # the broker is up: acknowledged
    b.stop()  # now the broker is gone: the next records cannot be acknowledged
    pub.publish(event)
    with pytest.raises(PublishError, match="not acknowledged"):
        pub.close(timeout=3)
    assert pub.stats.acked == 1
