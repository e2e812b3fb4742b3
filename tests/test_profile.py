"""The client profile core: exact metrics, order independence, idempotence, bounded state.

Expected values are recounted straight from the event lists (`recount` below), without the profile's
records, buckets or folding; the profile must agree exactly on counts and sums and within 1e-9 on rates.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from producers.generator import DEFAULT_START, History, generate
from schemas.events import (
    EVENT_MODELS,
    ClientPayload,
    ComplaintPayload,
    DeliveryPayload,
    Envelope,
    FeedbackPayload,
    OrderCancelledPayload,
    OrderPayload,
)
from streams.profile import (
    BUCKET_DAYS,
    RECORD_DAYS,
    ClientProfile,
    apply,
    epoch_seconds,
    new_profile,
    p90,
    replay,
    snapshot,
)
from tests.profile_oracle import assert_matches, recount

# ---------------------------------------------------------------- event builders

T0 = datetime(2025, 3, 1, tzinfo=UTC)
_ids = itertools.count(1)


def _event(event_type: str, at: datetime, payload: Any, client: str = "C1", event_id: uuid.UUID | None = None):
    return EVENT_MODELS[event_type](
        event_id=event_id or uuid.UUID(int=next(_ids)),
        event_type=event_type,
        schema_version=1,
        occurred_at=at,
        client_id=client,
        source="test",
        payload=payload,
    )


def order(event_type: str, order_id: str, at: datetime, units: int = 10, fee: str = "100.00", **kw: Any) -> Envelope:
    if event_type == "order.cancelled":
        return _event(event_type, at, OrderCancelledPayload(order_id=order_id), **kw)
    payload = OrderPayload(
        order_id=order_id, warehouse_id="WH-SH1", service_type="delivery", units=units, service_fee=Decimal(fee)
    )
    return _event(event_type, at, payload, **kw)


def delivery(
    event_type: str,
    delivery_id: str,
    at: datetime,
    promised_by: datetime,
    units: int = 10,
    damaged: int = 0,
    missing: int = 0,
    excursion: bool = False,
    delivered_at: datetime | None = None,
    **kw: Any,
) -> Envelope:
    payload = DeliveryPayload(
        delivery_id=delivery_id,
        order_id="SO-1",
        promised_by=promised_by,
        delivered_at=delivered_at or (at if event_type == "delivery.delivered" else None),
        units=units,
        units_delivered=units - missing if event_type == "delivery.delivered" else 0,
        units_damaged=damaged,
        units_missing=missing,
        temperature_excursion=excursion,
        failure_reason="consignee not available" if event_type == "delivery.failed" else "",
    )
    return _event(event_type, at, payload, **kw)


def complaint(
    event_type: str, complaint_id: str, at: datetime, category: str = "delay", severity: str = "low", **kw: Any
) -> Envelope:
    return _event(
        event_type, at, ComplaintPayload(complaint_id=complaint_id, category=category, severity=severity), **kw
    )


def feedback(
    feedback_id: str,
    at: datetime,
    csat: int | None = None,
    nps: int | None = None,
    outcome: str | None = None,
    **kw: Any,
) -> Envelope:
    channel = "revisit_call" if outcome else "survey"
    payload = FeedbackPayload(feedback_id=feedback_id, csat=csat, nps=nps, channel=channel, revisit_outcome=outcome)
    return _event("feedback.received", at, payload, **kw)


def client_upserted(at: datetime, name: str = "Acme", contract_start: date | None = None, **kw: Any) -> Envelope:
    payload = ClientPayload(
        name=name, region="east", industry="ecommerce", contract_start=contract_start, account_manager="Li Hao"
    )
    return _event("client.upserted", at, payload, **kw)


def build(events: Iterable[Envelope], client: str = "C1", record_days: int = RECORD_DAYS) -> ClientProfile:
    return replay(client, list(events), record_days)


# ---------------------------------------------------------------- independent recount


def by_client(history: History) -> dict[str, list[Envelope]]:
    events: dict[str, list[Envelope]] = defaultdict(list)
    for e in history.events:
        events[e.client_id].append(e)
    return events


def end_of(days: int) -> datetime:
    return datetime.combine(DEFAULT_START, datetime.min.time(), UTC) + timedelta(days=days, seconds=-1)


# ---------------------------------------------------------------- generated histories: exact metrics


@pytest.fixture(scope="module")
def history() -> dict[str, list[Envelope]]:
    """200 days: longer than the 120-day record horizon, so order records are folded into day buckets."""
    return by_client(generate(clients=40, days=200, seed=5))


@pytest.fixture(scope="module")
def profiles(history: dict[str, list[Envelope]]) -> dict[str, ClientProfile]:
    return {c: build(evs, c) for c, evs in history.items()}


def test_every_metric_matches_a_recount_at_the_end_of_history(history, profiles) -> None:
    as_of = end_of(200)
    for client, events in history.items():
        assert_matches(snapshot(profiles[client], as_of), recount(events, as_of))


def test_every_metric_matches_a_recount_at_each_clients_watermark(history, profiles) -> None:
    for client, events in history.items():
        as_of = max(e.occurred_at for e in events)
        profile = profiles[client]
        assert profile.last_event_at == as_of
        assert_matches(snapshot(profile, as_of), recount(events, as_of))


def test_the_history_exercises_the_rules(history, profiles) -> None:
    """Guard against a vacuous comparison: the data has folding, cancellations, failures, reopens..."""
    snaps = [snapshot(p, end_of(200)) for p in profiles.values()]
    assert sum(len(p.days) for p in profiles.values()) > 500  # folded orders in day buckets
    assert sum(s.orders_365d for s in snaps) > sum(s.orders_90d for s in snaps) > 1000
    assert sum(s.cancelled_lifetime for s in snaps) > 20
    assert sum(s.failed_90d for s in snaps) > 0
    assert sum(s.reopened_90d for s in snaps) > 0
    assert sum(s.temperature_excursions_90d for s in snaps) > 0
    assert any(s.on_time_rate_90d is not None and s.on_time_rate_90d < 1 for s in snaps)
    assert any(s.intact_rate_90d is not None and s.intact_rate_90d < 1 for s in snaps)
    assert sum(s.complaints_open for s in snaps) > 0
    assert all(p.too_late == 0 for p in profiles.values())


def test_lifetime_and_year_windows_stay_exact_past_the_bucket_horizon() -> None:
    """600 days: day buckets older than BUCKET_DAYS are folded into the lifetime totals."""
    days = BUCKET_DAYS + 110
    events = by_client(generate(clients=6, days=days, seed=2))
    as_of = end_of(days)
    folded = 0
    for client, evs in events.items():
        profile = build(evs, client)
        assert profile.watermark is not None
        assert min(profile.days, default=10**9) >= profile.marks["orders"] // 86400 - BUCKET_DAYS
        folded += profile.lifetime.orders
        assert_matches(snapshot(profile, as_of), recount(evs, as_of))
    assert folded > 100


# ---------------------------------------------------------------- order independence and idempotence


@pytest.fixture(scope="module")
def short_history() -> dict[str, list[Envelope]]:
    return by_client(generate(clients=20, days=120, seed=3))


def test_any_arrival_order_gives_identical_bytes(short_history) -> None:
    for i, (client, events) in enumerate(sorted(short_history.items())):
        reference = build(events, client).to_bytes()
        for k in range(3):
            shuffled = list(events)
            random.Random(1000 * i + k).shuffle(shuffled)
            assert build(shuffled, client).to_bytes() == reference, client


def test_reversed_arrival_gives_identical_bytes(short_history) -> None:
    for client, events in short_history.items():
        assert build(reversed(events), client).to_bytes() == build(events, client).to_bytes()


def test_duplicates_anywhere_change_nothing(short_history) -> None:
    for i, (client, events) in enumerate(sorted(short_history.items())):
        rng = random.Random(i)
        reference = build(events, client)
        noisy = events + rng.sample(events, max(1, len(events) // 5)) + events[:3]
        rng.shuffle(noisy)
        profile = build(noisy, client)
        assert profile.to_bytes() == reference.to_bytes(), client
        assert profile.version == reference.version == len(events)


def test_duplicates_after_a_restart_change_nothing(short_history) -> None:
    """A worker restart = the profile restored from its changelog bytes, then Kafka redelivers."""
    for i, (client, events) in enumerate(sorted(short_history.items())):
        rng = random.Random(i)
        shuffled = rng.sample(events, len(events))
        cut = len(shuffled) // 2
        before = build(shuffled[:cut], client)
        restored = ClientProfile.from_bytes(before.to_bytes())
        assert restored == before
        for event in shuffled[cut - rng.randrange(1, cut + 1) :]:  # redelivery overlaps what was applied
            apply(restored, event)
        assert restored.to_bytes() == build(events, client).to_bytes(), client


def test_bounded_lateness_over_a_long_history_gives_identical_bytes() -> None:
    """With folding at work (400 days), events arriving up to 10 days late still give the same state."""
    for client, events in by_client(generate(clients=5, days=400, seed=8)).items():
        rng = random.Random(client)
        late = sorted(events, key=lambda e: e.occurred_at + timedelta(days=rng.uniform(0, 10)))
        reference = build(events, client)
        assert reference.lifetime.facts > 0
        profile = build(late, client)
        assert profile.too_late == 0
        assert profile.to_bytes() == reference.to_bytes(), client


def _random_events(rng: random.Random) -> list[Envelope]:
    """A few entities whose events collide in time (same second, same day), with random contents."""
    instants = [T0 + timedelta(seconds=rng.choice((0, 0, 1, 3600, 86400 * 3))) for _ in range(6)]

    def at() -> datetime:
        return rng.choice(instants)

    events: list[Envelope] = []
    for o in range(3):
        for _ in range(rng.randint(1, 4)):
            kind = rng.choice(("order.created", "order.created", "order.updated", "order.cancelled"))
            events.append(order(kind, f"O{o}", at(), units=rng.randint(1, 3), fee=rng.choice(("1.00", "2.50"))))
    for d in range(2):
        for _ in range(rng.randint(1, 3)):
            kind = rng.choice(("delivery.dispatched", "delivery.delivered", "delivery.failed"))
            t = at()
            events.append(delivery(kind, f"D{d}", t, promised_by=T0 + timedelta(seconds=1), damaged=rng.randint(0, 2)))
    for c in range(2):
        for _ in range(rng.randint(1, 4)):
            kind = rng.choice(("complaint.opened", "complaint.updated", "complaint.resolved", "complaint.reopened"))
            events.append(complaint(kind, f"Q{c}", at(), category=rng.choice(("delay", "damage"))))
    for f in range(2):
        events.append(feedback(f"F{f}", at(), csat=rng.randint(1, 5), nps=rng.choice((None, 3, 10))))
    for _ in range(rng.randint(0, 2)):
        events.append(client_upserted(at(), name=rng.choice(("Acme", "Beta"))))
    return events


def test_same_second_collisions_merge_deterministically() -> None:
    """Random small event sets with ties in time and contents: every permutation, with duplicates, agrees."""
    for seed in range(300):
        rng = random.Random(seed)
        events = _random_events(rng)
        reference = build(events).to_bytes()
        for _ in range(4):
            noisy = events + rng.sample(events, rng.randint(0, len(events)))
            rng.shuffle(noisy)
            assert build(noisy).to_bytes() == reference, seed


# ---------------------------------------------------------------- focused rules


def test_on_time_is_delivered_at_or_before_promised_by() -> None:
    promise = T0 + timedelta(hours=24)
    profile = build(
        [
            delivery("delivery.delivered", "D1", promise, promised_by=promise),
            delivery("delivery.delivered", "D2", promise + timedelta(seconds=1), promised_by=promise),
            delivery("delivery.delivered", "D3", promise - timedelta(hours=3), promised_by=promise),
            delivery("delivery.failed", "D4", promise - timedelta(hours=5), promised_by=promise),
        ]
    )
    s = snapshot(profile, promise + timedelta(days=1))
    assert (s.deliveries_30d, s.on_time_30d, s.failed_30d) == (4, 2, 1)
    assert s.on_time_rate_30d == 0.5  # a failed delivery kept no promise


def test_intact_rate_counts_units_without_damage_or_loss_of_delivered_goods() -> None:
    profile = build(
        [
            delivery("delivery.delivered", "D1", T0, promised_by=T0, units=10, damaged=2, missing=1),
            delivery("delivery.delivered", "D2", T0, promised_by=T0, units=30),
            delivery("delivery.failed", "D3", T0, promised_by=T0, units=50),
            delivery("delivery.delivered", "D4", T0, promised_by=T0, units=4, excursion=True, damaged=4),
        ]
    )
    s = snapshot(profile, T0)
    assert s.intact_rate_30d == pytest.approx((7 + 30 + 0) / (10 + 30 + 4), abs=1e-12)
    assert s.temperature_excursions_30d == 1


def test_delivery_outcome_is_the_latest_and_a_dispatch_alone_is_not_counted() -> None:
    d = T0 + timedelta(hours=1)
    profile = build(
        [
            delivery("delivery.delivered", "D1", d + timedelta(hours=5), promised_by=d + timedelta(hours=4)),
            delivery("delivery.failed", "D1", d + timedelta(hours=2), promised_by=d + timedelta(hours=4)),
            delivery("delivery.dispatched", "D1", d, promised_by=d + timedelta(hours=4)),
            delivery("delivery.dispatched", "D2", d, promised_by=d + timedelta(hours=4)),
        ]
    )
    s = snapshot(profile, T0 + timedelta(days=1))
    assert (s.deliveries_30d, s.failed_30d, s.on_time_30d, s.deliveries_lifetime) == (1, 0, 0, 1)
    assert profile.version == 4


def test_cancelled_order_leaves_revenue_and_is_counted_separately() -> None:
    profile = build(
        [
            order("order.created", "O1", T0, units=5, fee="50.00"),
            order("order.created", "O2", T0 + timedelta(hours=1), units=7, fee="70.25"),
            order("order.cancelled", "O2", T0 + timedelta(hours=2)),
        ]
    )
    s = snapshot(profile, T0 + timedelta(days=1))
    assert (s.orders_7d, s.units_7d, s.revenue_7d, s.cancelled_7d) == (1, 5, Decimal("50.00"), 1)
    assert (s.orders_lifetime, s.cancelled_lifetime, s.revenue_lifetime) == (1, 1, Decimal("50.00"))
    assert s.last_order_at == T0  # the cancelled order is not the last order


def test_latest_update_wins_and_cancellation_is_final() -> None:
    created = order("order.created", "O1", T0, units=5, fee="50.00")
    newer = order("order.updated", "O1", T0 + timedelta(hours=2), units=9, fee="90.00")
    older = order("order.updated", "O1", T0 + timedelta(hours=1), units=7, fee="70.00")
    s = snapshot(build([created, newer, older]), T0 + timedelta(days=1))
    assert (s.orders_7d, s.units_7d, s.revenue_7d) == (1, 9, Decimal("90.00"))
    cancel = order("order.cancelled", "O1", T0 + timedelta(minutes=30))
    s = snapshot(build([created, cancel, newer]), T0 + timedelta(days=1))  # updated after the cancellation
    assert (s.orders_7d, s.revenue_7d, s.cancelled_7d) == (0, Decimal(0), 1)


def test_same_second_update_beats_creation_then_larger_content_wins() -> None:
    created = order("order.created", "O1", T0, units=5, fee="50.00")
    updated = order("order.updated", "O1", T0, units=3, fee="30.00")
    assert snapshot(build([updated, created]), T0).units_7d == 3
    a = order("order.updated", "O2", T0, units=3, fee="30.00")
    b = order("order.updated", "O2", T0, units=4, fee="10.00")
    assert snapshot(build([a, b]), T0).units_7d == snapshot(build([b, a]), T0).units_7d == 4


def test_order_known_only_from_an_update_counts_at_that_time_until_the_creation_arrives() -> None:
    updated = order("order.updated", "O1", T0 + timedelta(days=2), units=8, fee="80.00")
    created = order("order.created", "O1", T0, units=5, fee="50.00")
    profile = build([updated])
    assert snapshot(profile, T0 + timedelta(days=3)).first_order_at == T0 + timedelta(days=2)
    apply(profile, created)
    s = snapshot(profile, T0 + timedelta(days=3))
    assert (s.first_order_at, s.orders_7d, s.units_7d) == (T0, 1, 8)


def test_resolution_before_opening_and_reopen() -> None:
    opened = complaint("complaint.opened", "Q1", T0, category="damage")
    resolved = complaint("complaint.resolved", "Q1", T0 + timedelta(hours=30), category="damage")
    profile = build([resolved])
    s = snapshot(profile, T0 + timedelta(days=2))
    assert (s.complaints_30d, s.complaints_open, s.resolved_90d) == (0, 0, 0)
    apply(profile, opened)
    s = snapshot(profile, T0 + timedelta(days=2))
    assert (s.complaints_30d, s.complaints_open, s.resolved_90d) == (1, 0, 1)
    assert s.resolution_hours_mean_90d == 30.0
    assert s.complaints_by_category_90d == {"damage": 1}
    apply(profile, complaint("complaint.reopened", "Q1", T0 + timedelta(hours=40), category="damage"))
    s = snapshot(profile, T0 + timedelta(days=2))
    assert (s.complaints_open, s.reopened_90d) == (1, 1)
    apply(profile, complaint("complaint.resolved", "Q1", T0 + timedelta(hours=50), category="damage"))
    s = snapshot(profile, T0 + timedelta(days=3))
    assert (s.complaints_open, s.reopened_90d, s.resolved_90d) == (0, 1, 1)
    assert s.resolution_hours_mean_90d == 30.0  # time to the first resolution


def test_resolution_hours_mean_and_nearest_rank_p90() -> None:
    events = []
    for i, h in enumerate([1, 2, 3, 4, 5, 6, 7, 8, 9, 100]):
        events.append(complaint("complaint.opened", f"Q{i}", T0))
        events.append(complaint("complaint.resolved", f"Q{i}", T0 + timedelta(hours=h)))
    s = snapshot(build(events), T0 + timedelta(days=5))
    assert s.resolution_hours_mean_90d == pytest.approx(14.5)
    assert s.resolution_hours_p90_90d == 9.0
    assert p90([5.0]) == 5.0
    assert p90([float(x) for x in range(1, 21)]) == 18.0


def test_duplicate_event_ids_and_refacts_change_nothing() -> None:
    e = order("order.created", "O1", T0, units=5, fee="50.00")
    profile = build([e, e, e])
    assert profile.version == 1
    assert profile.to_bytes() == build([e]).to_bytes()
    # the same fact re-sent under a new event id (same entity, type and second) is one fact
    again = order("order.created", "O1", T0, units=5, fee="50.00")
    assert build([e, again]).to_bytes() == build([e]).to_bytes()


def test_event_older_than_the_record_horizon_is_too_late() -> None:
    old = order("order.created", "O-old", T0, units=5, fee="50.00")
    now = T0 + timedelta(days=RECORD_DAYS + 1)
    fresh = order("order.created", "O-new", now, units=1, fee="10.00")
    profile = build([fresh])
    before = snapshot(profile, now)
    apply(profile, old)
    apply(profile, old)  # the counter counts arrivals, duplicates included
    after = snapshot(profile, now)
    assert profile.too_late == 2
    assert (after.orders_365d, after.orders_lifetime, after.version) == (before.orders_365d, 1, 1)
    # in time order it would have been counted, and folded into a day bucket
    in_order = build([old, fresh])
    assert snapshot(in_order, now).orders_365d == 2
    assert in_order.days == {int(T0.timestamp()) // 86400: [1, 5, 5000, 0]}


def test_an_event_exactly_at_the_record_horizon_is_applied() -> None:
    now = T0 + timedelta(days=RECORD_DAYS, hours=13)
    profile = build([order("order.created", "O-new", now)])
    apply(profile, order("order.created", "O-edge", T0))  # start of the day RECORD_DAYS days back
    apply(profile, order("order.created", "O-late", T0 - timedelta(seconds=1)))
    assert profile.too_late == 1
    assert set(profile.orders) == {"O-new", "O-edge"}


def test_open_complaint_outlives_the_horizon_and_still_takes_its_resolution() -> None:
    opened = complaint("complaint.opened", "Q1", T0)
    closed = complaint("complaint.opened", "Q2", T0)
    closed_res = complaint("complaint.resolved", "Q2", T0 + timedelta(hours=2))
    later = complaint("complaint.opened", "Q3", T0 + timedelta(days=RECORD_DAYS + 5))
    profile = build([opened, closed, closed_res, later])
    assert set(profile.complaints) == {"Q1", "Q3"}
    assert profile.lifetime.complaints == 1
    s = snapshot(profile, later.occurred_at)
    assert (s.complaints_open, s.complaints_lifetime, s.complaints_90d) == (2, 3, 1)
    apply(profile, complaint("complaint.resolved", "Q1", T0 + timedelta(days=1)))  # late, but its record exists
    assert profile.too_late == 0
    assert snapshot(profile, later.occurred_at).complaints_open == 1
    apply(profile, complaint("complaint.opened", "Q4", later.occurred_at + timedelta(days=1)))  # next day: folded
    assert set(profile.complaints) == {"Q3", "Q4"}
    assert snapshot(profile, later.occurred_at).complaints_lifetime == 4  # Q1, Q2 folded; Q3, Q4 live


def test_a_family_folds_by_its_own_watermark_not_by_other_topics() -> None:
    """Orders read far ahead (another topic, a replay) do not make a complaint's late steps too late."""
    profile = build([complaint("complaint.opened", "Q1", T0)])
    apply(profile, order("order.created", "O1", T0 + timedelta(days=RECORD_DAYS + 30)))
    assert set(profile.complaints) == {"Q1"}
    apply(profile, complaint("complaint.opened", "Q2", T0 + timedelta(days=2)))  # not too late for complaints
    assert profile.too_late == 0 and set(profile.complaints) == {"Q1", "Q2"}
    assert profile.watermark == epoch_seconds(T0 + timedelta(days=RECORD_DAYS + 30))


def test_folded_order_counts_on_the_day_it_was_placed() -> None:
    placed = T0 + timedelta(hours=23)
    events = [
        order("order.created", "O1", placed, units=5, fee="50.00"),
        order("order.updated", "O1", placed + timedelta(days=2), units=6, fee="60.00"),
        order("order.created", "O2", placed + timedelta(days=RECORD_DAYS + 5)),
    ]
    profile = build(events)
    assert set(profile.orders) == {"O2"}
    assert profile.days == {placed.date().toordinal() - date(1970, 1, 1).toordinal(): [1, 6, 6000, 0]}
    as_of = placed + timedelta(days=364)  # the 365-day window starts on the placement day
    assert snapshot(profile, as_of).units_365d == 6 + 10
    assert snapshot(profile, as_of + timedelta(days=1)).units_365d == 10


def test_folded_feedback_keeps_the_latest_scores() -> None:
    profile = build(
        [
            feedback("F0", T0 - timedelta(days=1), csat=5, nps=10, outcome="positive"),
            feedback("F1", T0, csat=2, nps=4),
            feedback("F2", T0 + timedelta(days=1), outcome="negative"),
            feedback("F3", T0 + timedelta(days=RECORD_DAYS + 3), nps=9),
        ]
    )
    assert set(profile.feedback) == {"F3"}
    s = snapshot(profile, T0 + timedelta(days=RECORD_DAYS + 3))
    assert (s.csat_latest, s.nps_latest, s.revisit_outcome_latest) == (2, 9, "negative")
    assert (s.csat_latest_at, s.csat_mean_90d, s.csat_responses_90d) == (T0, None, 0)


def test_master_data_after_orders_and_out_of_order() -> None:
    first = client_upserted(T0 - timedelta(days=100), name="Old Name", contract_start=date(2022, 1, 1))
    second = client_upserted(T0 - timedelta(days=10), name="New Name", contract_start=date(2022, 1, 1))
    orders = [order("order.created", f"O{i}", T0 + timedelta(days=i)) for i in range(3)]
    profile = build([*orders, second, first])  # master data arrives last, the older one after the newer
    s = snapshot(profile, T0 + timedelta(days=3))
    assert (s.name, s.account_manager, s.contract_start) == ("New Name", "Li Hao", date(2022, 1, 1))
    assert s.master_updated_at == T0 - timedelta(days=10)
    assert s.tenure_days == (T0 + timedelta(days=3) - datetime(2022, 1, 1, tzinfo=UTC)).days
    assert profile.to_bytes() == build([first, second, *orders]).to_bytes()
    ancient = client_upserted(T0 - timedelta(days=900), name="Ancient")  # master data is never too late
    s = snapshot(apply(build(orders), ancient), T0 + timedelta(days=3))
    assert (s.name, s.too_late, s.version) == ("Ancient", 0, 4)  # the first master event: a fact
    recent = client_upserted(T0, name="Recent")
    s = snapshot(apply(build([*orders, recent]), ancient), T0 + timedelta(days=3))
    assert (s.name, s.too_late, s.version) == ("Recent", 0, 4)  # merged, but past the horizon: no fact
    # same second: the larger event id wins, whatever the order
    a = client_upserted(T0, name="A", event_id=uuid.UUID(int=1))
    b = client_upserted(T0, name="B", event_id=uuid.UUID(int=2))
    assert snapshot(build([b, a]), T0).name == snapshot(build([a, b]), T0).name == "B"


def test_windows_are_whole_utc_days_ending_at_as_of() -> None:
    as_of = datetime(2025, 3, 31, 12, 0, tzinfo=UTC)
    at = [
        datetime(2025, 3, 2, 0, 0, 0, tzinfo=UTC),  # first second of the 30-day window
        datetime(2025, 3, 1, 23, 59, 59, tzinfo=UTC),  # last second before it
        as_of,  # included
        as_of + timedelta(seconds=1),  # after as_of: in no window
        datetime(2025, 3, 25, tzinfo=UTC),  # first day of the 7-day window
        datetime(2025, 3, 24, 23, 59, 59, tzinfo=UTC),
    ]
    profile = build([order("order.created", f"O{i}", t) for i, t in enumerate(at)])
    s = snapshot(profile, as_of)
    assert (s.orders_7d, s.orders_30d, s.orders_90d, s.orders_lifetime) == (2, 4, 5, 6)
    assert s.last_order_at == as_of


def test_trend_and_typical_gap() -> None:
    as_of = datetime(2025, 6, 30, 23, 0, tzinfo=UTC)
    recent = [as_of - timedelta(days=d) for d in (0, 2, 4, 6, 8, 10)]  # 6 in the last 30 days
    base = [as_of - timedelta(days=30 + 5 * d) for d in range(9)]  # 9 in the 90 days before
    profile = build([order("order.created", f"O{i}", t) for i, t in enumerate(recent + base)])
    s = snapshot(profile, as_of)
    assert (s.order_rate_30d, s.order_rate_prev_90d) == (6 / 30, 9 / 90)
    assert s.order_trend == pytest.approx(2.0)
    assert (s.typical_gap_days, s.gaps_used) == (5.0, 14)  # 5 gaps of 2 days, 1 of 20, 8 of 5
    assert s.days_since_last_order == 0.0


def test_snapshot_without_events() -> None:
    s = snapshot(new_profile("C9"), T0)
    assert (s.version, s.orders_lifetime, s.revenue_lifetime, s.tenure_days, s.order_trend) == (0, 0, 0, None, None)
    assert s.on_time_rate_30d is None and s.csat_latest is None and s.name is None
    orjson.dumps(s.to_json_dict())


def test_guards() -> None:
    with pytest.raises(ValueError, match="record_days"):
        new_profile("C1", record_days=90)
    with pytest.raises(ValueError, match="client"):
        apply(new_profile("C2"), order("order.created", "O1", T0))
    with pytest.raises(ValueError, match="format"):
        ClientProfile.from_bytes(b"\x07junk")


# ---------------------------------------------------------------- serialization


def test_round_trip_and_json_snapshot(profiles) -> None:
    for profile in profiles.values():
        data = profile.to_bytes()
        back = ClientProfile.from_bytes(data)
        assert back == profile
        assert back.to_bytes() == data
    s = snapshot(next(iter(profiles.values())), end_of(200))
    doc = orjson.loads(orjson.dumps(s.to_json_dict()))
    assert Decimal(doc["revenue_90d"]) == s.revenue_90d


def test_profiles_stay_small(profiles) -> None:
    """Size guard (the state is bounded by the horizons, not by the history length)."""
    sizes = sorted(len(p.to_bytes()) for p in profiles.values())
    assert sizes[len(sizes) // 2] < 4096
    assert sizes[-1] < 40_000
