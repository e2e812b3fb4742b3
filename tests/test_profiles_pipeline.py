"""Client 360 profiles end to end: tansu -> `clientpulse worker` -> chdb, compared with an independent recount.

Every client's profile row in ClickHouse is compared with `tests.profile_oracle.recount` over the
generated events, exactly for counts and sums and within 1e-9 for rates; also after shuffling each
client's events and injecting 5% duplicates, and across graceful and SIGKILL restarts mid-stream.
"""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from producers.admin import create_topics
from producers.generator import generate
from producers.publisher import Publisher
from schemas.events import Envelope
from sinks.clickhouse import connect
from streams.tiering import abc_classes, classify
from tests.profile_oracle import RATES, recount
from tests.streams_util import shuffled_within_clients, with_duplicates

pytestmark = pytest.mark.integration

CLIENTS, DAYS, SEED = 300, 90, 21  # within the profile's 120-day exact-reordering horizon


@pytest.fixture(scope="module")
def history() -> list[Envelope]:
    return generate(clients=CLIENTS, days=DAYS, seed=SEED).events


def _publish(bootstrap: str, events: list[Envelope]) -> None:
    with Publisher(bootstrap) as pub:
        for e in events:
            pub.publish_validated(e)


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _profiles_in_clickhouse(settings) -> dict[str, dict[str, Any]]:
    client = connect(settings.clickhouse_dsn, settings.clickhouse_database)
    try:
        result = client.query("SELECT * FROM client_profiles")
        rows = {r[0]: {k: _utc(v) for k, v in zip(result.column_names, r, strict=True)} for r in result.result_rows}
        changes = client.query("SELECT count(), uniqExact(client_id) FROM client_master_changes").result_rows[0]
        created = client.query("SELECT countIf(has(changed_fields, 'created')) FROM client_master_changes")
        rows["__master__"] = {"changes": changes[0], "clients": changes[1], "created": created.result_rows[0][0]}
        return rows
    finally:
        client.close()


def _assert_profiles_match(stored: dict[str, dict[str, Any]], events: list[Envelope]) -> None:
    per_client: dict[str, list[Envelope]] = defaultdict(list)
    for e in events:
        per_client[e.client_id].append(e)
    master = stored.pop("__master__")
    assert set(stored) == set(per_client)
    compared = 0
    revenue_365d = {}
    for client_id, client_events in per_client.items():
        row = stored[client_id]
        as_of = max(e.occurred_at for e in client_events)
        assert row["as_of"] == as_of
        expected = recount(client_events, as_of)
        for name, want in expected.items():
            got = row[name]
            if name in RATES and want is not None and got is not None:
                assert got == pytest.approx(want, abs=1e-9), (client_id, name)
            elif isinstance(want, tuple):
                assert list(got) == list(want), (client_id, name)
            else:
                assert got == want, (client_id, name, got, want)
            compared += 1
        assert row["tier"] == classify(SimpleNamespace(**{**row, **expected})), client_id
        revenue_365d[client_id] = expected["revenue_365d"]
    assert {c: stored[c]["abc_class"] for c in stored} == abc_classes(revenue_365d)
    upserts = [e for e in events if e.event_type == "client.upserted"]
    assert master["changes"] == len({e.event_id for e in upserts})
    assert master["created"] == master["clients"] == len({e.client_id for e in upserts})
    assert compared > len(per_client) * 50  # the recount really covered the metrics


def _run(settings, worker_factory, events: list[Envelope], distinct: list[Envelope]) -> None:
    create_topics(settings.kafka_bootstrap, settings.partitions)
    worker = worker_factory().start()
    _publish(settings.kafka_bootstrap, events)
    worker.wait_committed(len(events))
    assert worker.stop() == 0
    _assert_profiles_match(_profiles_in_clickhouse(settings), distinct)


def test_every_profile_matches_a_recount(settings, worker_factory, history) -> None:
    _run(settings, worker_factory, history, history)


def test_shuffled_within_clients_with_5_percent_duplicates(settings, worker_factory, history) -> None:
    stream = with_duplicates(shuffled_within_clients(history, seed=1), share=0.05, seed=2)
    assert len(stream) == len(history) + len(history) // 20
    _run(settings, worker_factory, stream, history)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["graceful", "sigkill"])
def test_restart_mid_stream(settings, worker_factory, history, stop_signal) -> None:
    from clientpulse.progress import ProgressProbe

    stream = with_duplicates(shuffled_within_clients(history, seed=3), share=0.05, seed=4)
    create_topics(settings.kafka_bootstrap, settings.partitions)
    first = worker_factory().start()
    _publish(settings.kafka_bootstrap, stream)
    probe = ProgressProbe(settings.kafka_bootstrap, settings.app_id)
    deadline = time.monotonic() + 120
    while probe.committed() < len(stream) // 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    probe.close()
    first.stop(stop_signal)
    assert first.process.returncode == (0 if stop_signal == signal.SIGTERM else -signal.SIGKILL)

    second = worker_factory().start()  # recovers the profile table from its changelog, resumes offsets
    second.wait_committed(len(stream), timeout=90)
    assert second.stop() == 0
    _assert_profiles_match(_profiles_in_clickhouse(settings), history)


def test_a_year_replayed_at_full_speed_stays_exact(settings, worker_factory) -> None:
    """A year published at once: the worker reads some topics weeks of event time ahead of others.
    Every family folds by its own watermark, so nothing becomes too late and every profile is exact."""
    year = generate(clients=60, days=365, seed=23).events
    _run(settings, worker_factory, year, year)


def test_nothing_is_too_late_in_a_full_speed_replay(settings, worker_factory) -> None:
    year = generate(clients=40, days=365, seed=29).events
    create_topics(settings.kafka_bootstrap, settings.partitions)
    worker = worker_factory().start()
    _publish(settings.kafka_bootstrap, year)
    worker.wait_committed(len(year))
    assert worker.stop() == 0
    stored = _profiles_in_clickhouse(settings)
    stored.pop("__master__")
    assert len(stored) == 40
    assert {c: row["too_late"] for c, row in stored.items() if row["too_late"]} == {}
