"""Complaint SLAs: response and resolution targets per tier, and the breaches of one client. Pure.

A complaint is *responded* at its first update or resolution after opening, and *resolved* at its
last resolution (a reopened complaint is open again until resolved again). Targets count from the
opening. A breach is judged on event time: a target is breached once the event clock passes its due
time without the response or resolution, whether or not another event for that complaint arrives,
which is why the worker keeps `next_due` in its event-time timer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from streams.profile import (
    COMPLAINT_OPENED,
    COMPLAINT_RESOLVED,
    COMPLAINT_UPDATED,
    HOUR,
    ClientProfile,
)


def _tiered(key: float, stable: float, potential: float) -> dict[str, float]:
    return {"key": key, "stable": stable, "potential": potential}


@dataclass(frozen=True)
class SlaRules:
    """Hours from opening to first response and to resolution, per tier (CLIENTPULSE_SLA_* settings)."""

    response_hours: Mapping[str, float] = field(default_factory=lambda: _tiered(2, 8, 24))
    resolution_hours: Mapping[str, float] = field(default_factory=lambda: _tiered(24, 72, 120))
    alert_window_hours: float = 14 * 24
    """Only complaints opened (or, once resolved, resolved) this recently are alerted on: a replay of old
    history must not page anybody about complaints closed long ago (they stay visible in the SLA views)."""

    def targets(self, tier: str | None) -> tuple[float, float]:
        t = tier or "potential"
        return self.response_hours.get(t, self.response_hours["potential"]), self.resolution_hours.get(
            t, self.resolution_hours["potential"]
        )


@dataclass(frozen=True)
class Breach:
    complaint_id: str
    stage: str
    """"response" or "resolution"; the resolution breach is the worse one."""
    opened_at: int
    due_at: int
    target_hours: float
    overdue_hours: float
    category: str
    severity: str
    open: bool


def _open(facts: list[tuple[int, int]]) -> bool:
    return facts[-1][1] != COMPLAINT_RESOLVED


def breaches(profile: ClientProfile, now: int, rules: SlaRules) -> list[Breach]:
    """The worst breach of each complaint at event time `now` (epoch seconds), for alerting."""
    response_h, resolution_h = rules.targets(profile.tier)
    out = []
    for complaint_id, rec in sorted(profile.complaints.items()):
        opened = rec.earliest(COMPLAINT_OPENED)
        if opened is None or opened > now:
            continue
        is_open = _open(rec.facts)
        resolved = None if is_open else rec.facts[-1][0]
        # the window runs from the opening, or from the resolution once resolved: an alert raised while
        # the complaint was open must see its resolution however long the complaint stayed open
        if now - (opened if resolved is None else max(opened, resolved)) > rules.alert_window_hours * HOUR:
            continue
        responded = next(
            (t for t, c in rec.facts if c in (COMPLAINT_UPDATED, COMPLAINT_RESOLVED) and t >= opened), None
        )
        category, severity = rec.state if rec.state else ("other", "medium")
        for stage, hours, done in (("resolution", resolution_h, resolved), ("response", response_h, responded)):
            due = opened + int(hours * HOUR)
            end = done if done is not None and done <= now else now
            if now >= due and end > due:
                out.append(
                    Breach(
                        complaint_id,
                        stage,
                        opened,
                        due,
                        hours,
                        round((end - due) / HOUR, 1),
                        category,
                        severity,
                        is_open,
                    )
                )
                break
    return out


def next_due(profile: ClientProfile, now: int, rules: SlaRules) -> int | None:
    """The next instant after `now` at which a complaint still open or unanswered breaches a target (for
    the timer): one second past its due time, since a target is breached once the clock *passes* it."""
    response_h, resolution_h = rules.targets(profile.tier)
    dues = []
    for rec in profile.complaints.values():
        opened = rec.earliest(COMPLAINT_OPENED)
        if opened is None or not _open(rec.facts):
            continue
        responded = any(c in (COMPLAINT_UPDATED, COMPLAINT_RESOLVED) and t >= opened for t, c in rec.facts)
        for hours, done in ((response_h, responded), (resolution_h, False)):
            breached_at = opened + int(hours * HOUR) + 1
            if not done and breached_at > now:
                dues.append(breached_at)
    return min(dues, default=None)
