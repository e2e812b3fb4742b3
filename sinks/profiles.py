"""Client profile rows for ClickHouse: one row per profile version, tier changes as history. Pure."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import Any

import orjson

from streams.profile import ProfileSnapshot
from streams.tiering import TierChange

# Column name -> ClickHouse type, in table order. Names follow streams.profile.ProfileSnapshot, so
# analysts find each metric under the name docs/profile.md defines (tests check the two agree).
PROFILE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("client_id", "String"),
    ("as_of", "DateTime64(3, 'UTC')"),
    ("last_event_at", "Nullable(DateTime64(3, 'UTC'))"),
    ("version", "UInt64"),
    ("too_late", "UInt64"),
    ("name", "Nullable(String)"),
    ("region", "LowCardinality(Nullable(String))"),
    ("industry", "LowCardinality(Nullable(String))"),
    ("account_manager", "Nullable(String)"),
    ("contract_start", "Nullable(Date)"),
    ("contract_end", "Nullable(Date)"),
    ("storage_json", "String"),
    ("goods_categories", "Array(LowCardinality(String))"),
    ("delivery_regions", "Array(LowCardinality(String))"),
    ("contacts", "UInt32"),
    ("master_changed_by", "Nullable(String)"),
    ("master_updated_at", "Nullable(DateTime64(3, 'UTC'))"),
    ("orders_7d", "UInt32"),
    ("orders_30d", "UInt32"),
    ("orders_90d", "UInt32"),
    ("orders_365d", "UInt32"),
    ("orders_lifetime", "UInt64"),
    ("units_7d", "UInt32"),
    ("units_30d", "UInt32"),
    ("units_90d", "UInt32"),
    ("units_365d", "UInt32"),
    ("units_lifetime", "UInt64"),
    ("revenue_7d", "Decimal(18, 2)"),
    ("revenue_30d", "Decimal(18, 2)"),
    ("revenue_90d", "Decimal(18, 2)"),
    ("revenue_365d", "Decimal(18, 2)"),
    ("revenue_lifetime", "Decimal(18, 2)"),
    ("cancelled_7d", "UInt32"),
    ("cancelled_30d", "UInt32"),
    ("cancelled_90d", "UInt32"),
    ("cancelled_365d", "UInt32"),
    ("cancelled_lifetime", "UInt64"),
    ("first_order_at", "Nullable(DateTime64(3, 'UTC'))"),
    ("last_order_at", "Nullable(DateTime64(3, 'UTC'))"),
    ("days_since_last_order", "Nullable(Float64)"),
    ("typical_gap_days", "Nullable(Float64)"),
    ("gaps_used", "UInt32"),
    ("order_rate_30d", "Float64"),
    ("order_rate_prev_90d", "Float64"),
    ("order_trend", "Nullable(Float64)"),
    ("tenure_days", "Nullable(Int32)"),
    ("deliveries_30d", "UInt32"),
    ("deliveries_90d", "UInt32"),
    ("deliveries_lifetime", "UInt64"),
    ("on_time_30d", "UInt32"),
    ("on_time_90d", "UInt32"),
    ("on_time_rate_30d", "Nullable(Float64)"),
    ("on_time_rate_90d", "Nullable(Float64)"),
    ("intact_rate_30d", "Nullable(Float64)"),
    ("intact_rate_90d", "Nullable(Float64)"),
    ("failed_30d", "UInt32"),
    ("failed_90d", "UInt32"),
    ("temperature_excursions_30d", "UInt32"),
    ("temperature_excursions_90d", "UInt32"),
    ("complaints_30d", "UInt32"),
    ("complaints_90d", "UInt32"),
    ("complaints_lifetime", "UInt64"),
    ("complaints_open", "UInt32"),
    ("complaints_by_category_90d", "Map(LowCardinality(String), UInt32)"),
    ("resolved_90d", "UInt32"),
    ("resolution_hours_mean_90d", "Nullable(Float64)"),
    ("resolution_hours_p90_90d", "Nullable(Float64)"),
    ("reopened_90d", "UInt32"),
    ("csat_latest", "Nullable(Int32)"),
    ("csat_latest_at", "Nullable(DateTime64(3, 'UTC'))"),
    ("nps_latest", "Nullable(Int32)"),
    ("nps_latest_at", "Nullable(DateTime64(3, 'UTC'))"),
    ("csat_mean_90d", "Nullable(Float64)"),
    ("csat_responses_90d", "UInt32"),
    ("nps_score_90d", "Nullable(Float64)"),
    ("nps_responses_90d", "UInt32"),
    ("revisit_outcome_latest", "LowCardinality(Nullable(String))"),
    ("revisit_latest_at", "Nullable(DateTime64(3, 'UTC'))"),
    ("tier", "LowCardinality(String)"),
)

TIER_CHANGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("client_id", "String"),
    ("changed_at", "DateTime64(3, 'UTC')"),
    ("old_tier", "LowCardinality(String)"),
    ("new_tier", "LowCardinality(String)"),
    ("revenue_90d", "Decimal(18, 2)"),
    ("orders_90d", "UInt32"),
    ("tenure_days", "Nullable(Int32)"),
    ("profile_version", "UInt64"),
)


def profile_row(snap: ProfileSnapshot) -> tuple[Any, ...]:
    values = []
    for name, _ in PROFILE_COLUMNS:
        if name == "storage_json":
            values.append(orjson.dumps(snap.storage).decode() if snap.storage is not None else "")
        elif name in ("goods_categories", "delivery_regions"):
            values.append(list(getattr(snap, name)))
        else:
            values.append(getattr(snap, name))
    row = tuple(values)
    check_fits(PROFILE_COLUMNS, row)
    return row


def tier_change_row(change: TierChange, profile_version: int) -> tuple[Any, ...]:
    row = (
        change.client_id,
        change.at,
        change.old or "",
        change.new,
        change.revenue_90d,
        change.orders_90d,
        change.tenure_days,
        profile_version,
    )
    check_fits(TIER_CHANGE_COLUMNS, row)
    return row


# ---------------------------------------------------------------- values the columns can hold
#
# A value out of its column's range makes the whole ClickHouse insert fail, and the writer would retry
# that batch forever: one client with absurd (but individually valid) volumes, say 430 orders of 10
# million units in a week, would stop the pipeline. Checking here, in the domain step, turns it into an
# exception for that client's batch, which the worker isolates to the event that overflows
# (streams/quarantine.py) and dead-letters as `internal_error`; everything else goes on.

_INT_RANGES = {
    "UInt32": (0, 2**32 - 1),
    "UInt64": (0, 2**64 - 1),
    "Int32": (-(2**31), 2**31 - 1),
    "Int64": (-(2**63), 2**63 - 1),
}


def _bounds(ch_type: str) -> tuple[str, Any, Any] | None:
    inner = ch_type
    for wrapper in ("LowCardinality(", "Nullable("):
        if inner.startswith(wrapper):
            inner = inner[len(wrapper) : -1]
    if inner in _INT_RANGES:
        return ("int", *_INT_RANGES[inner])
    if inner.startswith("Decimal(") and inner.endswith(")"):
        precision, scale = (int(x) for x in inner[len("Decimal(") : -1].split(","))
        limit = Decimal(10) ** (precision - scale)
        return ("decimal", -limit, limit)
    if inner.startswith("Map(") and inner.endswith(", UInt32)"):
        return ("map", *_INT_RANGES["UInt32"])
    return None


class ColumnOverflow(OverflowError):
    """A profile value that its ClickHouse column cannot hold."""


def check_fits(columns: tuple[tuple[str, str], ...], row: tuple[Any, ...]) -> None:
    """Raise ColumnOverflow if a value of `row` is out of the range of its column in `columns`."""
    for (name, _), bounds, value in zip(columns, _all_bounds(columns), row, strict=True):
        if bounds is None or value is None:
            continue
        kind, lo, hi = bounds
        for v in value.values() if kind == "map" else (value,):
            if not (lo < v < hi if kind == "decimal" else lo <= v <= hi):
                raise ColumnOverflow(f"{name} = {v} does not fit its column type")


@cache
def _all_bounds(columns: tuple[tuple[str, str], ...]) -> list[tuple[str, Any, Any] | None]:
    return [_bounds(ch_type) for _, ch_type in columns]
