"""Risk assessment of changed or due clients -> risk states, alerts, ClickHouse rows, next deadlines. Pure.

The worker calls `assess_batch` twice per cycle: for the clients a batch of events changed (snapshot as
of each client's latest event) and for the clients whose event-time deadline the clock has passed
(snapshot as of the clock): that second call is the event-time timer that notices an *absence* of
events (a broken order cadence, an unanswered complaint). `evaluate` replays histories through the same
function, so the quality it reports is the quality of the worker's rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.alerts import Alert
from sinks.alerts import alert_row, risk_row
from streams.alerting import AlertRules, RiskState, step
from streams.profile import ClientProfile, ProfileSnapshot, epoch_seconds, snapshot
from streams.risk import RiskRules, assess, cadence_deadline
from streams.sla import SlaRules, breaches, next_due
from streams.tiering import TierChange

DAY = 86_400


@dataclass(frozen=True)
class RiskConfig:
    risk: RiskRules = field(default_factory=RiskRules)
    sla: SlaRules = field(default_factory=SlaRules)
    alerts: AlertRules = field(default_factory=AlertRules)


@dataclass
class RiskBatch:
    states: dict[str, RiskState] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    deadlines: dict[str, int | None] = field(default_factory=dict)
    """client_id -> event time (epoch s) of its next timer check, None for none."""


def assess_batch(
    items: Iterable[tuple[ClientProfile, ProfileSnapshot, TierChange | None]],
    load_state: Callable[[str], RiskState | None],
    config: RiskConfig,
    emitted_at: datetime,
) -> RiskBatch:
    out = RiskBatch()
    for profile, snap, change in items:
        state = load_state(profile.client_id) or RiskState(profile.client_id)
        before = state.to_bytes()
        if state.assessed_at is not None and epoch_seconds(snap.as_of) < state.assessed_at:
            # Never assess a client as of an earlier instant than last time: when topics are read at
            # different speeds (a replay, a catch-up) the clock can trail a client's own latest event,
            # and going back and forth in time would raise and resolve the same risk over and over.
            snap = replace(snapshot(profile, as_datetime(state.assessed_at)), tier=snap.tier)
        now = epoch_seconds(snap.as_of)
        assessment = assess(profile, snap, config.risk)
        alerts = step(state, snap, assessment, breaches(profile, now, config.sla), change, config.alerts, emitted_at)
        score_before = RiskState.from_bytes(before).score
        state.due_at = out.deadlines[profile.client_id] = deadline(profile, snap, state, config)
        if state.to_bytes() == before and not alerts:
            continue  # nothing new: no write, no row (a downgrade alert leaves the state as it was)
        out.states[profile.client_id] = state
        out.alerts += alerts
        if state.score != score_before or alerts:
            out.rows.setdefault("client_risk_history", []).append(risk_row(assessment, state, snap.tier))
        if alerts:
            out.rows.setdefault("alerts", []).extend(alert_row(a) for a in alerts)
    return out


def deadline(profile: ClientProfile, snap: ProfileSnapshot, state: RiskState, config: RiskConfig) -> int | None:
    """When the client must be looked at again even if none of its events arrive."""
    now = epoch_seconds(snap.as_of)
    dues = []
    cadence = cadence_deadline(snap, config.risk)
    if cadence is not None and epoch_seconds(cadence) > now:
        dues.append(epoch_seconds(cadence))
    sla = next_due(profile, now, config.sla)
    if sla is not None:
        dues.append(sla)
    if state.episode is not None and state.emitted_at is not None and state.reminders < config.alerts.max_reminders:
        dues.append(max(now + 1, state.emitted_at + int(config.alerts.cooldown_days * DAY)))
    if state.episode is not None:
        dues.append(now + DAY)  # an open episode is re-scored daily so it can resolve or escalate
    return min(dues, default=None)


def as_datetime(t: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=t)
