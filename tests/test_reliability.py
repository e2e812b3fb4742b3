"""ClickHouse outages, shutdown and operability of a real worker (tansu + chdb, no mocks).

- Outage: with chdb the server cannot be stopped (it runs in-process), so the writer's documented
  fault-injection point (`fault_clickhouse_down_file`) makes every write fail while a file exists.
  Consumption pauses, nothing is committed that is not written, and after recovery every event is
  stored once. With a server DSN the outage is a real unreachable port.
- Shutdown: SIGTERM and SIGINT mid-stream flush, commit and exit within 10 s.
- Metrics (/metrics) and health (/health/live, /health/ready) answer on the loopback web port.
"""

from __future__ import annotations

import signal
import socket
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest

from clientpulse.progress import ProgressProbe
from producers.admin import create_topics
from producers.generator import generate
from sinks.clickhouse import connect
from tests.test_profiles_pipeline import _publish

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (not want or f"{{{want}" in line or f",{want}" in line):
            head = line.split(" ")[0]
            if head == name or head.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def _stored_counts(settings) -> Counter[str]:
    client = connect(settings.clickhouse_dsn, settings.clickhouse_database)
    try:
        rows = client.query("SELECT event_type, count(), uniqExact(event_id) FROM events GROUP BY event_type")
        assert all(n == ids for _, n, ids in rows.result_rows)
        return Counter({t: n for t, n, _ in rows.result_rows})
    finally:
        client.close()


def test_a_clickhouse_outage_pauses_consumption_and_loses_nothing(settings, worker_factory, tmp_path) -> None:
    history = generate(clients=40, days=60, seed=8).events
    first, rest = history[: len(history) // 3], history[len(history) // 3 :]
    down = tmp_path / "clickhouse-down"
    port = _free_port()
    s = settings.model_copy(update={"fault_clickhouse_down_file": down, "worker_web_port": port})
    create_topics(s.kafka_bootstrap, s.partitions)
    worker = worker_factory(s).start()
    _publish(s.kafka_bootstrap, first)
    worker.wait_committed(len(first))

    down.touch()  # ClickHouse goes away
    _publish(s.kafka_bootstrap, rest)
    probe = ProgressProbe(s.kafka_bootstrap, s.app_id)
    try:
        time.sleep(6)
        during = probe.committed()
        _, text = _get(f"http://127.0.0.1:{port}/metrics")
        assert _metric(text, "clientpulse_sink_retries_total") >= 3  # retrying with backoff
        assert _metric(text, "clientpulse_consumer_lag") > 0  # records wait unread or unwritten
        time.sleep(3)
        assert probe.committed() == during == len(first)  # nothing committed that is not written
        assert worker.process.poll() is None
    finally:
        probe.close()

    down.unlink()  # ClickHouse is back
    worker.wait_committed(len(history), timeout=120)
    assert worker.stop() == 0
    assert _stored_counts(s) == Counter(e.event_type for e in history)  # everything, once
    assert "retrying in" in worker.log()


def test_an_unreachable_clickhouse_server_is_waited_for(settings, worker_factory) -> None:
    """A server DSN whose port answers nothing: the worker stays up, commits nothing, logs no password."""
    dead = _free_port()  # nothing listens here
    s = settings.model_copy(update={"clickhouse_dsn": f"http://bi:s3cret-pw@127.0.0.1:{dead}/clientpulse"})
    create_topics(s.kafka_bootstrap, s.partitions)
    history = generate(clients=5, days=20, seed=2).events
    _publish(s.kafka_bootstrap, history)
    worker = worker_factory(s).start()
    probe = ProgressProbe(s.kafka_bootstrap, s.app_id)
    try:
        time.sleep(8)
        assert worker.process.poll() is None
        assert probe.committed() == 0
    finally:
        probe.close()
    assert worker.stop() == 0
    log = worker.log()
    assert "ClickHouse unreachable" in log
    assert "s3cret-pw" not in log


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_stop_signal_flushes_commits_and_exits_within_10_s(settings, worker_factory, sig) -> None:
    history = generate(clients=240, days=120, seed=12).events
    create_topics(settings.kafka_bootstrap, settings.partitions)
    worker = worker_factory().start()
    worker.wait_ready()
    _publish(settings.kafka_bootstrap, history)
    probe = ProgressProbe(settings.kafka_bootstrap, settings.app_id)
    try:
        deadline = time.monotonic() + 60
        while probe.committed() < len(history) // 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert probe.committed() < len(history), "the stream must still be running when the signal comes"
        sent = time.monotonic()
        assert worker.stop(sig, timeout=30) == 0
        took = time.monotonic() - sent
        committed = probe.committed()
    finally:
        probe.close()
    assert took < 10, took
    stored = sum(_stored_counts(settings).values())
    # every committed record is written; what was written but not committed is at most the batch in flight
    assert committed <= stored <= committed + settings.sink_batch_size
    print(f"stopped by {signal.Signals(sig).name} in {took:.1f}s; committed {committed}, stored {stored}")

    assert committed < len(history), "the signal came after the stream had ended: nothing was in flight"
    again = worker_factory().start()  # the rest, once
    again.wait_ready()
    again.wait_committed(len(history))
    assert again.stop() == 0
    assert _stored_counts(settings) == Counter(e.event_type for e in history)


def test_metrics_and_health_answer_on_loopback(settings, worker_factory) -> None:
    port = _free_port()
    s = settings.model_copy(update={"worker_web_port": port})
    history = generate(clients=10, days=30, seed=4).events
    create_topics(s.kafka_bootstrap, s.partitions)
    worker = worker_factory(s).start()
    worker.wait_ready()
    assert _get(f"http://127.0.0.1:{port}/health/live")[0] == 200
    _publish(s.kafka_bootstrap, history)
    worker.wait_committed(len(history))
    status, _ = _get(f"http://127.0.0.1:{port}/health/ready")
    assert status == 200
    _, text = _get(f"http://127.0.0.1:{port}/metrics")
    by_type = Counter(e.event_type for e in history)
    for event_type, n in by_type.items():
        assert _metric(text, "clientpulse_events_total", event_type=event_type) == n, event_type
    assert _metric(text, "clientpulse_sink_batch_rows_count") >= 1
    clients = len({e.client_id for e in history})
    deadline = time.monotonic() + 10  # the gauges are refreshed every 2 s
    while _metric(text, "clientpulse_profiles") != clients and time.monotonic() < deadline:
        time.sleep(0.5)
        _, text = _get(f"http://127.0.0.1:{port}/metrics")
    assert _metric(text, "clientpulse_profiles") == clients
    # bound to loopback only: another local address of this machine does not answer
    with socket.socket() as probe:
        probe.settimeout(1)
        try:
            other = socket.gethostbyname(socket.gethostname())
        except OSError:
            other = "127.0.0.1"
        if not other.startswith("127."):
            assert probe.connect_ex((other, port)) != 0
    assert worker.stop() == 0
