"""Independent recount of profile metrics straight from event lists: the oracle for profile tests.

No records, buckets or folding: a plain pass over the events, so the profile core can be checked against it.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from schemas.events import (
    Envelope,
)
from streams.profile import ProfileSnapshot


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(microsecond=0)


def recount(events: list[Envelope], as_of: datetime) -> dict[str, Any]:
    """The expected metrics, computed directly from the events with calendar-day arithmetic."""
    today = as_of.date()

    def within(t: datetime, days: int) -> bool:
        return t <= as_of and (today - t.date()).days < days

    out: dict[str, Any] = {}
    groups: dict[tuple[str, str], list[Envelope]] = defaultdict(list)
    masters = []
    for e in events:
        p: Any = e.payload  # type: ignore[attr-defined]
        if e.family == "client":
            masters.append(e)
        else:
            entity = {"order": "order_id", "delivery": "delivery_id", "complaint": "complaint_id"}.get(e.family)
            groups[e.family, getattr(p, entity or "feedback_id")].append(e)

    # orders: placed at their earliest event, latest created/updated wins, any cancellation cancels
    placed: list[tuple[datetime, int, Decimal, bool]] = []
    for (family, _), evs in groups.items():
        if family != "order":
            continue
        at = _utc(min(e.occurred_at for e in evs))
        states = [e for e in evs if e.event_type != "order.cancelled"]
        last: Any = max(states, key=lambda e: (e.occurred_at, e.event_type == "order.updated")) if states else None
        cancelled = any(e.event_type == "order.cancelled" for e in evs)
        placed.append(
            (at, last.payload.units if last else 0, last.payload.service_fee if last else Decimal(0), cancelled)
        )
    live = [x for x in placed if not x[3]]
    for n in (7, 30, 90, 365):
        inside = [x for x in live if within(x[0], n)]
        out[f"orders_{n}d"] = len(inside)
        out[f"units_{n}d"] = sum(x[1] for x in inside)
        out[f"revenue_{n}d"] = sum((x[2] for x in inside), Decimal(0))
        out[f"cancelled_{n}d"] = sum(1 for x in placed if x[3] and within(x[0], n))
    out["orders_lifetime"] = len(live)
    out["units_lifetime"] = sum(x[1] for x in live)
    out["revenue_lifetime"] = sum((x[2] for x in live), Decimal(0))
    out["cancelled_lifetime"] = sum(1 for x in placed if x[3])
    times = sorted(x[0] for x in live if x[0] <= as_of)
    out["first_order_at"] = times[0] if times else None
    out["last_order_at"] = times[-1] if times else None
    recent = times[-21:]
    gaps = [(b - a).total_seconds() / 86400 for a, b in itertools.pairwise(recent)]
    out["typical_gap_days"] = statistics.median(gaps) if gaps else None
    out["gaps_used"] = len(gaps)
    n_recent = sum(1 for t in times if (today - t.date()).days < 30)
    n_base = sum(1 for t in times if 30 <= (today - t.date()).days < 120)
    out["order_rate_30d"] = n_recent / 30
    out["order_rate_prev_90d"] = n_base / 90
    out["order_trend"] = (n_recent / 30) / (n_base / 90) if n_base else None

    # deliveries: the latest outcome (delivered or failed) counts, on the day it happened
    outcomes = []
    for (family, _), evs in groups.items():
        done = [e for e in evs if family == "delivery" and e.event_type != "delivery.dispatched"]
        if done:
            outcomes.append(max(done, key=lambda e: (e.occurred_at, e.event_type == "delivery.delivered")))
    out["deliveries_lifetime"] = len(outcomes)
    for n in (30, 90):
        inside = [e for e in outcomes if within(_utc(e.occurred_at), n)]
        delivered: list[Any] = [e.payload for e in inside if e.event_type == "delivery.delivered"]
        on_time = sum(1 for p in delivered if p.delivered_at <= p.promised_by)
        units = sum(p.units for p in delivered)
        out[f"deliveries_{n}d"] = len(inside)
        out[f"on_time_{n}d"] = on_time
        out[f"on_time_rate_{n}d"] = on_time / len(inside) if inside else None
        out[f"intact_rate_{n}d"] = (
            sum(p.units - p.units_damaged - p.units_missing for p in delivered) / units if units else None
        )
        out[f"failed_{n}d"] = len(inside) - len(delivered)
        out[f"temperature_excursions_{n}d"] = sum(1 for e in inside if e.payload.temperature_excursion)  # type: ignore[attr-defined]

    # complaints
    rank = {"complaint.opened": 0, "complaint.updated": 1, "complaint.resolved": 2, "complaint.reopened": 3}
    opened_30 = opened_90 = lifetime = open_now = reopened = 0
    categories: dict[str, int] = defaultdict(int)
    hours: list[float] = []
    for (family, _), evs in groups.items():
        if family != "complaint":
            continue
        latest: Any = max(evs, key=lambda e: (e.occurred_at, rank[e.event_type]))
        open_now += latest.event_type != "complaint.resolved"
        opened_at = min((_utc(e.occurred_at) for e in evs if e.event_type == "complaint.opened"), default=None)
        resolved = sorted(_utc(e.occurred_at) for e in evs if e.event_type == "complaint.resolved")
        reopened += sum(1 for e in evs if e.event_type == "complaint.reopened" and within(_utc(e.occurred_at), 90))
        if opened_at is None:
            continue
        lifetime += 1
        opened_30 += within(opened_at, 30)
        if within(opened_at, 90):
            opened_90 += 1
            categories[latest.payload.category.value] += 1
        if resolved and within(resolved[0], 90):
            hours.append(max(0.0, (resolved[0] - opened_at).total_seconds() / 3600))
    hours.sort()
    out.update(
        complaints_30d=opened_30,
        complaints_90d=opened_90,
        complaints_lifetime=lifetime,
        complaints_open=open_now,
        complaints_by_category_90d=dict(sorted(categories.items())),
        resolved_90d=len(hours),
        resolution_hours_mean_90d=sum(hours) / len(hours) if hours else None,
        resolution_hours_p90_90d=hours[max(0, -(-9 * len(hours) // 10) - 1)] if hours else None,
        reopened_90d=reopened,
    )

    # feedback
    fbs: list[Any] = [e for (family, _), evs in groups.items() if family == "feedback" for e in evs]
    csats = [(e.occurred_at, e.payload.csat) for e in fbs if e.payload.csat is not None]
    npss = [(e.occurred_at, e.payload.nps) for e in fbs if e.payload.nps is not None]
    revisits = [(e.occurred_at, e.payload.revisit_outcome.value) for e in fbs if e.payload.revisit_outcome]
    out["csat_latest"] = max(csats)[1] if csats else None
    out["nps_latest"] = max(npss)[1] if npss else None
    out["revisit_outcome_latest"] = max(revisits)[1] if revisits else None
    csat_90 = [v for t, v in csats if within(_utc(t), 90)]
    nps_90 = [v for t, v in npss if within(_utc(t), 90)]
    out["csat_mean_90d"] = sum(csat_90) / len(csat_90) if csat_90 else None
    out["csat_responses_90d"] = len(csat_90)
    out["nps_score_90d"] = (
        100 * (sum(v >= 9 for v in nps_90) - sum(v <= 6 for v in nps_90)) / len(nps_90) if nps_90 else None
    )
    out["nps_responses_90d"] = len(nps_90)

    # master data and tenure
    master: Any = max(masters, key=lambda e: (e.occurred_at, str(e.event_id))) if masters else None
    out["name"] = master.payload.name if master else None
    out["account_manager"] = master.payload.account_manager if master else None
    out["contract_end"] = master.payload.contract_end if master else None
    starts = [out["first_order_at"]] if out["first_order_at"] else []
    if master and master.payload.contract_start:
        starts.append(datetime.combine(master.payload.contract_start, datetime.min.time(), UTC))
    out["tenure_days"] = (as_of - min(starts)).days if starts else None
    out["version"] = len({e.event_id for e in events})
    return out


RATES = {
    "on_time_rate_30d",
    "on_time_rate_90d",
    "intact_rate_30d",
    "intact_rate_90d",
    "order_rate_30d",
    "order_rate_prev_90d",
    "order_trend",
    "typical_gap_days",
    "resolution_hours_mean_90d",
    "resolution_hours_p90_90d",
    "csat_mean_90d",
    "nps_score_90d",
}


def assert_matches(snap: ProfileSnapshot, expected: dict[str, Any]) -> None:
    for name, want in expected.items():
        got = getattr(snap, name)
        if name in RATES and want is not None and got is not None:
            assert math.isclose(got, want, rel_tol=0, abs_tol=1e-9), (snap.client_id, name, got, want)
        else:
            assert got == want, (snap.client_id, name, got, want)
