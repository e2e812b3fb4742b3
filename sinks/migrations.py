"""Versioned, idempotent ClickHouse DDL.

Raw event tables are ReplacingMergeTree keyed by (client_id, event_id): a re-delivered event
collapses into one row at merge time. BI never reads the raw tables directly: it reads the
views below, which apply FINAL, so duplicates never show even before a merge.
"""

from __future__ import annotations

from dataclasses import dataclass

from sinks.alerts import ALERT_COLUMNS, RISK_COLUMNS
from sinks.kpi import ACTIVITY, MEASURES, NONE, RISK_TEXT_COLUMNS, SLA_TARGET_COLUMNS
from sinks.profiles import PROFILE_COLUMNS, TIER_CHANGE_COLUMNS
from streams.sla import SlaRules

_ENVELOPE = """
    event_id UUID,
    event_type LowCardinality(String),
    schema_version UInt16,
    occurred_at DateTime64(3, 'UTC'),
    client_id String,
    source LowCardinality(String),
"""
_ORIGIN = """
    raw_json String CODEC(ZSTD(3)) COMMENT 'the event as published, unknown fields included',
    kafka_topic LowCardinality(String),
    kafka_partition UInt32,
    kafka_offset UInt64,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
"""
_RAW_ENGINE = """
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (client_id, event_id)
"""


def _raw(table: str, columns: str, comment: str) -> str:
    return f"CREATE TABLE IF NOT EXISTS {table} ({_ENVELOPE}{columns},{_ORIGIN}) {_RAW_ENGINE} COMMENT '{comment}'"


RAW_TABLES: dict[str, str] = {
    "client": "raw_client_events",
    "order": "raw_order_events",
    "delivery": "raw_delivery_events",
    "complaint": "raw_complaint_events",
    "feedback": "raw_feedback_events",
}
"""family -> raw table; the BI view of each is the same name without the `raw_` prefix."""

_V1 = [
    """CREATE TABLE IF NOT EXISTS schema_migrations (
        version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = ReplacingMergeTree ORDER BY version""",
    _raw(
        "raw_client_events",
        """
    name String,
    region LowCardinality(String),
    industry LowCardinality(String),
    address String,
    contacts_json String,
    goods_categories Array(LowCardinality(String)),
    storage_temp_min_c Nullable(Float32),
    storage_temp_max_c Nullable(Float32),
    storage_humidity_max_pct Nullable(Float32),
    hazardous_goods Bool,
    delivery_regions Array(LowCardinality(String)),
    delivery_windows_json String,
    contract_start Nullable(Date),
    contract_end Nullable(Date),
    account_manager String,
    changed_by String""",
        "client master data changes (client.upserted)",
    ),
    _raw(
        "raw_order_events",
        """
    order_id String,
    warehouse_id LowCardinality(String),
    service_type LowCardinality(String),
    units UInt32,
    weight_kg Float64,
    volume_m3 Float64,
    goods_value Decimal(18, 2),
    service_fee Decimal(18, 2),
    currency LowCardinality(String),
    window_start Nullable(DateTime64(3, 'UTC')),
    window_end Nullable(DateTime64(3, 'UTC')),
    destination_region LowCardinality(String),
    cancel_reason String""",
        "order.created/updated/cancelled",
    ),
    _raw(
        "raw_delivery_events",
        """
    delivery_id String,
    order_id String,
    warehouse_id LowCardinality(String),
    carrier LowCardinality(String),
    vehicle_id String,
    destination_region LowCardinality(String),
    promised_by DateTime64(3, 'UTC'),
    delivered_at Nullable(DateTime64(3, 'UTC')),
    units UInt32,
    units_delivered UInt32,
    units_damaged UInt32,
    units_missing UInt32,
    temperature_excursion Bool,
    failure_reason String""",
        "delivery.dispatched/delivered/failed",
    ),
    _raw(
        "raw_complaint_events",
        """
    complaint_id String,
    order_id String,
    category LowCardinality(String),
    severity LowCardinality(String),
    channel LowCardinality(String),
    description String,
    resolution String,
    compensation_amount Decimal(18, 2),
    currency LowCardinality(String)""",
        "complaint.opened/updated/resolved/reopened",
    ),
    _raw(
        "raw_feedback_events",
        """
    feedback_id String,
    csat Nullable(UInt8),
    nps Nullable(UInt8),
    channel LowCardinality(String),
    revisit_outcome LowCardinality(String),
    comment String""",
        "feedback.received: CSAT, NPS, revisit outcomes",
    ),
    """CREATE TABLE IF NOT EXISTS dead_letters (
        kafka_topic LowCardinality(String),
        kafka_partition UInt32,
        kafka_offset UInt64,
        kafka_key String,
        raw_value String CODEC(ZSTD(3)) COMMENT 'the original bytes, as received',
        reason LowCardinality(String) COMMENT 'stable reason code, e.g. malformed_json',
        detail String COMMENT 'precise message naming the offending field',
        rejected_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = ReplacingMergeTree
    ORDER BY (kafka_topic, kafka_partition, kafka_offset)
    COMMENT 'rejected input; one row per Kafka record, however often it is re-read'""",
    *[
        f"CREATE VIEW IF NOT EXISTS {table.removeprefix('raw_')} AS SELECT * FROM {table} FINAL"
        for table in RAW_TABLES.values()
    ],
    "CREATE VIEW IF NOT EXISTS dead_letter_events AS SELECT * FROM dead_letters FINAL",
    "CREATE VIEW IF NOT EXISTS events AS "
    + " UNION ALL ".join(
        "SELECT event_id, event_type, schema_version, occurred_at, client_id, source, kafka_topic, "
        f"kafka_partition, kafka_offset, ingested_at FROM {table.removeprefix('raw_')}"
        for table in RAW_TABLES.values()
    ),
]


# What changed in each client.upserted against the client's previous master data (by event time).
_MASTER_FIELDS = {
    "name": "name",
    "contacts": "contacts_json",
    "address": "address",
    "region": "region",
    "industry": "industry",
    "goods_categories": "goods_categories",
    "storage": "tuple(storage_temp_min_c, storage_temp_max_c, storage_humidity_max_pct, hazardous_goods)",
    "delivery_regions": "delivery_regions",
    "delivery_windows": "delivery_windows_json",
    "contract": "tuple(contract_start, contract_end)",
    "account_manager": "account_manager",
}
_MASTER_CHANGES = (
    "CREATE VIEW IF NOT EXISTS client_master_changes AS SELECT client_id, occurred_at AS changed_at, changed_by, "
    "source, event_id, if(prev_n = 0, ['created'], arrayFilter(x -> x != '', ["
    + ", ".join(f"if(cur_{k} != prev_{k}, '{k}', '')" for k in _MASTER_FIELDS)
    + "])) AS changed_fields, name, region, account_manager, contract_end FROM (SELECT *, "
    + ", ".join(f"{expr} AS cur_{k}, lagInFrame({expr}) OVER w AS prev_{k}" for k, expr in _MASTER_FIELDS.items())
    + ", count() OVER w - 1 AS prev_n FROM client_events WINDOW w AS (PARTITION BY client_id "
    "ORDER BY occurred_at, event_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))"
)


def _columns(columns: tuple[tuple[str, str], ...]) -> str:
    return ",\n    ".join(f"{name} {ch_type}" for name, ch_type in columns)


_V2 = [
    _MASTER_CHANGES,
    f"""CREATE TABLE IF NOT EXISTS client_profile_versions (
    {_columns(PROFILE_COLUMNS)},
    written_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = ReplacingMergeTree(version)
    ORDER BY client_id
    COMMENT 'every emitted profile version; the view client_profiles keeps the latest per client'""",
    f"""CREATE TABLE IF NOT EXISTS tier_history (
    {_columns(TIER_CHANGE_COLUMNS)},
    written_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = ReplacingMergeTree
    ORDER BY (client_id, changed_at, old_tier, new_tier)
    COMMENT 'tier changes (key/stable/potential) by event time; a replay rewrites the same rows'""",
    # Pareto A/B/C over 365-day revenue: A while the clients ranked above hold < 80% of all revenue,
    # B < 95%, else C; zero revenue is C. Integer-exact on Decimals (4/5, 19/20), same rule as
    # streams.tiering.abc_classes. A view, because the ranking needs every client at once: ClickHouse
    # already has them all, and a view is never stale (no job to schedule, nothing to replay).
    """CREATE VIEW IF NOT EXISTS client_abc AS
    SELECT client_id, revenue_365d, cumulative_before, total,
        multiIf(revenue_365d = 0, 'C', cumulative_before * 5 < total * 4, 'A',
                cumulative_before * 20 < total * 19, 'B', 'C') AS abc_class
    FROM (
        SELECT client_id, revenue_365d,
            sum(revenue_365d) OVER (ORDER BY revenue_365d DESC, client_id
                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS cumulative_before,
            sum(revenue_365d) OVER () AS total
        FROM client_profile_versions FINAL
    )""",
    """CREATE VIEW IF NOT EXISTS client_profiles AS
    SELECT p.*, a.abc_class AS abc_class
    FROM (SELECT * FROM client_profile_versions FINAL) AS p
    LEFT JOIN client_abc AS a USING (client_id)""",
    "CREATE VIEW IF NOT EXISTS client_tier_history AS SELECT * FROM tier_history FINAL",
]


_V3 = [
    f"""CREATE TABLE IF NOT EXISTS alerts (
    {_columns(ALERT_COLUMNS)},
    written_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = ReplacingMergeTree
    ORDER BY (client_id, alert_id, sequence)
    COMMENT 'every alert message (raised, escalated, reminder, resolved); one row per alert_id and sequence'""",
    f"""CREATE TABLE IF NOT EXISTS client_risk_history (
    {_columns(RISK_COLUMNS)},
    written_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = ReplacingMergeTree
    ORDER BY (client_id, assessed_at)
    COMMENT 'churn risk score of each client whenever it changed, by event time'""",
    # The current state of each alert: its highest sequence.
    """CREATE VIEW IF NOT EXISTS alert_states AS
    SELECT * FROM alerts FINAL ORDER BY client_id, alert_id, sequence DESC LIMIT 1 BY alert_id""",
    """CREATE VIEW IF NOT EXISTS client_risk AS
    SELECT * FROM client_risk_history FINAL ORDER BY client_id, assessed_at DESC LIMIT 1 BY client_id""",
]


# ---------------------------------------------------------------- 4: KPIs and the BI-facing views
#
# KPI tables are maintained by the writer (sinks/kpi.py explains why not by materialized views): after each
# batch it recomputes, from the raw events, the (client, day) keys the batch touched into kpi_detail_daily,
# and rolls them up per client, warehouse and region into kpi_daily. ReplacingMergeTree(version): a
# recompute replaces the rows it recomputes. kpi_daily is ordered by grain first, so that a query for one
# grain reads only that grain (a UNION of three tables under one view could not skip the other two).
# The BI views (v_*) are the stable, commented surface; everything else may change.


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _commented(columns: tuple[tuple[str, str, str], ...]) -> str:
    return ",\n    ".join(f"{name} {ch_type} COMMENT {_quote(comment)}" for name, ch_type, comment in columns)


def _view(name: str, comment: str, columns: tuple[tuple[str, str, str], ...], select: str) -> str:
    """A view with a type and a comment on every column and on the view itself (BI tools show them)."""
    return f"CREATE VIEW IF NOT EXISTS {name} (\n    {_commented(columns)}\n) AS {select}\nCOMMENT {_quote(comment)}"


_VERSION_COLUMN = (("version", "UInt64", "recompute time (ns): the newest version of a key replaces the others"),)


def _kpi_table(table: str, keys: tuple[tuple[str, str, str], ...], order_by: str, partition: str, about: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {table} (
    {_commented(keys + MEASURES + _VERSION_COLUMN)}
    ) ENGINE = ReplacingMergeTree(version)
    {partition}
    ORDER BY ({order_by})
    COMMENT {_quote(about)}"""


_DAY = ("day", "Date", "UTC calendar day the measures are attributed to")
_GRAIN = ("grain", "LowCardinality(String)", "client, warehouse or region: which kind of key the row is about")
_KEY = ("key", "String", f"client_id, warehouse_id or region; {NONE} for measures without a warehouse or region")
_CLIENT = ("client_id", "String", "client")
_WAREHOUSE = (
    "warehouse_id",
    "LowCardinality(String)",
    "warehouse of the order or delivery, or of the order a complaint names; empty when none (feedback, "
    "complaints without an order)",
)
_REGION = (
    "region",
    "LowCardinality(String)",
    "destination region of orders and deliveries; the client's master-data region for complaints and "
    "feedback; empty when none (inbound receipts, clients without master data)",
)

_ZERO_ROW = f"({ACTIVITY}) > 0"


def _rates(prefix: str = "") -> str:
    """The BI measures of v_kpi_daily from the stored sums (all rates NULL when there is nothing to divide by)."""
    p = prefix
    return f"""{p}orders AS orders, {p}units AS units, {p}revenue AS revenue, {p}cancelled AS cancelled_orders,
    {p}deliveries AS deliveries, {p}on_time AS on_time_deliveries,
    if({p}deliveries > 0, {p}on_time / {p}deliveries, NULL) AS on_time_rate,
    {p}delivered_units AS delivered_units, {p}defective_units AS defective_units,
    if({p}delivered_units > 0, ({p}delivered_units - {p}defective_units) / {p}delivered_units, NULL) AS intact_rate,
    {p}failed AS failed_deliveries, {p}temperature_excursions AS temperature_excursions,
    {p}complaints AS complaints, {p}complaints_by_category AS complaints_by_category,
    {p}resolved AS resolved_complaints, {p}resolution_seconds / 3600 AS resolution_hours_total,
    if({p}resolved > 0, {p}resolution_seconds / 3600 / {p}resolved, NULL) AS mean_resolution_hours,
    {p}reopened AS reopened_complaints,
    {p}csat_sum AS csat_sum, {p}csat_responses AS csat_responses,
    if({p}csat_responses > 0, {p}csat_sum / {p}csat_responses, NULL) AS csat_mean,
    {p}nps_promoters AS nps_promoters, {p}nps_detractors AS nps_detractors, {p}nps_responses AS nps_responses,
    if({p}nps_responses > 0, 100 * (toInt64({p}nps_promoters) - toInt64({p}nps_detractors)) / {p}nps_responses, NULL)
        AS nps"""


_KPI_VIEW_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("grain", "String", "client, warehouse or region: which key the row is about"),
    ("key", "String", "client_id, warehouse_id or region; (none) for measures without a warehouse or region"),
    ("day", "Date", "UTC day; orders by placement, deliveries by outcome, complaints by opening/resolution"),
    ("orders", "UInt64", "orders placed that day (at their earliest event), not cancelled"),
    ("units", "UInt64", "units of those orders, as of each order's latest state"),
    ("revenue", "Decimal(18, 2)", "service_fee of those orders (our revenue, CNY)"),
    ("cancelled_orders", "UInt64", "orders placed that day that are cancelled"),
    ("deliveries", "UInt64", "deliveries with an outcome that day: delivered + failed"),
    ("on_time_deliveries", "UInt64", "of those, delivered with delivered_at <= promised_by"),
    ("on_time_rate", "Nullable(Float64)", "on_time_deliveries / deliveries (a failed delivery counts as late); "
     "re-aggregate as sum(on_time_deliveries) / sum(deliveries)"),
    ("delivered_units", "UInt64", "units of the delivered (not failed) deliveries"),
    ("defective_units", "UInt64", "damaged + missing units of those deliveries"),
    ("intact_rate", "Nullable(Float64)", "(delivered_units - defective_units) / delivered_units; re-aggregate from "
     "the sums"),
    ("failed_deliveries", "UInt64", "deliveries whose outcome is a failure"),
    ("temperature_excursions", "UInt64", "deliveries reporting a cold-chain temperature excursion"),
    ("complaints", "UInt64", "complaints opened that day"),
    ("complaints_by_category", "Map(String, UInt64)", "complaints opened that day per category (latest category)"),
    ("resolved_complaints", "UInt64", "complaints first resolved that day (whose opening is known)"),
    ("resolution_hours_total", "Float64", "sum of hours from opening to first resolution of those"),
    ("mean_resolution_hours", "Nullable(Float64)", "resolution_hours_total / resolved_complaints; re-aggregate "
     "from the sums"),
    ("reopened_complaints", "UInt64", "complaint reopenings that day"),
    ("csat_sum", "UInt64", "sum of CSAT scores (1-5) received that day"),
    ("csat_responses", "UInt64", "feedback with a CSAT score received that day"),
    ("csat_mean", "Nullable(Float64)", "csat_sum / csat_responses"),
    ("nps_promoters", "UInt64", "NPS answers 9-10 received that day"),
    ("nps_detractors", "UInt64", "NPS answers 0-6 received that day"),
    ("nps_responses", "UInt64", "NPS answers received that day"),
    ("nps", "Nullable(Float64)", "100 * (promoters - detractors) / responses, from -100 to 100; re-aggregate "
     "from the counts"),
)  # fmt: skip

_V_KPI_DAILY = _view(
    "v_kpi_daily",
    "Daily KPIs per client, warehouse and region (grain + key); exact under duplicate and replayed events. "
    "Rates are per row: for a period, sum the numerators and denominators (docs/analytics.md).",
    _KPI_VIEW_COLUMNS,
    f"""SELECT grain, key, day, {_rates()}
FROM kpi_daily FINAL
WHERE {_ZERO_ROW}""",
)

_V_AS_OF = _view(
    "v_as_of",
    "The event-time 'now' of the BI views: the latest occurred_at of any stored event. Windows such as "
    "orders_30d end on its day, so a replay of last year answers as last year did.",
    (
        ("as_of", "DateTime64(3, 'UTC')", "latest occurred_at of any stored event (the event-time watermark)"),
        ("as_of_day", "Date", "its UTC day: the last day of every N-day window of the BI views"),
    ),
    "SELECT max(t) AS as_of, toDate(as_of) AS as_of_day FROM ("
    + " UNION ALL ".join(f"SELECT max(occurred_at) AS t FROM {table}" for table in RAW_TABLES.values())
    + ")",
)

_TIER_RANK = "if(indexOf(['key', 'stable', 'potential'], {t}) = 0, 4, indexOf(['key', 'stable', 'potential'], {t}))"

_V_CLIENT_360 = _view(
    "v_client_360",
    "One row per client: master data, tier, ABC class, churn risk with its reasons, and KPIs over windows "
    "ending on v_as_of.as_of_day (the same days for every client).",
    (
        ("client_id", "String", "client"),
        ("name", "Nullable(String)", "client name (latest master data); NULL before the first client.upserted"),
        ("region", "Nullable(String)", "client region (latest master data)"),
        ("industry", "Nullable(String)", "industry (latest master data)"),
        ("account_manager", "Nullable(String)", "account manager (latest master data)"),
        ("tier", "String", "key, stable or potential: the tier last assigned by the worker"),
        ("tier_rank", "UInt8", "1 key, 2 stable, 3 potential: sort by it"),
        ("abc_class", "String", "Pareto class A/B/C over 365-day revenue (client_abc)"),
        ("risk_score", "UInt8", "current churn risk score 0-100; 0 if never assessed"),
        ("at_risk", "Bool", "an open churn-risk episode (the score reached the raise threshold and has not "
         "fallen below the resolve threshold)"),
        ("risk_reasons", "Array(String)", "English sentences of the reasons behind the current score"),
        ("risk_reason_codes", "Array(String)", "signal codes of those reasons"),
        ("orders_30d", "UInt64", "orders placed in the 30 days ending on as_of_day, not cancelled"),
        ("revenue_30d", "Decimal(18, 2)", "their service fees"),
        ("orders_90d", "UInt64", "orders placed in 90 days, not cancelled"),
        ("revenue_90d", "Decimal(18, 2)", "their service fees"),
        ("revenue_365d", "Decimal(18, 2)", "service fees of orders placed in 365 days, not cancelled"),
        ("deliveries_30d", "UInt64", "deliveries with an outcome in 30 days"),
        ("on_time_rate_30d", "Nullable(Float64)", "on-time deliveries / deliveries over 30 days"),
        ("intact_rate_30d", "Nullable(Float64)", "intact units / delivered units over 30 days"),
        ("complaints_30d", "UInt64", "complaints opened in 30 days"),
        ("complaints_90d", "UInt64", "complaints opened in 90 days"),
        ("complaints_open", "UInt32", "complaints whose latest event is not a resolution (from the profile)"),
        ("csat_mean_90d", "Nullable(Float64)", "mean CSAT of feedback received in 90 days"),
        ("csat_responses_90d", "UInt64", "CSAT answers in 90 days"),
        ("nps_score_90d", "Nullable(Float64)", "NPS over 90 days: % promoters - % detractors (-100..100)"),
        ("nps_responses_90d", "UInt64", "NPS answers in 90 days"),
        ("last_order_at", "Nullable(DateTime64(3, 'UTC'))", "placement time of the last order not cancelled"),
        ("days_since_last_order", "Nullable(Float64)", "days (fractional) from last_order_at to v_as_of.as_of"),
        ("contract_end", "Nullable(Date)", "contract end date (latest master data)"),
        ("as_of_day", "Date", "the last day of the windows above (v_as_of)"),
        ("profile_as_of", "DateTime64(3, 'UTC')", "event time of the client's latest profile version"),
    ),
    f"""WITH assumeNotNull((SELECT as_of FROM v_as_of)) AS now_at, toDate(now_at) AS last_day
SELECT p.client_id AS client_id, p.name AS name, p.region AS region, p.industry AS industry,
    p.account_manager AS account_manager, p.tier AS tier, {_TIER_RANK.format(t="p.tier")} AS tier_rank,
    p.abc_class AS abc_class, ifNull(r.score, 0) AS risk_score, ifNull(r.at_risk, false) AS at_risk,
    t.reasons_en AS risk_reasons, t.reason_codes AS risk_reason_codes,
    k.orders_30d AS orders_30d, k.revenue_30d AS revenue_30d, k.orders_90d AS orders_90d, k.revenue_90d AS revenue_90d,
    k.revenue_365d AS revenue_365d, k.deliveries_30d AS deliveries_30d,
    if(k.deliveries_30d > 0, k.on_time_30d / k.deliveries_30d, NULL) AS on_time_rate_30d,
    if(k.delivered_units_30d > 0, (k.delivered_units_30d - k.defective_units_30d) / k.delivered_units_30d, NULL)
        AS intact_rate_30d,
    k.complaints_30d AS complaints_30d, k.complaints_90d AS complaints_90d, p.complaints_open AS complaints_open,
    if(k.csat_responses_90d > 0, k.csat_sum_90d / k.csat_responses_90d, NULL) AS csat_mean_90d,
    k.csat_responses_90d AS csat_responses_90d,
    if(k.nps_responses_90d > 0, 100 * (toInt64(k.nps_promoters_90d) - toInt64(k.nps_detractors_90d))
        / k.nps_responses_90d, NULL) AS nps_score_90d,
    k.nps_responses_90d AS nps_responses_90d,
    p.last_order_at AS last_order_at,
    if(p.last_order_at IS NULL, NULL, dateDiff('millisecond', assumeNotNull(p.last_order_at), now_at) / 86400000)
        AS days_since_last_order,
    p.contract_end AS contract_end, last_day AS as_of_day, p.as_of AS profile_as_of
FROM client_profiles AS p
LEFT JOIN (
    SELECT client_id,
        sumIf(orders, day > last_day - 30) AS orders_30d, sumIf(revenue, day > last_day - 30) AS revenue_30d,
        sumIf(orders, day > last_day - 90) AS orders_90d, sumIf(revenue, day > last_day - 90) AS revenue_90d,
        sum(revenue) AS revenue_365d,
        sumIf(deliveries, day > last_day - 30) AS deliveries_30d, sumIf(on_time, day > last_day - 30) AS on_time_30d,
        sumIf(delivered_units, day > last_day - 30) AS delivered_units_30d,
        sumIf(defective_units, day > last_day - 30) AS defective_units_30d,
        sumIf(complaints, day > last_day - 30) AS complaints_30d,
        sumIf(complaints, day > last_day - 90) AS complaints_90d,
        sumIf(csat_sum, day > last_day - 90) AS csat_sum_90d,
        sumIf(csat_responses, day > last_day - 90) AS csat_responses_90d,
        sumIf(nps_promoters, day > last_day - 90) AS nps_promoters_90d,
        sumIf(nps_detractors, day > last_day - 90) AS nps_detractors_90d,
        sumIf(nps_responses, day > last_day - 90) AS nps_responses_90d
    FROM (SELECT key AS client_id, * FROM kpi_daily FINAL
          WHERE grain = 'client' AND day > last_day - 365 AND day <= last_day)
    GROUP BY client_id
) AS k ON p.client_id = k.client_id
LEFT JOIN client_risk AS r ON p.client_id = r.client_id
LEFT JOIN (SELECT * FROM client_risk_texts FINAL) AS t
    ON r.client_id = t.client_id AND r.assessed_at = t.assessed_at""",
)  # fmt: skip

_JSON_TEXTS = "arrayMap(x -> JSONExtractString(x, '{lang}'), JSONExtractArrayRaw({column}))"

_V_CHURN_WATCHLIST = _view(
    "v_churn_watchlist",
    "Clients at churn risk now (an open churn_risk alert, or at_risk in client_risk), with the reasons and "
    "actions of the latest alert message; ordered by tier (key, stable, potential), then score.",
    (
        ("client_id", "String", "client"),
        ("name", "Nullable(String)", "client name"),
        ("tier", "String", "current tier"),
        ("tier_rank", "UInt8", "1 key, 2 stable, 3 potential"),
        ("account_manager", "Nullable(String)", "account manager (master data)"),
        ("score", "UInt8", "current churn risk score 0-100 (client_risk)"),
        ("alert_score", "UInt8", "score carried by the latest alert message"),
        ("severity", "String", "severity of the latest alert message (warning, high, critical); empty without one"),
        ("status", "String", "raised, escalated or reminder (latest alert message); empty without one"),
        ("since", "Nullable(DateTime64(3, 'UTC'))", "event time of the first raise of this episode"),
        ("reasons", "Array(String)", "English sentences of the reasons (latest alert message)"),
        ("reasons_zh", "Array(String)", "the same in Chinese"),
        ("reason_codes", "Array(String)", "signal codes of the reasons"),
        ("actions", "Array(String)", "recommended actions, English"),
        ("actions_zh", "Array(String)", "recommended actions, Chinese"),
        ("action_codes", "Array(String)", "action codes (account_manager_visit, service_recovery_plan, ...)"),
        ("revenue_365d", "Decimal(18, 2)", "service fees of the last 365 days (v_client_360): what is at stake"),
        ("alert_id", "Nullable(UUID)", "the churn_risk alert of the episode"),
    ),
    f"""WITH open_alerts AS (
    SELECT client_id, alert_id, status, severity, score, reason_codes, action_codes, reasons_json, actions_json
    FROM alert_states WHERE kind = 'churn_risk' AND status != 'resolved'
    ORDER BY client_id, occurred_at DESC LIMIT 1 BY client_id
)
SELECT w.client_id AS client_id, c.name AS name, c.tier AS tier, c.tier_rank AS tier_rank,
    c.account_manager AS account_manager, c.risk_score AS score, a.score AS alert_score,
    a.severity AS severity, a.status AS status,
    coalesce(s.since, parseDateTime64BestEffortOrNull(r.episode, 3, 'UTC')) AS since,
    if(a.client_id != '', {_JSON_TEXTS.format(lang="text_en", column="a.reasons_json")}, c.risk_reasons) AS reasons,
    if(a.client_id != '', {_JSON_TEXTS.format(lang="text_zh", column="a.reasons_json")}, []) AS reasons_zh,
    if(a.client_id != '', a.reason_codes, c.risk_reason_codes) AS reason_codes,
    {_JSON_TEXTS.format(lang="text_en", column="a.actions_json")} AS actions,
    {_JSON_TEXTS.format(lang="text_zh", column="a.actions_json")} AS actions_zh,
    a.action_codes AS action_codes, c.revenue_365d AS revenue_365d,
    if(a.client_id != '', a.alert_id, NULL) AS alert_id
FROM (
    SELECT client_id FROM open_alerts UNION DISTINCT SELECT client_id FROM client_risk WHERE at_risk
) AS w
LEFT JOIN open_alerts AS a ON w.client_id = a.client_id
LEFT JOIN client_risk AS r ON w.client_id = r.client_id
LEFT JOIN v_client_360 AS c ON w.client_id = c.client_id
LEFT JOIN (
    SELECT alert_id, min(occurred_at) AS since FROM alerts WHERE kind = 'churn_risk' GROUP BY alert_id
) AS s ON a.alert_id = s.alert_id
ORDER BY tier_rank, score DESC, client_id""",
)

_V_TIER_MIX = _view(
    "v_tier_mix",
    "Clients and 365-day revenue per tier (key, stable, potential), with their shares of the total.",
    (
        ("tier", "String", "key, stable or potential"),
        ("clients", "UInt64", "clients in the tier"),
        ("client_share", "Float64", "clients / all clients"),
        ("revenue_365d", "Decimal(18, 2)", "their service fees over the 365 days ending on v_as_of.as_of_day"),
        ("revenue_share", "Float64", "revenue_365d / all revenue_365d (0 when there is no revenue)"),
        ("at_risk_clients", "UInt64", "clients of the tier with an open churn-risk episode"),
    ),
    f"""SELECT tier, clients, clients / sum(clients) OVER () AS client_share, revenue_365d,
    if(sum(revenue_365d) OVER () = 0, 0, toFloat64(revenue_365d) / toFloat64(sum(revenue_365d) OVER ()))
        AS revenue_share,
    at_risk_clients
FROM (
    SELECT tier, count() AS clients, sum(revenue_365d) AS revenue_365d, countIf(at_risk) AS at_risk_clients
    FROM v_client_360 GROUP BY tier
)
ORDER BY {_TIER_RANK.format(t="tier")}""",
)

_V_ABC_PARETO = _view(
    "v_abc_pareto",
    "Pareto ranking of clients by 365-day revenue (the basis of abc_class, as of each client's latest "
    "profile), with the cumulative share of total revenue.",
    (
        ("client_id", "String", "client"),
        ("name", "Nullable(String)", "client name"),
        ("abc_class", "String", "A: the smallest top group reaching 80% of revenue; B: up to 95%; C: the rest"),
        ("revenue_365d", "Decimal(18, 2)", "the profile's 365-day revenue (the ranking basis)"),
        ("rank", "UInt64", "1 = highest revenue (ties by client_id)"),
        ("cumulative_share", "Nullable(Float64)", "revenue of this client and all ranked above / total; NULL "
         "when there is no revenue at all"),
        ("tier", "String", "current tier"),
    ),
    """SELECT a.client_id AS client_id, p.name AS name, a.abc_class AS abc_class, a.revenue_365d AS revenue_365d,
    row_number() OVER (ORDER BY a.revenue_365d DESC, a.client_id) AS rank,
    if(a.total > 0, toFloat64(a.cumulative_before + a.revenue_365d) / toFloat64(a.total), NULL) AS cumulative_share,
    p.tier AS tier
FROM client_abc AS a
LEFT JOIN (SELECT client_id, name, tier FROM client_profile_versions FINAL) AS p ON a.client_id = p.client_id
ORDER BY rank""",
)  # fmt: skip

_COMPLAINT_STEP = (
    "multiIf(event_type = 'complaint.opened', 0, event_type = 'complaint.updated', 1, "
    "event_type = 'complaint.resolved', 2, 3)"
)

_V_COMPLAINT_SLA = _view(
    "v_complaint_sla",
    "One row per complaint (with a known opening): response and resolution times against the SLA targets "
    "of the client's tier (sla_targets, written from the worker's settings), judged on event time.",
    (
        ("complaint_id", "String", "complaint"),
        ("client_id", "String", "client"),
        ("tier", "String", "the client's current tier (its targets apply)"),
        ("category", "String", "latest category"),
        ("severity", "String", "latest severity"),
        ("order_id", "String", "the order the complaint names; empty when none"),
        ("opened_at", "DateTime64(3, 'UTC')", "first complaint.opened, to the second"),
        ("first_response_at", "Nullable(DateTime64(3, 'UTC'))", "first update or resolution at or after the "
         "opening; NULL while unanswered"),
        ("resolved_at", "Nullable(DateTime64(3, 'UTC'))", "the resolution in force: the last event if it is a "
         "resolution; NULL while open or reopened"),
        ("response_hours", "Nullable(Float64)", "hours from opening to first response"),
        ("resolution_hours", "Nullable(Float64)", "hours from opening to resolved_at"),
        ("response_target_hours", "Float64", "response target of the tier"),
        ("resolution_target_hours", "Float64", "resolution target of the tier"),
        ("response_breached", "Bool", "responded later than the target, or still unanswered past it at "
         "v_as_of.as_of"),
        ("resolution_breached", "Bool", "resolved later than the target, or still open past it at v_as_of.as_of"),
        ("status", "String", "open (opened or updated), resolved or reopened: the latest event"),
        ("as_of", "DateTime64(3, 'UTC')", "the event-time now that open complaints are judged at (v_as_of)"),
    ),
    f"""WITH assumeNotNull((SELECT as_of FROM v_as_of)) AS now_at
SELECT complaint_id, c.client_id AS client_id, p.tier AS tier, category, severity, order_id, opened_at,
    first_response_at, resolved_at,
    if(first_response_at IS NULL, NULL,
       (toUnixTimestamp(assumeNotNull(first_response_at)) - toUnixTimestamp(opened_at)) / 3600) AS response_hours,
    if(resolved_at IS NULL, NULL,
       (toUnixTimestamp(assumeNotNull(resolved_at)) - toUnixTimestamp(opened_at)) / 3600) AS resolution_hours,
    if(t.tier != '', t.response_hours, d.response_hours) AS response_target_hours,
    if(t.tier != '', t.resolution_hours, d.resolution_hours) AS resolution_target_hours,
    toInt64(toUnixTimestamp(coalesce(first_response_at, now_at))) - toInt64(toUnixTimestamp(opened_at))
        > toInt64(response_target_hours * 3600) AS response_breached,
    toInt64(toUnixTimestamp(coalesce(resolved_at, now_at))) - toInt64(toUnixTimestamp(opened_at))
        > toInt64(resolution_target_hours * 3600) AS resolution_breached,
    multiIf(last_step = 2, 'resolved', last_step = 3, 'reopened', 'open') AS status,
    now_at AS as_of
FROM (
    SELECT client_id, complaint_id, toString(s.1) AS category, toString(s.2) AS severity, s.3 AS order_id,
        assumeNotNull(opened) AS opened_at,
        arrayMin(arrayFilter(x -> x >= assumeNotNull(opened), answers)) AS first_answer,
        if(empty(arrayFilter(x -> x >= assumeNotNull(opened), answers)), NULL, first_answer) AS first_response_at,
        if(last_step = 2, last_at, NULL) AS resolved_at, last_step
    FROM (
        SELECT client_id, complaint_id,
            minIfOrNull(toStartOfSecond(occurred_at), event_type = 'complaint.opened') AS opened,
            groupArrayIf(toStartOfSecond(occurred_at), event_type IN ('complaint.updated', 'complaint.resolved'))
                AS answers,
            argMax(tuple(category, severity, order_id),
                tuple(toUnixTimestamp(occurred_at), {_COMPLAINT_STEP}, category, severity)) AS s,
            argMax({_COMPLAINT_STEP}, tuple(toUnixTimestamp(occurred_at), {_COMPLAINT_STEP})) AS last_step,
            max(toStartOfSecond(occurred_at)) AS last_at
        FROM raw_complaint_events
        GROUP BY client_id, complaint_id
    )
    WHERE opened IS NOT NULL
) AS c
LEFT JOIN (SELECT client_id, tier FROM client_profile_versions FINAL) AS p ON c.client_id = p.client_id
LEFT JOIN (SELECT * FROM sla_targets FINAL) AS t ON p.tier = t.tier
CROSS JOIN (SELECT * FROM sla_targets FINAL WHERE tier = 'potential') AS d""",
)  # fmt: skip

_SLA_DEFAULTS = SlaRules()

_V4 = [
    _kpi_table(
        "kpi_detail_daily",
        (_DAY, _CLIENT, _WAREHOUSE, _REGION),
        "day, client_id, warehouse_id, region",
        "PARTITION BY toYYYYMM(day)",
        "daily KPI sums per client, warehouse and region; recomputed for the keys each batch touched (sinks/kpi.py)",
    ),
    _kpi_table(
        "kpi_daily",
        (_GRAIN, _KEY, _DAY),
        "grain, key, day",
        "PARTITION BY toYYYYMM(day)",
        "daily KPI sums per client, warehouse and region (roll-ups of kpi_detail_daily); BI reads v_kpi_daily",
    ),
    f"""CREATE TABLE IF NOT EXISTS client_risk_texts (
    {_columns(RISK_TEXT_COLUMNS)},
    written_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = ReplacingMergeTree
    ORDER BY (client_id, assessed_at)
    COMMENT 'the sentences (en, zh) of the reasons of each client_risk_history row'""",
    f"""CREATE TABLE IF NOT EXISTS sla_targets (
    {_columns(SLA_TARGET_COLUMNS)}
    ) ENGINE = ReplacingMergeTree(updated_at)
    ORDER BY tier
    COMMENT 'complaint SLA targets per tier in force: the worker writes its settings (CLIENTPULSE_SLA__*)'""",
    # The defaults, dated at the epoch so that whatever the worker writes from its settings wins.
    "INSERT INTO sla_targets (tier, response_hours, resolution_hours, updated_at) VALUES "
    + ", ".join(
        f"('{tier}', {_SLA_DEFAULTS.targets(tier)[0]}, {_SLA_DEFAULTS.targets(tier)[1]}, toDateTime64(0, 3, 'UTC'))"
        for tier in sorted(_SLA_DEFAULTS.response_hours)
    ),
    _V_AS_OF,
    _V_KPI_DAILY,
    _V_CLIENT_360,
    _V_CHURN_WATCHLIST,
    _V_TIER_MIX,
    _V_ABC_PARETO,
    _V_COMPLAINT_SLA,
]

BI_VIEWS = (
    "v_as_of",
    "v_kpi_daily",
    "v_client_360",
    "v_churn_watchlist",
    "v_tier_mix",
    "v_abc_pareto",
    "v_complaint_sla",
)
"""The stable BI surface: every column carries a comment."""

# ---------------------------------------------------------------- 5: content fingerprints
#
# streams.dedupe.fingerprint of each raw event, so that an event_id published again with different content
# is dead-lettered (event_id_reused) instead of silently replacing the stored event. Rows written before
# this migration keep 0 ("unknown") and are never taken for a different content.
_V5 = [
    f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS content_hash UInt64 DEFAULT 0 "
    "COMMENT 'fingerprint of the parsed event (streams/dedupe.py); 0 = written before fingerprints existed'"
    for table in RAW_TABLES.values()
]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "raw event tables, dead letters, BI views", tuple(_V1)),
    Migration(2, "client profiles, tier history, ABC view, master-data change history", tuple(_V2)),
    Migration(3, "alerts, client risk history, current alert states and risk", tuple(_V3)),
    Migration(4, "daily KPI tables, risk reason texts, SLA targets, BI views (v_*)", tuple(_V4)),
    Migration(5, "content fingerprint of raw events (event_id reuse detection)", tuple(_V5)),
)
