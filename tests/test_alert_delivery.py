"""Alert delivery targets: the pure filter, and webhook/JSONL/console targets against real files and a real
local HTTP server (no HTTP mocks). The recording server and the alert builder are reused by the consumer tests."""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from clientpulse.broker import free_port
from schemas.alerts import Action, Alert, AlertKind, AlertStatus, Reason, Severity, alert_id
from sinks.alert_delivery import (
    AlertFilter,
    ConsoleTarget,
    DeadLetterFile,
    FilteredTarget,
    JsonlTarget,
    Outcome,
    WebhookTarget,
    render_alert,
    retry_after_seconds,
)

# ------------------------------------------------------------------ helpers shared with test_alert_consumer


def make_alert(
    client_id: str = "C-1",
    *,
    severity: Severity = Severity.HIGH,
    tier: str | None = "key",
    kind: AlertKind = AlertKind.CHURN_RISK,
    sequence: int = 1,
    episode: str = "2025-03-01",
    score: int = 72,
) -> Alert:
    return Alert(
        alert_id=alert_id(client_id, kind, episode),
        sequence=sequence,
        kind=kind,
        status=AlertStatus.RAISED if sequence == 1 else AlertStatus.ESCALATED,
        severity=severity,
        client_id=client_id,
        client_name=f"Client {client_id}",
        account_manager="Li Wei",
        tier=tier,
        score=score,
        episode=episode,
        reasons=[
            Reason(
                code="cadence_broken",
                points=40.0,
                evidence={"days_since_last_order": 21.5, "typical_gap_days": 7.0},
                text_en="No order for 21.5 days, 3x the usual gap",
                text_zh="已21.5天未下单，是平时间隔的3倍",
            ),
            Reason(
                code="on_time_drop",
                points=22.0,
                evidence={"on_time_rate_30d": 0.81, "threshold": 0.9},
                text_en="On-time rate fell to 81%",
                text_zh="准时率降至81%",
            ),
        ],
        actions=[
            Action(
                code="account_manager_visit",
                for_reason="cadence_broken",
                text_en="Account manager visits the client this week",
                text_zh="客户经理本周上门回访",
            )
        ],
        occurred_at=datetime(2025, 3, 1, 8, 30, tzinfo=UTC) + timedelta(days=sequence),
        emitted_at=datetime(2026, 1, 5, tzinfo=UTC),
    )


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def key(self) -> str:
        return self.headers["Idempotency-Key"]


Policy = Callable[[Received, int], tuple[int, dict[str, str]]]
"""(request, attempt number for its Idempotency-Key) -> (status, response headers)."""


def answer(status: int, **headers: str) -> Policy:
    return lambda request, attempt: (status, headers)


def fail_first(n: int, status: int = 503) -> Policy:
    return lambda request, attempt: (status, {}) if attempt <= n else (200, {})


class RecordingServer:
    """A real HTTP server on 127.0.0.1:<free port> that records every request and answers by policy."""

    def __init__(self, policy: Policy, delay: Callable[[int], float] = lambda attempt: 0.0) -> None:
        self.policy = policy
        self.delay = delay
        self.requests: list[Received] = []
        self.attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, headers = owner._record(Received(self.path, dict(self.headers.items()), body))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def _record(self, request: Received) -> tuple[int, dict[str, str]]:
        with self._lock:
            self.requests.append(request)
            self.attempts[request.key] += 1
            attempt = self.attempts[request.key]
        time.sleep(self.delay(attempt))
        return self.policy(request, attempt)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/alerts"

    def __enter__(self) -> RecordingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server_factory() -> Iterator[Callable[..., RecordingServer]]:
    servers: list[RecordingServer] = []

    def make(policy: Policy, **kwargs: Any) -> RecordingServer:
        server = RecordingServer(policy, **kwargs).__enter__()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.__exit__()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def webhook(url: str, dead_letter: Path, **kwargs: Any) -> WebhookTarget:
    options: dict[str, Any] = {"timeout": 2.0, "max_attempts": 4, "backoff_base": 0.05, "backoff_max": 0.2} | kwargs
    return WebhookTarget(url, DeadLetterFile(dead_letter), **options)


# ------------------------------------------------------------------ filter


SEVERITIES = list(Severity)
TIERS = ["key", "stable", "potential", None]


def test_filter_by_min_severity_tier_and_kind() -> None:
    alerts = [
        make_alert(f"C-{i}", severity=sev, tier=tier, kind=kind)
        for i, (sev, tier, kind) in enumerate(
            (sev, tier, kind) for sev in SEVERITIES for tier in TIERS for kind in AlertKind
        )
    ]
    assert len(alerts) == 4 * 4 * 3

    assert all(AlertFilter().accepts(a) for a in alerts)
    high = AlertFilter(min_severity=Severity.HIGH)
    assert {a.severity for a in alerts if high.accepts(a)} == {Severity.HIGH, Severity.CRITICAL}
    key_or_stable = AlertFilter(tiers=frozenset({"key", "stable"}))
    assert [a for a in alerts if key_or_stable.accepts(a)] == [a for a in alerts if a.tier in ("key", "stable")]
    sla = AlertFilter(kinds=frozenset({AlertKind.SLA_BREACH}))
    assert sum(sla.accepts(a) for a in alerts) == 16

    combined = AlertFilter(Severity.WARNING, frozenset({"key"}), frozenset({AlertKind.CHURN_RISK}))
    expected = [
        a
        for a in alerts
        if a.severity in ("warning", "high", "critical") and a.tier == "key" and a.kind == "churn_risk"
    ]
    assert [a for a in alerts if combined.accepts(a)] == expected
    assert len(expected) == 3


def test_filtered_target_counts_what_it_drops(tmp_path: Path) -> None:
    target = FilteredTarget(JsonlTarget(tmp_path / "out.jsonl"), AlertFilter(min_severity=Severity.CRITICAL))
    results = [target.deliver(make_alert(f"C-{i}", severity=s)) for i, s in enumerate(SEVERITIES)]
    target.close()
    assert [r.outcome for r in results] == [Outcome.FILTERED] * 3 + [Outcome.DELIVERED]
    assert [line["client_id"] for line in read_jsonl(tmp_path / "out.jsonl")] == ["C-3"]


# ------------------------------------------------------------------ webhook against a real HTTP server


def test_webhook_posts_the_alert_json_with_idempotency_key_and_kind(
    tmp_path: Path, server_factory: Callable[..., RecordingServer]
) -> None:
    server = server_factory(answer(204))
    target = webhook(server.url, tmp_path / "dl.jsonl", headers={"Authorization": "Bearer t0ken"})
    alerts = [make_alert("C-1"), make_alert("C-1", sequence=2), make_alert("C-2", kind=AlertKind.SLA_BREACH)]
    results = [target.deliver(a) for a in alerts]

    assert [(r.outcome, r.attempts) for r in results] == [(Outcome.DELIVERED, 1)] * 3
    assert [r.key for r in server.requests] == [f"{a.alert_id}:{a.sequence}" for a in alerts]
    assert [r.headers["X-Clientpulse-Alert-Kind"] for r in server.requests] == [a.kind.value for a in alerts]
    for request, alert in zip(server.requests, alerts, strict=True):
        assert request.path == "/hooks/alerts"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["Authorization"] == "Bearer t0ken"
        assert Alert.model_validate_json(request.body) == alert
    assert not (tmp_path / "dl.jsonl").exists()


def test_webhook_retries_503_until_it_is_delivered(
    tmp_path: Path, server_factory: Callable[..., RecordingServer]
) -> None:
    server = server_factory(fail_first(2, status=503))
    target = webhook(server.url, tmp_path / "dl.jsonl")
    alerts = [make_alert(f"C-{i}") for i in range(3)]
    results = [target.deliver(a) for a in alerts]

    assert [(r.outcome, r.attempts) for r in results] == [(Outcome.DELIVERED, 3)] * 3
    assert server.attempts == Counter({a.idempotency_key: 3 for a in alerts})
    assert not (tmp_path / "dl.jsonl").exists()


def test_webhook_dead_letters_after_max_attempts_of_500(
    tmp_path: Path, server_factory: Callable[..., RecordingServer]
) -> None:
    server = server_factory(answer(500))
    target = webhook(server.url, tmp_path / "dl.jsonl", max_attempts=3)
    alerts = [make_alert("C-1"), make_alert("C-2")]
    results = [target.deliver(a) for a in alerts]

    assert [(r.outcome, r.attempts) for r in results] == [(Outcome.DEAD_LETTERED, 3)] * 2
    assert server.attempts == Counter({a.idempotency_key: 3 for a in alerts})
    letters = read_jsonl(tmp_path / "dl.jsonl")
    assert [Alert.model_validate(d["alert"]) for d in letters] == alerts
    assert [d["attempts"] for d in letters] == [3, 3]
    assert all("gave up after 3 attempts: HTTP 500" in d["error"] for d in letters)
    assert all(datetime.fromisoformat(d["failed_at"]).tzinfo is not None for d in letters)


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422, 302])
def test_webhook_does_not_retry_a_permanent_client_error(
    tmp_path: Path, server_factory: Callable[..., RecordingServer], status: int
) -> None:
    server = server_factory(answer(status, Location="http://127.0.0.1:1/elsewhere"))
    result = webhook(server.url, tmp_path / "dl.jsonl").deliver(make_alert())

    assert (result.outcome, result.attempts) == (Outcome.DEAD_LETTERED, 1)
    assert len(server.requests) == 1  # a redirect is not followed either
    [letter] = read_jsonl(tmp_path / "dl.jsonl")
    assert letter["error"].startswith(f"not retryable: HTTP {status}")
    assert letter["attempts"] == 1


@pytest.mark.parametrize("status", [408, 429, 502])
def test_webhook_retries_timeouts_throttling_and_gateway_errors(
    tmp_path: Path, server_factory: Callable[..., RecordingServer], status: int
) -> None:
    server = server_factory(fail_first(1, status=status))
    result = webhook(server.url, tmp_path / "dl.jsonl").deliver(make_alert())
    assert (result.outcome, result.attempts) == (Outcome.DELIVERED, 2)


def test_webhook_honours_retry_after_up_to_backoff_max(
    tmp_path: Path, server_factory: Callable[..., RecordingServer]
) -> None:
    server = server_factory(lambda request, attempt: (429, {"Retry-After": "7"}) if attempt == 1 else (200, {}))
    slept: list[float] = []
    patient = webhook(server.url, tmp_path / "dl.jsonl", backoff_max=30.0, sleep=slept.append)
    assert patient.deliver(make_alert("C-1")).outcome is Outcome.DELIVERED
    impatient = webhook(server.url, tmp_path / "dl.jsonl", backoff_max=0.3, sleep=slept.append)
    assert impatient.deliver(make_alert("C-2")).outcome is Outcome.DELIVERED
    assert slept == [7.0, 0.3]


def test_webhook_backoff_grows_exponentially_with_jitter_and_is_capped(
    tmp_path: Path, server_factory: Callable[..., RecordingServer]
) -> None:
    server = server_factory(answer(503))
    slept: list[float] = []
    target = webhook(server.url, tmp_path / "dl.jsonl", max_attempts=5, backoff_base=0.1, backoff_max=0.4)
    target.sleep = slept.append
    assert target.deliver(make_alert()).attempts == 5
    ceilings = [0.1, 0.2, 0.4, 0.4]  # base * 2^(n-1), capped; no sleep after the last attempt
    assert len(slept) == len(ceilings)
    assert all(c / 2 <= s <= c for s, c in zip(slept, ceilings, strict=True)), slept


def test_webhook_retries_a_refused_connection_and_a_timeout(
    tmp_path: Path, server_factory: Callable[..., RecordingServer]
) -> None:
    refused = webhook(f"http://127.0.0.1:{free_port()}/x", tmp_path / "dl.jsonl", max_attempts=2).deliver(make_alert())
    assert (refused.outcome, refused.attempts) == (Outcome.DEAD_LETTERED, 2)
    assert "gave up after 2 attempts" in (refused.error or "")

    slow_once = server_factory(answer(200), delay=lambda attempt: 1.0 if attempt == 1 else 0.0)
    timed_out = webhook(slow_once.url, tmp_path / "dl2.jsonl", timeout=0.3).deliver(make_alert())
    assert (timed_out.outcome, timed_out.attempts) == (Outcome.DELIVERED, 2)
    assert slow_once.attempts[make_alert().idempotency_key] == 2


def test_retry_after_parses_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC).timestamp()
    assert retry_after_seconds("12", now) == 12.0
    assert retry_after_seconds("Mon, 05 Jan 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Mon, 05 Jan 2026 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


@pytest.mark.parametrize("url", ["ftp://x", "file:///etc/passwd", "127.0.0.1:8080/hook", "http://"])
def test_webhook_refuses_a_non_http_url(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError, match="webhook URL"):
        webhook(url, tmp_path / "dl.jsonl")


# ------------------------------------------------------------------ JSONL and console


def test_jsonl_target_appends_one_line_per_alert(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "alerts.jsonl"
    alerts = [make_alert(f"C-{i}", sequence=1 + i % 2) for i in range(5)]
    target = JsonlTarget(path)
    for a in alerts[:3]:
        assert target.deliver(a).outcome is Outcome.DELIVERED
    target.flush()
    assert [Alert.model_validate(d) for d in read_jsonl(path)] == alerts[:3]  # durable before close
    target.close()
    again = JsonlTarget(path)  # a second run appends, it does not truncate
    for a in alerts[3:]:
        again.deliver(a)
    again.close()
    assert [Alert.model_validate(d) for d in read_jsonl(path)] == alerts


def test_console_target_renders_english_for_people() -> None:
    out = io.StringIO()
    target = ConsoleTarget(out)
    alert = make_alert("C-7", severity=Severity.CRITICAL, tier="key", score=88)
    assert target.deliver(alert).outcome is Outcome.DELIVERED
    text = out.getvalue()
    assert text.startswith("[CRITICAL] churn_risk · raised #1\n")
    for expected in (
        "client: Client C-7 (C-7) · tier: key · account manager: Li Wei",
        "risk score: 88/100",
        "No order for 21.5 days, 3x the usual gap (+40) [days_since_last_order=21.5, typical_gap_days=7]",
        "On-time rate fell to 81% (+22) [on_time_rate_30d=0.81, threshold=0.9]",
        "recommended actions:\n  - Account manager visits the client this week",
        alert.idempotency_key,
    ):
        assert expected in text
    assert "准时率" not in text


def test_console_target_renders_chinese() -> None:
    alert = make_alert("C-8", severity=Severity.WARNING, tier="stable", kind=AlertKind.SLA_BREACH, sequence=2)
    text = render_alert(alert, "zh")
    assert text.startswith("[警告] 投诉SLA超时 · 已升级 #2\n")
    for expected in ("客户: Client C-8 (C-8) · 分级: 稳定", "流失风险分: 72/100", "准时率降至81% (+22)",
                     "on_time_rate_30d=0.81", "建议措施:\n  - 客户经理本周上门回访"):  # fmt: skip
        assert expected in text
    assert "On-time rate" not in text
