"""Alert delivery: where alerts go (webhook, JSONL file, console) and which ones go there.

Every target has the same tiny protocol: `deliver(alert)` returns a `DeliveryResult` whose outcome is
delivered, dead-lettered or filtered, and `flush()` makes what was delivered durable. The consumer
commits Kafka offsets only after `flush()`, so delivery is at-least-once; receivers deduplicate on the
`Idempotency-Key` (`alert_id:sequence`). A delivery that cannot succeed is never dropped: it is appended
to the dead-letter file with the reason, and the consumer moves on.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Literal, Protocol, TextIO

from schemas.alerts import SEVERITY_ORDER, Alert, AlertKind, Severity

# ------------------------------------------------------------------ outcomes and the protocol


class Outcome(StrEnum):
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"
    FILTERED = "filtered"


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Outcome
    attempts: int = 0
    error: str | None = None


DELIVERED = DeliveryResult(Outcome.DELIVERED, attempts=1)
FILTERED = DeliveryResult(Outcome.FILTERED)


class AlertTarget(Protocol):
    def deliver(self, alert: Alert) -> DeliveryResult: ...

    def flush(self) -> None:
        """Make every delivery so far durable; the consumer commits offsets only after this returns."""

    def close(self) -> None: ...


# ------------------------------------------------------------------ filtering (pure)


@dataclass(frozen=True)
class AlertFilter:
    """Which alerts a channel wants; `None` means "any"."""

    min_severity: Severity | None = None
    tiers: frozenset[str] | None = None
    kinds: frozenset[AlertKind] | None = None

    def accepts(self, alert: Alert) -> bool:
        if self.min_severity is not None and SEVERITY_ORDER[alert.severity] < SEVERITY_ORDER[self.min_severity]:
            return False
        if self.tiers is not None and alert.tier not in self.tiers:
            return False
        return self.kinds is None or alert.kind in self.kinds


@dataclass
class FilteredTarget:
    """A target that only sees the alerts its filter accepts; the rest count as filtered."""

    target: AlertTarget
    alert_filter: AlertFilter

    def deliver(self, alert: Alert) -> DeliveryResult:
        return self.target.deliver(alert) if self.alert_filter.accepts(alert) else FILTERED

    def flush(self) -> None:
        self.target.flush()

    def close(self) -> None:
        self.target.close()


# ------------------------------------------------------------------ dead letters


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat()


class DeadLetterFile:
    """Append-only JSON lines; each record is fsynced at once because it is the only copy left."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({**record, "failed_at": utc_now_iso()}, ensure_ascii=False, default=str)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def add_alert(self, alert: Alert, error: str, attempts: int) -> None:
        self.append({"alert": json.loads(alert.model_dump_json()), "error": error, "attempts": attempts})


# ------------------------------------------------------------------ webhook


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib would turn a redirected POST into a GET without the body: treat a 3xx as a failure instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)

RETRYABLE_STATUS = frozenset({408, 429})


def check_webhook_url(url: str) -> str:
    """Only http(s) URLs with a host; raises ValueError with a one-line reason otherwise."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"webhook URL must start with http:// or https://, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"webhook URL has no host: {url!r}")
    return url


@dataclass(frozen=True)
class _Attempt:
    error: str | None  # None = delivered
    retryable: bool = False
    retry_after: float | None = None


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After is either delay-seconds or an HTTP date; anything unparseable is ignored."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class WebhookTarget:
    """POSTs each alert as JSON; retries transient failures, dead-letters the rest. Never raises on HTTP."""

    url: str
    dead_letters: DeadLetterFile
    timeout: float = 10.0
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    headers: Mapping[str, str] = field(default_factory=dict)
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        check_webhook_url(self.url)
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def deliver(self, alert: Alert) -> DeliveryResult:
        body = alert.model_dump_json().encode()
        last_error = ""
        for n in range(1, self.max_attempts + 1):
            attempt = self._post(alert, body)
            if attempt.error is None:
                return DeliveryResult(Outcome.DELIVERED, attempts=n)
            if not attempt.retryable:
                return self._dead_letter(alert, f"not retryable: {attempt.error}", n)
            last_error = attempt.error
            if n < self.max_attempts:
                self.sleep(self._delay(n, attempt.retry_after))
        return self._dead_letter(alert, f"gave up after {self.max_attempts} attempts: {last_error}", self.max_attempts)

    def _dead_letter(self, alert: Alert, error: str, attempts: int) -> DeliveryResult:
        self.dead_letters.add_alert(alert, error, attempts)
        return DeliveryResult(Outcome.DEAD_LETTERED, attempts=attempts, error=error)

    def flush(self) -> None:
        """Each POST is complete (or dead-lettered) when deliver() returns: nothing is buffered."""

    def close(self) -> None:
        pass

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max)
        # Exponential with "equal jitter": spreads retries of many consumers without ever retrying at once.
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def _post(self, alert: Alert, body: bytes) -> _Attempt:
        headers = {
            **self.headers,
            "Content-Type": "application/json",
            "User-Agent": "clientpulse-alerts/1",
            "Idempotency-Key": alert.idempotency_key,
            "X-Clientpulse-Alert-Kind": alert.kind.value,
        }
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                response.read()
                return _Attempt(error=None)
        except urllib.error.HTTPError as exc:
            with exc:
                status = exc.code
                retryable = status in RETRYABLE_STATUS or status >= 500
                retry_after = retry_after_seconds(exc.headers.get("Retry-After")) if retryable else None
                return _Attempt(f"HTTP {status} {exc.reason}", retryable, retry_after)
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, DNS, garbled response
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            return _Attempt(f"{type(exc).__name__}: {reason}", retryable=True)


# ------------------------------------------------------------------ JSON lines file


class JsonlTarget:
    """One JSON line per alert, appended; flush() fsyncs, so a committed offset means the line is on disk."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[str] = path.open("a", encoding="utf-8")

    def deliver(self, alert: Alert) -> DeliveryResult:
        self._file.write(alert.model_dump_json() + "\n")
        return DELIVERED

    def flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            self._file.close()


# ------------------------------------------------------------------ console

Lang = Literal["en", "zh"]

_LABELS: dict[str, dict[Lang, str]] = {
    "client": {"en": "client", "zh": "客户"},
    "tier": {"en": "tier", "zh": "分级"},
    "manager": {"en": "account manager", "zh": "客户经理"},
    "score": {"en": "risk score", "zh": "流失风险分"},
    "reasons": {"en": "reasons", "zh": "原因"},
    "actions": {"en": "recommended actions", "zh": "建议措施"},
    "alert": {"en": "alert", "zh": "告警编号"},
    "complaint": {"en": "complaint", "zh": "投诉"},
    "detected": {"en": "detected", "zh": "发生时间"},
}
_SEVERITY_ZH = {"info": "提示", "warning": "警告", "high": "高", "critical": "严重"}
_KIND_ZH = {"churn_risk": "流失预警", "sla_breach": "投诉SLA超时", "key_account_downgrade": "重点客户降级"}
_STATUS_ZH = {"raised": "新告警", "escalated": "已升级", "reminder": "提醒", "resolved": "已解除"}
_TIER_ZH = {"key": "重点", "stable": "稳定", "potential": "潜力"}


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def render_alert(alert: Alert, lang: Lang = "en") -> str:
    """A few readable lines for a person: what, who, how bad, why (with the numbers) and what to do."""
    zh = lang == "zh"

    def label(key: str) -> str:
        return _LABELS[key][lang]

    severity, kind, status = alert.severity.value, alert.kind.value, alert.status.value
    if zh:
        severity, kind, status = _SEVERITY_ZH[severity], _KIND_ZH[kind], _STATUS_ZH[status]
    tier = _TIER_ZH.get(alert.tier or "", alert.tier) if zh else alert.tier
    who = f"{alert.client_name} ({alert.client_id})" if alert.client_name else alert.client_id
    client = f"{label('client')}: {who}" + (f" · {label('tier')}: {tier}" if tier else "")
    if alert.account_manager:
        client += f" · {label('manager')}: {alert.account_manager}"
    lines = [
        f"[{severity.upper()}] {kind} · {status} #{alert.sequence}",
        client,
        f"{label('score')}: {alert.score}/100 · {label('detected')}: {alert.occurred_at.isoformat()}",
    ]
    if alert.complaint_id:
        lines.append(f"{label('complaint')}: {alert.complaint_id}")
    if alert.reasons:
        lines.append(f"{label('reasons')}:")
        for r in alert.reasons:
            evidence = ", ".join(f"{k}={_number(v)}" for k, v in r.evidence.items())
            lines.append(f"  - {r.text_zh if zh else r.text_en} (+{r.points:g}) [{evidence}]")
    if alert.actions:
        lines.append(f"{label('actions')}:")
        lines.extend(f"  - {a.text_zh if zh else a.text_en}" for a in alert.actions)
    lines.append(f"{label('alert')}: {alert.idempotency_key}")
    return "\n".join(lines) + "\n"


class ConsoleTarget:
    """Human-readable alerts on a text stream (a terminal, a pipe or a log file), separated by a blank line."""

    def __init__(self, stream: TextIO, lang: Lang = "en") -> None:
        self.stream = stream
        self.lang = lang

    def deliver(self, alert: Alert) -> DeliveryResult:
        self.stream.write(render_alert(alert, self.lang) + "\n")
        return DELIVERED

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        self.flush()
