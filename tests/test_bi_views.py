"""KPI tables and BI views on real chdb, fed through the real write path.

A generated history goes through the worker's pure path (intake, profiles, risk) and the real
`ClickHouseWriter` (raw rows, then the KPI recompute) in batches, with events re-delivered, batches
written twice (a replay after a crash), lifecycle events split across batches and out of order, master
data arriving last and a region change. Every expected value is recomputed here from the generated
events by the definitions in docs/analytics.md, never read back from the code under test.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from producers.generator import generate
from schemas.alerts import Alert
from schemas.events import EVENT_MODELS, Envelope
from schemas.topics import topic_for_event_type
from sinks.clickhouse import ClickHouseWriter, connect, migrate
from sinks.migrations import BI_VIEWS, RAW_TABLES
from sinks.rows import Origin
from streams.alerting import RiskState
from streams.assessing import RiskConfig, assess_batch
from streams.intake import plan_batch
from streams.profile import ClientProfile
from streams.profiling import profile_batch
from streams.sla import SlaRules
from tests.streams_util import with_duplicates

pytestmark = pytest.mark.integration

DATABASE = "cp_bi"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NONE = "(none)"
TIER_RANK = {"key": 1, "stable": 2, "potential": 3}
COUNTS = (
    "orders", "units", "cancelled_orders", "deliveries", "on_time_deliveries", "delivered_units",
    "defective_units", "failed_deliveries", "temperature_excursions", "complaints", "resolved_complaints",
    "reopened_complaints", "csat_sum", "csat_responses", "nps_promoters", "nps_detractors", "nps_responses",
)  # fmt: skip
ACTIVITY = (
    "orders", "cancelled_orders", "deliveries", "complaints", "resolved_complaints", "reopened_complaints",
    "csat_responses", "nps_responses",
)  # fmt: skip


def _secs(at: datetime) -> int:
    return (at - EPOCH) // timedelta(seconds=1)


def _day(at: datetime) -> date:
    return at.astimezone(UTC).date()


# ---------------------------------------------------------------- the oracle


def _new_measures() -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(COUNTS, 0)
    out.update(revenue=Decimal(0), resolution_hours_total=0.0, complaints_by_category=Counter())
    return out


@dataclass
class Oracle:
    """Daily measures per (client, day, warehouse, region), from the unique events by the documented rules."""

    cells: dict[tuple[str, date, str, str], dict[str, Any]] = field(default_factory=dict)
    region_of: dict[str, str] = field(default_factory=dict)

    def add(self, client: str, day: date, warehouse: str, region: str, **measures: Any) -> None:
        cell = self.cells.setdefault((client, day, warehouse or NONE, region or NONE), _new_measures())
        for name, value in measures.items():
            if name == "complaints_by_category":
                cell[name].update(value)
            else:
                cell[name] += value

    def grain(self, grain: str) -> dict[tuple[str, date], dict[str, Any]]:
        position = {"client": 0, "warehouse": 2, "region": 3}[grain]
        out: dict[tuple[str, date], dict[str, Any]] = {}
        for key, cell in self.cells.items():
            target = out.setdefault((key[position], key[1]), _new_measures())
            for name, value in cell.items():
                if name == "complaints_by_category":
                    target[name].update(value)
                else:
                    target[name] += value
        return {k: v for k, v in out.items() if any(v[a] for a in ACTIVITY)}

    def client_window(self, client: str, last_day: date, days: int) -> dict[str, Any]:
        total = _new_measures()
        for (c, day, _, _), cell in self.cells.items():
            if c == client and last_day - timedelta(days=days) < day <= last_day:
                for name, value in cell.items():
                    if name == "complaints_by_category":
                        total[name].update(value)
                    else:
                        total[name] += value
        return total


def oracle(events: list[Envelope]) -> Oracle:
    out = Oracle()
    by_entity: dict[tuple[str, str, str], list[Envelope]] = defaultdict(list)
    masters: dict[str, list[Envelope]] = defaultdict(list)
    for e in events:
        if e.family == "client":
            masters[e.client_id].append(e)
            continue
        entity = {
            "order": "order_id",
            "delivery": "delivery_id",
            "complaint": "complaint_id",
            "feedback": "feedback_id",
        }
        by_entity[(e.family, e.client_id, getattr(e.payload, entity[e.family]))].append(e)
    for client, ups in masters.items():
        latest = max(ups, key=lambda e: (_secs(e.occurred_at), str(e.event_id)))
        out.region_of[client] = latest.payload.region

    order_warehouse: dict[tuple[str, str], str] = {}
    step = {"order.created": 0, "order.updated": 1, "order.cancelled": 2, "delivery.failed": 1,
            "delivery.delivered": 2, "complaint.opened": 0, "complaint.updated": 1, "complaint.resolved": 2,
            "complaint.reopened": 3, "feedback.received": 0, "delivery.dispatched": 0}  # fmt: skip
    latest = lambda evs: max(evs, key=lambda e: (_secs(e.occurred_at), step[e.event_type]))  # noqa: E731
    for (family, client, entity_id), evs in sorted(by_entity.items(), key=lambda kv: kv[0][0] != "order"):
        if family == "order":
            placed = min(e.occurred_at for e in evs)
            states = [e for e in evs if e.event_type != "order.cancelled"]
            state = latest(states) if states else latest(evs)
            warehouse = state.payload.warehouse_id
            order_warehouse[(client, entity_id)] = warehouse if states else ""
            region = getattr(state.payload, "destination_region", "")
            if any(e.event_type == "order.cancelled" for e in evs):
                out.add(client, _day(placed), warehouse, region, cancelled_orders=1)
            else:
                p = state.payload
                out.add(client, _day(placed), warehouse, region, orders=1, units=p.units, revenue=p.service_fee)
        elif family == "delivery":
            outcomes = [e for e in evs if e.event_type != "delivery.dispatched"]
            if not outcomes:
                continue
            o = latest(outcomes)
            p = o.payload
            failed = o.event_type == "delivery.failed"
            out.add(
                client, _day(o.occurred_at), p.warehouse_id, p.destination_region,
                deliveries=1, failed_deliveries=int(failed),
                on_time_deliveries=int(not failed and p.delivered_at <= p.promised_by),
                delivered_units=0 if failed else p.units,
                defective_units=0 if failed else p.units_damaged + p.units_missing,
                temperature_excursions=int(p.temperature_excursion),
            )  # fmt: skip
        elif family == "complaint":
            state = latest(evs).payload
            warehouse = order_warehouse.get((client, state.order_id or ""), "")
            region = out.region_of.get(client, "")
            opened = [e.occurred_at for e in evs if e.event_type == "complaint.opened"]
            resolved = [e.occurred_at for e in evs if e.event_type == "complaint.resolved"]
            if opened:
                category = Counter({state.category.value: 1})
                out.add(client, _day(min(opened)), warehouse, region, complaints=1, complaints_by_category=category)
                if resolved:
                    hours = max(0, _secs(min(resolved)) - _secs(min(opened))) / 3600
                    out.add(client, _day(min(resolved)), warehouse, region, resolved_complaints=1,
                            resolution_hours_total=hours)  # fmt: skip
            for t in {_secs(e.occurred_at) for e in evs if e.event_type == "complaint.reopened"}:
                out.add(client, _day(EPOCH + timedelta(seconds=t)), warehouse, region, reopened_complaints=1)
        else:
            f = max(evs, key=lambda e: e.occurred_at)
            csat, nps = f.payload.csat, f.payload.nps
            out.add(
                client, _day(f.occurred_at), "", out.region_of.get(client, ""),
                csat_sum=csat or 0, csat_responses=int(csat is not None),
                nps_promoters=int(nps is not None and nps >= 9), nps_detractors=int(nps is not None and nps <= 6),
                nps_responses=int(nps is not None),
            )  # fmt: skip
    return out


# ---------------------------------------------------------------- the write path


@dataclass
class Pipeline:
    """The worker's batch handling without Kafka: intake, profiles, risk, then the real writer."""

    writer: ClickHouseWriter
    profiles: dict[str, ClientProfile] = field(default_factory=dict)
    risks: dict[str, RiskState] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    offset: int = 0

    def feed(self, events: list[Envelope]) -> dict[str, list[tuple[Any, ...]]]:
        origins = []
        for e in events:
            self.offset += 1
            value = e.model_dump_json().encode()
            origins.append(Origin(topic_for_event_type(e.event_type), 0, self.offset, e.client_id.encode(), value))
        now = datetime.now(UTC)
        plan = plan_batch(origins, now)
        assert not plan.rejected
        updates = profile_batch(plan.events, self.profiles.get)
        self.profiles.update(updates.profiles)
        changes = {c.client_id: c for c in updates.tier_changes}
        items = [(updates.profiles[s.client_id], s, changes.get(s.client_id)) for s in updates.snapshots]
        assessed = assess_batch(items, self.risks.get, RiskConfig(), now)
        self.risks.update(assessed.states)
        self.alerts += assessed.alerts
        rows: dict[str, list[tuple[Any, ...]]] = {}
        for part in (plan.rows, updates.rows, assessed.rows):
            for table, table_rows in part.items():
                rows.setdefault(table, []).extend(table_rows)
        self.writer.write(rows)
        return rows


def _with_region_change(events: list[Envelope]) -> tuple[list[Envelope], str]:
    """A late client.upserted that moves a client with complaints and feedback to another region."""
    have = {e.client_id for e in events if e.family == "complaint"} & {
        e.client_id for e in events if e.family == "feedback"
    }
    client = sorted(have)[0]
    last = max((e for e in events if e.client_id == client and e.family == "client"), key=lambda e: e.occurred_at)
    region = "west" if last.payload.region != "west" else "east"
    end = max(e.occurred_at for e in events)
    moved = last.model_copy(
        update={
            "event_id": last.event_id.__class__(int=last.event_id.int ^ 1),
            "occurred_at": end,
            "payload": last.payload.model_copy(update={"region": region}),
        }
    )
    return [*events, moved], client


def _with_warehouse_move(events: list[Envelope], avoid: set[str]) -> tuple[list[Envelope], Envelope]:
    """An update that moves an order named by a complaint to another warehouse (after the complaint).
    `avoid`: clients whose days are recomputed for another reason (a master-data change)."""
    named = {
        (e.client_id, e.payload.order_id)
        for e in events
        if e.family == "complaint" and e.payload.order_id and e.client_id not in avoid
    }
    updated = {(e.client_id, e.payload.order_id) for e in events if e.event_type == "order.updated"}
    cancelled = {(e.client_id, e.payload.order_id) for e in events if e.event_type == "order.cancelled"}
    created = next(
        e for e in events
        if e.event_type == "order.created" and (k := (e.client_id, e.payload.order_id)) in named
        and k not in updated and k not in cancelled
    )  # fmt: skip
    moved = created.model_copy(
        update={
            "event_id": created.event_id.__class__(int=created.event_id.int ^ 7),
            "event_type": "order.updated",
            "occurred_at": created.occurred_at + timedelta(seconds=60),
            "payload": created.payload.model_copy(
                update={"warehouse_id": "WH-XX9", "units": created.payload.units + 1}
            ),
        }
    )
    return [*events, moved], moved


def _with_next_day_lifecycles(events: list[Envelope], rng: random.Random) -> tuple[list[Envelope], set[Any]]:
    """Orders whose later events fall on the next UTC day: cancelled, or updated to other units and fee.
    Returns the events and the event ids of the creations of the updated orders (to be delivered last)."""
    touched = {
        (e.client_id, e.payload.order_id) for e in events if e.event_type in ("order.updated", "order.cancelled")
    }
    created = [
        e for e in events if e.event_type == "order.created" and (e.client_id, e.payload.order_id) not in touched
    ]
    picked = rng.sample(created, 24)
    extra, creations_last = [], set()
    for i, order in enumerate(picked):
        at = order.occurred_at + timedelta(hours=26 + i)
        event_id = order.event_id.__class__(int=order.event_id.int ^ 0xABC)
        if i % 2:
            payload = order.payload.model_copy(
                update={"units": order.payload.units + 5, "service_fee": order.payload.service_fee + Decimal("9.99")}
            )
            extra.append(order.model_copy(update={"event_id": event_id, "event_type": "order.updated",
                                                  "occurred_at": at, "payload": payload}))  # fmt: skip
            if i % 4 == 1:
                creations_last.add(order.event_id)
        else:
            cancel = EVENT_MODELS["order.cancelled"](
                event_id=event_id, event_type="order.cancelled", schema_version=1, occurred_at=at,
                client_id=order.client_id, source="oms",
                payload={"order_id": order.payload.order_id, "warehouse_id": order.payload.warehouse_id},
            )  # fmt: skip
            extra.append(cancel)
    return [*events, *extra], creations_last


def _with_vanishing_keys(events: list[Envelope]) -> tuple[list[Envelope], set[Any]]:
    """A small client whose orders move so that whole keys empty out, and the ids to deliver last:
    - its only order of a day turns out (when its creation arrives last) to be placed the day before;
    - an order first seen at a pop-up warehouse with an unknown destination is moved, by an update
      that arrives last, to a regular warehouse and region."""
    start = min(e.occurred_at for e in events).replace(hour=0, minute=0, second=0, microsecond=0)

    def event(n: int, event_type: str, at: datetime, payload: Any) -> Envelope:
        return EVENT_MODELS[event_type](
            event_id=UUID(int=0xC0FFEE00 + n), event_type=event_type, schema_version=1, occurred_at=at,
            client_id="CZ001", source="test", payload=payload,
        )  # fmt: skip

    def order(order_id: str, warehouse: str, region: str, units: int) -> dict[str, Any]:
        return {"order_id": order_id, "warehouse_id": warehouse, "service_type": "outbound", "units": units,
                "service_fee": Decimal("120.00") + units, "destination_region": region}  # fmt: skip

    master = {"name": "Zeta Test Co.", "region": "north", "industry": "other"}
    day10, day20 = start + timedelta(days=10, hours=10), start + timedelta(days=20, hours=10)
    added = [
        event(1, "client.upserted", start, master),
        event(2, "order.created", day10, order("SO-Z-1", "WH-BJ1", "north", 10)),
        event(3, "order.updated", day10 + timedelta(hours=26), order("SO-Z-1", "WH-BJ1", "north", 12)),
        event(4, "order.created", day20, order("SO-Z-2", "WH-POPUP", "atlantis", 5)),
        event(5, "order.updated", day20 + timedelta(hours=1), order("SO-Z-2", "WH-BJ1", "north", 5)),
    ]
    return [*events, *added], {added[1].event_id, added[4].event_id}


@dataclass
class Populated:
    dsn: str
    events: list[Envelope]
    """The unique events written (generated plus the synthetic ones)."""
    oracle: Oracle
    pipeline: Pipeline
    region_moved: str
    late_master: str


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Populated:
    dsn = f"chdb://{tmp_path_factory.mktemp('bi') / 'clickhouse'}"
    migrate(dsn, DATABASE)
    rng = random.Random(42)
    events = generate(clients=40, days=120, seed=23).events
    events, region_moved = _with_region_change(events)
    late_master = sorted({e.client_id for e in events if e.family == "complaint"})[-1]
    events, warehouse_move = _with_warehouse_move(events, {region_moved, late_master})
    events, creations_last = _with_next_day_lifecycles(events, rng)
    events, vanishing = _with_vanishing_keys(events)
    # Delivery order: up to three days of jitter, so lifecycle events split across batches and some arrive
    # before the event they follow (a cancellation before its order, a resolution before its opening).
    stream = sorted(events, key=lambda e: _secs(e.occurred_at) + rng.uniform(0, 3 * 86_400))
    # Topics read at different speeds: three clients' complaints arrive a third of the stream late.
    slow = set(sorted({e.client_id for e in events if e.family == "complaint"})[:3])
    lag = len(stream) // 3
    keyed = [(i + (lag if e.family == "complaint" and e.client_id in slow else 0), i, e) for i, e in enumerate(stream)]
    stream = [e for _, _, e in sorted(keyed, key=lambda k: k[:2])]
    # Some orders are created after their next-day update arrived; one client's master data comes last.
    # The warehouse move of an order named by a complaint, too, comes after that complaint.
    delayed = {*creations_last, *vanishing, warehouse_move.event_id}
    last = [e for e in stream if e.event_id in delayed or (e.client_id == late_master and e.family == "client")]
    moved = {e.event_id for e in last}
    stream = [e for e in stream if e.event_id not in moved] + last
    stream = with_duplicates(stream, 0.08, seed=5)
    client = connect(dsn, DATABASE)
    try:
        # No merges: the duplicate rows stay in the raw tables, so exactness cannot come from a merge.
        for table in RAW_TABLES.values():
            client.command(f"SYSTEM STOP MERGES {table}")
        pipeline = Pipeline(ClickHouseWriter(client))
        size = 300
        batches = [stream[i : i + size] for i in range(0, len(stream), size)]
        written = []
        for i, batch in enumerate(batches[:-1]):
            written.append(pipeline.feed(batch))
            if i % 5 == 1:
                pipeline.writer.write(written[-1])  # the same batch again, as after a crash before the ack
        pipeline.writer.write(written[2])  # and an old batch much later
        pipeline.feed(batches[-1])  # the late arrivals: nothing rewrites their days after them
        assert pipeline.writer.stats.kpi_keys > 0
        for table in RAW_TABLES.values():
            [(rows, unique)] = client.query(f"SELECT count(), uniqExact(event_id) FROM {table}").result_rows
            assert rows > unique, table  # the duplicates are really there
    finally:
        for table in RAW_TABLES.values():
            client.command(f"SYSTEM START MERGES {table}")
        client.close()
    return Populated(dsn, events, oracle(events), pipeline, region_moved, late_master)


@pytest.fixture
def ch(populated: Populated):
    client = connect(populated.dsn, DATABASE)
    yield client
    client.close()


def _aware(value: Any) -> Any:
    """clickhouse-connect returns DateTime64(3, 'UTC') values as naive UTC datetimes."""
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) and value.tzinfo is None else value


def _rows(client, sql: str, **params: Any) -> list[dict[str, Any]]:
    result = client.query(sql, parameters=params)
    return [{k: _aware(v) for k, v in zip(result.column_names, row, strict=True)} for row in result.result_rows]


# ---------------------------------------------------------------- v_kpi_daily


@pytest.mark.parametrize("grain", ["client", "warehouse", "region"])
def test_kpi_daily_equals_the_independent_computation(populated: Populated, ch, grain: str) -> None:
    expected = populated.oracle.grain(grain)
    got = {(r["key"], r["day"]): r for r in _rows(ch, "SELECT * FROM v_kpi_daily WHERE grain = {g:String}", g=grain)}
    assert set(got) == set(expected)
    for key, want in expected.items():
        row = got[key]
        for name in COUNTS:
            assert row[name] == want[name], (key, name)
        assert row["revenue"] == want["revenue"], key
        assert dict(row["complaints_by_category"]) == dict(want["complaints_by_category"]), key
        assert row["resolution_hours_total"] == pytest.approx(want["resolution_hours_total"]), key
        rate = lambda a, b: None if b == 0 else a / b  # noqa: E731
        assert row["on_time_rate"] == pytest.approx(rate(want["on_time_deliveries"], want["deliveries"])), key
        intact = rate(want["delivered_units"] - want["defective_units"], want["delivered_units"])
        assert row["intact_rate"] == pytest.approx(intact), key
        assert row["mean_resolution_hours"] == pytest.approx(
            rate(want["resolution_hours_total"], want["resolved_complaints"])
        ), key
        assert row["csat_mean"] == pytest.approx(rate(want["csat_sum"], want["csat_responses"])), key
        nps = rate(100 * (want["nps_promoters"] - want["nps_detractors"]), want["nps_responses"])
        assert row["nps"] == pytest.approx(nps), key


def test_every_grain_adds_up_to_the_same_totals(populated: Populated, ch) -> None:
    totals = _rows(
        ch,
        "SELECT grain, sum(orders) AS orders, sum(revenue) AS revenue, sum(deliveries) AS deliveries, "
        "sum(complaints) AS complaints, sum(nps_responses) AS nps FROM v_kpi_daily GROUP BY grain ORDER BY grain",
    )
    assert len(totals) == 3
    assert len({(t["orders"], t["revenue"], t["deliveries"], t["complaints"], t["nps"]) for t in totals}) == 1
    created = {(e.client_id, e.payload.order_id) for e in populated.events if e.event_type == "order.created"}
    cancelled = {(e.client_id, e.payload.order_id) for e in populated.events if e.event_type == "order.cancelled"}
    assert totals[0]["orders"] == len(created - cancelled)


def test_master_data_decides_the_region_of_complaints_and_feedback(populated: Populated, ch) -> None:
    moved = populated.region_moved
    region = populated.oracle.region_of[moved]
    places = _rows(
        ch,
        "SELECT DISTINCT region FROM kpi_detail_daily FINAL WHERE client_id = {c:String} "
        "AND complaints + resolved + csat_responses + nps_responses > 0",
        c=moved,
    )
    assert [p["region"] for p in places] == [region]
    late = _rows(
        ch,
        "SELECT DISTINCT region FROM kpi_detail_daily FINAL WHERE client_id = {c:String} AND complaints > 0",
        c=populated.late_master,
    )
    assert [p["region"] for p in late] == [populated.oracle.region_of[populated.late_master]]


def test_keys_whose_entities_moved_away_are_gone(populated: Populated, ch) -> None:
    keys = _rows(ch, "SELECT grain, key, day FROM v_kpi_daily WHERE key IN ('CZ001', 'WH-POPUP', 'atlantis')")
    start = min(e.occurred_at for e in populated.events).date()
    # the client keeps its two orders on their placement days only; the pop-up place is empty
    assert sorted((k["grain"], k["key"], k["day"]) for k in keys) == [
        ("client", "CZ001", start + timedelta(days=10)),
        ("client", "CZ001", start + timedelta(days=20)),
    ]


def test_a_full_recompute_gives_what_the_incremental_one_gave(populated: Populated, ch) -> None:
    """Re-applying the KPI migration backfills every stored event: the same rows as the batches built."""
    sql = "SELECT * FROM v_kpi_daily ORDER BY grain, key, day"
    before = ch.query(sql).result_rows
    for table in ("kpi_detail_daily", "kpi_daily"):
        ch.command(f"TRUNCATE TABLE {table}")
    assert ch.query("SELECT count() FROM v_kpi_daily").result_rows == [(0,)]
    ch.command("DELETE FROM schema_migrations WHERE version = 4")
    assert migrate(populated.dsn, DATABASE) == [4]
    assert ch.query(sql).result_rows == before


# ---------------------------------------------------------------- the other views


def _any_type(names: str) -> dict[str, str]:
    """Columns whose type the contract leaves open (an empty type is not checked)."""
    return dict.fromkeys(names.split(), "")


CONTRACT: dict[str, dict[str, str]] = {
    "v_kpi_daily": {
        "grain": "String", "key": "String", "day": "Date", "orders": "", "units": "", "revenue": "Decimal(18, 2)",
        "deliveries": "", "on_time_rate": "Nullable(Float64)", "intact_rate": "Nullable(Float64)",
        "failed_deliveries": "", "complaints": "", "complaints_by_category": "Map(String, UInt64)",
        "resolved_complaints": "", "mean_resolution_hours": "Nullable(Float64)", "csat_mean": "Nullable(Float64)",
        "csat_responses": "", "nps": "Nullable(Float64)", "nps_responses": "",
    },
    "v_client_360": _any_type(
        "client_id name region industry account_manager tier abc_class risk_score orders_30d revenue_30d "
        "revenue_365d on_time_rate_30d intact_rate_30d complaints_30d complaints_open csat_mean_90d nps_score_90d "
        "last_order_at days_since_last_order contract_end"
    ) | {"at_risk": "Bool", "risk_reasons": "Array(String)"},
    "v_churn_watchlist": _any_type("client_id name tier account_manager score severity status since revenue_365d")
    | {"reasons": "Array(String)", "reason_codes": "Array(String)", "actions": "Array(String)"},
    "v_tier_mix": _any_type("tier clients client_share revenue_365d revenue_share"),
    "v_abc_pareto": _any_type("client_id name abc_class revenue_365d rank cumulative_share"),
    "v_complaint_sla": _any_type(
        "complaint_id client_id tier category severity opened_at response_target_hours resolution_target_hours "
        "status"
    ) | {"first_response_at": "Nullable(DateTime64(3, 'UTC'))", "resolved_at": "Nullable(DateTime64(3, 'UTC'))",
         "response_hours": "Nullable(Float64)", "resolution_hours": "Nullable(Float64)",
         "response_breached": "Bool", "resolution_breached": "Bool"},
}  # fmt: skip


@pytest.mark.parametrize("view", BI_VIEWS)
def test_each_view_and_each_of_its_columns_has_a_comment(ch, view: str) -> None:
    [(engine, comment)] = ch.query(
        "SELECT engine, comment FROM system.tables WHERE database = {d:String} AND name = {v:String}",
        parameters={"d": DATABASE, "v": view},
    ).result_rows
    assert engine == "View"
    assert len(comment) > 20
    columns = {
        name: (ch_type, text)
        for name, ch_type, text in ch.query(
            "SELECT name, type, comment FROM system.columns WHERE database = {d:String} AND table = {v:String}",
            parameters={"d": DATABASE, "v": view},
        ).result_rows
    }
    assert columns
    assert not [name for name, (_, text) in columns.items() if not text.strip()]
    for name, ch_type in CONTRACT.get(view, {}).items():
        assert name in columns, name
        if ch_type:
            assert columns[name][0] == ch_type, name
    ch.query(f"SELECT * FROM {view} LIMIT 3")  # and it answers


def _last_day(populated: Populated) -> date:
    return _day(max(e.occurred_at for e in populated.events))


def test_client_360_windows_end_on_the_same_day_for_everyone(populated: Populated, ch) -> None:
    rows = {r["client_id"]: r for r in _rows(ch, "SELECT * FROM v_client_360")}
    assert set(rows) == set(populated.pipeline.profiles)
    last_day = _last_day(populated)
    for client, row in rows.items():
        assert row["as_of_day"] == last_day
        w30 = populated.oracle.client_window(client, last_day, 30)
        w90 = populated.oracle.client_window(client, last_day, 90)
        w365 = populated.oracle.client_window(client, last_day, 365)
        assert (row["orders_30d"], row["revenue_30d"]) == (w30["orders"], w30["revenue"]), client
        assert row["revenue_365d"] == w365["revenue"], client
        assert row["complaints_30d"] == w30["complaints"], client
        assert row["on_time_rate_30d"] == pytest.approx(
            w30["on_time_deliveries"] / w30["deliveries"] if w30["deliveries"] else None
        ), client
        assert row["csat_mean_90d"] == pytest.approx(
            w90["csat_sum"] / w90["csat_responses"] if w90["csat_responses"] else None
        ), client
        profile = populated.pipeline.profiles[client]
        assert row["tier"] == profile.tier
        risk = populated.pipeline.risks.get(client)
        assert row["risk_score"] == (risk.score if risk else 0)
        assert row["at_risk"] == (risk is not None and risk.episode is not None)
        if row["risk_score"] > 0:
            assert row["risk_reasons"] and all(row["risk_reasons"])
            assert len(row["risk_reasons"]) == len(row["risk_reason_codes"])


def test_client_360_agrees_with_the_profile_of_clients_active_on_the_last_day(populated: Populated, ch) -> None:
    """Both windows end on the same day for a client whose latest event is on as_of_day."""
    rows = _rows(
        ch,
        "SELECT c.*, p.orders_30d AS p_orders_30d, p.revenue_30d AS p_revenue_30d, p.revenue_365d AS p_revenue_365d, "
        "p.complaints_30d AS p_complaints_30d, p.on_time_rate_30d AS p_on_time_rate_30d, "
        "p.intact_rate_30d AS p_intact_rate_30d, p.csat_mean_90d AS p_csat_mean_90d, "
        "p.nps_score_90d AS p_nps_score_90d FROM v_client_360 AS c INNER JOIN client_profiles AS p "
        "ON c.client_id = p.client_id WHERE toDate(p.as_of) = c.as_of_day",
    )
    assert len(rows) >= 10
    for r in rows:
        for name in ("orders_30d", "revenue_30d", "revenue_365d", "complaints_30d"):
            assert r[name] == r[f"p_{name}"], (r["client_id"], name)
        for name in ("on_time_rate_30d", "intact_rate_30d", "csat_mean_90d", "nps_score_90d"):
            assert r[name] == pytest.approx(r[f"p_{name}"]), (r["client_id"], name)


def test_risk_reason_sentences_are_those_the_alerts_carried(populated: Populated, ch) -> None:
    """The writer renders each reason's sentence from its stored evidence; an alert emitted at the same
    assessment carried the sentences the risk engine wrote: they must be the same words."""
    texts = {
        (r["client_id"], r["assessed_at"]): r["reasons_en"]
        for r in _rows(ch, "SELECT client_id, assessed_at, reasons_en FROM client_risk_texts FINAL")
    }
    compared = 0
    for alert in populated.pipeline.alerts:
        if alert.kind.value != "churn_risk" or alert.status.value == "resolved":
            continue
        key = (alert.client_id, alert.occurred_at)
        assert key in texts
        assert texts[key] == [r.text_en for r in alert.reasons]
        compared += 1
    assert compared > 0


def _open_churn_alerts(alerts: list[Alert]) -> dict[str, list[Alert]]:
    episodes: dict[Any, list[Alert]] = defaultdict(list)
    for a in alerts:
        if a.kind.value == "churn_risk":
            episodes[a.alert_id].append(a)
    out = {}
    for messages in episodes.values():
        messages.sort(key=lambda a: a.sequence)
        if messages[-1].status.value != "resolved":
            out[messages[-1].client_id] = messages
    return out


def test_churn_watchlist_lists_open_episodes_by_tier_then_score(populated: Populated, ch) -> None:
    rows = _rows(ch, "SELECT * FROM v_churn_watchlist")
    open_alerts = _open_churn_alerts(populated.pipeline.alerts)
    at_risk = {c for c, s in populated.pipeline.risks.items() if s.episode is not None}
    assert open_alerts, "the history should leave some churn risk open"
    assert [r["client_id"] for r in rows if r["client_id"] in open_alerts] and {r["client_id"] for r in rows} == (
        set(open_alerts) | at_risk
    )
    order = [(TIER_RANK[r["tier"]], -r["score"]) for r in rows]
    assert order == sorted(order)
    for r in rows:
        messages = open_alerts[r["client_id"]]
        assert r["since"] == messages[0].occurred_at
        assert r["status"] == messages[-1].status.value
        assert r["reasons"] == [x.text_en for x in messages[-1].reasons]
        assert r["actions"] == [x.text_en for x in messages[-1].actions]
        assert r["score"] == populated.pipeline.risks[r["client_id"]].score
        assert r["revenue_365d"] == populated.oracle.client_window(r["client_id"], _last_day(populated), 365)["revenue"]


def test_tier_mix_shares_add_up(populated: Populated, ch) -> None:
    rows = _rows(ch, "SELECT * FROM v_tier_mix")
    tiers = Counter(p.tier for p in populated.pipeline.profiles.values())
    assert {r["tier"]: r["clients"] for r in rows} == dict(tiers)
    assert [r["tier"] for r in rows] == sorted((r["tier"] for r in rows), key=TIER_RANK.__getitem__)
    assert sum(r["client_share"] for r in rows) == pytest.approx(1.0)
    assert sum(r["revenue_share"] for r in rows) == pytest.approx(1.0)
    last_day = _last_day(populated)
    for r in rows:
        clients = [c for c, p in populated.pipeline.profiles.items() if p.tier == r["tier"]]
        assert r["revenue_365d"] == sum(
            (populated.oracle.client_window(c, last_day, 365)["revenue"] for c in clients), Decimal(0)
        )


def test_abc_pareto_agrees_with_the_profiles(populated: Populated, ch) -> None:
    rows = _rows(ch, "SELECT * FROM v_abc_pareto")
    classes = dict(ch.query("SELECT client_id, abc_class FROM client_profiles").result_rows)
    assert {r["client_id"]: r["abc_class"] for r in rows} == classes
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    revenue = [r["revenue_365d"] for r in rows]
    assert revenue == sorted(revenue, reverse=True)
    shares = [r["cumulative_share"] for r in rows]
    assert shares == sorted(shares) and shares[-1] == pytest.approx(1.0)
    total = sum(revenue)
    running = Decimal(0)
    for r in rows:  # A while the clients above hold < 80% of revenue, B < 95%
        expected = "C" if r["revenue_365d"] == 0 else "A" if running < total * Decimal("0.8") else (
            "B" if running < total * Decimal("0.95") else "C"
        )  # fmt: skip
        assert r["abc_class"] == expected
        running += r["revenue_365d"]
    assert {"A", "B", "C"} <= set(classes.values())


def _expected_sla(populated: Populated, rules: SlaRules) -> dict[str, dict[str, Any]]:
    now = max(_secs(e.occurred_at) for e in populated.events)
    by_id: dict[tuple[str, str], list[Envelope]] = defaultdict(list)
    for e in populated.events:
        if e.family == "complaint":
            by_id[(e.client_id, e.payload.complaint_id)].append(e)
    step = {"complaint.opened": 0, "complaint.updated": 1, "complaint.resolved": 2, "complaint.reopened": 3}
    out = {}
    for (client, complaint_id), evs in by_id.items():
        facts = sorted({(_secs(e.occurred_at), step[e.event_type]) for e in evs})
        opened = [t for t, s in facts if s == 0]
        if not opened:
            continue
        opened_at = opened[0]
        answers = [t for t, s in facts if s in (1, 2) and t >= opened_at]
        last_t, last_s = facts[-1]
        resolved = last_t if last_s == 2 else None
        tier = populated.pipeline.profiles[client].tier
        response, resolution = rules.targets(tier)
        out[complaint_id] = {
            "opened_at": opened_at,
            "first_response_at": answers[0] if answers else None,
            "resolved_at": resolved,
            "status": {2: "resolved", 3: "reopened"}.get(last_s, "open"),
            "response_target_hours": response,
            "resolution_target_hours": resolution,
            "response_breached": (answers[0] if answers else now) - opened_at > int(response * 3600),
            "resolution_breached": (resolved if resolved is not None else now) - opened_at > int(resolution * 3600),
            "tier": tier,
        }
    return out


def _sla_rows(ch) -> dict[str, dict[str, Any]]:
    out = {}
    for r in _rows(ch, "SELECT * FROM v_complaint_sla"):
        for name in ("opened_at", "first_response_at", "resolved_at"):
            r[name] = None if r[name] is None else _secs(r[name])
        out[r["complaint_id"]] = r
    return out


def test_complaint_sla_rows_follow_the_tier_targets(populated: Populated, ch) -> None:
    expected = _expected_sla(populated, SlaRules())
    got = _sla_rows(ch)
    assert set(got) == set(expected)
    for complaint_id, want in expected.items():
        row = got[complaint_id]
        assert {k: row[k] for k in want} == want, complaint_id
        if want["first_response_at"] is not None:
            assert row["response_hours"] == pytest.approx((want["first_response_at"] - want["opened_at"]) / 3600)
    breaches = Counter((r["response_breached"], r["resolution_breached"]) for r in got.values())
    assert breaches[(False, False)] and sum(n for (a, b), n in breaches.items() if a or b)
    assert {r["status"] for r in got.values()} >= {"resolved"}


def test_sla_targets_come_from_the_writer_settings(populated: Populated, ch) -> None:
    custom = SlaRules(response_hours={"key": 1, "stable": 3, "potential": 30}, resolution_hours={
        "key": 12, "stable": 48, "potential": 200})  # fmt: skip
    try:
        ClickHouseWriter(ch, sla=custom).write({})
        got = _sla_rows(ch)
        expected = _expected_sla(populated, custom)
        for complaint_id, want in expected.items():
            row = got[complaint_id]
            assert (row["response_target_hours"], row["resolution_target_hours"]) == custom.targets(want["tier"])
            assert (row["response_breached"], row["resolution_breached"]) == (
                want["response_breached"], want["resolution_breached"]
            )  # fmt: skip
    finally:
        ClickHouseWriter(ch, sla=SlaRules()).write({})


# ---------------------------------------------------------------- the docs run


def _doc_queries() -> list[str]:
    text = (Path(__file__).parent.parent / "docs" / "analytics.md").read_text()
    return re.findall(r"```sql\n(.*?)```", text, flags=re.S)


def test_docs_have_examples_for_the_named_business_questions() -> None:
    text = (Path(__file__).parent.parent / "docs" / "analytics.md").read_text().lower()
    for question in ("on-time rate fell", "complaint categories drive churn", "revenue at risk by tier"):
        assert question in text
    assert len(_doc_queries()) >= 6


@pytest.mark.parametrize("number", range(len(_doc_queries())))
def test_each_sql_example_of_the_docs_runs(populated: Populated, ch, number: int) -> None:
    sql = _doc_queries()[number]
    result = ch.query(sql, settings={"readonly": 1})  # what `clientpulse sql` allows
    assert result.column_names


# ---------------------------------------------------------------- through the real worker


def test_the_worker_keeps_the_kpis_exact(settings, worker_factory) -> None:
    """tansu -> `clientpulse worker` -> chdb: re-delivered events, and the SLA targets of its settings."""
    from producers.admin import create_topics
    from producers.publisher import Publisher

    events = generate(clients=12, days=45, seed=31).events
    published = with_duplicates(events, 0.15, seed=3)
    custom = SlaRules(response_hours={"key": 1.5, "stable": 6, "potential": 20}, resolution_hours={
        "key": 20, "stable": 60, "potential": 100})  # fmt: skip
    settings = settings.model_copy(update={"sla": custom})
    create_topics(settings.kafka_bootstrap, settings.partitions)
    worker = worker_factory(settings).start()
    with Publisher(settings.kafka_bootstrap) as pub:
        for e in published:
            pub.publish_validated(e)
    worker.wait_committed(len(published))
    assert worker.stop() == 0

    expected = oracle(events)
    client = connect(settings.clickhouse_dsn, settings.clickhouse_database)
    try:
        for grain in ("client", "warehouse", "region"):
            got = {
                (r["key"], r["day"]): r
                for r in _rows(client, "SELECT * FROM v_kpi_daily WHERE grain = {g:String}", g=grain)
            }
            want = expected.grain(grain)
            assert set(got) == set(want), grain
            for key, measures in want.items():
                assert {n: got[key][n] for n in COUNTS} == {n: measures[n] for n in COUNTS}, (grain, key)
                assert got[key]["revenue"] == measures["revenue"], (grain, key)
        targets = {t: (r, s) for t, r, s in client.query(
            "SELECT tier, response_hours, resolution_hours FROM sla_targets FINAL").result_rows}  # fmt: skip
        assert targets == {tier: custom.targets(tier) for tier in ("key", "stable", "potential")}
    finally:
        client.close()
