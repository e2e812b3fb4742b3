"""Daily KPIs for BI, kept exact under duplicates and replays by recomputing what a batch touched. Pure.

Why not a materialized view: the raw tables are ReplacingMergeTree, deduplicated by `event_id` only
when parts merge (or at read time with FINAL). A materialized view sees every inserted copy, so a
re-delivered event would be counted twice in a SummingMergeTree / AggregatingMergeTree; and most KPIs
depend on an entity's *other* events (an order counts on the day of its creation, with the units of
its latest update, and not at all once cancelled), which an insert-time view cannot see.

So the writer, after a batch's raw rows are durable, recomputes the KPI rows of exactly the
(client, day) keys the batch can have changed, with INSERT ... SELECT from the raw tables into
ReplacingMergeTree tables with a version column: a recompute replaces the rows of its keys. The
per-entity aggregates below are duplicate-insensitive (min, max, argMax, distinct), so two copies of
an event give the same answer without FINAL (and without waiting for a merge).

Which keys a batch can change ("dirty" keys), found by `touched` (pure) and the discovery query:

- the (client, UTC day) of every event in the batch;
- every day on which a touched entity (order, delivery, complaint, feedback) has any stored event:
  an entity's measures are attributed to the day of one of its own events (an order to its earliest
  event, a delivery to its outcome, a complaint to its opening, first resolution and reopenings), so a
  cancellation today can change yesterday's order count, and an opening arriving late can move a
  resolution that was counted on another day;
- the days of complaints that name a touched order (a complaint is attributed to its order's warehouse);
- for clients with a master-data change: the days whose complaints or feedback were attributed to a
  region that is no longer the client's (complaints and feedback count in the client's region).

Tables (all ReplacingMergeTree(version)):

- `kpi_detail_daily`: per day, client, warehouse and region, the sums and counts of every measure;
  each measure sits at its own place (an order at its warehouse and destination region, a complaint at
  its order's warehouse and the client's region). Keys that lose all their entities get a zero row,
  which replaces the old one.
- `kpi_daily`: the roll-ups of the detail per (grain, key, day), grain being client, warehouse or region,
  recomputed for the dirty (client, day) keys and for every warehouse and region of the dirty days. One
  table keyed by grain first, so that a BI query for one grain reads only that grain's rows.

Crash safety: the recompute runs inside the writer's `write`, which the worker awaits before it acks
the batch's offsets; a crash before the recompute finishes re-reads the batch, and recomputing is
idempotent. Concurrency: the version is the ClickHouse server's clock at the start of each INSERT ...
SELECT, which reads a snapshot of the parts present at that moment; so the newest version of a row
always reflects every row inserted before it, also when several workers roll up the same day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson

from streams.risk_texts import describe
from streams.sla import SlaRules

Params = dict[str, Any]
Statement = tuple[str, Params]

# (name, ClickHouse type, comment): the stored sums and counts. Rates are derived by the views, so they
# re-aggregate correctly over any period (sum the numerators, sum the denominators, then divide).
MEASURES: tuple[tuple[str, str, str], ...] = (
    ("orders", "UInt32", "orders placed that day (at their earliest event) and not cancelled"),
    ("units", "UInt64", "units of those orders, as of each order's latest created/updated event"),
    ("revenue", "Decimal(18, 2)", "service_fee of those orders (our revenue), as of their latest state"),
    ("cancelled", "UInt32", "orders placed that day that are cancelled (not in orders, units, revenue)"),
    ("deliveries", "UInt32", "deliveries whose outcome (delivered or failed) happened that day"),
    ("on_time", "UInt32", "of those, delivered with delivered_at <= promised_by"),
    ("failed", "UInt32", "of those, failed"),
    ("delivered_units", "UInt64", "units of the delivered (not failed) ones: the intact-rate denominator"),
    ("defective_units", "UInt64", "damaged + missing units of the delivered ones"),
    ("temperature_excursions", "UInt32", "deliveries (either outcome) reporting a temperature excursion"),
    ("complaints", "UInt32", "complaints opened that day"),
    (
        "complaints_by_category",
        "Map(LowCardinality(String), UInt32)",
        "complaints opened that day per category (the latest category of each complaint)",
    ),
    ("resolved", "UInt32", "complaints first resolved that day (opening known)"),
    ("resolution_seconds", "UInt64", "sum of seconds from opening to first resolution of those (negative as 0)"),
    ("reopened", "UInt32", "complaint.reopened facts that day"),
    ("csat_sum", "UInt32", "sum of CSAT scores (1-5) of feedback received that day"),
    ("csat_responses", "UInt32", "feedback received that day with a CSAT score"),
    ("nps_promoters", "UInt32", "feedback received that day with NPS 9-10"),
    ("nps_detractors", "UInt32", "feedback received that day with NPS 0-6"),
    ("nps_responses", "UInt32", "feedback received that day with an NPS answer"),
)
MEASURE_NAMES = tuple(name for name, _, _ in MEASURES)
ACTIVITY = "orders + cancelled + deliveries + complaints + resolved + reopened + csat_responses + nps_responses"
"""Non-zero on a row that holds anything; zero rows only mark keys whose entities moved away."""
SERVICE_ACTIVITY = "complaints + resolved + reopened + csat_responses + nps_responses"
"""The measures attributed to the client's master-data region."""

ENTITY_COLUMN = {"order": "order_id", "delivery": "delivery_id", "complaint": "complaint_id", "feedback": "feedback_id"}
RAW = {
    "client": "raw_client_events",
    "order": "raw_order_events",
    "delivery": "raw_delivery_events",
    "complaint": "raw_complaint_events",
    "feedback": "raw_feedback_events",
}
FAMILY_BY_TABLE = {table: family for family, table in RAW.items()}

NONE = "(none)"
"""The kpi_daily key of measures without a warehouse or region (stored so, so that key filters use the index)."""

PAIRS_PER_STATEMENT = 20_000
"""Dirty (client, day) keys per INSERT ... SELECT: bounds the size of one statement's parameters."""

_KEYS = "{keys:Array(Tuple(String, Date))}"
_CLIENTS = "{clients:Array(String)}"
_DAYS = "{days:Array(Date)}"


# ---------------------------------------------------------------- what a batch touched


@dataclass
class Touched:
    """What one written batch can have changed, read from its raw rows."""

    keys: set[tuple[str, date]] = field(default_factory=set)
    """(client_id, UTC day) of every order, delivery, complaint and feedback event in the batch."""
    entities: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    """family -> {(client_id, entity id)}."""
    master_changed: set[str] = field(default_factory=set)
    """Clients with a client.upserted in the batch."""

    def __bool__(self) -> bool:
        return bool(self.keys or self.master_changed)


def utc_day(at: datetime) -> date:
    return at.astimezone(UTC).date() if at.tzinfo else at.date()


def touched(batch: Mapping[str, Sequence[Sequence[Any]]], columns: Mapping[str, Sequence[str]]) -> Touched:
    """The keys and entities of a batch's raw rows (`columns`: table -> column names in row order)."""
    out = Touched()
    for table, rows in batch.items():
        family = FAMILY_BY_TABLE.get(table)
        if family is None or not rows:
            continue
        names = list(columns[table])
        client_at, time_at = names.index("client_id"), names.index("occurred_at")
        if family == "client":
            out.master_changed.update(row[client_at] for row in rows)
            continue
        entity_at = names.index(ENTITY_COLUMN[family])
        entities = out.entities.setdefault(family, set())
        for row in rows:
            out.keys.add((row[client_at], utc_day(row[time_at])))
            entities.add((row[client_at], row[entity_at]))
    return out


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------- SQL building blocks


def _zero(ch_type: str) -> str:
    return f"CAST(map(), '{ch_type}')" if ch_type.startswith("Map") else f"CAST(0, '{ch_type}')"


def _measures(exprs: Mapping[str, str]) -> str:
    """Every measure column in table order: the given expressions, zero for the others (UNION ALL
    branches must agree on types, hence the casts)."""
    unknown = set(exprs) - set(MEASURE_NAMES)
    if unknown:
        raise ValueError(f"unknown measures {sorted(unknown)}")
    return ", ".join(
        f"CAST({exprs[name]}, '{ch_type}') AS {name}" if name in exprs else f"{_zero(ch_type)} AS {name}"
        for name, ch_type, _ in MEASURES
    )


def _sums() -> str:
    return ", ".join(
        f"sumMap({name}) AS {name}" if ch_type.startswith("Map") else f"sum({name}) AS {name}"
        for name, ch_type, _ in MEASURES
    )


_VERSION = "toUInt64(toUnixTimestamp64Nano(now64(9)))"
_MASTER_REGION = (
    "SELECT client_id, argMax(region, tuple(toUnixTimestamp(occurred_at), toString(event_id))) AS region "
    "FROM raw_client_events WHERE client_id IN {clients} GROUP BY client_id"
)
"""The client's region from its latest client.upserted (by occurred_at to the second, then the larger
event_id: the profile's rule)."""


def _with_event_on_dirty_key(family: str) -> str:
    """(client_id, entity id) of the family's entities with an event on a dirty (client, day) key: the
    only entities whose measures can land on a dirty key (each lands on the day of one of its events)."""
    entity, raw = ENTITY_COLUMN[family], RAW[family]
    return (
        f"(client_id, {entity}) IN (SELECT client_id, {entity} FROM {raw} WHERE client_id IN {_CLIENTS} "
        "AND occurred_at >= toDateTime64({lo:Date}, 3, 'UTC') AND occurred_at < toDateTime64({hi:Date} + 1, 3, 'UTC') "
        f"AND (client_id, toDate(occurred_at)) IN {_KEYS})"
    )


# Orders: placed at the earliest event of the order; its state (units, fee, warehouse, destination) from
# the latest created/updated by (second, lifecycle step), ties by the larger content (the profile's rule);
# any cancellation cancels it. An order known only from a cancellation takes the cancellation's warehouse.
_ORDERS = f"""
SELECT toDate(placed) AS day, client_id, s.3 AS warehouse_id, s.4 AS region, @MEASURES@
FROM (
    SELECT client_id, order_id, min(occurred_at) AS placed,
        max(event_type = 'order.cancelled') AS is_cancelled,
        argMax(tuple(units, service_fee, warehouse_id, destination_region),
            tuple(event_type != 'order.cancelled', toUnixTimestamp(occurred_at),
                  multiIf(event_type = 'order.created', 0, event_type = 'order.updated', 1, 2),
                  units, service_fee, warehouse_id, destination_region)) AS s
    FROM raw_order_events
    WHERE client_id IN {_CLIENTS} AND {_with_event_on_dirty_key("order")}
    GROUP BY client_id, order_id
)
WHERE (client_id, toDate(placed)) IN {_KEYS}
"""
_ORDER_MEASURES = {
    "orders": "NOT is_cancelled",
    "units": "if(is_cancelled, 0, s.1)",
    "revenue": "if(is_cancelled, 0, s.2)",
    "cancelled": "is_cancelled",
}

# Deliveries: counted once they have an outcome, on the day of the outcome event; the outcome is the
# latest failed/delivered event by (second, step: failed < delivered), ties by the larger content.
_DELIVERIES = f"""
SELECT toDate(s.1) AS day, client_id, s.7 AS warehouse_id, s.8 AS region, @MEASURES@
FROM (
    SELECT client_id, delivery_id,
        argMaxIf(tuple(occurred_at, failed, on_time, units, defective, temperature_excursion, warehouse_id,
                       destination_region),
            tuple(toUnixTimestamp(occurred_at), NOT failed, on_time, units, defective, temperature_excursion,
                  warehouse_id, destination_region),
            event_type != 'delivery.dispatched') AS s,
        max(event_type != 'delivery.dispatched') AS has_outcome
    FROM (
        SELECT client_id, delivery_id, event_type, occurred_at, units, temperature_excursion, warehouse_id,
            destination_region, event_type = 'delivery.failed' AS failed,
            event_type = 'delivery.delivered' AND ifNull(delivered_at <= promised_by, false) AS on_time,
            if(event_type = 'delivery.delivered', units_damaged + units_missing, 0) AS defective
        FROM raw_delivery_events
        WHERE client_id IN {_CLIENTS} AND {_with_event_on_dirty_key("delivery")}
    )
    GROUP BY client_id, delivery_id
)
WHERE has_outcome AND (client_id, toDate(s.1)) IN {_KEYS}
"""
_DELIVERY_MEASURES = {
    "deliveries": "1",
    "on_time": "s.3",
    "failed": "s.2",
    "delivered_units": "if(s.2, 0, s.4)",
    "defective_units": "if(s.2, 0, s.5)",
    "temperature_excursions": "s.6",
}

# Complaints: one row per measure and day: opened (with the latest category), first resolution (when the
# opening is known; hours = first resolution - opening, at least 0), and each distinct reopening. Place:
# the warehouse of the order the complaint names (its latest state's order), and the client's region.
_COMPLAINT_CODE = (
    "multiIf(event_type = 'complaint.opened', 0, event_type = 'complaint.updated', 1, "
    "event_type = 'complaint.resolved', 2, 3)"
)
_COMPLAINTS = f"""
SELECT m.1 AS day, c.client_id AS client_id, o.warehouse_id AS warehouse_id, r.region AS region, @MEASURES@
FROM (
    SELECT client_id, complaint_id,
        minIfOrNull(occurred_at, event_type = 'complaint.opened') AS opened,
        minIfOrNull(occurred_at, event_type = 'complaint.resolved') AS first_resolved,
        groupUniqArrayIf(toStartOfSecond(occurred_at), event_type = 'complaint.reopened') AS reopenings,
        argMax(tuple(category, severity, order_id),
            tuple(toUnixTimestamp(occurred_at), {_COMPLAINT_CODE}, category, severity)) AS s
    FROM raw_complaint_events
    WHERE client_id IN {_CLIENTS} AND {_with_event_on_dirty_key("complaint")}
    GROUP BY client_id, complaint_id
) AS c
ARRAY JOIN arrayConcat(
    if(opened IS NULL, [],
       [tuple(toDate(assumeNotNull(opened)), toString(s.1), toUInt8(1), toUInt8(0), toUInt64(0), toUInt8(0))]),
    if(opened IS NULL OR first_resolved IS NULL, [],
       [tuple(toDate(assumeNotNull(first_resolved)), '', toUInt8(0), toUInt8(1),
              toUInt64(greatest(toInt64(toUnixTimestamp(assumeNotNull(first_resolved)))
                                - toInt64(toUnixTimestamp(assumeNotNull(opened))), 0)), toUInt8(0))]),
    arrayMap(t -> tuple(toDate(t), '', toUInt8(0), toUInt8(0), toUInt64(0), toUInt8(1)), reopenings)
) AS m
LEFT JOIN (
    SELECT client_id, order_id,
        argMax(warehouse_id, tuple(event_type != 'order.cancelled', toUnixTimestamp(occurred_at),
            multiIf(event_type = 'order.created', 0, event_type = 'order.updated', 1, 2),
            units, service_fee, warehouse_id)) AS warehouse_id
    FROM raw_order_events
    WHERE client_id IN {_CLIENTS} AND (client_id, order_id) IN (
        SELECT client_id, order_id FROM raw_complaint_events WHERE client_id IN {_CLIENTS} AND order_id != '')
    GROUP BY client_id, order_id
) AS o ON c.client_id = o.client_id AND tupleElement(c.s, 3) = o.order_id
LEFT JOIN ({_MASTER_REGION.format(clients=_CLIENTS)}) AS r ON c.client_id = r.client_id
WHERE (c.client_id, m.1) IN {_KEYS}
"""
_COMPLAINT_MEASURES = {
    "complaints": "m.3",
    "complaints_by_category": "if(m.3 = 1, map(m.2, toUInt32(1)), map())",
    "resolved": "m.4",
    "resolution_seconds": "m.5",
    "reopened": "m.6",
}

# Feedback: counted on the day of its latest event, with that event's scores (ties: larger content).
_FEEDBACK = f"""
SELECT toDate(f.last) AS day, f.client_id AS client_id, '' AS warehouse_id, r.region AS region, @MEASURES@
FROM (
    SELECT client_id, feedback_id, max(occurred_at) AS last,
        argMax(tuple(ifNull(csat, 0), ifNull(toInt16(nps), -1)),
            tuple(toUnixTimestamp(occurred_at), ifNull(csat, 0), ifNull(toInt16(nps), -1), revisit_outcome)) AS s
    FROM raw_feedback_events
    WHERE client_id IN {_CLIENTS} AND {_with_event_on_dirty_key("feedback")}
    GROUP BY client_id, feedback_id
) AS f
LEFT JOIN ({_MASTER_REGION.format(clients=_CLIENTS)}) AS r ON f.client_id = r.client_id
WHERE (f.client_id, toDate(f.last)) IN {_KEYS}
"""
_FEEDBACK_MEASURES = {
    "csat_sum": "s.1",
    "csat_responses": "s.1 > 0",
    "nps_promoters": "s.2 >= 9",
    "nps_detractors": "s.2 BETWEEN 0 AND 6",
    "nps_responses": "s.2 >= 0",
}

# A detail key that existed before and gets no entity now must be replaced by a zero row.
_EXISTING_DETAIL = f"""
SELECT day, client_id, warehouse_id, region, @MEASURES@
FROM kpi_detail_daily WHERE (client_id, day) IN {_KEYS}
"""


def _detail_sql() -> str:
    branches = [
        _ORDERS.replace("@MEASURES@", _measures(_ORDER_MEASURES)),
        _DELIVERIES.replace("@MEASURES@", _measures(_DELIVERY_MEASURES)),
        _COMPLAINTS.replace("@MEASURES@", _measures(_COMPLAINT_MEASURES)),
        _FEEDBACK.replace("@MEASURES@", _measures(_FEEDBACK_MEASURES)),
        _EXISTING_DETAIL.replace("@MEASURES@", _measures({})),
    ]
    return (
        f"INSERT INTO kpi_detail_daily (day, client_id, warehouse_id, region, {', '.join(MEASURE_NAMES)}, version) "
        f"SELECT day, client_id, warehouse_id, region, {_sums()}, {_VERSION} FROM ("
        + "\nUNION ALL\n".join(branches)
        + ") GROUP BY day, client_id, warehouse_id, region"
    )


def _rollup_sql() -> str:
    """The roll-ups of the detail into kpi_daily: the dirty (client, day) keys, and every warehouse and
    region of their days. A key whose entities all moved away still has its (zero) detail rows, so its
    roll-up is recomputed to zero as well."""
    place = "if({column} = '', '" + NONE + "', {column})"
    grains = (
        f"[tuple('client', client_id), tuple('warehouse', {place.format(column='warehouse_id')}), "
        f"tuple('region', {place.format(column='region')})]"
    )
    return f"""INSERT INTO kpi_daily (grain, key, day, {", ".join(MEASURE_NAMES)}, version)
SELECT g.1 AS grain, g.2 AS key, day, {_sums()}, {_VERSION}
FROM kpi_detail_daily FINAL
ARRAY JOIN {grains} AS g
WHERE day IN {_DAYS} AND (g.1 != 'client' OR (client_id, day) IN {_KEYS})
GROUP BY grain, key, day"""


DETAIL_SQL = _detail_sql()
ROLLUP_SQL = _rollup_sql()


# ---------------------------------------------------------------- discovery of dirty keys


def _entity_days(family: str) -> str:
    entity, raw = ENTITY_COLUMN[family], RAW[family]
    return (
        f"SELECT client_id, toDate(occurred_at) AS day FROM {raw} "
        f"WHERE client_id IN {{{family}_clients:Array(String)}} "
        f"AND (client_id, {entity}) IN {{{family}_ids:Array(Tuple(String, String))}}"
    )


_COMPLAINTS_OF_ORDERS = (
    "SELECT client_id, toDate(occurred_at) AS day FROM raw_complaint_events "
    "WHERE client_id IN {order_clients:Array(String)} AND (client_id, complaint_id) IN ("
    "SELECT client_id, complaint_id FROM raw_complaint_events WHERE client_id IN {order_clients:Array(String)} "
    "AND (client_id, order_id) IN {order_ids:Array(Tuple(String, String))})"
)
"""Days of the complaints that name a touched order: a complaint is placed at its order's warehouse."""
_MOVED_REGION = (
    "SELECT d.client_id AS client_id, d.day AS day FROM kpi_detail_daily AS d FINAL "
    f"INNER JOIN ({_MASTER_REGION.format(clients='{master_clients:Array(String)}')}) AS m "
    "ON d.client_id = m.client_id "
    f"WHERE d.client_id IN {{master_clients:Array(String)}} AND ({SERVICE_ACTIVITY}) > 0 AND d.region != m.region"
)
"""Days whose complaints or feedback are counted in a region that is no longer the client's."""
_BATCH_KEYS = (
    "SELECT k.1 AS client_id, k.2 AS day FROM (SELECT arrayJoin({batch_keys:Array(Tuple(String, Date))}) AS k)"
)

DISCOVERY_SQL = (
    "SELECT DISTINCT client_id, day FROM ("
    + " UNION ALL ".join([*(_entity_days(f) for f in ENTITY_COLUMN), _COMPLAINTS_OF_ORDERS, _MOVED_REGION, _BATCH_KEYS])
    + ")"
)


def discovery(t: Touched) -> Statement:
    """The query returning every dirty (client_id, day) of a batch, with its parameters."""
    params: Params = {}
    for family in ENTITY_COLUMN:
        ids = sorted(t.entities.get(family, ()))
        params[f"{family}_ids"] = ids
        params[f"{family}_clients"] = sorted({c for c, _ in ids})
    params["master_clients"] = sorted(t.master_changed)
    params["batch_keys"] = sorted(t.keys)
    return DISCOVERY_SQL, params


BACKFILL_MONTHS_SQL = (
    "SELECT DISTINCT month FROM ("
    + " UNION ALL ".join(f"SELECT DISTINCT toYYYYMM(occurred_at) AS month FROM {RAW[f]}" for f in ENTITY_COLUMN)
    + ") ORDER BY month"
)
BACKFILL_KEYS_SQL = (
    "SELECT DISTINCT client_id, day FROM ("
    + " UNION ALL ".join(
        f"SELECT client_id, toDate(occurred_at) AS day FROM {RAW[f]} WHERE toYYYYMM(occurred_at) = {{month:UInt32}}"
        for f in ENTITY_COLUMN
    )
    + ")"
)
"""A full recompute (the backfill when the KPI tables are added): every (client_id, day) with a stored
event, one month at a time so that the keys of a large history never have to be in memory at once."""


# ---------------------------------------------------------------- recompute


def refresh(pairs: Iterable[tuple[str, date]]) -> list[Statement]:
    """The INSERT ... SELECT statements that recompute the given dirty (client, day) keys: per chunk of
    keys (in day order), the detail rows, then their roll-ups. A day split across two chunks is rolled up
    twice, the second time with the detail of both."""
    ordered = sorted({(c, d) for c, d in pairs}, key=lambda p: (p[1], p[0]))
    out: list[Statement] = []
    for part in chunks(ordered, PAIRS_PER_STATEMENT):
        keys = list(part)
        out.append(
            (DETAIL_SQL, {"keys": keys, "clients": sorted({c for c, _ in keys}), "lo": keys[0][1], "hi": keys[-1][1]})
        )
        out.append((ROLLUP_SQL, {"keys": keys, "days": sorted({d for _, d in keys})}))
    return out


# ---------------------------------------------------------------- texts and SLA targets


RISK_TEXT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("client_id", "String"),
    ("assessed_at", "DateTime64(3, 'UTC')"),
    ("reason_codes", "Array(LowCardinality(String))"),
    ("reasons_en", "Array(String)"),
    ("reasons_zh", "Array(String)"),
)


@dataclass(frozen=True)
class _Evidence:
    code: str
    evidence: dict[str, Any]


def risk_text_rows(rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """The English and Chinese sentence of each reason of `client_risk_history` rows.

    The risk history keeps each reason's code and evidence (JSON) but not its sentence; BI needs the
    sentence, and a view cannot format evidence the way `streams.risk_texts` does. So the writer renders
    them once, with the same function the alerts use, into `client_risk_texts`.
    """
    names = list(columns)
    client_at, time_at, reasons_at = names.index("client_id"), names.index("assessed_at"), names.index("reasons_json")
    out = []
    for row in rows:
        reasons = orjson.loads(row[reasons_at])
        texts = [describe(_Evidence(r["code"], r["evidence"])) for r in reasons]
        out.append(
            (
                row[client_at],
                row[time_at],
                [r["code"] for r in reasons],
                [en for en, _ in texts],
                [zh for _, zh in texts],
            )
        )
    return out


SLA_TARGET_COLUMNS: tuple[tuple[str, str], ...] = (
    ("tier", "LowCardinality(String)"),
    ("response_hours", "Float64"),
    ("resolution_hours", "Float64"),
    ("updated_at", "DateTime64(3, 'UTC')"),
)


def sla_target_rows(rules: SlaRules, at: datetime) -> list[tuple[Any, ...]]:
    """One row per tier of the complaint SLA targets in force (the worker writes its settings)."""
    tiers = sorted(set(rules.response_hours) | set(rules.resolution_hours))
    return [(tier, *rules.targets(tier), at) for tier in tiers]
