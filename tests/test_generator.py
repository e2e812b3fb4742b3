"""The synthetic history: reproducible, valid against the contract, internally consistent, realistic enough.

Expectations are computed from the generated events themselves, never read back from the generator's internals.
"""

from __future__ import annotations

import itertools
import json
import statistics
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest

from producers.generator import DEFAULT_START, ClientLabel, History, generate
from schemas.events import EVENT_ADAPTER, EVENT_TYPES, Envelope

SMALL = {"clients": 40, "days": 120, "seed": 11}


@pytest.fixture(scope="module")
def small() -> History:
    return generate(**SMALL)


@pytest.fixture(scope="module")
def year() -> History:
    """A full year, enough clients to have several churners and seasonal clients."""
    return generate(clients=60, days=365, seed=7)


def _window(history: History, days: int, start: date = DEFAULT_START) -> tuple[datetime, datetime]:
    begin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    return begin, begin + timedelta(days=days)


def _orders_by_client(history: History) -> dict[str, list[datetime]]:
    orders: dict[str, list[datetime]] = defaultdict(list)
    for e in history.events:
        if e.event_type == "order.created":
            orders[e.client_id].append(e.occurred_at)
    return orders


def _dump(history: History) -> tuple[list[str], str]:
    return [e.model_dump_json() for e in history.events], json.dumps([lb.to_json() for lb in history.labels])


# ---------------------------------------------------------------- determinism


def test_same_arguments_give_identical_events_and_labels(small: History) -> None:
    again = generate(**SMALL)
    assert _dump(again) == _dump(small)
    assert len(small.events) > 1000


def test_default_start_is_fixed_not_today() -> None:
    implicit = generate(clients=5, days=20, seed=3)
    explicit = generate(clients=5, days=20, seed=3, start=date(2025, 1, 1))
    assert date(2025, 1, 1) == DEFAULT_START
    assert _dump(implicit) == _dump(explicit)


def test_other_seed_or_start_gives_other_history(small: History) -> None:
    other = generate(**{**SMALL, "seed": SMALL["seed"] + 1})
    assert _dump(other) != _dump(small)
    assert not {e.event_id for e in other.events} & {e.event_id for e in small.events}

    shifted = generate(**{**SMALL, "start": date(2026, 3, 1)})
    begin, end = _window(shifted, SMALL["days"], date(2026, 3, 1))
    assert all(begin <= e.occurred_at < end for e in shifted.events)


# ---------------------------------------------------------------- contract


def test_every_event_round_trips_through_the_contract(small: History) -> None:
    for event in small.events:
        parsed = EVENT_ADAPTER.validate_json(event.model_dump_json())
        assert type(parsed) is type(event)
        assert parsed == event


def test_times_are_aware_in_range_and_sorted_and_ids_unique(small: History) -> None:
    begin, end = _window(small, SMALL["days"])
    times = [e.occurred_at for e in small.events]
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in times)
    assert min(times) >= begin
    assert max(times) < end
    assert times == sorted(times)
    ids = [e.event_id for e in small.events]
    assert len(set(ids)) == len(ids)
    assert all(e.schema_version == 1 and e.source for e in small.events)


def test_all_event_types_occur(year: History) -> None:
    counts = Counter(e.event_type for e in year.events)
    assert set(counts) == set(EVENT_TYPES)
    assert counts["delivery.delivered"] > 0.5 * counts["order.created"]
    assert counts["order.cancelled"] < 0.1 * counts["order.created"]
    # 60k-100k events for the default 200 clients and a year, i.e. 300-500 per client; a few large
    # clients weigh more in a smaller population
    assert 300 * 60 <= len(year.events) <= 550 * 60


# ---------------------------------------------------------------- consistency


def test_lifecycles_reference_what_exists(small: History) -> None:
    orders: dict[str, dict[str, Envelope]] = defaultdict(dict)  # client -> order_id -> latest order event
    cancelled: set[str] = set()
    deliveries: dict[str, str] = {}  # delivery_id -> state
    complaints: dict[str, str] = {}  # complaint_id -> state
    complaint_owner: dict[str, str] = {}
    first_event: dict[str, str] = {}
    for e in small.events:
        first_event.setdefault(e.client_id, e.event_type)
        kind, p = e.event_type, e.payload
        if kind == "order.created":
            assert p.order_id not in orders[e.client_id]
            orders[e.client_id][p.order_id] = e
        elif kind in ("order.updated", "order.cancelled"):
            assert p.order_id in orders[e.client_id]
            assert p.order_id not in cancelled
            if kind == "order.cancelled":
                cancelled.add(p.order_id)
            else:
                orders[e.client_id][p.order_id] = e
        elif kind.startswith("delivery."):
            order = orders[e.client_id].get(p.order_id)
            assert order is not None, f"{p.delivery_id} ships unknown order {p.order_id} of {e.client_id}"
            assert p.order_id not in cancelled
            assert p.units == order.payload.units
            assert p.units_damaged + p.units_missing <= p.units
            assert p.units_delivered <= p.units
            state = deliveries.get(p.delivery_id)
            if kind == "delivery.dispatched":
                assert state is None
                assert p.promised_by > e.occurred_at
            else:
                assert state == "dispatched", f"{p.delivery_id} {kind} before dispatch"
            if kind == "delivery.delivered":
                assert p.delivered_at == e.occurred_at
                assert p.units_delivered == p.units - p.units_missing
            deliveries[p.delivery_id] = kind.split(".")[1]
        elif kind.startswith("complaint."):
            state = complaints.get(p.complaint_id)
            if kind == "complaint.opened":
                assert state is None
                complaint_owner[p.complaint_id] = e.client_id
                if p.order_id is not None:
                    assert p.order_id in orders[e.client_id]
            else:
                assert state is not None, f"{kind} for never-opened {p.complaint_id}"
                assert complaint_owner[p.complaint_id] == e.client_id
            if kind == "complaint.reopened":
                assert state == "resolved"
            if kind in ("complaint.updated", "complaint.resolved"):
                assert state in ("opened", "updated", "reopened")
            complaints[p.complaint_id] = kind.split(".")[1]
    assert set(first_event.values()) == {"client.upserted"}
    assert len(first_event) == SMALL["clients"]
    assert deliveries and complaints


def test_master_data_fits_the_industry(small: History) -> None:
    labels = {lb.client_id: lb for lb in small.labels}
    for e in small.events:
        if e.event_type != "client.upserted":
            continue
        p = e.payload
        assert p.industry.value == labels[e.client_id].industry
        assert p.contacts and p.region and p.delivery_regions and p.account_manager and p.changed_by
        assert p.contract_start is not None and p.contract_end is not None
        if p.industry.value == "pharma_cold_chain":
            assert (p.storage.temperature_min_c, p.storage.temperature_max_c) == (2.0, 8.0)


def test_deliveries_are_mostly_on_time_and_intact(year: History) -> None:
    labels = {lb.client_id: lb for lb in year.labels}
    delivered = [e.payload for e in year.events if e.event_type == "delivery.delivered"]
    healthy = [
        e.payload for e in year.events if e.event_type == "delivery.delivered" and not labels[e.client_id].churns
    ]
    late = sum(p.delivered_at > p.promised_by for p in healthy) / len(healthy)
    damaged = sum(p.units_damaged > 0 for p in healthy) / len(healthy)
    assert 0.01 < late < 0.08
    assert 0.002 < damaged < 0.05
    assert any(p.temperature_excursion for p in delivered)
    assert all(
        not p.temperature_excursion or labels[cid].industry == "pharma_cold_chain"
        for cid, p in ((e.client_id, e.payload) for e in year.events if e.event_type == "delivery.delivered")
    )


def test_orders_follow_a_weekly_rhythm(year: History) -> None:
    per_weekday = Counter(t.weekday() for ts in _orders_by_client(year).values() for t in ts)
    weekday_mean = sum(per_weekday[d] for d in range(5)) / 5
    weekend_mean = (per_weekday[5] + per_weekday[6]) / 2
    assert weekend_mean < 0.6 * weekday_mean


# ---------------------------------------------------------------- the populations


def test_shares_of_churners_and_seasonal_clients() -> None:
    labels = generate(clients=200, days=30, seed=5).labels
    churn = sum(lb.churns for lb in labels) / len(labels)
    seasonal = sum(lb.seasonal for lb in labels) / len(labels)
    assert 0.12 <= churn <= 0.18
    assert 0.09 <= seasonal <= 0.16
    assert not any(lb.churns and lb.seasonal for lb in labels)
    assert {lb.size for lb in labels} == {"large", "medium", "small"}
    assert {lb.industry for lb in labels} == {"ecommerce", "fmcg_retail", "pharma_cold_chain", "manufacturing"}
    for lb in labels:
        assert (lb.churn_starts_at is not None) == lb.churns == (lb.churned_at is not None)
    sizes = Counter(lb.size for lb in labels)
    assert sizes["small"] > sizes["medium"] > sizes["large"]


def _rate(times: list[datetime], lo: datetime, hi: datetime) -> float:
    return sum(lo <= t < hi for t in times) / max(1.0, (hi - lo).total_seconds() / 86_400)


def test_churners_fade_out_then_stop(year: History) -> None:
    begin, end = _window(year, 365)
    orders = _orders_by_client(year)
    churners: list[ClientLabel] = [lb for lb in year.labels if lb.churns]
    assert len(churners) >= 6
    ratios = []
    for lb in churners:
        assert lb.churn_starts_at is not None and lb.churned_at is not None
        times = orders[lb.client_id]
        assert max(times) == lb.churned_at, "churned_at is the last order"
        assert lb.churn_starts_at < lb.churned_at
        assert begin + timedelta(days=120) < lb.churn_starts_at
        cut = lb.churned_at - timedelta(days=60)
        before = _rate(times, begin, cut)
        last = _rate(times, cut, lb.churned_at + timedelta(seconds=1))
        ratios.append(last / before)
    # Some of the last 60 days may precede the decline, and a small client orders only a few times
    # in them, so one churner may come close to its old rate; as a group they clearly fall.
    assert statistics.median(ratios) < 0.75
    assert max(ratios) < 1.25
    stopped_early = sum(end - lb.churned_at >= timedelta(days=30) for lb in churners)
    assert stopped_early >= 0.6 * len(churners)


def test_churners_service_and_satisfaction_worsen(year: History) -> None:
    labels = {lb.client_id: lb for lb in year.labels}
    late = Counter()  # (before/after churn start) -> late deliveries, and -> deliveries
    shipped = Counter()
    complaints = Counter()
    orders = Counter()
    csat: dict[str, list[int]] = defaultdict(list)
    for e in year.events:
        lb = labels[e.client_id]
        if not lb.churns:
            continue
        assert lb.churn_starts_at is not None
        phase = "after" if e.occurred_at >= lb.churn_starts_at else "before"
        if e.event_type == "delivery.delivered":
            shipped[phase] += 1
            late[phase] += e.payload.delivered_at > e.payload.promised_by
        elif e.event_type == "order.created":
            orders[phase] += 1
        elif e.event_type == "complaint.opened":
            complaints[phase] += 1
        elif e.event_type == "feedback.received" and e.payload.csat is not None:
            csat[phase].append(e.payload.csat)
    assert late["after"] / shipped["after"] > 2 * late["before"] / shipped["before"]
    assert complaints["after"] / orders["after"] > 2 * complaints["before"] / orders["before"]
    assert statistics.mean(csat["after"]) < statistics.mean(csat["before"]) - 0.7


def test_seasonal_clients_swing_but_keep_ordering(year: History) -> None:
    _, end = _window(year, 365)
    orders = _orders_by_client(year)
    seasonal = [lb for lb in year.labels if lb.seasonal]
    steady = [lb for lb in year.labels if not lb.seasonal and not lb.churns]
    assert len(seasonal) >= 4

    def swing(times: list[datetime]) -> float:
        by_day = Counter((t - times[0]).days for t in times)
        quarters = [sum(by_day[d] for d in range(s, s + 91)) for s in range(0, 365 - 91, 7)]
        return max(quarters) / max(1, min(quarters))

    for lb in seasonal:
        times = sorted(orders[lb.client_id])
        assert sum(t >= end - timedelta(days=30) for t in times) >= 3, f"{lb.client_id} looks gone"
        longest_gap = max(b - a for a, b in itertools.pairwise(times))
        assert longest_gap < timedelta(days=21), f"{lb.client_id} pauses {longest_gap}"
        assert swing(times) >= 3
    assert statistics.median(swing(sorted(orders[lb.client_id])) for lb in steady) < 2.5
