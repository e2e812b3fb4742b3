"""Versioned, idempotent ClickHouse DDL.

Raw event tables are ReplacingMergeTree keyed by (client_id, event_id): a re-delivered event
collapses into one row at merge time. BI never reads the raw tables directly: it reads the
views below, which apply FINAL, so duplicates never show even before a merge.
"""

from __future__ import annotations

from dataclasses import dataclass

from sinks.alerts import ALERT_COLUMNS, RISK_COLUMNS
from sinks.profiles import PROFILE_COLUMNS, TIER_CHANGE_COLUMNS

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


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "raw event tables, dead letters, BI views", tuple(_V1)),
    Migration(2, "client profiles, tier history, ABC view, master-data change history", tuple(_V2)),
    Migration(3, "alerts, client risk history, current alert states and risk", tuple(_V3)),
)
