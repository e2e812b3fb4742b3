"""The alert contract: deterministic ids, round trip, and the exported JSON Schema."""

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from schemas.alerts import ALERT_ADAPTER, Action, Alert, AlertKind, AlertStatus, Reason, Severity, alert_id
from schemas.export import export


def sample(**changes) -> Alert:
    base = dict(
        alert_id=alert_id("C-1", AlertKind.CHURN_RISK, "2025-03-01"),
        sequence=1,
        kind=AlertKind.CHURN_RISK,
        status=AlertStatus.RAISED,
        severity=Severity.HIGH,
        client_id="C-1",
        tier="key",
        score=72,
        episode="2025-03-01",
        reasons=[Reason(code="cadence_broken", points=40.0, evidence={"days": 21.5}, text_en="x", text_zh="y")],
        actions=[Action(code="account_manager_visit", for_reason="cadence_broken", text_en="visit", text_zh="拜访")],
        occurred_at=datetime(2025, 3, 1, tzinfo=UTC),
        emitted_at=datetime(2026, 11, 24, tzinfo=UTC),
    )
    return Alert(**(base | changes))


def test_alert_id_is_deterministic_per_client_kind_and_episode() -> None:
    a = alert_id("C-1", "churn_risk", "e1")
    assert a == alert_id("C-1", AlertKind.CHURN_RISK, "e1")
    assert a != alert_id("C-2", "churn_risk", "e1")
    assert a != alert_id("C-1", "sla_breach", "e1")
    assert a != alert_id("C-1", "churn_risk", "e2")
    with pytest.raises(ValueError):
        alert_id("C-1", "no_such_kind", "e1")


def test_an_alert_round_trips_through_json() -> None:
    alert = sample()
    again = ALERT_ADAPTER.validate_json(alert.model_dump_json())
    assert again == alert
    assert again.idempotency_key == f"{alert.alert_id}:1"


def test_score_and_sequence_are_bounded() -> None:
    with pytest.raises(ValidationError, match="score"):
        sample(score=101)
    with pytest.raises(ValidationError, match="sequence"):
        sample(sequence=0)


def test_exported_alert_schema_accepts_an_alert_and_rejects_a_bad_one(tmp_path: Path) -> None:
    paths = {p.name: p for p in export(tmp_path)}
    schema = json.loads(paths["alert.schema.json"].read_text())
    assert "alerts" in schema["$id"]
    validator = jsonschema.Draft202012Validator(schema)
    good = json.loads(sample().model_dump_json())
    validator.validate(good)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(good | {"kind": "nonsense"})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({k: v for k, v in good.items() if k != "alert_id"})
