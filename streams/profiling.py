"""One batch of valid events -> updated client profiles, profile rows, tier changes. Pure.

The worker hands in the events of a batch and a way to load a client's stored profile; it gets back
what to store, what to write to ClickHouse and what to publish. A client touched by many events in a
batch yields one profile version (the coalescing that keeps a 1,000-event burst from emitting 1,000
snapshots); a batch of pure duplicates yields nothing, because the profile's version did not move.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from schemas.events import Envelope
from sinks.profiles import profile_row, tier_change_row
from streams.profile import ClientProfile, ProfileSnapshot, apply, new_profile
from streams.tiering import TierChange, TierRules, tiered_snapshot


@dataclass
class ProfileBatch:
    profiles: dict[str, ClientProfile] = field(default_factory=dict)
    """Changed profiles, to store in the table."""
    snapshots: list[ProfileSnapshot] = field(default_factory=list)
    tier_changes: list[TierChange] = field(default_factory=list)
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)


def profile_batch(
    events: Iterable[Envelope],
    load: Callable[[str], ClientProfile | None],
    rules: TierRules | None = None,
) -> ProfileBatch:
    by_client: dict[str, list[Envelope]] = {}
    for event in events:
        by_client.setdefault(event.client_id, []).append(event)
    out = ProfileBatch()
    for client_id, client_events in by_client.items():
        profile = load(client_id) or new_profile(client_id)
        before = profile.version
        for event in client_events:
            apply(profile, event)
        if profile.version == before or profile.last_event_at is None:
            continue  # only duplicates: nothing new to store or say
        # Metrics as of the client's own latest event (event time), so a replay gives the same rows.
        snap, change = tiered_snapshot(profile, profile.last_event_at, rules or TierRules())
        out.profiles[client_id] = profile
        out.snapshots.append(snap)
        out.rows.setdefault("client_profile_versions", []).append(profile_row(snap))
        if change is not None:
            out.tier_changes.append(change)
            out.rows.setdefault("tier_history", []).append(tier_change_row(change, snap.version))
    return out
