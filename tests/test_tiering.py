"""Tiering rules (key / stable / potential), tier changes, and the Pareto A/B/C ranking."""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest

from producers.generator import generate
from schemas.events import EVENT_MODELS, Envelope, OrderPayload
from streams.profile import ClientProfile, ProfileSnapshot, apply, new_profile, replay, snapshot
from streams.tiering import (
    TierRules,
    abc_classes,
    assign_tier,
    classify,
    tier_change,
    tiered_snapshot,
)

T0 = datetime(2025, 6, 1, tzinfo=UTC)
EMPTY = snapshot(new_profile("C1"), T0)


def metrics(revenue: str, orders: int, tenure: int | None) -> ProfileSnapshot:
    return replace(EMPTY, revenue_90d=Decimal(revenue), orders_90d=orders, tenure_days=tenure)


# ---------------------------------------------------------------- classify


@pytest.mark.parametrize(
    ("revenue", "orders", "tenure", "tier"),
    [
        ("40000.00", 60, 0, "key"),  # key thresholds are inclusive; no tenure needed by default
        ("39999.99", 60, 400, "stable"),
        ("40000.00", 59, 400, "stable"),
        ("900000.00", 59, 10, "potential"),  # big but irregular and new
        ("5000.00", 12, 180, "stable"),  # stable thresholds are inclusive
        ("4999.99", 12, 180, "potential"),
        ("5000.00", 11, 180, "potential"),
        ("5000.00", 12, 179, "potential"),  # a new client is potential until its tenure reaches 180 days
        ("5000.00", 12, None, "potential"),  # unknown tenure counts as 0
        ("0", 0, None, "potential"),
    ],
)
def test_default_rules(revenue: str, orders: int, tenure: int | None, tier: str) -> None:
    assert classify(metrics(revenue, orders, tenure)) == tier


def test_custom_rules() -> None:
    rules = TierRules(key_revenue_90d=1000, key_orders_90d=5, key_min_tenure_days=30, stable_min_tenure_days=0)
    assert rules.key_revenue_90d == Decimal(1000) and isinstance(rules.key_revenue_90d, Decimal)
    assert classify(metrics("1000", 5, 30), rules) == "key"
    assert classify(metrics("1000", 5, 29), rules) == "potential"  # below stable revenue of 5000
    assert classify(metrics("6000", 12, 29), rules) == "stable"  # key needs 30 days, stable none here
    assert TierRules(stable_revenue_90d="2500.50").stable_revenue_90d == Decimal("2500.50")


def test_rules_reject_floats_and_negatives() -> None:
    with pytest.raises(TypeError):
        TierRules(key_revenue_90d=40000.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stable_orders_90d"):
        TierRules(stable_orders_90d=-1)


def test_tier_change() -> None:
    assert tier_change(None, "potential")  # the first classification opens the tier history
    assert not tier_change("stable", "stable")
    assert tier_change("stable", "key")
    assert tier_change("key", "potential")


# ---------------------------------------------------------------- assignment on a profile

_seq = iter(range(1, 10**9))


def order(order_id: str, at: datetime, fee: str, client: str = "C1") -> Envelope:
    return EVENT_MODELS["order.created"](
        event_id=uuid.UUID(int=next(_seq)),
        event_type="order.created",
        schema_version=1,
        occurred_at=at,
        client_id=client,
        source="test",
        payload=OrderPayload(
            order_id=order_id, warehouse_id="WH-SH1", service_type="delivery", units=1, service_fee=Decimal(fee)
        ),
    )


def test_assign_tier_records_changes_only() -> None:
    start = T0 - timedelta(days=200)
    profile = replay("C1", [order(f"O{i}", start + timedelta(days=i), "500.00") for i in range(0, 200, 2)])
    first = assign_tier(profile, snapshot(profile, T0))
    assert first is not None
    # every other day for 200 days: 44 orders in the 90 days ending at T0 (2, 4, ... 88 days back)
    assert (first.old, first.new, first.at, first.orders_90d, first.tenure_days) == (None, "stable", T0, 44, 200)
    assert first.revenue_90d == Decimal("22000.00")
    assert profile.tier == "stable"
    assert assign_tier(profile, snapshot(profile, T0 + timedelta(hours=1))) is None
    restored = ClientProfile.from_bytes(profile.to_bytes())  # the tier survives a restart
    assert restored.tier == "stable"
    for i in range(40):  # a big quarter
        apply(restored, order(f"B{i}", T0 + timedelta(days=1, minutes=i), "1000.00"))
    snap, change = tiered_snapshot(restored, T0 + timedelta(days=1, hours=1))
    assert change is not None and (change.old, change.new) == ("stable", "key")
    assert snap.tier == restored.tier == "key"
    assert restored.tier_since == int((T0 + timedelta(days=1, hours=1)).timestamp())
    assert snapshot(restored, T0 + timedelta(days=2)).tier == "key"
    with pytest.raises(ValueError, match="different clients"):
        assign_tier(new_profile("C2"), snap)


def test_generated_large_clients_are_key_medium_stable_small_potential() -> None:
    """On a generated year, with the default rules, at the end of the history (healthy clients)."""
    history = generate(clients=60, days=365, seed=7)
    events: dict[str, list[Envelope]] = defaultdict(list)
    for e in history.events:
        events[e.client_id].append(e)
    end = datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)
    mix: dict[str, Counter[str]] = defaultdict(Counter)
    for label in history.labels:
        if not label.churns:
            mix[label.size][classify(snapshot(replay(label.client_id, events[label.client_id]), end))] += 1
    assert mix["large"].most_common(1)[0][0] == "key"
    assert mix["medium"].most_common(1)[0][0] == "stable"
    assert mix["small"]["potential"] >= 0.9 * sum(mix["small"].values())


# ---------------------------------------------------------------- Pareto A/B/C


def D(x: str | int) -> Decimal:
    return Decimal(x)


def test_abc_example() -> None:
    revenue = {"a": D(50), "b": D(30), "c": D(15), "d": D(4), "e": D(1), "z": D(0)}
    # a: 0% above -> A; b: 50% above -> A (b brings A to 80%); c: 80% above -> B; d: 95% above -> C
    assert abc_classes(revenue) == {"a": "A", "b": "A", "c": "B", "d": "C", "e": "C", "z": "C"}


def test_abc_one_dominant_client_is_a_alone() -> None:
    assert abc_classes({"big": D(90), "x": D(6), "y": D(4)}) == {"big": "A", "x": "B", "y": "C"}


def test_abc_ties_break_by_client_id() -> None:
    revenue = {"c2": D(10), "c1": D(10), "c3": D(10), "c4": D(10), "c5": D(10)}
    # 5 equal clients: c1..c4 hold 0, 20, 40, 60% above them -> A; c5 has 80% above -> B
    assert abc_classes(revenue) == {"c1": "A", "c2": "A", "c3": "A", "c4": "A", "c5": "B"}
    assert abc_classes(dict(reversed(list(revenue.items())))) == abc_classes(revenue)


def test_abc_edge_cases() -> None:
    assert abc_classes({}) == {}
    assert abc_classes({"a": D(0), "b": D(0)}) == {"a": "C", "b": "C"}
    assert abc_classes({"a": D("0.01")}) == {"a": "A"}
    assert abc_classes({"a": D(60), "b": D(40)}, a_share=0.5, b_share=0.5) == {"a": "A", "b": "C"}
    with pytest.raises(ValueError, match="shares"):
        abc_classes({"a": D(1)}, a_share=0.9, b_share=0.8)
    with pytest.raises(ValueError, match="negative"):
        abc_classes({"a": D(-1)})


def test_abc_groups_are_the_smallest_top_groups_reaching_their_share() -> None:
    """Property check against Fraction arithmetic on random revenues with many ties and zeros."""
    for seed in range(200):
        rng = random.Random(seed)
        revenue = {
            f"C{i:03d}": Decimal(rng.choice([0, 1, 5, 5, 50, 300, rng.randint(0, 10_000)])) / 100
            for i in range(rng.randint(1, 40))
        }
        classes = abc_classes(revenue)
        ranked = sorted(revenue, key=lambda c: (-revenue[c], c))
        total = sum(Fraction(v) for v in revenue.values())
        for share, top in ((Fraction(8, 10), {"A"}), (Fraction(95, 100), {"A", "B"})):
            group = [c for c in ranked if classes[c] in top]
            assert group == ranked[: len(group)]  # a top group, in rank order
            if total == 0:
                assert group == []
                continue
            held = sum(Fraction(revenue[c]) for c in group)
            assert held >= share * total
            if group:
                assert held - Fraction(revenue[group[-1]]) < share * total  # smallest such group
        assert all(classes[c] == "C" for c in revenue if revenue[c] == 0)
