"""The alert consumer end to end: a real local broker (tansu), kafka-python producers, real files and a real
local HTTP server. One broker serves the module; each test uses its own topic and consumer groups."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from clientpulse.broker import LocalBroker
from producers.admin import create_topics
from schemas.alerts import Alert, AlertKind, Severity
from schemas.topics import ALERTS
from sinks.alert_consumer import ConsumerCounts, ConsumerOptions, consume_alerts
from sinks.alert_delivery import AlertFilter, AlertTarget, DeadLetterFile, FilteredTarget, JsonlTarget, WebhookTarget
from tests.test_alert_delivery import Policy, RecordingServer, make_alert, read_jsonl

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def alert_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    with LocalBroker(log_path=tmp_path_factory.mktemp("broker") / "broker.log") as b:
        yield b


@pytest.fixture
def http_server() -> Iterator[Callable[[Policy], RecordingServer]]:
    servers: list[RecordingServer] = []

    def start(policy: Policy) -> RecordingServer:
        servers.append(RecordingServer(policy).__enter__())
        return servers[-1]

    yield start
    for server in servers:
        server.__exit__()


@pytest.fixture
def topic(alert_broker: LocalBroker) -> str:
    name = f"test.alerts.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=alert_broker.bootstrap)
    try:
        admin.create_topics([NewTopic(name, 3, 1)])
    finally:
        admin.close()
    return name


def publish(bootstrap: str, topic: str, alerts: list[Alert], extra: tuple[bytes, ...] = ()) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for a in alerts:
            producer.send(topic, key=a.client_id.encode(), value=a.model_dump_json().encode())
        for raw in extra:
            producer.send(topic, key=b"C-garbage", value=raw)
        producer.flush(10)
    finally:
        producer.close()


def run(
    bootstrap: str, topic: str, target: AlertTarget, dead_letter: Path, group: str, **options: Any
) -> ConsumerCounts:
    # tansu joins a group after ~half the session timeout: 2 s keeps each run short (Apache Kafka wants >= 6 s).
    settings = {"idle_exit_seconds": 1.0, "session_timeout_ms": 2000, "heartbeat_interval_ms": 500} | options
    opts = ConsumerOptions(bootstrap, group, topic=topic, **settings)
    return consume_alerts(target, opts, DeadLetterFile(dead_letter))


def mixed_alerts(n: int) -> list[Alert]:
    """n alerts over 5 clients, with escalations (sequence 2) for some, and every severity, tier and kind."""
    severities, tiers, kinds = list(Severity), ["key", "stable", "potential", None], list(AlertKind)
    alerts = []
    for i in range(n):
        client, sequence, episode = f"C-{i % 5}", 1 + i // 5, f"2025-0{1 + i % 5}-01"
        severity, tier, kind = severities[i % 4], tiers[(i // 4) % 4], kinds[i % 3]
        alerts.append(make_alert(client, sequence=sequence, severity=severity, tier=tier, kind=kind, episode=episode))
    return alerts


def assert_same_alerts_in_client_order(got: list[Alert], published: list[Alert]) -> None:
    """Partitions interleave freely, but each client's alerts (one key, one partition) keep their order."""
    assert Counter(a.idempotency_key for a in got) == Counter(a.idempotency_key for a in published)
    for client in {a.client_id for a in published}:
        assert [a for a in got if a.client_id == client] == [a for a in published if a.client_id == client]


def test_webhook_gets_every_alert_once_and_offsets_are_committed(
    alert_broker: LocalBroker, topic: str, tmp_path: Path, http_server: Callable[[Policy], RecordingServer]
) -> None:
    alerts = mixed_alerts(12)
    garbage = [b"not json at all", json.dumps({"alert_id": "nope", "sequence": 0}).encode(), b"\xff\xfe"]
    publish(alert_broker.bootstrap, topic, [*alerts, alerts[3]], extra=tuple(garbage))  # alerts[3] is sent twice
    server = http_server(lambda request, attempt: (200, {}))
    dead = tmp_path / "dead.jsonl"
    target = WebhookTarget(server.url, DeadLetterFile(dead), backoff_base=0.05)
    group = f"hooks-{uuid.uuid4().hex[:6]}"

    counts = run(alert_broker.bootstrap, topic, target, dead, group)
    assert counts == ConsumerCounts(delivered=12, duplicates_skipped=1, unparseable=3)
    assert Counter(r.key for r in server.requests) == Counter(f"{a.alert_id}:{a.sequence}" for a in alerts)
    assert_same_alerts_in_client_order([Alert.model_validate_json(r.body) for r in server.requests], alerts)
    letters = read_jsonl(dead)
    assert len(letters) == 3 and all(d["error"].startswith("not an alert:") for d in letters)
    assert {d.get("value") for d in letters} >= {"not json at all", garbage[1].decode()}
    assert {d.get("value_base64") for d in letters} >= {"//4="}
    assert {d["topic"] for d in letters} == {topic}

    again = run(alert_broker.bootstrap, topic, target, dead, group)  # same group: everything was committed
    assert again == ConsumerCounts()
    assert len(server.requests) == 12

    fresh = run(alert_broker.bootstrap, topic, target, dead, f"{group}-new")  # a new group replays the topic
    assert fresh == counts
    assert Counter(r.key for r in server.requests) == Counter({f"{a.alert_id}:{a.sequence}": 2 for a in alerts})


def test_a_failing_webhook_dead_letters_and_the_consumer_keeps_going(
    alert_broker: LocalBroker, topic: str, tmp_path: Path, http_server: Callable[[Policy], RecordingServer]
) -> None:
    alerts = [make_alert(c, episode=e) for c in ("C-ok", "C-down", "C-bad") for e in ("2025-01-01", "2025-02-01")]
    publish(alert_broker.bootstrap, topic, alerts)

    def policy(request: Any, attempt: int) -> tuple[int, dict[str, str]]:
        client = json.loads(request.body)["client_id"]
        if client == "C-down":
            return 500, {}
        if client == "C-bad":
            return 400, {}
        return (503, {}) if attempt <= 2 else (200, {})  # C-ok: two refusals, then accepted

    server = http_server(policy)
    dead = tmp_path / "dead.jsonl"
    target = WebhookTarget(server.url, DeadLetterFile(dead), max_attempts=3, backoff_base=0.05, backoff_max=0.1)
    counts = run(alert_broker.bootstrap, topic, target, dead, f"g-{uuid.uuid4().hex[:6]}")

    assert counts == ConsumerCounts(delivered=2, dead_lettered=4)
    expected_attempts = {"C-ok": 3, "C-down": 3, "C-bad": 1}
    assert server.attempts == Counter({a.idempotency_key: expected_attempts[a.client_id] for a in alerts})
    letters = read_jsonl(dead)
    assert sorted((d["alert"]["client_id"], d["attempts"]) for d in letters) == sorted(
        [("C-down", 3)] * 2 + [("C-bad", 1)] * 2
    )
    assert Counter(Alert.model_validate(d["alert"]).idempotency_key for d in letters) == Counter(
        a.idempotency_key for a in alerts if a.client_id != "C-ok"
    )


def test_jsonl_target_with_severity_and_tier_filters(alert_broker: LocalBroker, topic: str, tmp_path: Path) -> None:
    alerts = mixed_alerts(20)
    publish(alert_broker.bootstrap, topic, alerts)
    out = tmp_path / "alerts.jsonl"
    wanted = AlertFilter(min_severity=Severity.HIGH, tiers=frozenset({"key", "stable"}))
    target = FilteredTarget(JsonlTarget(out), wanted)
    counts = run(alert_broker.bootstrap, topic, target, tmp_path / "dead.jsonl", f"g-{uuid.uuid4().hex[:6]}")
    target.close()

    expected = [a for a in alerts if a.severity in ("high", "critical") and a.tier in ("key", "stable")]
    assert 0 < len(expected) < len(alerts)
    assert counts == ConsumerCounts(delivered=len(expected), filtered=len(alerts) - len(expected))
    assert_same_alerts_in_client_order([Alert.model_validate(d) for d in read_jsonl(out)], expected)


def test_max_alerts_commits_only_what_was_delivered(alert_broker: LocalBroker, topic: str, tmp_path: Path) -> None:
    alerts = mixed_alerts(10)
    publish(alert_broker.bootstrap, topic, alerts)
    out, dead, group = tmp_path / "alerts.jsonl", tmp_path / "dead.jsonl", f"g-{uuid.uuid4().hex[:6]}"

    with_limit = JsonlTarget(out)
    first = run(alert_broker.bootstrap, topic, with_limit, dead, group, max_alerts=4, idle_exit_seconds=None)
    with_limit.close()
    assert first == ConsumerCounts(delivered=4)
    assert len(read_jsonl(out)) == 4

    rest = JsonlTarget(out)
    second = run(alert_broker.bootstrap, topic, rest, dead, group)
    rest.close()
    assert second == ConsumerCounts(delivered=6)  # the 6 not yet committed, none of the first 4 again
    assert_same_alerts_in_client_order([Alert.model_validate(d) for d in read_jsonl(out)], alerts)


# ------------------------------------------------------------------ the command line


def cli(*args: str, env: dict[str, str], **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "clientpulse.cli", *args], env={**os.environ, **env}, **kwargs)


def test_cli_delivers_to_jsonl_and_to_stdout_until_sigterm(alert_broker: LocalBroker, tmp_path: Path) -> None:
    env = {"CLIENTPULSE_KAFKA_BOOTSTRAP": alert_broker.bootstrap, "CLIENTPULSE_DATA_DIR": str(tmp_path / "data")}
    create_topics(alert_broker.bootstrap, 4)
    alerts = mixed_alerts(8)
    publish(alert_broker.bootstrap, ALERTS.name, alerts)

    out = tmp_path / "cli.jsonl"
    jsonl = cli("alerts", "--jsonl", str(out), "--idle-exit", "3", env=env, stderr=subprocess.PIPE)
    _, err = jsonl.communicate(timeout=30)
    assert jsonl.returncode == 0, err.decode()
    assert "delivered 8, filtered 0, dead lettered 0" in err.decode()
    assert_same_alerts_in_client_order([Alert.model_validate(d) for d in read_jsonl(out)], alerts)

    # --stdout in Chinese, key accounts only, no idle exit: it runs until SIGTERM, then commits and exits 0.
    shown = tmp_path / "stdout.txt"
    with shown.open("wb") as stdout:
        people = cli("alerts", "--stdout", "--lang", "zh", "--tier", "key", env=env, stdout=stdout,
                     stderr=subprocess.PIPE)  # fmt: skip
        key_alerts = [a for a in alerts if a.tier == "key"]
        deadline = time.monotonic() + 20
        while shown.read_text().count("告警编号") < len(key_alerts) and time.monotonic() < deadline:
            time.sleep(0.1)
        people.send_signal(signal.SIGTERM)
        _, err = people.communicate(timeout=15)
    assert people.returncode == 0, err.decode()
    summary = f"alerts (clientpulse-alerts-stdout): delivered {len(key_alerts)}, filtered {8 - len(key_alerts)}"
    assert summary in err.decode()
    text = shown.read_text()
    by_key = {a.idempotency_key: a for a in alerts}
    shown_alerts = [by_key[line.split(": ")[1]] for line in text.splitlines() if line.startswith("告警编号: ")]
    assert_same_alerts_in_client_order(shown_alerts, key_alerts)
    assert "分级: 重点" in text and "建议措施:" in text and "准时率降至81%" in text

    again = cli("alerts", "--stdout", "--idle-exit", "1", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out_again, err = again.communicate(timeout=30)
    assert again.returncode == 0, err.decode()
    assert "delivered 0, filtered 0" in err.decode() and out_again == b""  # SIGTERM committed what was shown


def test_cli_rejects_a_non_http_webhook_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "clientpulse.cli", "alerts", "--webhook", "ftp://x"],
        capture_output=True,
        timeout=30,
        env={**os.environ, "CLIENTPULSE_KAFKA_BOOTSTRAP": "127.0.0.1:1"},
    )
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("clientpulse: error:") and "ftp://x" in lines[0] and "--webhook" in lines[0]
    assert result.stdout == b""


def test_cli_refuses_two_targets() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "clientpulse.cli", "alerts", "--stdout", "--jsonl", "x.jsonl"],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.decode().count("\n") == 1 and "only one of" in result.stderr.decode()
