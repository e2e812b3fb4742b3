"""Log redaction and JSON lines (clientpulse.logs), and the worker's metrics registry (streams.metrics)."""

from __future__ import annotations

import io
import json
import logging

from clientpulse.logs import handler, redact
from streams.metrics import WorkerMetrics


def _log_through(fmt: str, secrets: tuple[str, ...], emit) -> str:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    logger = logging.getLogger(f"test.logs.{fmt}")
    logger.handlers[:] = [handler(fmt, secrets, out)]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    emit(logger)
    return out.getvalue()


def test_secrets_and_dsn_passwords_never_reach_the_log() -> None:
    secret = "s3cr3t-Pa55"
    text = _log_through(
        "text",
        (secret,),
        lambda log: log.warning(
            "connect to %s failed; sasl password=%s token: abcdef", f"https://bi:{secret}@ch.example:8443/db", secret
        ),
    )
    assert secret not in text
    assert "abcdef" not in text
    assert "https://bi:***@ch.example:8443/db" in text


def test_a_secret_inside_an_exception_traceback_is_redacted_too() -> None:
    secret = "hunter2-xyz"

    def emit(log: logging.Logger) -> None:
        try:
            raise ConnectionError(f"auth failed for http://admin:{secret}@10.0.0.5:8123")
        except ConnectionError:
            log.exception("write failed")

    text = _log_through("text", (), emit)
    assert "ConnectionError" in text and "write failed" in text
    assert secret not in text


def test_phone_numbers_and_emails_are_masked() -> None:
    out = redact("contact 13812345678 or +86 138 1234 5678, mail zhang.wei@example.com")
    assert "13812345678" not in out and "1234 5678" not in out
    assert "zhang.wei@" not in out and "z***@example.com" in out
    assert "138****5678" in out


def test_json_lines_carry_level_logger_message_and_extras() -> None:
    text = _log_through("json", (), lambda log: log.info("batch written", extra={"rows": 12, "table": "raw"}))
    record = json.loads(text.strip())
    assert record["level"] == "info" and record["message"] == "batch written"
    assert record["rows"] == 12 and record["table"] == "raw" and record["logger"] == "test.logs.json"
    assert record["ts"].endswith("+00:00")


def _sample(metrics: WorkerMetrics, name: str, labels: dict[str, str] | None = None) -> float | None:
    return metrics.registry.get_sample_value(name, labels or {})


def test_batch_counts_split_into_events_and_invalid_by_reason() -> None:
    m = WorkerMetrics()
    m.count_batch({"order.created": 5, "delivery.delivered": 2, "rejected:malformed_json": 3})
    m.count_batch({"order.created": 1, "rejected:too_large": 1})
    assert _sample(m, "clientpulse_events_total", {"event_type": "order.created"}) == 6
    assert _sample(m, "clientpulse_events_total", {"event_type": "delivery.delivered"}) == 2
    assert _sample(m, "clientpulse_invalid_events_total", {"reason": "malformed_json"}) == 3
    assert _sample(m, "clientpulse_invalid_events_total", {"reason": "too_large"}) == 1


def test_alerts_lag_and_writes_are_exposed() -> None:
    m = WorkerMetrics()
    m.count_alerts([("churn_risk", "raised"), ("churn_risk", "raised"), ("sla_breach", "resolved")])
    m.set_lag({("clientpulse.orders.v1", 0): 7, ("clientpulse.orders.v1", 1): -2})
    m.record_write(0.2, 1500)
    assert _sample(m, "clientpulse_alerts_emitted_total", {"kind": "churn_risk", "status": "raised"}) == 2
    assert _sample(m, "clientpulse_consumer_lag", {"topic": "clientpulse.orders.v1", "partition": "0"}) == 7
    assert _sample(m, "clientpulse_consumer_lag", {"topic": "clientpulse.orders.v1", "partition": "1"}) == 0
    assert _sample(m, "clientpulse_sink_batch_rows_sum") == 1500
    assert _sample(m, "clientpulse_sink_batch_seconds_count") == 1
    text = m.exposition().decode()
    assert "# TYPE clientpulse_events_total counter" in text or "# TYPE clientpulse_events counter" in text
