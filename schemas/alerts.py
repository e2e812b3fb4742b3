"""The alert contract: what the worker publishes on `clientpulse.alerts.v1` for alert consumers.

One alert *episode* is one stretch of trouble for one client and kind: a churn risk from the moment
the score crosses into risk until it recovers, one complaint's SLA breach, one key-account downgrade.
Every message of an episode carries the same `alert_id` (a UUIDv5 of client, kind and episode), and a
`sequence` that grows with each message of the episode (raised 1, escalated or reminder 2.., resolved
last). Consumers deduplicate on (`alert_id`, `sequence`) and keep the highest sequence per alert_id as
the alert's current state. The Kafka key is the client_id, so one client's alerts stay in order.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

ALERT_SCHEMA_VERSION = 1
ALERT_NAMESPACE = uuid.UUID("6f1d9c3e-2b7a-5c1e-9a44-0c1e5e7a1e01")
"""UUIDv5 namespace of alert ids (fixed forever: consumers deduplicate on the ids it produces)."""


class AlertKind(StrEnum):
    CHURN_RISK = "churn_risk"
    SLA_BREACH = "sla_breach"
    KEY_ACCOUNT_DOWNGRADE = "key_account_downgrade"


class AlertStatus(StrEnum):
    RAISED = "raised"
    ESCALATED = "escalated"
    REMINDER = "reminder"
    """Still at risk after the cool-down: raised again so it is not forgotten."""
    RESOLVED = "resolved"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    HIGH = "high"
    CRITICAL = "critical"


SEVERITY_ORDER: dict[Severity, int] = {s: i for i, s in enumerate(Severity)}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Reason(_Model):
    """One signal that contributed to the alert, with the numbers that triggered it."""

    code: str = Field(description="signal code, e.g. cadence_broken, volume_decline, sla_resolution")
    points: float = Field(ge=0, le=100, description="score points this signal contributed")
    evidence: dict[str, Any] = Field(description="the measured values and thresholds behind the signal")
    text_en: str
    text_zh: str


class Action(_Model):
    """What the account manager should do about a reason."""

    code: str = Field(description="account_manager_visit, service_recovery_plan, compensation_review, ...")
    for_reason: str = Field(description="the Reason.code this action answers")
    text_en: str
    text_zh: str


class Alert(_Model):
    alert_id: uuid.UUID = Field(description="deterministic per (client, kind, episode); see module doc")
    sequence: Annotated[int, Field(ge=1)] = Field(description="message number within the episode")
    schema_version: int = ALERT_SCHEMA_VERSION
    kind: AlertKind
    status: AlertStatus
    severity: Severity
    client_id: str
    client_name: str | None = None
    account_manager: str | None = None
    tier: str | None = None
    score: Annotated[int, Field(ge=0, le=100)] = Field(description="churn risk score when emitted (0-100)")
    episode: str = Field(description="episode key: start of the risk episode, or the complaint id")
    complaint_id: str | None = None
    reasons: list[Reason] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    occurred_at: AwareDatetime = Field(description="event time at which the condition was detected")
    emitted_at: AwareDatetime = Field(description="wall-clock time the worker emitted the message")

    @property
    def idempotency_key(self) -> str:
        return f"{self.alert_id}:{self.sequence}"


ALERT_ADAPTER: TypeAdapter[Alert] = TypeAdapter(Alert)


def alert_id(client_id: str, kind: AlertKind | str, episode: str) -> uuid.UUID:
    """The same (client, kind, episode) always gives the same id, in every process and on every replay."""
    return uuid.uuid5(ALERT_NAMESPACE, f"{client_id}\x1f{AlertKind(kind).value}\x1f{episode}")


def alert_json_schema() -> dict[str, Any]:
    schema = Alert.model_json_schema(mode="serialization")
    schema["title"] = "alert"
    schema["description"] = __doc__.strip().splitlines()[0] if __doc__ else "clientpulse alert"
    return schema
