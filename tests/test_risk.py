"""Churn signals, score and assessment (streams.risk), on profiles built from real events.

Every profile here is replayed from `schemas.events` envelopes; expected values are counted from the
events each test builds (orders, deliveries, complaints, surveys), never read back from the code.
"""

from __future__ import annotations

import itertools
import math
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from schemas.events import EVENT_MODELS, ClientPayload, Envelope, StorageRequirements
from streams import risk
from streams.alerting import AlertRules
from streams.profile import ClientProfile, replay, snapshot
from streams.risk import (
    ACTIONS,
    DEFAULT_WEIGHTS,
    SIGNALS,
    RiskRules,
    Signal,
    assess,
    cadence_broken,
    cadence_deadline,
    complaint_pressure,
    contract_end,
    poisson_cdf,
    poisson_tail,
    satisfaction,
    score,
    service_failures,
    volume_decline,
    wilson_upper,
)
from tests.test_profile import complaint, delivery, feedback, order

RULES = RiskRules()
RAISE_AT = AlertRules().raise_at
NOON = datetime(2025, 6, 30, 12, tzinfo=UTC)
"""Noon of the 'today' of most tests; as_of is later the same day, so age 0 is today. The weeks after
it hold no closure of the default business calendar (RiskRules.quiet_periods)."""
EVENING = NOON + timedelta(hours=11)
_ids = itertools.count(1)


# ---------------------------------------------------------------- builders


def orders_at(ages: list[float], units: int = 10, fee: str = "100.00", base: datetime = NOON) -> list[Envelope]:
    """One order.created per age (days before `base`), each with its own order id."""
    return [order("order.created", f"O{next(_ids)}", base - timedelta(days=a), units=units, fee=fee) for a in ages]


def master(
    at: datetime,
    contract_end: date | None = None,
    temperature_max_c: float | None = None,
    name: str = "Acme Foods",
) -> Envelope:
    payload = ClientPayload(
        name=name,
        region="east",
        industry="ecommerce",
        account_manager="Li Hao",
        contract_start=date(2020, 1, 1),
        contract_end=contract_end,
        storage=StorageRequirements(temperature_max_c=temperature_max_c),
    )
    return EVENT_MODELS["client.upserted"](
        event_id=uuid.uuid4(),
        event_type="client.upserted",
        schema_version=1,
        occurred_at=at,
        client_id="C1",
        source="test",
        payload=payload,
    )


def build(events: list[Envelope], tier: str | None = None) -> ClientProfile:
    """Replayed in event-time order, as a live stream delivers them (nothing arrives too late)."""
    profile = replay("C1", sorted(events, key=lambda e: e.occurred_at))
    assert profile.too_late == 0
    profile.tier = tier
    return profile


def at(events: list[Envelope], as_of: datetime, tier: str | None = None):
    profile = build(events, tier)
    return profile, snapshot(profile, as_of)


def spread(n: int, lo: int, hi: int) -> list[float]:
    """n ages spread evenly over the days lo .. hi-1 (whole days, so each lands in its window)."""
    return [lo + (i * (hi - lo)) // n for i in range(n)]


# independent references (not the module's formulas)


def poisson_pmf(i: int, mean: float) -> float:
    return math.exp(-mean + i * math.log(mean) - math.lgamma(i + 1)) if mean > 0 else float(i == 0)


def ref_cdf(k: int, mean: float) -> float:
    return sum(poisson_pmf(i, mean) for i in range(k + 1))


def ref_wilson_upper(successes: int, n: int, z: float) -> float:
    """The upper Wilson bound by bisection on its definition: the largest p with
    (p_hat - p)^2 <= z^2 p (1 - p) / n, p >= p_hat."""
    p_hat = successes / n
    lo, hi = p_hat, 1.0
    if (p_hat - hi) ** 2 <= z * z * hi * (1 - hi) / n:
        return 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if (p_hat - mid) ** 2 <= z * z * mid * (1 - mid) / n:
            lo = mid
        else:
            hi = mid
    return lo


# ---------------------------------------------------------------- statistics helpers


@pytest.mark.parametrize("k,mean", [(0, 3.0), (1, 0.5), (3, 0.5), (4, 0.5), (5, 1.0), (23, 30.0), (40, 30.0)])
def test_poisson_tail_and_cdf_match_a_direct_sum(k: int, mean: float) -> None:
    expected_tail = 1.0 - ref_cdf(k - 1, mean) if k > 0 else 1.0
    assert poisson_tail(k, mean) == pytest.approx(expected_tail, abs=1e-12)
    assert poisson_cdf(k, mean) == pytest.approx(ref_cdf(k, mean), abs=1e-12)
    assert poisson_cdf(k, mean) + poisson_tail(k + 1, mean) == pytest.approx(1.0, abs=1e-12)


def test_poisson_tail_edges() -> None:
    assert poisson_tail(0, 5.0) == 1.0 and poisson_tail(-2, 5.0) == 1.0
    assert poisson_tail(1, 2.0) == pytest.approx(1 - math.exp(-2.0))
    assert poisson_tail(1, 0.0) == 0.0  # nothing can happen at rate 0
    assert poisson_cdf(0, 0.0) == 1.0
    tails = [poisson_tail(k, 4.0) for k in range(15)]
    assert all(a >= b for a, b in itertools.pairwise(tails))  # P(X >= k) falls with k
    assert all(0.0 <= t <= 1.0 for t in tails)


@pytest.mark.parametrize("successes,n", [(0, 10), (17, 20), (18, 20), (19, 20), (95, 100), (3, 8), (1, 1)])
def test_wilson_upper_is_the_upper_root_of_the_wilson_interval(successes: int, n: int) -> None:
    z = 1.64
    upper = wilson_upper(successes, n, z)
    assert upper == pytest.approx(ref_wilson_upper(successes, n, z), abs=1e-9)
    assert successes / n <= upper <= 1.0


def test_wilson_upper_edges_and_monotony() -> None:
    assert wilson_upper(0, 0, 1.64) == 1.0  # no trials: nothing is known
    assert wilson_upper(20, 20, 1.64) == 1.0
    assert wilson_upper(17, 20, 1.64) < wilson_upper(18, 20, 1.64)
    # more evidence for the same rate narrows the bound towards it
    assert wilson_upper(85, 100, 1.64) < wilson_upper(17, 20, 1.64)
    assert wilson_upper(17, 20, 2.33) > wilson_upper(17, 20, 1.64)


# ---------------------------------------------------------------- rules


def test_partial_weights_override_the_defaults_one_by_one() -> None:
    rules = RiskRules(weights={"satisfaction": 0.1, "contract_end": 1})
    expected = dict(DEFAULT_WEIGHTS) | {"satisfaction": 0.1, "contract_end": 1.0}
    assert dict(rules.weights) == expected
    assert set(rules.weights) == set(SIGNALS)
    assert isinstance(rules.weights["contract_end"], float)
    assert dict(RiskRules().weights) == dict(DEFAULT_WEIGHTS)


def test_unknown_weight_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="satisfacton"):
        RiskRules(weights={"satisfacton": 0.3})


@pytest.mark.parametrize("bad", [-0.01, 20.01, 100, float("nan"), float("inf")])
def test_weights_outside_zero_to_max_are_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match="volume_decline"):
        RiskRules(weights={"volume_decline": bad})


@pytest.mark.parametrize("edge", [0, 0.0, 1, 4.5, 20, 20.0])
def test_weights_from_zero_to_max_are_accepted(edge: float) -> None:
    assert RiskRules(weights={"volume_decline": edge}).weights["volume_decline"] == edge


# ---------------------------------------------------------------- cadence


def _regular(n: int, gap_days: float, last: datetime = NOON) -> list[Envelope]:
    return orders_at([i * gap_days for i in range(n)], base=last)


@pytest.mark.parametrize("gap", [2.0, 3.5, 7.0])
def test_cadence_fires_at_exactly_k_typical_gaps_of_silence_and_not_a_second_before(gap: float) -> None:
    events = _regular(8, gap)  # 7 gaps of `gap` days, the last order at NOON
    k = RULES.cadence_k
    due = NOON + timedelta(days=k * gap)
    _, before = at(events, due - timedelta(seconds=1))
    assert cadence_broken(before, RULES) is None
    _, snap = at(events, due)
    s = cadence_broken(snap, RULES)
    assert s is not None
    assert s.strength == pytest.approx(RULES.cadence_floor_strength)
    expected = {
        "days_since_last_order": round(k * gap, 1),
        "typical_gap_days": gap,
        "k": k,
        "silence_in_gaps": k,
        "holiday_days_excluded": 0.0,
    }
    assert {key: s.evidence.get(key) for key in expected} == expected


def test_cadence_strength_grows_from_floor_at_k_to_full_at_2k_gaps() -> None:
    gap, k, lo = 2.0, RULES.cadence_k, RULES.cadence_floor_strength
    events = _regular(10, gap)
    strengths = {}
    for silence_in_gaps in (k, 1.25 * k, 1.5 * k, 1.75 * k, 2 * k, 3 * k):
        _, snap = at(events, NOON + timedelta(days=silence_in_gaps * gap))
        s = cadence_broken(snap, RULES)
        assert s is not None
        assert s.evidence["silence_in_gaps"] == round(silence_in_gaps, 1)
        strengths[silence_in_gaps] = s.strength
    # convex (cubic) between (k, floor) and (2k, 1), flat beyond
    for x, got in strengths.items():
        assert got == pytest.approx(lo + (1 - lo) * min(1.0, (x - k) / k) ** 3)
    assert strengths[1.5 * k] == pytest.approx(lo + (1 - lo) / 8)  # half way: an eighth of the way up
    assert strengths[2 * k] == 1.0 and strengths[3 * k] == 1.0


def test_cadence_uses_the_median_gap_of_the_clients_own_history() -> None:
    # gaps 1, 1, 2, 3, 5, 8, 13 days: median 3, mean 4.7
    offsets = list(itertools.accumulate([0, 1, 1, 2, 3, 5, 8, 13]))
    last = NOON
    events = orders_at([offsets[-1] - o for o in offsets], base=last)
    typical = 3.0
    _, snap = at(events, last + timedelta(days=RULES.cadence_k * typical, seconds=-1))
    assert snap.typical_gap_days == typical  # the profile's own figure, as a cross-check of the input
    assert cadence_broken(snap, RULES) is None
    _, snap = at(events, last + timedelta(days=RULES.cadence_k * typical))
    s = cadence_broken(snap, RULES)
    assert s is not None and s.evidence["typical_gap_days"] == typical


def test_a_client_ordering_several_times_a_day_is_not_lost_over_a_weekend() -> None:
    gap = 0.25  # four orders a day
    events = _regular(12, gap)
    k, floor = RULES.cadence_k, RULES.cadence_min_gap_days
    # k of its own gaps (0.75 days) and a whole weekend pass without a signal ...
    _, snap = at(events, NOON + timedelta(days=k * floor, seconds=-1))
    assert cadence_broken(snap, RULES) is None
    # ... the floor of the typical gap decides: k * floor days of silence
    _, snap = at(events, NOON + timedelta(days=k * floor))
    s = cadence_broken(snap, RULES)
    assert s is not None
    assert s.evidence["typical_gap_days"] == gap
    assert s.evidence["silence_in_gaps"] == k


def test_cadence_needs_enough_gaps_to_know_the_habit() -> None:
    n_gaps = RULES.cadence_min_gaps
    silence = NOON + timedelta(days=100)
    _, snap = at(_regular(n_gaps, 2.0), silence)  # n_gaps orders: one gap short
    assert snap.gaps_used == n_gaps - 1
    assert cadence_broken(snap, RULES) is None
    assert cadence_deadline(snap, RULES) is None
    _, snap = at(_regular(n_gaps + 1, 2.0), silence)
    assert cadence_broken(snap, RULES) is not None


def test_cancelled_orders_are_not_part_of_the_cadence() -> None:
    events = _regular(8, 2.0)
    # a cancelled order one day after the last real one must not reset the silence
    late = order("order.created", "OX", NOON + timedelta(days=1))
    cancel = order("order.cancelled", "OX", NOON + timedelta(days=1, hours=1))
    _, snap = at([*events, late, cancel], NOON + timedelta(days=RULES.cadence_k * 2.0))
    s = cadence_broken(snap, RULES)
    assert s is not None and s.evidence["days_since_last_order"] == RULES.cadence_k * 2.0


def test_closures_do_not_count_as_silence() -> None:
    gap, k = 2.0, RULES.cadence_k
    events = _regular(8, gap)  # last order at NOON
    first, last = (NOON + timedelta(days=3)).date(), (NOON + timedelta(days=9)).date()
    closed_days = (last - first).days + 1
    rules = RiskRules(quiet_periods=((first, last),))
    usual = NOON + timedelta(days=k * gap)  # within the closure
    assert cadence_broken(at(events, usual)[1], RULES) is not None  # without the closure
    assert cadence_broken(at(events, usual)[1], rules) is None
    due = NOON + timedelta(days=k * gap + closed_days)
    _, snap = at(events, NOON)
    assert cadence_deadline(snap, rules) == due
    assert cadence_broken(at(events, due - timedelta(seconds=1))[1], rules) is None
    s = cadence_broken(at(events, due)[1], rules)
    assert s is not None
    assert s.evidence["holiday_days_excluded"] == closed_days
    assert s.evidence["days_since_last_order"] == k * gap + closed_days
    assert s.evidence["silence_in_gaps"] == k


def test_the_default_calendar_knows_national_day() -> None:
    last = datetime(2025, 9, 28, 12, tzinfo=UTC)
    events = _regular(8, 2.0, last)
    on_holiday = last + timedelta(days=RULES.cadence_k * 2.0)  # 4 October, in the golden week
    assert cadence_broken(at(events, on_holiday)[1], RiskRules(quiet_periods=())) is not None
    assert cadence_broken(at(events, on_holiday)[1], RULES) is None


def test_cadence_deadline_walks_the_steps_of_the_signal_then_stops() -> None:
    gap, k = 2.0, RULES.cadence_k
    events = _regular(8, gap)
    steps = [1.0, 1.25, 1.5, 1.75, 2.0]
    dues = [NOON + timedelta(days=f * k * gap) for f in steps]
    _, snap = at(events, NOON)
    assert cadence_deadline(snap, RULES) == dues[0]
    for this, following in itertools.pairwise(dues):
        _, snap = at(events, this)  # at a step the next one is due (strictly later)
        assert cadence_deadline(snap, RULES) == following
    _, snap = at(events, dues[-1])
    assert cadence_deadline(snap, RULES) is None  # full strength reached: nothing more to wait for


# ---------------------------------------------------------------- volume decline


def _decline(
    recent: int,
    base: int = 90,
    recent_units: int = 10,
    base_units: int = 10,
    fee: str = "100.00",
) -> list[Envelope]:
    """`base` orders over ages 30..119 and `recent` over ages 0..29 (as_of = EVENING, age 0 today)."""
    return orders_at(spread(base, 30, 120), units=base_units, fee=fee) + orders_at(
        spread(recent, 0, 30), units=recent_units, fee=fee
    )


@pytest.mark.parametrize("recent", [23, 12, 0])
def test_volume_decline_fires_with_counted_evidence(recent: int) -> None:
    base, fee = 90, Decimal("100.00")
    profile, snap = at(_decline(recent, base), EVENING)
    s = volume_decline(profile, snap, RULES)
    assert s is not None
    ratio = (recent / 30) / (base / 90)  # same fee per order: orders and revenue agree
    e = s.evidence
    assert e["recent_days"] == 30
    assert e["orders_recent"] == recent and e["orders_prev_90d"] == base
    assert e["revenue_recent"] == float(recent * fee) and e["revenue_prev_90d"] == float(base * fee)
    assert e["ratio_to_baseline"] == round(ratio, 2)
    assert e["decline"] == round(1 - ratio, 2)
    assert e["p_orders_recent"] == pytest.approx(ref_cdf(recent, base * 30 / 90), rel=0.05)
    if recent:
        assert e["order_size_ratio"] == 1.0
    assert "ratio_same_period_last_year" not in e  # history shorter than a year
    assert 0 < s.strength <= 1


@pytest.mark.parametrize("recent", [25, 30, 40])
def test_volume_within_the_threshold_does_not_fire(recent: int) -> None:
    profile, snap = at(_decline(recent), EVENING)
    assert volume_decline(profile, snap, RULES) is None


def test_decline_threshold_is_the_boundary() -> None:
    # 24 recent against 90 before: a decline of exactly 20%; 23: 23.3%
    for threshold, fires_at_24, fires_at_23 in ((0.19, True, True), (0.21, False, True), (0.24, False, False)):
        rules = RiskRules(decline_threshold=threshold)
        for recent, fires in ((24, fires_at_24), (23, fires_at_23)):
            profile, snap = at(_decline(recent), EVENING)
            assert (volume_decline(profile, snap, rules) is not None) is fires, (threshold, recent)


def test_volume_needs_a_minimum_baseline() -> None:
    n = RULES.decline_min_baseline_orders
    profile, snap = at(_decline(0, base=n - 1), EVENING)
    assert volume_decline(profile, snap, RULES) is None
    profile, snap = at(_decline(0, base=n), EVENING)
    s = volume_decline(profile, snap, RULES)
    assert s is not None and s.evidence["orders_prev_90d"] == n and s.evidence["decline"] == 1.0


def test_revenue_counts_as_much_as_orders() -> None:
    # same order count, recent orders pay half: ratio is the mean of the order and revenue ratios
    events = orders_at(spread(90, 30, 120), fee="100.00") + orders_at(spread(30, 0, 30), fee="50.00")
    profile, snap = at(events, EVENING)
    s = volume_decline(profile, snap, RiskRules(decline_threshold=0.2))
    assert s is not None
    assert s.evidence["ratio_to_baseline"] == round((1.0 + 0.5) / 2, 2)
    assert s.evidence["revenue_recent"] == 1500.0


def test_fewer_orders_of_the_usual_size_count_half_of_fewer_and_smaller_ones() -> None:
    recent = 12
    profile, snap = at(_decline(recent, recent_units=10), EVENING)
    intact = volume_decline(profile, snap, RULES)
    profile, snap = at(_decline(recent, recent_units=7), EVENING)  # 70% of the usual size
    shrunk = volume_decline(profile, snap, RULES)
    profile, snap = at(_decline(recent, recent_units=9), EVENING)  # 90%: in between
    partly = volume_decline(profile, snap, RULES)
    assert intact and shrunk and partly
    assert intact.evidence["order_size_ratio"] == 1.0
    assert shrunk.evidence["order_size_ratio"] == 0.7
    assert partly.evidence["order_size_ratio"] == 0.9
    # same counts and revenue: only the size differs
    assert intact.evidence["decline"] == shrunk.evidence["decline"] == partly.evidence["decline"]
    assert intact.strength == pytest.approx(RULES.size_intact_factor * shrunk.strength)
    assert intact.strength < partly.strength < shrunk.strength


@pytest.mark.parametrize("size_ratio,full", [(0.8, True), (0.95, False)])
def test_order_size_boundaries(size_ratio: float, full: bool) -> None:
    recent = 12
    profile, snap = at(_decline(recent, recent_units=round(20 * size_ratio), base_units=20), EVENING)
    s = volume_decline(profile, snap, RULES)
    profile, snap = at(_decline(recent, recent_units=1, base_units=20), EVENING)
    smallest = volume_decline(profile, snap, RULES)
    assert s is not None and smallest is not None
    assert s.evidence["order_size_ratio"] == size_ratio
    expected = smallest.strength if full else RULES.size_intact_factor * smallest.strength
    assert s.strength == pytest.approx(expected)


def test_the_poisson_test_holds_back_a_decline_that_few_orders_could_explain() -> None:
    rules = RiskRules(decline_p_value=0.05)
    mean = 90 * 30 / 90
    assert ref_cdf(23, mean) > 0.05 > ref_cdf(15, mean)  # the inputs straddle the bound
    profile, snap = at(_decline(23), EVENING)
    assert volume_decline(profile, snap, RULES) is not None  # default: test off
    assert volume_decline(profile, snap, rules) is None
    profile, snap = at(_decline(15), EVENING)
    s = volume_decline(profile, snap, rules)
    assert s is not None
    assert s.evidence["p_orders_recent"] == float(f"{ref_cdf(15, mean):.2g}")


def _steady_daily(days: int) -> list[Envelope]:
    return orders_at(list(range(days)))


def test_a_steady_client_with_a_long_history_shows_no_decline() -> None:
    """More than a year and a quarter of one order a day: nothing declined. Order day buckets are kept
    for BUCKET_DAYS; the same period a year earlier must not be read from a half-folded window."""
    days = 30 + 455 + 35
    profile, snap = at(_steady_daily(days), EVENING)
    assert snap.orders_30d == 30 and snap.orders_90d == 90  # cross-check of the input
    assert volume_decline(profile, snap, RULES) is None
    assert "volume_decline" not in [s.code for s in assess(profile, snap).signals]


def _seasonal_history(trough_last_year: bool) -> list[Envelope]:
    """520 days of one order a day, with a trough (every other day) in the last 30 days, and the same
    trough a year earlier if `trough_last_year`."""
    ages = []
    for age in range(520):
        in_trough = age < 30 or (trough_last_year and 365 <= age < 395)
        if not in_trough or age % 2 == 0:
            ages.append(age)
    return orders_at(ages)


def test_a_trough_that_recurs_every_year_is_seasonal_not_a_decline() -> None:
    profile, snap = at(_seasonal_history(trough_last_year=True), EVENING)
    assert volume_decline(profile, snap, RULES) is None
    # without last year's trough the same 30 days are a decline, seasonally adjusted
    profile, snap = at(_seasonal_history(trough_last_year=False), EVENING)
    s = volume_decline(profile, snap, RULES)
    assert s is not None
    assert s.evidence["orders_recent"] == 15 and s.evidence["orders_prev_90d"] == 90
    assert s.evidence["ratio_same_period_last_year"] == 1.0
    assert s.evidence["seasonally_adjusted_ratio"] == 0.5
    assert s.evidence["decline"] == 0.5


# ---------------------------------------------------------------- service failures


def _deliveries(
    n: int,
    late: int = 0,
    failed: int = 0,
    units: int = 10,
    damaged: int = 0,
    excursions: int = 0,
    end: datetime = NOON,
) -> list[Envelope]:
    """n deliveries on the last n days before `end`: `failed` failed, `late` delivered late, the rest on
    time; `damaged` units damaged and `excursions` temperature excursions spread over the delivered ones."""
    out = []
    for i in range(n):
        t = end - timedelta(days=i % 29, hours=i // 29)
        kind = "delivery.failed" if i < failed else "delivery.delivered"
        promised = t - timedelta(hours=1) if failed <= i < failed + late else t + timedelta(hours=1)
        bad = 1 if kind == "delivery.delivered" and i - failed < damaged and i >= failed else 0
        hot = i >= n - excursions
        out.append(delivery(kind, f"D{next(_ids)}", t, promised, units=units, damaged=bad, excursion=hot))
    return out


def _on_time_boundary(n: int, target: float, z: float) -> int:
    """The largest number of on-time deliveries out of n that is below target with confidence."""
    return max(s for s in range(n + 1) if ref_wilson_upper(s, n, z) < target)


@pytest.mark.parametrize("tier", ["potential", "stable", "key"])
def test_on_time_rate_below_target_with_confidence(tier: str) -> None:
    n, z = 40, RULES.confidence_z
    target = RULES.on_time_target[tier]
    on_time = _on_time_boundary(n, target, z)
    _, snap = at(_deliveries(n, late=n - on_time), NOON + timedelta(hours=2), tier)
    assert snap.deliveries_30d == n and snap.on_time_30d == on_time
    s = service_failures(snap, RULES)
    assert s is not None
    assert s.evidence == {"on_time_rate_30d": round(on_time / n, 3), "on_time_target": target, "deliveries_30d": n}
    # one more on-time delivery and the shortfall could be noise
    _, snap = at(_deliveries(n, late=n - on_time - 1), NOON + timedelta(hours=2), tier)
    assert service_failures(snap, RULES) is None
    # further below target: stronger
    _, snap = at(_deliveries(n, late=n - on_time + 4), NOON + timedelta(hours=2), tier)
    worse = service_failures(snap, RULES)
    assert worse is not None and 1 >= worse.strength > s.strength


def test_on_time_targets_differ_per_tier() -> None:
    n, z = 40, RULES.confidence_z
    on_time = _on_time_boundary(n, RULES.on_time_target["key"], z)
    assert ref_wilson_upper(on_time, n, z) >= RULES.on_time_target["potential"]  # the input straddles the tiers
    events = _deliveries(n, late=n - on_time)
    as_of = NOON + timedelta(hours=2)
    assert service_failures(at(events, as_of, "key")[1], RULES) is not None
    assert service_failures(at(events, as_of, "potential")[1], RULES) is None
    assert service_failures(at(events, as_of, None)[1], RULES) is None  # unclassified: as potential


def test_too_few_deliveries_say_nothing_about_service() -> None:
    n = RULES.service_min_deliveries
    as_of = NOON + timedelta(hours=2)
    _, snap = at(_deliveries(n - 1, late=n - 1), as_of)
    assert service_failures(snap, RULES) is None
    _, snap = at(_deliveries(n, late=n), as_of)
    s = service_failures(snap, RULES)
    assert s is not None and s.evidence["deliveries_30d"] == n and s.evidence["on_time_rate_30d"] == 0.0


@pytest.mark.parametrize(
    "tier,units,damaged,fires",
    [
        ("potential", 10, 3, False),  # 98.5%: on target
        ("potential", 50, 18, False),  # 98.2%: short of 98.5% but within the margin
        ("potential", 10, 5, True),  # 97.5%
        ("key", 50, 7, False),  # 99.3% against 99.5%: within the margin
        ("key", 10, 3, True),  # 98.5%
    ],
)
def test_intact_rate_below_target_beyond_the_margin(tier: str, units: int, damaged: int, fires: bool) -> None:
    n = 20
    _, snap = at(_deliveries(n, units=units, damaged=damaged), NOON + timedelta(hours=2), tier)
    rate = (n * units - damaged) / (n * units)
    assert snap.intact_rate_30d == pytest.approx(rate)
    s = service_failures(snap, RULES)
    assert (s is not None) is fires
    if s is not None:
        assert s.evidence == {"intact_rate_30d": round(rate, 4), "intact_target": RULES.intact_target[tier]}


def test_repeated_failed_deliveries_with_a_significant_share() -> None:
    as_of = NOON + timedelta(hours=2)
    rep = RULES.failed_deliveries_repeat
    # out of 8 deliveries even rep - 1 failures are a significant share, but not repeated enough
    assert 1 - ref_wilson_upper(8 - (rep - 1), 8, RULES.confidence_z) >= RULES.failed_share
    _, snap = at(_deliveries(8, failed=rep - 1), as_of)
    s = service_failures(snap, RULES)
    assert s is None or "failed_deliveries_30d" not in s.evidence
    _, snap = at(_deliveries(8, failed=rep), as_of)
    s = service_failures(snap, RULES)
    assert s is not None and s.evidence["failed_deliveries_30d"] == rep
    _, snap = at(_deliveries(20, failed=rep), as_of)
    s = service_failures(snap, RULES)
    assert s is not None
    assert s.evidence["failed_deliveries_30d"] == rep
    assert s.evidence["failed_share_30d"] == round(rep / 20, 3)
    # the same number of failures out of many deliveries is a small share: no signal
    _, snap = at(_deliveries(100, failed=rep), as_of)
    assert snap.failed_30d == rep
    assert service_failures(snap, RULES) is None


@pytest.mark.parametrize("limit,excursions,fires", [(8.0, 2, True), (8.0, 1, False), (8.5, 3, False), (None, 3, False)])
def test_temperature_excursions_count_for_cold_chain_clients_only(limit, excursions: int, fires: bool) -> None:
    events = [master(NOON - timedelta(days=200), temperature_max_c=limit), *_deliveries(3, excursions=excursions)]
    _, snap = at(events, NOON + timedelta(hours=2))
    assert snap.temperature_excursions_30d == excursions
    s = service_failures(snap, RULES)
    assert (s is not None) is fires
    if s is not None:
        assert s.evidence == {"temperature_excursions_30d": excursions}


def test_deliveries_older_than_30_days_do_not_count() -> None:
    old = _deliveries(20, late=20, end=NOON - timedelta(days=31))
    _, snap = at([*old, *orders_at([0])], EVENING)
    assert snap.deliveries_30d == 0
    assert service_failures(snap, RULES) is None


# ---------------------------------------------------------------- complaint pressure


def _complaints(ages: list[float], severity: str = "low", base: datetime = NOON) -> list[Envelope]:
    return [complaint("complaint.opened", f"Q{next(_ids)}", base - timedelta(days=a), severity=severity) for a in ages]


def test_complaints_far_above_the_clients_usual_count() -> None:
    floor = RULES.complaint_usual_floor  # a client without complaints before has this usual rate
    needed = next(c for c in range(1, 20) if 1 - ref_cdf(c - 1, floor) < RULES.complaint_p_value)
    needed = max(needed, RULES.complaint_min_30d)
    profile, snap = at(_complaints(spread(needed - 1, 0, 30)), EVENING)
    assert complaint_pressure(profile, snap, RULES) is None
    profile, snap = at(_complaints(spread(needed, 0, 30)), EVENING)
    s = complaint_pressure(profile, snap, RULES)
    assert s is not None
    p = 1 - ref_cdf(needed - 1, floor)
    assert s.evidence == {"complaints_30d": needed, "usual_complaints_30d": 0.0, "p_complaints_30d": float(f"{p:.2g}")}
    # more complaints, less likely, stronger
    profile, snap = at(_complaints(spread(needed + 3, 0, 30)), EVENING)
    stronger = complaint_pressure(profile, snap, RULES)
    assert stronger is not None and 1 >= stronger.strength > s.strength


def test_complaint_count_minimum() -> None:
    rules = RiskRules(complaint_usual_floor=0.1)  # 2 complaints alone would be unlikely enough
    assert 1 - ref_cdf(1, 0.1) < rules.complaint_p_value
    profile, snap = at(_complaints([1, 2]), EVENING)
    assert complaint_pressure(profile, snap, rules) is None
    profile, snap = at(_complaints([1, 2, 3]), EVENING)
    assert complaint_pressure(profile, snap, rules) is not None


def test_the_usual_count_comes_from_the_60_days_before() -> None:
    # 5 in the last 30 days; before: 0 or 2 (usual 1 per 30 days) or 6 (usual 3)
    recent = _complaints(spread(5, 0, 30))
    for before, fires in ((0, True), (2, True), (6, False)):
        profile, snap = at(recent + _complaints(spread(before, 31, 89)), EVENING)
        s = complaint_pressure(profile, snap, RULES)
        usual = max(before / 2, RULES.complaint_usual_floor)
        assert (1 - ref_cdf(4, usual) < RULES.complaint_p_value) is fires  # the input is what we think
        assert (s is not None) is fires, before
        if s is not None:
            assert s.evidence["usual_complaints_30d"] == before / 2
            assert s.evidence["complaints_30d"] == 5


def test_complaints_older_than_90_days_are_not_the_usual() -> None:
    profile, snap = at(_complaints(spread(5, 0, 30)) + _complaints(spread(10, 91, 119)), EVENING)
    s = complaint_pressure(profile, snap, RULES)
    assert s is not None and s.evidence["usual_complaints_30d"] == 0.0


def test_a_busier_month_brings_more_complaints_without_signal() -> None:
    complaints = _complaints(spread(5, 0, 30)) + _complaints(spread(2, 31, 89))
    usual = 1.0
    assert 1 - ref_cdf(4, usual) < RULES.complaint_p_value
    quiet = orders_at(spread(20, 0, 30)) + orders_at(spread(40, 30, 90))  # same rate: 20 per 30 days
    profile, snap = at(complaints + quiet, EVENING)
    assert complaint_pressure(profile, snap, RULES) is not None
    busy = orders_at(spread(60, 0, 30)) + orders_at(spread(40, 30, 90))  # three times busier
    assert 1 - ref_cdf(4, usual * 3) > RULES.complaint_p_value
    profile, snap = at(complaints + busy, EVENING)
    assert complaint_pressure(profile, snap, RULES) is None


def test_severe_complaints_are_judged_against_their_own_usual() -> None:
    # ten low-severity complaints before make four recent ones ordinary, but four high ones are not
    before = _complaints(spread(10, 31, 89), severity="low")
    profile, snap = at(before + _complaints(spread(4, 0, 30), severity="low"), EVENING)
    assert complaint_pressure(profile, snap, RULES) is None
    for severity in ("high", "critical"):
        profile, snap = at(before + _complaints(spread(4, 0, 30), severity=severity), EVENING)
        s = complaint_pressure(profile, snap, RULES)
        assert s is not None
        p = 1 - ref_cdf(3, RULES.complaint_usual_floor)
        assert s.evidence == {
            "high_severity_30d": 4,
            "usual_high_severity_30d": 0.0,
            "p_high_severity_30d": float(f"{p:.2g}"),
        }


def test_reopened_complaints() -> None:
    opened = [complaint("complaint.opened", f"R{i}", NOON - timedelta(days=60)) for i in range(3)]

    def cycle(cid: str, days_ago: float) -> list[Envelope]:
        t = NOON - timedelta(days=days_ago)
        return [complaint("complaint.resolved", cid, t), complaint("complaint.reopened", cid, t + timedelta(hours=1))]

    profile, snap = at([*opened, *cycle("R0", 5)], EVENING)
    assert complaint_pressure(profile, snap, RULES) is None  # one reopen
    profile, snap = at([*opened, *cycle("R0", 5), *cycle("R1", 10), *cycle("R2", 40)], EVENING)
    s = complaint_pressure(profile, snap, RULES)
    assert s is not None and s.evidence == {"reopened_30d": 2}  # R2 reopened 40 days ago
    three = [*opened, *cycle("R0", 5), *cycle("R1", 10), *cycle("R2", 15)]
    profile, snap = at(three, EVENING)
    stronger = complaint_pressure(profile, snap, RULES)
    assert stronger is not None and stronger.evidence == {"reopened_30d": 3} and stronger.strength > s.strength


# ---------------------------------------------------------------- satisfaction


@pytest.mark.parametrize(
    "csat,nps,fires", [(1, None, True), (2, None, True), (3, None, False), (None, 6, True), (None, 7, False)]
)
def test_latest_csat_and_nps_at_their_thresholds(csat: int | None, nps: int | None, fires: bool) -> None:
    _, snap = at([feedback("F1", NOON, csat=csat, nps=nps)], EVENING)
    s = satisfaction(snap, RULES)
    assert (s is not None) is fires
    if s is not None:
        expected = {"csat_latest": csat} if csat is not None else {"nps_latest": nps}
        assert s.evidence == expected


def test_lower_scores_are_stronger() -> None:
    def strength(**kw: Any) -> float:
        s = satisfaction(at([feedback("F1", NOON, **kw)], EVENING)[1], RULES)
        assert s is not None
        return s.strength

    assert strength(csat=1) > strength(csat=2)
    nps = [strength(nps=x) for x in range(RULES.nps_detractor + 1)]
    assert all(a > b for a, b in itertools.pairwise(nps))


def test_only_recent_feedback_counts() -> None:
    window = timedelta(days=RULES.feedback_recent_days)
    as_of = EVENING
    edge = as_of - window
    _, snap = at([*orders_at([0]), feedback("F1", edge, csat=1)], as_of)
    assert satisfaction(snap, RULES) is not None  # exactly feedback_recent_days old
    _, snap = at([*orders_at([0]), feedback("F1", edge - timedelta(seconds=1), csat=1)], as_of)
    assert satisfaction(snap, RULES) is None


def test_a_negative_revisit_call() -> None:
    _, snap = at([feedback("F1", NOON, outcome="negative")], EVENING)
    s = satisfaction(snap, RULES)
    assert s is not None and s.evidence == {"revisit_outcome_latest": "negative"}
    _, snap = at([feedback("F1", NOON, outcome="neutral")], EVENING)
    assert satisfaction(snap, RULES) is None


def test_a_poor_csat_mean_over_90_days() -> None:
    three = [feedback("F1", NOON - timedelta(days=80), csat=3), feedback("F2", NOON, csat=3)]
    _, snap = at(three, EVENING)
    s = satisfaction(snap, RULES)
    assert s is not None and s.evidence == {"csat_mean_90d": 3.0}  # the latest (3) is not bad itself
    _, snap = at(three[1:], EVENING)  # a single response is no mean
    assert satisfaction(snap, RULES) is None
    _, snap = at([feedback("F1", NOON - timedelta(days=80), csat=4), feedback("F2", NOON, csat=3)], EVENING)
    assert satisfaction(snap, RULES) is None  # mean 3.5


def test_complaints_in_several_channels_corroborate_each_other() -> None:
    one = satisfaction(at([feedback("F1", NOON, csat=1)], EVENING)[1], RULES)
    other = satisfaction(at([feedback("F2", NOON, nps=2)], EVENING)[1], RULES)
    both = satisfaction(at([feedback("F1", NOON, csat=1), feedback("F2", NOON, nps=2)], EVENING)[1], RULES)
    assert one and other and both
    assert both.evidence == {"csat_latest": 1, "nps_latest": 2}
    assert both.strength > max(one.strength, other.strength)


# ---------------------------------------------------------------- contract end


@pytest.mark.parametrize("days_left", [-31, -30, -1, 0, 1, 15, 30, 31])
def test_contract_end_within_the_warning_period(days_left: int) -> None:
    as_of = EVENING
    end = as_of.date() + timedelta(days=days_left)
    _, snap = at([master(NOON - timedelta(days=10), contract_end=end)], as_of)
    s = contract_end(snap, RULES)
    fires = -30 <= days_left <= RULES.contract_warning_days
    assert (s is not None) is fires
    if s is not None:
        assert s.evidence == {"contract_end": end.isoformat(), "days_left": days_left}
        assert 0 < s.strength <= 1
        if days_left <= 0:
            assert s.strength == 1.0


def test_contract_end_grows_stronger_as_the_end_approaches() -> None:
    strengths = []
    for days_left in (30, 20, 10, 1, 0):
        end = EVENING.date() + timedelta(days=days_left)
        s = contract_end(at([master(NOON, contract_end=end)], EVENING)[1], RULES)
        assert s is not None
        strengths.append(s.strength)
    assert all(a < b for a, b in itertools.pairwise(strengths))


def test_no_contract_end_no_signal() -> None:
    assert contract_end(at([master(NOON)], EVENING)[1], RULES) is None


# ---------------------------------------------------------------- score


def sig(code: str, strength: float) -> Signal:
    return Signal(code, strength, {})


def logistic_score(total: float, offset: float = RULES.evidence_offset) -> int:
    """Independent reference of the documented map: evidence -> 0..100, 0 at no evidence."""
    low = 1 / (1 + math.exp(offset))
    return round(100 * (1 / (1 + math.exp(offset - total)) - low) / (1 - low))


def test_score_is_the_logistic_map_of_the_weighted_evidence() -> None:
    w = RULES.weights
    assert score([], RULES) == 0
    assert score([sig("satisfaction", 1.0)], RULES) == logistic_score(w["satisfaction"])
    found = [sig("service_failures", 1.0), sig("satisfaction", 0.8), sig("contract_end", 0.5)]
    total = w["service_failures"] + 0.8 * w["satisfaction"] + 0.5 * w["contract_end"]
    assert score(found, RULES) == logistic_score(total)
    every = [sig(code, 1.0) for code in SIGNALS]
    assert score(every, RULES) == logistic_score(sum(w.values())) <= 100
    # the documented anchor: the alert threshold sits at about 4.0 of evidence
    assert logistic_score(3.95) < RAISE_AT <= logistic_score(4.05)


def test_order_volume_alone_does_not_raise_until_orders_stop() -> None:
    """A decline in order count with a silence short of a stop is what a seasonal trough or a healthy
    dip looks like: below the threshold. Orders that stopped (2k gaps) raise without corroboration."""
    volume = sig("volume_decline", 1.0)
    lo = RULES.cadence_floor_strength
    for past_k in (0.0, 0.5, 0.75):  # a silence of k, 1.5k, 1.75k gaps
        silence = sig("cadence_broken", lo + (1 - lo) * past_k**3)
        assert score([volume, silence], RULES) < RAISE_AT, past_k
    assert score([sig("cadence_broken", 1.0)], RULES) >= RAISE_AT
    # the default policy: a full decline is raised together with a complaint rate, unhappy surveys or an
    # ending contract; service failures and complaint spikes (which healthy clients have too) need both
    for other in ("complaint_rate", "satisfaction", "contract_end"):
        assert score([volume, sig(other, 1.0)], RULES) >= RAISE_AT, other
    for other in ("service_failures", "complaint_pressure"):
        assert score([volume, sig(other, 1.0)], RULES) < RAISE_AT, other
    both = [volume, sig("service_failures", 1.0), sig("complaint_pressure", 1.0)]
    assert score(both, RULES) >= RAISE_AT


def test_adding_a_signal_never_lowers_the_score() -> None:
    rng = random.Random(11)
    for _ in range(400):
        found = [sig(code, rng.choice([0.1, 0.3, 0.5, 0.6, 0.9, 1.0])) for code in SIGNALS if rng.random() < 0.5]
        extra = sig(rng.choice(SIGNALS), rng.random())
        base = score(found, RULES)
        assert 0 <= base <= 100
        assert score([*found, extra], RULES) >= base, (found, extra)


# ---------------------------------------------------------------- assess: reasons, texts, actions


def _troubled_client() -> tuple[list[Envelope], datetime]:
    """Orders that stopped, bad surveys, a contract about to end, late deliveries."""
    as_of = NOON + timedelta(days=30)
    events = [
        master(NOON - timedelta(days=300), contract_end=as_of.date() + timedelta(days=5)),
        *_regular(20, 2.0),
        *_deliveries(20, late=20, end=as_of - timedelta(hours=1)),
        feedback("F1", as_of - timedelta(days=1), csat=1),
        feedback("F2", as_of - timedelta(days=2), nps=1),
    ]
    return events, as_of


def test_assess_ranks_reasons_by_points_and_keeps_the_top_ones() -> None:
    events, as_of = _troubled_client()
    profile, snap = at(events, as_of, "stable")
    a = assess(profile, snap, RULES)
    codes = {s.code for s in a.signals}
    assert {"cadence_broken", "satisfaction", "contract_end", "service_failures"} <= codes
    assert len(a.reasons) == RULES.top_reasons < len(a.signals)
    points = [r.points for r in a.reasons]
    assert points == sorted(points, reverse=True)
    by_code = {s.code: s for s in a.signals}
    w = RULES.weights
    total = sum(w[s.code] * s.strength for s in a.signals)
    unrounded = 100 * (1 / (1 + math.exp(RULES.evidence_offset - total)) - 1 / (1 + math.exp(RULES.evidence_offset)))
    unrounded /= 1 - 1 / (1 + math.exp(RULES.evidence_offset))
    for r in a.reasons:  # each reason's share of the score, in proportion to its evidence
        assert r.points == round(unrounded * w[r.code] * by_code[r.code].strength / total, 1)
        assert r.evidence == by_code[r.code].evidence
    # nothing left out outranks what was kept
    kept = min(points)
    left_out = [unrounded * w[s.code] * s.strength / total for s in a.signals if s.code not in a.codes]
    assert all(x <= kept for x in left_out)
    # with every reason kept, the points add up to the score
    every = assess(profile, snap, RiskRules(top_reasons=len(SIGNALS)))
    assert sum(r.points for r in every.reasons) == pytest.approx(unrounded, abs=0.05 * len(every.reasons))
    assert a.score == score(list(a.signals), RULES) >= RAISE_AT
    assert a.client_id == "C1" and a.as_of == as_of


def test_every_reason_has_english_and_chinese_text_with_its_numbers() -> None:
    events, as_of = _troubled_client()
    profile, snap = at(events, as_of, "stable")
    a = assess(profile, snap, RiskRules(top_reasons=len(SIGNALS)))
    assert a.codes and set(a.codes) == {s.code for s in a.signals}
    silence = (as_of - NOON).total_seconds() / 86400
    for r in a.reasons:
        assert r.text_en and r.text_zh and r.text_en != r.text_zh
        assert any("\u4e00" <= ch <= "\u9fff" for ch in r.text_zh), r.text_zh
    text = {r.code: r for r in a.reasons}
    assert str(round(silence, 1)) in text["cadence_broken"].text_en
    assert str(round(silence, 1)) in text["cadence_broken"].text_zh
    assert "5 days" in text["contract_end"].text_en and "5 天" in text["contract_end"].text_zh
    assert "CSAT 1/5" in text["satisfaction"].text_en and "(1/10)" in text["satisfaction"].text_en
    assert "on-time 0%" in text["service_failures"].text_en and "准时率 0%" in text["service_failures"].text_zh


def test_actions_answer_the_kept_reasons() -> None:
    events, as_of = _troubled_client()
    profile, snap = at(events, as_of, "stable")
    a = assess(profile, snap, RULES)
    expected = [(code, r.code) for r in a.reasons for code in ACTIONS[r.code]]
    assert [(x.code, x.for_reason) for x in a.actions] == expected
    assert all(x.text_en and x.text_zh for x in a.actions)


def test_a_zero_weight_signal_is_found_but_neither_scored_nor_given_as_reason() -> None:
    events, as_of = _troubled_client()
    profile, snap = at(events, as_of, "stable")
    muted = RiskRules(weights={"cadence_broken": 0.0}, top_reasons=len(SIGNALS))
    a = assess(profile, snap, muted)
    assert "cadence_broken" in {s.code for s in a.signals}
    assert "cadence_broken" not in a.codes
    rest = [s for s in a.signals if s.code != "cadence_broken"]
    assert a.score == score(rest, muted)


def test_a_clean_client_scores_zero() -> None:
    events = [master(NOON - timedelta(days=200)), *_regular(40, 2.0), *_deliveries(20)]
    events += [feedback("F1", NOON, csat=5, nps=10)]
    profile, snap = at(events, NOON + timedelta(hours=3), "stable")
    a = assess(profile, snap)
    assert a.score == 0 and a.signals == () and a.reasons == () and a.actions == ()


# ---------------------------------------------------------------- the stories the weights are chosen for


def test_a_seasonal_trough_stays_below_the_alert_threshold() -> None:
    """Fewer orders of unchanged size, no service or satisfaction trouble."""
    for recent in (22, 15, 8, 3):  # a dip of 27% .. 90% against 90 per 90 days (30 per 30)
        events = orders_at(spread(90, 30, 120)) + orders_at(spread(recent, 0, 30))
        events += [*_deliveries(20), feedback("F1", NOON, csat=4)]
        profile, snap = at(events, EVENING, "stable")
        a = assess(profile, snap)
        assert "volume_decline" in a.codes
        assert a.score < RAISE_AT, (recent, a.score, a.signals)


def test_fewer_and_smaller_orders_with_bad_surveys_cross_the_threshold() -> None:
    volume = orders_at(spread(90, 30, 120), units=20) + orders_at(spread(30, 0, 30), units=12, fee="50.00")
    del volume[-12:]  # 18 recent orders of 60% the size, half the fee
    profile, snap = at([*volume, *_deliveries(20)], EVENING, "stable")
    alone = assess(profile, snap)
    assert "volume_decline" in alone.codes and "satisfaction" not in alone.codes
    assert alone.score < RAISE_AT
    surveys = [feedback("F1", NOON - timedelta(days=3), csat=2), feedback("F2", NOON, nps=3)]
    profile, snap = at([*volume, *_deliveries(20), *surveys], EVENING, "stable")
    unhappy = assess(profile, snap)
    assert {"volume_decline", "satisfaction"} <= set(unhappy.codes)
    assert alone.score < unhappy.score < RAISE_AT  # one mildly bad survey is not yet a warning
    opened = [complaint("complaint.opened", f"K{i}", NOON - timedelta(days=2 * i)) for i in range(1, 5)]
    profile, snap = at([*volume, *_deliveries(20), *surveys, *opened], EVENING, "stable")
    a = assess(profile, snap)
    assert {"volume_decline", "satisfaction", "complaint_pressure"} <= set(a.codes)
    assert a.score >= RAISE_AT
    v = next(r for r in a.reasons if r.code == "volume_decline")
    assert v.evidence["orders_recent"] == 18 and v.evidence["order_size_ratio"] == 0.6


def test_orders_that_simply_stop_are_raised_by_the_cadence_signal_alone() -> None:
    gap, k = 2.0, RULES.cadence_k
    events = [master(NOON - timedelta(days=400)), *_regular(60, gap), *_deliveries(20)]
    only_cadence = RiskRules(weights={code: 0.0 for code in SIGNALS if code != "cadence_broken"})
    for silence_in_gaps, raised in ((k - 0.1, False), (k, False), (2 * k, True), (2.5 * k, True)):
        as_of = NOON + timedelta(days=silence_in_gaps * gap)
        profile, snap = at(events, as_of, "stable")
        alone = assess(profile, snap, only_cadence)
        assert (alone.score >= RAISE_AT) is raised, (silence_in_gaps, alone.score)
        assert (assess(profile, snap).score >= RAISE_AT) is raised  # the other signals change nothing
        if raised:
            assert alone.reasons[0].code == "cadence_broken"
            assert alone.reasons[0].evidence["silence_in_gaps"] == silence_in_gaps


def test_a_client_with_only_orders_never_breaks_the_rules() -> None:
    ages = [0, 1, 3, 7, 8, 30, 31, 60, 95, 130, 200, 365, 400]
    events = orders_at(ages)
    events += [order("order.created", "O-U", NOON - timedelta(days=5)), order("order.updated", "O-U", NOON, units=3)]
    events += [order("order.cancelled", "O-C", NOON - timedelta(days=2))]  # a cancellation of an unseen order
    for as_of in (NOON, EVENING, NOON + timedelta(days=1), NOON + timedelta(days=90), NOON + timedelta(days=900)):
        for tier in (None, "potential", "stable", "key"):
            profile, snap = at(events, as_of, tier)
            assert service_failures(snap, RULES) is None
            assert complaint_pressure(profile, snap, RULES) is None
            assert satisfaction(snap, RULES) is None
            assert contract_end(snap, RULES) is None
            cadence_deadline(snap, RULES)
            a = assess(profile, snap)
            assert 0 <= a.score <= 100
            assert {s.code for s in a.signals} <= {"cadence_broken", "volume_decline"}


# ---------------------------------------------------------------- order size (the churn signature)


def _orders_with_units(ages: list[float], units: list[int]) -> list[Envelope]:
    pairs = zip(ages, units, strict=True)
    return [order("order.created", f"O{next(_ids)}", NOON - timedelta(days=a), units=u) for a, u in pairs]


def _welch_t(recent: list[int], base: list[int]) -> float:
    """Independent reference: Welch t of log order size."""
    lr, lb = [math.log(u) for u in recent], [math.log(u) for u in base]
    mr, mb = sum(lr) / len(lr), sum(lb) / len(lb)
    vr = sum((x - mr) ** 2 for x in lr) / (len(lr) - 1)
    vb = sum((x - mb) ** 2 for x in lb) / (len(lb) - 1)
    return (mr - mb) / math.sqrt(vr / len(lr) + vb / len(lb))


def test_order_size_t_matches_a_welch_test_of_log_units() -> None:
    base_units = [90, 110, 100, 95, 105, 120, 80, 100, 98, 102] * 3
    recent_units = [50, 60, 55, 45, 52, 58, 48, 62]
    events = _orders_with_units(spread(30, 30, 120), base_units) + _orders_with_units(spread(8, 0, 30), recent_units)
    profile = build(events)
    got = risk.order_size_t(profile, EVENING, 30)
    assert got == pytest.approx(_welch_t(recent_units, base_units))
    assert got < -RULES.size_t


def test_too_few_orders_give_no_size_test() -> None:
    events = _orders_with_units(spread(30, 30, 120), [100, 90, 110] * 10) + _orders_with_units([1, 2, 3], [5, 6, 7])
    assert risk.order_size_t(build(events), EVENING, 30) is None


def test_a_decline_with_significantly_smaller_orders_weighs_more_than_a_trough() -> None:
    base_units = [90, 110, 100, 95, 105, 120, 80, 100, 98, 102] * 6
    shrunk = _orders_with_units(spread(60, 30, 120), base_units) + _orders_with_units(
        spread(8, 0, 30), [50, 60, 55, 45, 52, 58, 48, 62]
    )
    profile, snap = at(shrunk, EVENING)
    smaller = risk.volume_decline(profile, snap, RULES)
    assert smaller is not None and smaller.evidence.get("orders_shrinking") is True
    # the same fall in order count with orders of the usual size: what a seasonal trough looks like
    same_size = _orders_with_units(spread(60, 30, 120), base_units) + _orders_with_units(
        spread(8, 0, 30), [90, 110, 100, 95, 105, 120, 80, 100]
    )
    profile, snap = at(same_size, EVENING)
    trough = risk.volume_decline(profile, snap, RULES)
    assert trough is not None and "orders_shrinking" not in trough.evidence
    assert smaller.strength > trough.strength
    assert risk.score([trough], RULES) < risk.score([smaller], RULES) < RAISE_AT


def test_a_zero_weight_cadence_adds_nothing() -> None:
    rules = RiskRules(weights={"cadence_broken": 0.0})
    stopped = risk.Signal("cadence_broken", 1.0, {})
    decline = risk.Signal("volume_decline", 1.0, {})
    assert risk.score([stopped, decline], rules) == risk.score([decline], rules) < RAISE_AT
    assert risk.score([stopped, decline], RULES) >= RAISE_AT
