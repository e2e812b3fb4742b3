"""`clientpulse evaluate`: how good are the churn warnings on a generated history with known outcomes?

The history is replayed in event-time order through the worker's own pure path (`profile_batch`, then
`assess_batch` for the changed clients and for the clients whose event-time deadline passed), in
batches of `batch_hours` (6) of event time. A live worker assesses after every sub-second batch; 6 h
keeps a year of 200 clients under a minute and changed the figures by less than one client against 1 h.
The churn alerts that come out are scored against the generator's labels:

- a churner is *detected* when a churn_risk alert is raised at or after `churn_starts_at` minus
  `EARLY_DAYS` (service trouble precedes the order decline by up to four weeks); an earlier raise is a
  false alarm like any raise on a client that does not churn;
- precision = detected churners / clients with any churn_risk raise; recall = detected / churners;
- lead time = days from the detecting raise to the churner's last order (`churned_at`), median over
  the detected churners (negative when the warning came after the last order);
- seasonal_flagged_share = seasonal (healthy) clients with any raise / seasonal clients;
- false_alerts_per_100_month = churn_risk messages that ask for action (raised, escalated, reminder) on
  non-churners, per 100 such clients per 30-day month of history.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from producers.generator import ClientLabel, generate
from schemas.alerts import Alert, AlertKind, AlertStatus
from schemas.events import Envelope
from streams.alerting import RiskState
from streams.assessing import RiskConfig, as_datetime, assess_batch
from streams.profile import ClientProfile, epoch_seconds, snapshot
from streams.profiling import profile_batch
from streams.tiering import TierRules

EARLY_DAYS = 45
ACTIONABLE = (AlertStatus.RAISED, AlertStatus.ESCALATED, AlertStatus.REMINDER)


@dataclass
class Replay:
    """Everything the replay kept: final profiles and risk states, and every alert in emission order."""

    profiles: dict[str, ClientProfile] = field(default_factory=dict)
    states: dict[str, RiskState] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    assessments: int = 0
    risk_rows: list[tuple[Any, ...]] = field(default_factory=list)
    """client_risk_history rows: each client's score whenever it changed."""


def replay(
    events: Iterable[Envelope],
    config: RiskConfig | None = None,
    tier_rules: TierRules | None = None,
    batch_hours: float = 6.0,
) -> Replay:
    config = config or RiskConfig()
    tier_rules = tier_rules or TierRules()
    out = Replay()
    deadlines: dict[str, int] = {}
    for batch, end in event_time_batches(events, int(batch_hours * 3600)):
        _batch(out, batch, deadlines, config, tier_rules, clock=end)
    return out


def event_time_batches(events: Iterable[Envelope], step: int) -> Iterator[tuple[list[Envelope], int]]:
    """The events in event-time order, cut at multiples of `step` seconds: (batch, end of its window)."""
    ordered = sorted(events, key=lambda e: (e.occurred_at, str(e.event_id)))
    i = 0
    while i < len(ordered):
        end = (epoch_seconds(ordered[i].occurred_at) // step + 1) * step
        j = i
        while j < len(ordered) and epoch_seconds(ordered[j].occurred_at) < end:
            j += 1
        yield ordered[i:j], end
        i = j


def _batch(
    out: Replay, batch: list[Envelope], deadlines: dict[str, int], config: RiskConfig, rules: TierRules, clock: int
) -> None:
    updates = profile_batch(batch, out.profiles.get, rules)
    out.profiles.update(updates.profiles)
    changes = {c.client_id: c for c in updates.tier_changes}
    items = [(out.profiles[s.client_id], s, changes.get(s.client_id)) for s in updates.snapshots]
    _assess(out, items, deadlines, config, as_datetime(clock))
    due = sorted(c for c, t in deadlines.items() if t <= clock)
    at = as_datetime(clock)
    _assess(out, [(out.profiles[c], snapshot(out.profiles[c], at), None) for c in due], deadlines, config, at)


def _assess(out: Replay, items: list[Any], deadlines: dict[str, int], config: RiskConfig, at: datetime) -> None:
    if not items:
        return
    result = assess_batch(items, out.states.get, config, emitted_at=at)
    out.assessments += len(items)
    out.states.update(result.states)
    out.alerts += result.alerts
    out.risk_rows += result.rows.get("client_risk_history", [])
    for client_id, t in result.deadlines.items():
        if t is None:
            deadlines.pop(client_id, None)
        else:
            deadlines[client_id] = t


@dataclass(frozen=True)
class Quality:
    clients: int
    days: int
    seed: int
    events: int
    churners: int
    detected: int
    flagged_clients: int
    precision: float
    recall: float
    median_lead_days: float | None
    seasonal_clients: int
    seasonal_flagged_share: float
    false_alerts_per_100_month: float
    churn_alerts: int
    sla_alerts: int
    downgrade_alerts: int
    missed: list[str]
    false_positives: list[str]

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def score(labels: list[ClientLabel], alerts: list[Alert], days: int, events: int = 0, seed: int = 0) -> Quality:
    by_client: dict[str, list[Alert]] = {}
    for a in alerts:
        if a.kind is AlertKind.CHURN_RISK:
            by_client.setdefault(a.client_id, []).append(a)
    detected: dict[str, float] = {}
    flagged, false_messages = set(), 0
    for label in labels:
        mine = by_client.get(label.client_id, [])
        raises = [a.occurred_at for a in mine if a.status is AlertStatus.RAISED]
        if raises:
            flagged.add(label.client_id)
        if label.churns and label.churn_starts_at is not None and label.churned_at is not None:
            window = label.churn_starts_at - timedelta(days=EARLY_DAYS)
            hits = [t for t in raises if t >= window]
            if hits:
                detected[label.client_id] = (label.churned_at - hits[0]).total_seconds() / 86_400
        else:
            false_messages += sum(1 for a in mine if a.status in ACTIONABLE)
    churners = [lb for lb in labels if lb.churns]
    healthy = [lb for lb in labels if not lb.churns]
    seasonal = [lb for lb in healthy if lb.seasonal]
    months = days / 30.0
    return Quality(
        clients=len(labels),
        days=days,
        seed=seed,
        events=events,
        churners=len(churners),
        detected=len(detected),
        flagged_clients=len(flagged),
        precision=round(len(detected) / len(flagged), 3) if flagged else 0.0,
        recall=round(len(detected) / len(churners), 3) if churners else 0.0,
        median_lead_days=round(statistics.median(detected.values()), 1) if detected else None,
        seasonal_clients=len(seasonal),
        seasonal_flagged_share=round(sum(lb.client_id in flagged for lb in seasonal) / len(seasonal), 3)
        if seasonal
        else 0.0,
        false_alerts_per_100_month=round(100 * false_messages / (len(healthy) * months), 2) if healthy else 0.0,
        churn_alerts=sum(len(v) for v in by_client.values()),
        sla_alerts=sum(1 for a in alerts if a.kind is AlertKind.SLA_BREACH),
        downgrade_alerts=sum(1 for a in alerts if a.kind is AlertKind.KEY_ACCOUNT_DOWNGRADE),
        missed=sorted(lb.client_id for lb in churners if lb.client_id not in detected),
        false_positives=sorted(c for c in flagged if c not in detected),
    )


def evaluate(
    clients: int = 200,
    days: int = 365,
    seed: int = 7,
    config: RiskConfig | None = None,
    tier_rules: TierRules | None = None,
    orders_only: bool = False,
    batch_hours: float = 6.0,
) -> Quality:
    """Generate, replay and score. `orders_only` keeps only order events (a CSV order export, say)."""
    history = generate(clients=clients, days=days, seed=seed)
    events = [e for e in history.events if not orders_only or e.event_type.startswith("order.")]
    result = replay(events, config, tier_rules, batch_hours=batch_hours)
    return score(history.labels, result.alerts, days, events=len(events), seed=seed)
