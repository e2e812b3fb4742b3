"""Alert and risk-history rows for ClickHouse. Pure.

`alerts` holds every alert message (one row per alert_id and sequence; a replay rewrites the same
rows). `client_risk_history` holds each client's score whenever it changed or an alert was emitted.
"""

from __future__ import annotations

from typing import Any

import orjson

from schemas.alerts import Alert
from streams.alerting import RiskState
from streams.risk import Assessment

ALERT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("alert_id", "UUID"),
    ("sequence", "UInt32"),
    ("kind", "LowCardinality(String)"),
    ("status", "LowCardinality(String)"),
    ("severity", "LowCardinality(String)"),
    ("client_id", "String"),
    ("client_name", "Nullable(String)"),
    ("account_manager", "Nullable(String)"),
    ("tier", "LowCardinality(Nullable(String))"),
    ("score", "UInt8"),
    ("episode", "String"),
    ("complaint_id", "Nullable(String)"),
    ("reason_codes", "Array(LowCardinality(String))"),
    ("action_codes", "Array(LowCardinality(String))"),
    ("reasons_json", "String"),
    ("actions_json", "String"),
    ("occurred_at", "DateTime64(3, 'UTC')"),
    ("emitted_at", "DateTime64(3, 'UTC')"),
)

RISK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("client_id", "String"),
    ("assessed_at", "DateTime64(3, 'UTC')"),
    ("score", "UInt8"),
    ("tier", "LowCardinality(Nullable(String))"),
    ("at_risk", "Bool"),
    ("episode", "Nullable(String)"),
    ("signal_codes", "Array(LowCardinality(String))"),
    ("reasons_json", "String"),
)


def alert_row(alert: Alert) -> tuple[Any, ...]:
    return (
        alert.alert_id,
        alert.sequence,
        alert.kind.value,
        alert.status.value,
        alert.severity.value,
        alert.client_id,
        alert.client_name,
        alert.account_manager,
        alert.tier,
        alert.score,
        alert.episode,
        alert.complaint_id,
        [r.code for r in alert.reasons],
        [a.code for a in alert.actions],
        orjson.dumps([r.model_dump(mode="json") for r in alert.reasons]).decode(),
        orjson.dumps([a.model_dump(mode="json") for a in alert.actions]).decode(),
        alert.occurred_at,
        alert.emitted_at,
    )


def risk_row(assessment: Assessment, state: RiskState, tier: str | None) -> tuple[Any, ...]:
    reasons = [{"code": r.code, "points": r.points, "evidence": r.evidence} for r in assessment.reasons]
    return (
        assessment.client_id,
        assessment.as_of,
        assessment.score,
        tier,
        state.episode is not None,
        state.episode,
        [s.code for s in assessment.signals],
        orjson.dumps(reasons).decode(),
    )
