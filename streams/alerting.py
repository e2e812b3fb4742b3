"""Alert episodes with hysteresis: when to raise, escalate, remind and resolve. Pure.

`RiskState` is the per-client memory the worker stores next to the profile (its own changelog-backed
table). `step` takes the state, the latest churn `Assessment`, the client's SLA breaches and a tier
change, and returns the alerts to emit; it updates the state in place.

Churn risk, per client: raise when the score reaches `raise_at`; while the episode lasts, emit again
only on escalation (a higher severity band, or the score `escalate_by` points above the last message)
or as a reminder after `cooldown_days` of event time (at most `max_reminders`); resolve when the score
falls below `resolve_below` (hysteresis: between the two thresholds nothing changes). The episode key is
the event time of the raise, so the same history always yields the same `alert_id`s.

SLA breach, per complaint: raise at its first breach while the complaint is open, escalate when the
resolution target is missed too, resolve when the complaint is resolved. Key-account downgrade: one
message per downgrade out of `key`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.alerts import SEVERITY_ORDER, Action, Alert, AlertKind, AlertStatus, Reason, Severity, alert_id
from streams import risk
from streams.profile import ProfileSnapshot, epoch_seconds
from streams.risk import Assessment
from streams.sla import Breach
from streams.tiering import TierChange

DAY = 86_400


@dataclass(frozen=True)
class AlertRules:
    raise_at: int = 45
    resolve_below: int = 30
    escalate_by: int = 15
    cooldown_days: float = 14.0
    max_reminders: int = 3

    def __post_init__(self) -> None:
        if not 0 <= self.resolve_below <= self.raise_at <= 100:
            raise ValueError("need 0 <= resolve_below <= raise_at <= 100")


@dataclass
class RiskState:
    client_id: str
    score: int = 0
    assessed_at: int | None = None
    episode: str | None = None
    sequence: int = 0
    emitted_score: int = 0
    emitted_severity: str | None = None
    emitted_at: int | None = None
    reminders: int = 0
    sla: dict[str, list[Any]] = field(default_factory=dict)
    """complaint_id -> [sequence, stage, resolved]: the SLA episodes alerted so far."""
    due_at: int | None = None
    """Event time of the next timer check (streams.assessing.deadline); rebuilds the worker's index."""

    def to_bytes(self) -> bytes:
        return json.dumps(self.__dict__, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> RiskState:
        return cls(**json.loads(data))


def severity(score: int, tier: str | None) -> Severity:
    """Score band, one step up for key accounts and one down for potential ones."""
    level = 1 if score < 65 else 2 if score < 80 else 3  # warning, high, critical
    level += {"key": 1, "potential": -1}.get(tier or "", 0)
    return list(Severity)[max(0, min(3, level))]


def _instant(t: int) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _reasons(a: Assessment) -> tuple[list[Reason], list[Action]]:
    reasons = [
        Reason(code=r.code, points=r.points, evidence=r.evidence, text_en=r.text_en, text_zh=r.text_zh)
        for r in a.reasons
    ]
    # one line per action: two reasons may call for the same one (a visit for silence and for decline)
    first = {x.code: x for x in reversed(a.actions)}
    actions = [
        Action(code=x.code, for_reason=x.for_reason, text_en=x.text_en, text_zh=x.text_zh)
        for x in a.actions
        if first[x.code] is x
    ]
    return reasons, actions


def step(
    state: RiskState,
    snap: ProfileSnapshot,
    assessment: Assessment,
    sla_breaches: list[Breach],
    tier_change: TierChange | None,
    rules: AlertRules,
    emitted_at: datetime,
) -> list[Alert]:
    now = epoch_seconds(assessment.as_of)
    state.score, state.assessed_at = assessment.score, now
    common = dict(
        client_id=snap.client_id,
        client_name=snap.name,
        account_manager=snap.account_manager or None,
        tier=snap.tier,
        score=assessment.score,
        occurred_at=assessment.as_of,
        emitted_at=emitted_at,
    )
    out = _churn(state, assessment, rules, common, now)
    out += _sla(state, sla_breaches, common)
    if tier_change is not None and tier_change.old == "key" and tier_change.new != "key":
        out.append(_downgrade(snap, tier_change, common))
    return out


def _churn(state: RiskState, a: Assessment, rules: AlertRules, common: dict[str, Any], now: int) -> list[Alert]:
    sev = severity(a.score, common["tier"])
    status = None
    if state.episode is None:
        if a.score >= rules.raise_at:
            state.episode, state.sequence, state.reminders = _instant(now).isoformat(), 0, 0
            status = AlertStatus.RAISED
    elif a.score < rules.resolve_below:
        status = AlertStatus.RESOLVED
    elif SEVERITY_ORDER[sev] > SEVERITY_ORDER[Severity(state.emitted_severity or "info")] or (
        a.score >= state.emitted_score + rules.escalate_by
    ):
        status = AlertStatus.ESCALATED
    elif (
        state.emitted_at is not None
        and now - state.emitted_at >= rules.cooldown_days * DAY
        and state.reminders < rules.max_reminders
    ):
        status, state.reminders = AlertStatus.REMINDER, state.reminders + 1
    if status is None or state.episode is None:
        return []
    state.sequence += 1
    reasons, actions = _reasons(a)
    alert = Alert(
        alert_id=alert_id(a.client_id, AlertKind.CHURN_RISK, state.episode),
        sequence=state.sequence,
        kind=AlertKind.CHURN_RISK,
        status=status,
        severity=Severity.INFO if status is AlertStatus.RESOLVED else sev,
        episode=state.episode,
        reasons=reasons,
        actions=[] if status is AlertStatus.RESOLVED else actions,
        **common,
    )
    state.emitted_score, state.emitted_severity, state.emitted_at = a.score, alert.severity.value, now
    if status is AlertStatus.RESOLVED:
        state.episode = None
    return [alert]


def _sla(state: RiskState, found: list[Breach], common: dict[str, Any]) -> list[Alert]:
    out = []
    for b in found:
        seen = state.sla.get(b.complaint_id)
        if seen is None:
            if not b.open:
                continue  # learnt about only after it was resolved: nothing left to act on
            status = AlertStatus.RAISED
        elif seen[2]:
            if not b.open:
                continue
            status = AlertStatus.RAISED  # reopened after its alert was resolved: the same alert again
        elif not b.open:
            status = AlertStatus.RESOLVED
        elif b.stage == "resolution" and seen[1] == "response":
            status = AlertStatus.ESCALATED
        else:
            continue
        seq = 1 if seen is None else seen[0] + 1
        state.sla[b.complaint_id] = [seq, b.stage, not b.open]
        out.append(_sla_alert(b, status, seq, common))
    return out


def _sla_alert(b: Breach, status: AlertStatus, seq: int, common: dict[str, Any]) -> Alert:
    code = f"sla_{b.stage}"
    evidence = {
        "complaint_id": b.complaint_id,
        "category": b.category,
        "severity": b.severity,
        "opened_at": _instant(b.opened_at).isoformat(),
        "due_at": _instant(b.due_at).isoformat(),
        "target_hours": b.target_hours,
        "overdue_hours": b.overdue_hours,
    }
    sig = risk.Signal(code, 1.0, evidence)
    en, zh = risk.describe(sig)
    actions = [
        Action(code=c, for_reason=code, text_en=t[0], text_zh=t[1])
        for c in risk.ACTIONS[code]
        for t in [risk.ACTION_TEXT[c]]
    ]
    if b.severity == "critical" or common["tier"] == "key":
        sev = Severity.CRITICAL
    elif b.stage == "response":
        sev = Severity.WARNING
    else:
        sev = Severity.HIGH
    return Alert(
        alert_id=alert_id(common["client_id"], AlertKind.SLA_BREACH, b.complaint_id),
        sequence=seq,
        kind=AlertKind.SLA_BREACH,
        status=status,
        severity=Severity.INFO if status is AlertStatus.RESOLVED else sev,
        episode=b.complaint_id,
        complaint_id=b.complaint_id,
        reasons=[Reason(code=code, points=100.0, evidence=evidence, text_en=en, text_zh=zh)],
        actions=[] if status is AlertStatus.RESOLVED else actions,
        **common,
    )


def _downgrade(snap: ProfileSnapshot, change: TierChange, common: dict[str, Any]) -> Alert:
    episode = change.at.isoformat()
    evidence = {
        "old_tier": change.old,
        "new_tier": change.new,
        "revenue_90d": str(snap.revenue_90d),
        "orders_90d": snap.orders_90d,
    }
    sig = risk.Signal("tier_downgrade", 1.0, evidence)
    en, zh = risk.describe(sig)
    text = risk.ACTION_TEXT["account_manager_visit"]
    return Alert(
        alert_id=alert_id(common["client_id"], AlertKind.KEY_ACCOUNT_DOWNGRADE, episode),
        sequence=1,
        kind=AlertKind.KEY_ACCOUNT_DOWNGRADE,
        status=AlertStatus.RAISED,
        severity=Severity.HIGH,
        episode=episode,
        reasons=[Reason(code="tier_downgrade", points=100.0, evidence=evidence, text_en=en, text_zh=zh)],
        actions=[Action(code="account_manager_visit", for_reason="tier_downgrade", text_en=text[0], text_zh=text[1])],
        **common,
    )


@dataclass(frozen=True)
class OpenEpisode:
    """A churn episode ClickHouse holds as open: its latest message (alerts are written before the risk
    table stores the state that emitted them, so after a crash ClickHouse can be ahead of the table)."""

    episode: str
    sequence: int
    score: int
    severity: str
    emitted_at: int
    reminders: int


def adopt_open_episode(state: RiskState | None, client_id: str, found: OpenEpisode) -> RiskState | None:
    """The state to store so that the next assessment continues `found` instead of raising a second
    episode under another id; None when the stored state already knows it (or a later message)."""
    current = state or RiskState(client_id)
    if current.episode == found.episode and current.sequence >= found.sequence:
        return None
    patched = RiskState(**current.__dict__)
    patched.episode, patched.sequence, patched.reminders = found.episode, found.sequence, found.reminders
    patched.emitted_score, patched.emitted_severity, patched.emitted_at = found.score, found.severity, found.emitted_at
    return patched


OPEN_EPISODES_SQL = """
SELECT client_id, last_episode, last_sequence, last_score, last_severity, toUnixTimestamp(last_at), reminders
FROM (
    SELECT client_id, alert_id, argMax(episode, sequence) AS last_episode, max(sequence) AS last_sequence,
        argMax(score, sequence) AS last_score, argMax(severity, sequence) AS last_severity,
        argMax(status, sequence) AS last_status, argMax(occurred_at, sequence) AS last_at,
        countIf(status = 'reminder') AS reminders
    FROM alerts FINAL WHERE kind = 'churn_risk' GROUP BY client_id, alert_id
) WHERE last_status != 'resolved' ORDER BY client_id, last_episode
"""
"""Every open churn episode in ClickHouse, oldest first per client (the last one per client wins)."""
