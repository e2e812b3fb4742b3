"""Churn risk (流失预警): signals with evidence, a 0-100 score, reasons and recommended actions. Pure.

`assess(profile, snapshot, rules)` reads one client's profile at the snapshot's instant and returns
an `Assessment`. Every signal is a small rule with its parameters in `RiskRules` and returns a
strength in [0, 1] plus the numbers that triggered it (its evidence). The score adds the weighted
signals as evidence on a log-odds scale and maps the sum onto 0-100 with a logistic curve:

    evidence = sum_i weight_i * strength_i
    score    = round(100 * (sigmoid(evidence - offset) - sigmoid(-offset)) / (1 - sigmoid(-offset)))

so no evidence scores 0, every signal only ever adds, and the score approaches but never passes
100. Weights are log-odds per unit of strength. They were fitted on generated histories (clients
that churn against healthy, seasonal and dipping ones; docs/alerts.md) and rounded: with the default
offset the alert threshold 45 sits at about 4.0 of evidence, which no order-volume signal reaches on
its own (a seasonal trough looks like a decline) while volume together with service, complaint or
satisfaction trouble does, and so do orders that stopped altogether (a silence of about 1.75 times
k usual gaps together with the decline it implies): that keeps a client that never sent anything
but orders (a CSV import, say) covered. A reason's
`points` is its share of the score, in proportion to its evidence: the points add up to the score.
docs/alerts.md has the full rationale and the measured quality.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from streams.profile import (
    BUCKET_DAYS,
    COMPLAINT_OPENED,
    COMPLAINT_REOPENED,
    DAY,
    ClientProfile,
    ProfileSnapshot,
    epoch_seconds,
    first_order_day,
    order_windows,
)
from streams.risk_texts import ACTION_TEXT, ACTIONS, describe

SIGNALS = (
    "cadence_broken",
    "volume_decline",
    "service_failures",
    "complaint_pressure",
    "complaint_rate",
    "satisfaction",
    "contract_end",
)


DEFAULT_WEIGHTS: Mapping[str, float] = {
    "cadence_broken": 4.5,
    "volume_decline": 1.5,
    "service_failures": 1.1,
    "complaint_pressure": 2.2,
    "complaint_rate": 4.3,
    "satisfaction": 2.8,
    "contract_end": 3.4,
}
"""Log-odds of churn per unit of signal strength (logistic fit on generated histories, rounded)."""
MAX_WEIGHT = 20.0


# Spring Festival (lunar new year's day) by year, for the default business calendar.
_SPRING_FESTIVAL = {
    2023: date(2023, 1, 22), 2024: date(2024, 2, 10), 2025: date(2025, 1, 29), 2026: date(2026, 2, 17),
    2027: date(2027, 2, 6), 2028: date(2028, 1, 26), 2029: date(2029, 2, 13), 2030: date(2030, 2, 3),
}  # fmt: skip


def default_quiet_periods() -> tuple[tuple[date, date], ...]:
    """Business closures in China when clients legitimately stop ordering: the Spring Festival
    shutdown (a week before to ten days after) and the National Day golden week."""
    out = []
    for year, day in sorted(_SPRING_FESTIVAL.items()):
        out.append((day - timedelta(days=7), day + timedelta(days=10)))
        out.append((date(year, 10, 1), date(year, 10, 7)))
    return tuple(out)


def _tiered(key: float, stable: float, potential: float) -> dict[str, float]:
    return {"key": key, "stable": stable, "potential": potential}


@dataclass(frozen=True)
class RiskRules:
    """Every threshold of the churn rules (configurable via CLIENTPULSE_RISK_* settings)."""

    # order cadence: silence longer than k times the client's own typical gap
    cadence_k: float = 3.0
    cadence_min_gap_days: float = 2.0
    """Floor of the typical gap: a client ordering several times a day is not lost over a weekend."""
    cadence_min_gaps: int = 5
    cadence_floor_strength: float = 0.2
    """Strength at exactly k gaps of silence; it grows to full at 2k."""
    cadence_power: float = 3.0
    """Convexity of that growth: a silence a little past k gaps is common among healthy clients and adds
    little; a full stop (2k gaps) is evidence enough on its own."""
    quiet_periods: tuple[tuple[date, date], ...] = field(default_factory=default_quiet_periods)
    """Closures (first and last day, inclusive, UTC dates) whose days do not count as silence."""
    # volume: the last 30 days against the previous 90 (or against the same period last year)
    decline_recent_days: int = 30
    decline_threshold: float = 0.20
    decline_min_baseline_orders: int = 6
    decline_p_value: float = 1.0
    """...and only when that few orders is at most this likely at the usual rate (Poisson tail; 1.0
    turns the test off, the default: on the synthetic history it delayed warnings more than it saved)."""
    size_intact: float = 0.95
    size_shrunk: float = 0.8
    size_min_orders: int = 1
    size_t: float = 3.0
    size_t_min_orders: int = 5
    """A Welch t of log order size at or below minus this marks the orders as shrinking (evidence)."""
    size_intact_factor: float = 0.5
    """Strength kept by a decline whose orders keep their usual size (a seasonal trough, typically)."""
    # service, per tier
    on_time_target: Mapping[str, float] = field(default_factory=lambda: _tiered(0.95, 0.92, 0.90))
    intact_target: Mapping[str, float] = field(default_factory=lambda: _tiered(0.995, 0.99, 0.985))
    service_min_deliveries: int = 8
    intact_margin: float = 0.005
    """Damage comes in lumps (one pallet); only a shortfall beyond this margin counts."""
    failed_deliveries_repeat: int = 3
    failed_share: float = 0.05
    # complaints
    complaint_min_30d: int = 3
    complaint_p_value: float = 0.01
    """Flag a complaint count this unlikely under the client's usual rate (Poisson tail)."""
    complaint_usual_floor: float = 0.5
    complaint_rate_min: int = 2
    """Complaints in 90 days before their rate per order counts (one complaint is no rate)."""
    complaint_rate_full: float = 0.4
    """Complaints per order over 90 days at which the complaint-rate signal is at full strength."""
    complaint_rate_min_orders: int = 5
    """Orders counted at least in the rate's denominator: 2 complaints on 2 orders is no 100% rate."""
    confidence_z: float = 1.64
    """z of the Wilson bound: a rate is below target only if its upper bound is (95% one-sided)."""
    # satisfaction
    feedback_recent_days: int = 60
    csat_bad: int = 2
    nps_detractor: int = 6
    # contract
    contract_warning_days: int = 30
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    """Per-signal weight in [0, 1]; weights given here override the defaults one by one."""
    top_reasons: int = 3
    evidence_offset: float = 4.17
    """Evidence (log-odds) at the logistic curve's midpoint; 4.17 puts score 45 at evidence 4.0."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", {**DEFAULT_WEIGHTS, **{k: float(v) for k, v in self.weights.items()}})
        unknown = set(self.weights) - set(SIGNALS)
        if unknown:
            raise ValueError(f"unknown signal weight(s): {sorted(unknown)}; known: {list(SIGNALS)}")
        bad = {k: w for k, w in self.weights.items() if not 0 <= w <= MAX_WEIGHT}
        if bad:
            raise ValueError(f"signal weights must lie in [0, {MAX_WEIGHT:g}]: {bad}")


@dataclass(frozen=True)
class Signal:
    code: str
    strength: float
    evidence: dict[str, Any]


@dataclass(frozen=True)
class Reason:
    code: str
    points: float
    evidence: dict[str, Any]
    text_en: str
    text_zh: str


@dataclass(frozen=True)
class Action:
    code: str
    for_reason: str
    text_en: str
    text_zh: str


@dataclass(frozen=True)
class Assessment:
    client_id: str
    as_of: datetime
    score: int
    signals: tuple[Signal, ...]
    reasons: tuple[Reason, ...]
    actions: tuple[Action, ...]

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)


def _clamp(x: float) -> float:
    return max(0.0, min(1.0, x))


# ---------------------------------------------------------------- signals


def quiet_days(rules: RiskRules, start: datetime, end: datetime) -> float:
    """Days of [start, end) that fall in the business calendar's quiet periods."""
    total = 0.0
    for first, last in rules.quiet_periods:
        lo = max(start, datetime.combine(first, time.min, UTC))
        hi = min(end, datetime.combine(last + timedelta(days=1), time.min, UTC))
        if hi > lo:
            total += (hi - lo).total_seconds() / DAY
    return total


def cadence_broken(snap: ProfileSnapshot, rules: RiskRules) -> Signal | None:
    if snap.typical_gap_days is None or snap.gaps_used < rules.cadence_min_gaps or snap.days_since_last_order is None:
        return None
    assert snap.last_order_at is not None
    gap = max(snap.typical_gap_days, rules.cadence_min_gap_days)
    holidays = quiet_days(rules, snap.last_order_at, snap.as_of)
    silence = snap.days_since_last_order - holidays
    ratio = silence / gap
    if ratio < rules.cadence_k:
        return None
    evidence = {
        "days_since_last_order": round(snap.days_since_last_order, 1),
        "holiday_days_excluded": round(holidays, 1),
        "typical_gap_days": round(snap.typical_gap_days, 2),
        "k": rules.cadence_k,
        "silence_in_gaps": round(ratio, 1),
    }
    lo = rules.cadence_floor_strength
    past = _clamp((ratio - rules.cadence_k) / rules.cadence_k)
    return Signal("cadence_broken", lo + (1 - lo) * past**rules.cadence_power, evidence)


def cadence_deadline(snap: ProfileSnapshot, rules: RiskRules) -> datetime | None:
    """Next event time at which the silence reaches another step of the cadence signal (k, 1.25k, ...
    2k gaps, not counting quiet periods), if no order arrives first: the event-time timer assesses the
    client then."""
    if snap.typical_gap_days is None or snap.gaps_used < rules.cadence_min_gaps or snap.last_order_at is None:
        return None
    gap = max(snap.typical_gap_days, rules.cadence_min_gap_days)
    for step in (1.0, 1.25, 1.5, 1.75, 2.0):
        need = timedelta(days=step * rules.cadence_k * gap)
        due = snap.last_order_at + need
        for _ in range(3):  # a holiday pushes the due time out, possibly into another holiday
            due = snap.last_order_at + need + timedelta(days=quiet_days(rules, snap.last_order_at, due))
        if due > snap.as_of:
            return due
    return None


def volume_decline(profile: ClientProfile, snap: ProfileSnapshot, rules: RiskRules) -> Signal | None:
    """Orders and revenue of the last `decline_recent_days` against the 90 days before them, seasonally
    adjusted when the history reaches back a year: the same comparison a year earlier tells what is
    normal for the season."""
    r = rules.decline_recent_days
    spans = [(0, r), (r, r + 90), (365, 365 + r), (365 + r, 455 + r)]
    recent, base, ly_recent, ly_base = order_windows(profile, snap.as_of, spans)
    if base[0] < rules.decline_min_baseline_orders:
        return None
    ratio = statistics.fmean([(recent[i] / r) / (base[i] / 90) for i in (0, 2) if base[i] > 0])
    evidence: dict[str, Any] = {
        "recent_days": r,
        "orders_recent": recent[0],
        "orders_prev_90d": base[0],
        "revenue_recent": round(recent[2] / 100, 2),
        "revenue_prev_90d": round(base[2] / 100, 2),
        "ratio_to_baseline": round(ratio, 2),
    }
    first = first_order_day(profile)
    today = epoch_seconds(snap.as_of) // DAY
    # Last year's windows must still be in the order day buckets (kept BUCKET_DAYS behind the watermark):
    # older days are folded into the lifetime totals, and a half-kept baseline reads as a collapse.
    kept = profile.watermark is not None and today - spans[3][1] + 1 >= profile.watermark // DAY - BUCKET_DAYS
    if kept and first is not None and first <= today - spans[3][1] and ly_base[0] >= rules.decline_min_baseline_orders:
        last_year = statistics.fmean([(ly_recent[i] / r) / (ly_base[i] / 90) for i in (0, 2) if ly_base[i] > 0])
        evidence["ratio_same_period_last_year"] = round(last_year, 2)
        if last_year > 0:
            ratio /= last_year
            evidence["seasonally_adjusted_ratio"] = round(ratio, 2)
    decline = 1 - ratio
    p = poisson_cdf(recent[0], base[0] * r / 90)  # how unlikely this few orders are at the usual rate
    if decline < rules.decline_threshold or p > rules.decline_p_value:
        return None
    evidence |= {"decline": round(decline, 2), "p_orders_recent": float(f"{p:.2g}")}
    strength = _clamp(0.5 + (decline - rules.decline_threshold) / (1 - rules.decline_threshold))
    # Fewer orders of the usual size is what a seasonal trough looks like; fewer *and smaller* orders
    # is what moving volume to another provider looks like. Intact order size halves the strength.
    shrink = 0.5  # unknown: too few recent orders to judge their size
    if recent[0] >= rules.size_min_orders and base[1]:
        size_ratio = (recent[1] / recent[0]) / (base[1] / base[0])
        evidence["order_size_ratio"] = round(size_ratio, 2)
        shrink = _clamp((rules.size_intact - size_ratio) / (rules.size_intact - rules.size_shrunk))
    strength *= rules.size_intact_factor + (1 - rules.size_intact_factor) * shrink
    t = order_size_t(profile, snap.as_of, r, rules.size_t_min_orders)
    if t is not None:
        evidence["order_size_t"] = round(t, 2)
        if t <= -rules.size_t:
            evidence["orders_shrinking"] = True  # significantly smaller orders: volume is moving away
    return Signal("volume_decline", strength, evidence)


def order_size_t(profile: ClientProfile, as_of: datetime, recent_days: int, min_recent: int = 5) -> float | None:
    """Welch t of log order size, recent orders against those of the 90 days before (from the order
    records, so only within the record horizon). Negative: orders got smaller. None: too few orders."""
    now = epoch_seconds(as_of)
    today = now // DAY
    groups: tuple[list[float], list[float]] = ([], [])
    for rec in profile.orders.values():
        t0 = rec.facts[0][0]
        if t0 > now or not rec.state or any(code == 2 for _, code in rec.facts):  # 2: cancelled
            continue
        age = today - t0 // DAY
        if age < recent_days:
            groups[0].append(math.log(max(1, rec.state[0])))
        elif age < recent_days + 90:
            groups[1].append(math.log(max(1, rec.state[0])))
    recent, base = groups
    if len(recent) < min_recent or len(base) < 2 * min_recent:
        return None
    spread = statistics.variance(recent) / len(recent) + statistics.variance(base) / len(base)
    if spread <= 0:
        return None
    return (statistics.fmean(recent) - statistics.fmean(base)) / math.sqrt(spread)


def _cold_chain(snap: ProfileSnapshot) -> bool:
    storage = snap.storage or {}
    hi = storage.get("temperature_max_c")
    return hi is not None and hi <= 8


def service_failures(snap: ProfileSnapshot, rules: RiskRules) -> Signal | None:
    """Rates, not counts: a large client has a few failures every month without anything being wrong."""
    tier = snap.tier or "potential"
    evidence: dict[str, Any] = {}
    strength = 0.0
    if snap.deliveries_30d >= rules.service_min_deliveries:
        target = rules.on_time_target.get(tier, 0.9)
        rate = snap.on_time_rate_30d
        # below target with confidence: a few late deliveries out of ten are noise, not a trend
        if rate is not None and wilson_upper(snap.on_time_30d, snap.deliveries_30d, rules.confidence_z) < target:
            evidence |= {
                "on_time_rate_30d": round(rate, 3),
                "on_time_target": target,
                "deliveries_30d": snap.deliveries_30d,
            }
            strength = max(strength, _clamp((target - rate) / 0.25))
        target = rules.intact_target.get(tier, 0.985)
        if snap.intact_rate_30d is not None and snap.intact_rate_30d < target - rules.intact_margin:
            evidence |= {"intact_rate_30d": round(snap.intact_rate_30d, 4), "intact_target": target}
            strength = max(strength, _clamp((target - snap.intact_rate_30d) / 0.05))
        failed_share = snap.failed_30d / snap.deliveries_30d
        failed_low = 1 - wilson_upper(snap.deliveries_30d - snap.failed_30d, snap.deliveries_30d, rules.confidence_z)
        if snap.failed_30d >= rules.failed_deliveries_repeat and failed_low >= rules.failed_share:
            evidence |= {"failed_deliveries_30d": snap.failed_30d, "failed_share_30d": round(failed_share, 3)}
            strength = max(strength, _clamp(failed_share / (2 * rules.failed_share)))
    if snap.temperature_excursions_30d >= 2 and _cold_chain(snap):
        evidence["temperature_excursions_30d"] = snap.temperature_excursions_30d
        strength = max(strength, _clamp(0.25 * snap.temperature_excursions_30d))
    return Signal("service_failures", strength, evidence) if strength > 0 else None


def complaint_pressure(profile: ClientProfile, snap: ProfileSnapshot, rules: RiskRules) -> Signal | None:
    """More complaints (or more severe ones) than the client's own usual, and reopened ones.

    Counts of the last 30 days against the client's 60 days before, judged by the Poisson tail: how
    unlikely is this many if nothing changed? Counts, not per order: in a seasonal trough orders fall
    while complaints do not rise, and a large client's usual few complaints are no signal at all.
    """
    now = epoch_seconds(snap.as_of)
    counts = {"all": [0, 0], "severe": [0, 0]}  # [last 30 days, the 60 days before]
    reopened = 0
    for rec in profile.complaints.values():
        opened = rec.earliest(COMPLAINT_OPENED)
        if opened is not None and now - 90 * DAY < opened <= now:
            recent = int(opened > now - 30 * DAY)
            counts["all"][1 - recent] += 1
            if rec.state and rec.state[1] in ("high", "critical"):
                counts["severe"][1 - recent] += 1
        reopened += sum(1 for t, c in rec.facts if c == COMPLAINT_REOPENED and now - 30 * DAY < t <= now)
    evidence: dict[str, Any] = {}
    strength = 0.0
    # complaints follow volume: in a peak month more orders bring more complaints, so the usual
    # count is scaled up (never down) by how much busier the last 30 days were than the 60 before
    busier = max(1.0, snap.orders_30d / max(1.0, (snap.orders_90d - snap.orders_30d) / 2))
    for name, (last, before) in counts.items():
        usual = max(before / 2 * busier, rules.complaint_usual_floor)
        p = poisson_tail(last, usual)
        if last >= rules.complaint_min_30d and p < rules.complaint_p_value:
            key = "complaints_30d" if name == "all" else "high_severity_30d"
            evidence |= {key: last, f"usual_{key}": round(before / 2, 1), f"p_{key}": float(f"{p:.2g}")}
            strength = max(
                strength, _clamp(0.3 + 0.2 * (-math.log10(max(p, 1e-12)) + math.log10(rules.complaint_p_value)))
            )
    if reopened >= 2:
        evidence["reopened_30d"] = reopened
        strength = max(strength, _clamp(0.2 * reopened))
    return Signal("complaint_pressure", strength, evidence) if strength > 0 else None


def complaint_rate(snap: ProfileSnapshot, rules: RiskRules) -> Signal | None:
    """Complaints per 100 orders over 90 days. A leaving client complains more while ordering less, so
    the rate climbs from both ends; a large client's usual handful of complaints stays a low rate."""
    if snap.complaints_90d < rules.complaint_rate_min:
        return None
    per_order = snap.complaints_90d / max(snap.orders_90d, rules.complaint_rate_min_orders)
    evidence = {
        "complaints_90d": snap.complaints_90d,
        "orders_90d": snap.orders_90d,
        "complaints_per_100_orders_90d": round(100 * per_order, 1),
    }
    return Signal("complaint_rate", _clamp(per_order / rules.complaint_rate_full), evidence)


def wilson_upper(successes: int, n: int, z: float) -> float:
    """Upper end of the Wilson score interval of a success rate (1.0 for no trials)."""
    if n <= 0:
        return 1.0
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


def poisson_cdf(k: int, mean: float) -> float:
    """P(X <= k) for X ~ Poisson(mean)."""
    return 1.0 - poisson_tail(k + 1, mean)


def poisson_tail(k: int, mean: float) -> float:
    """P(X >= k) for X ~ Poisson(mean)."""
    if k <= 0:
        return 1.0
    term = math.exp(-mean)
    below = term
    for i in range(1, k):
        term *= mean / i
        below += term
    return max(0.0, 1.0 - below)


def _since(at: datetime | None, start: float) -> bool:
    return at is not None and at.timestamp() >= start


def satisfaction(snap: ProfileSnapshot, rules: RiskRules) -> Signal | None:
    recent = snap.as_of.timestamp() - rules.feedback_recent_days * DAY
    evidence: dict[str, Any] = {}
    strength = 0.0
    csat, nps = snap.csat_latest, snap.nps_latest
    if csat is not None and csat <= rules.csat_bad and _since(snap.csat_latest_at, recent):
        evidence["csat_latest"] = csat
        strength = max(strength, 0.5 if csat == 1 else 0.4)
    if nps is not None and nps <= rules.nps_detractor and _since(snap.nps_latest_at, recent):
        evidence["nps_latest"] = nps
        strength = max(strength, _clamp(0.15 + 0.07 * (rules.nps_detractor - nps)))
    if snap.revisit_outcome_latest == "negative" and _since(snap.revisit_latest_at, recent):
        evidence["revisit_outcome_latest"] = "negative"
        strength = max(strength, 0.3)
    if snap.csat_mean_90d is not None and snap.csat_responses_90d >= 2 and snap.csat_mean_90d <= 3.0:
        evidence["csat_mean_90d"] = round(snap.csat_mean_90d, 2)
        strength = max(strength, _clamp((3.5 - snap.csat_mean_90d) / 2))
    if strength > 0 and len(evidence) > 1:
        strength = _clamp(strength + 0.2 * (len(evidence) - 1))  # corroborated by another channel
    return Signal("satisfaction", strength, evidence) if strength > 0 else None


def contract_end(snap: ProfileSnapshot, rules: RiskRules) -> Signal | None:
    if snap.contract_end is None:
        return None
    left = (snap.contract_end - snap.as_of.date()).days
    if left > rules.contract_warning_days or left < -30:
        return None
    evidence = {"contract_end": snap.contract_end.isoformat(), "days_left": left}
    return Signal("contract_end", _clamp(1 - max(left, 0) / (rules.contract_warning_days + 1)), evidence)


def signals(profile: ClientProfile, snap: ProfileSnapshot, rules: RiskRules) -> list[Signal]:
    found = [
        cadence_broken(snap, rules),
        volume_decline(profile, snap, rules),
        service_failures(snap, rules),
        complaint_pressure(profile, snap, rules),
        complaint_rate(snap, rules),
        satisfaction(snap, rules),
        contract_end(snap, rules),
    ]
    return [s for s in found if s is not None]


# ---------------------------------------------------------------- score, reasons, actions


def evidence(found: list[Signal], weights: Mapping[str, float]) -> float:
    return sum(weights.get(s.code, 0.0) * s.strength for s in found)


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def scaled(total: float, rules: RiskRules) -> float:
    """The logistic map of evidence onto [0, 100), shifted so that no evidence is 0 (module doc)."""
    floor = _sigmoid(-rules.evidence_offset)
    return 100 * (_sigmoid(total - rules.evidence_offset) - floor) / (1 - floor)


def score(found: list[Signal], rules: RiskRules) -> int:
    """0-100 from the weighted evidence of the signals found (module doc)."""
    return round(scaled(evidence(found, rules.weights), rules))


def assess(profile: ClientProfile, snap: ProfileSnapshot, rules: RiskRules = RiskRules()) -> Assessment:
    found = signals(profile, snap, rules)
    weights = rules.weights
    total = evidence(found, weights)
    share = scaled(total, rules) / total if total > 0 else 0.0  # score points per unit of evidence
    ranked = sorted(found, key=lambda s: (-weights.get(s.code, 0.0) * s.strength, s.code))
    reasons = tuple(
        Reason(s.code, round(share * weights.get(s.code, 0.0) * s.strength, 1), s.evidence, *describe(s))
        for s in ranked[: rules.top_reasons]
        if weights.get(s.code, 0.0) > 0
    )
    actions = tuple(Action(code, r.code, *ACTION_TEXT[code]) for r in reasons for code in ACTIONS[r.code])
    return Assessment(profile.client_id, snap.as_of, round(scaled(total, rules)), tuple(found), reasons, actions)
