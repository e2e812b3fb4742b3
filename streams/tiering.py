"""Client tiering (客户分级): key / stable / potential per client, and the Pareto A/B/C ranking across clients.

Pure: plain data in, plain data out; no clock, no I/O. Semantics for analysts in docs/profile.md.

- `classify(snapshot, rules)` decides a client's tier from its own metrics at the snapshot's instant:
  rolling 90-day service-fee revenue, 90-day order count and tenure. The tier is a function of the
  snapshot only (no hysteresis), so a replay or a reshuffled stream reaches the same tier.
- `assign_tier(profile, snapshot, rules)` keeps the last assigned tier in the profile and returns a
  `TierChange` when it differs (the first assignment is a change too: it opens the tier history).
- `abc_classes(revenue_by_client)` is the Pareto ranking. It needs every client's revenue, so it runs
  where all clients are visible (a periodic job over the stored profiles), not inside one client's
  update; the profile only carries a placeholder for its result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Literal

from streams.profile import ClientProfile, ProfileSnapshot, epoch_seconds, snapshot

__all__ = [
    "ABC_WINDOW_DAYS",
    "TIERS",
    "Tier",
    "TierChange",
    "TierRules",
    "abc_classes",
    "assign_tier",
    "classify",
    "tier_change",
    "tiered_snapshot",
]

Tier = Literal["key", "stable", "potential"]
TIERS: tuple[Tier, ...] = ("key", "stable", "potential")

ABC_WINDOW_DAYS = 365
"""The A/B/C ranking uses each client's revenue over the last 365 days (`revenue_365d`): a full year
is the usual basis of an ABC analysis and is not thrown around by seasonal clients, whose 90-day
revenue swings several-fold between peak and trough. Tiers use 90 days, to follow the current business."""


@dataclass(frozen=True)
class TierRules:
    """Thresholds of the tiers; a client must meet every condition of a tier (checked key first).

    Defaults fit a 3PL where a key account spends 40,000 CNY or more on services a quarter and orders
    most working days, and a stable one at least 5,000 CNY a quarter, about weekly, for half a year.
    On the synthetic history `generate(200, 365, 7)` they put nearly all large clients in key, most
    medium clients in stable (strongly seasonal ones reach key at their peak) and small ones in
    potential; clients fading out drop a tier or two. New clients are potential until their tenure
    reaches `stable_min_tenure_days`, unless they already qualify as key.
    """

    key_revenue_90d: Decimal = Decimal("40000")
    key_orders_90d: int = 60
    key_min_tenure_days: int = 0
    stable_revenue_90d: Decimal = Decimal("5000")
    stable_orders_90d: int = 12
    stable_min_tenure_days: int = 180

    def __post_init__(self) -> None:
        for name in ("key_revenue_90d", "stable_revenue_90d"):
            value = getattr(self, name)
            if not isinstance(value, Decimal):  # accept ints and strings, never floats' binary noise
                if isinstance(value, float):
                    raise TypeError(f"{name} must be a Decimal, int or str, not float")
                object.__setattr__(self, name, Decimal(value))
        for name in (
            "key_revenue_90d",
            "key_orders_90d",
            "key_min_tenure_days",
            "stable_revenue_90d",
            "stable_orders_90d",
            "stable_min_tenure_days",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


def classify(snapshot: ProfileSnapshot, rules: TierRules = TierRules()) -> Tier:
    """key if revenue, orders and tenure meet the key thresholds; else stable if they meet the stable
    ones; else potential. A client without orders or master data has tenure 0."""
    revenue, orders, tenure = snapshot.revenue_90d, snapshot.orders_90d, snapshot.tenure_days or 0
    if revenue >= rules.key_revenue_90d and orders >= rules.key_orders_90d and tenure >= rules.key_min_tenure_days:
        return "key"
    if (
        revenue >= rules.stable_revenue_90d
        and orders >= rules.stable_orders_90d
        and tenure >= rules.stable_min_tenure_days
    ):
        return "stable"
    return "potential"


def tier_change(old: Tier | str | None, new: Tier) -> bool:
    """Whether moving from `old` (None: never classified) to `new` is a tier change to record.
    The first classification counts: it is the first row of the client's tier history."""
    return old != new


@dataclass(frozen=True)
class TierChange:
    """A tier change, for the profiles topic and the ClickHouse tier history."""

    client_id: str
    old: str | None
    new: Tier
    at: datetime
    """Event time of the snapshot that decided it (its `as_of`)."""
    revenue_90d: Decimal
    orders_90d: int
    tenure_days: int | None


def assign_tier(
    profile: ClientProfile,
    snapshot: ProfileSnapshot,
    rules: TierRules = TierRules(),
) -> TierChange | None:
    """Classify `snapshot` (of `profile`); store the tier in the profile and return the change, if any."""
    if snapshot.client_id != profile.client_id:
        raise ValueError("snapshot and profile belong to different clients")
    new = classify(snapshot, rules)
    old = profile.tier
    if not tier_change(old, new):
        return None
    profile.tier = new
    profile.tier_since = epoch_seconds(snapshot.as_of)
    return TierChange(
        client_id=profile.client_id,
        old=old,
        new=new,
        at=snapshot.as_of,
        revenue_90d=snapshot.revenue_90d,
        orders_90d=snapshot.orders_90d,
        tenure_days=snapshot.tenure_days,
    )


def tiered_snapshot(
    profile: ClientProfile,
    as_of: datetime,
    rules: TierRules = TierRules(),
) -> tuple[ProfileSnapshot, TierChange | None]:
    """The snapshot at `as_of` with its tier assigned (and recorded in the profile), plus the change."""
    snap = snapshot(profile, as_of)
    change = assign_tier(profile, snap, rules)
    return replace(snap, tier=profile.tier), change


def abc_classes(
    revenue_by_client: Mapping[str, Decimal],
    a_share: float | Decimal = 0.8,
    b_share: float | Decimal = 0.95,
) -> dict[str, str]:
    """Pareto A/B/C classes by cumulative share of revenue.

    Clients are ranked by revenue, highest first, ties by client_id ascending. A client is A if the
    clients ranked above it hold less than `a_share` of the total (so A is the smallest top group
    that reaches `a_share`), B if they hold less than `b_share`, C otherwise. Clients with zero
    revenue are always C; if nobody has revenue, everybody is C. Exact (Decimal) arithmetic.
    """
    a_limit, b_limit = Decimal(str(a_share)), Decimal(str(b_share))
    if not 0 < a_limit <= b_limit <= 1:
        raise ValueError("shares must satisfy 0 < a_share <= b_share <= 1")
    if any(r < 0 for r in revenue_by_client.values()):
        raise ValueError("revenue must not be negative")
    total = sum(revenue_by_client.values(), Decimal(0))
    ranked = sorted(revenue_by_client.items(), key=lambda kv: (-kv[1], kv[0]))
    classes: dict[str, str] = {}
    above = Decimal(0)
    for client_id, revenue in ranked:
        if revenue <= 0:
            classes[client_id] = "C"
        elif above < a_limit * total:
            classes[client_id] = "A"
        elif above < b_limit * total:
            classes[client_id] = "B"
        else:
            classes[client_id] = "C"
        above += revenue
    return classes
