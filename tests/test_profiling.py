"""Batch -> profile updates (pure): coalescing, duplicates, tier history rows, column coverage."""

from __future__ import annotations

import dataclasses

from producers.generator import generate
from sinks.profiles import PROFILE_COLUMNS, TIER_CHANGE_COLUMNS, profile_row
from streams.profile import ClientProfile, ProfileSnapshot
from streams.profiling import profile_batch


def _store() -> tuple[dict[str, bytes], callable]:
    stored: dict[str, bytes] = {}

    def load(client_id: str) -> ClientProfile | None:
        return ClientProfile.from_bytes(stored[client_id]) if client_id in stored else None

    return stored, load


def test_a_burst_for_one_client_yields_one_profile_version() -> None:
    events = generate(clients=12, days=200, seed=9).events
    client = max({e.client_id for e in events}, key=lambda c: sum(e.client_id == c for e in events))
    burst = [e for e in events if e.client_id == client]
    assert len(burst) > 150
    _, load = _store()
    out = profile_batch(burst, load)
    assert [s.client_id for s in out.snapshots] == [client]
    assert len(out.rows["client_profile_versions"]) == 1
    assert out.snapshots[0].version >= len({e.event_id for e in burst}) // 2


def test_a_batch_of_only_duplicates_changes_nothing_and_emits_nothing() -> None:
    events = generate(clients=4, days=30, seed=2).events
    stored, load = _store()
    first = profile_batch(events, load)
    for client_id, profile in first.profiles.items():
        stored[client_id] = profile.to_bytes()
    again = profile_batch(events[: len(events) // 2], load)
    assert again.profiles == {} and again.snapshots == [] and again.rows == {}


def test_first_classification_and_changes_are_recorded_as_tier_history() -> None:
    events = generate(clients=6, days=60, seed=4).events
    _, load = _store()
    out = profile_batch(events, load)
    assert {c.client_id for c in out.tier_changes} == {e.client_id for e in events}
    assert all(c.old is None for c in out.tier_changes)
    assert len(out.rows["tier_history"]) == len(out.tier_changes)
    assert all(len(row) == len(TIER_CHANGE_COLUMNS) for row in out.rows["tier_history"])


def test_every_snapshot_field_has_a_clickhouse_column() -> None:
    columns = {name for name, _ in PROFILE_COLUMNS}
    renamed = {"storage": "storage_json"}
    fields = {renamed.get(f.name, f.name) for f in dataclasses.fields(ProfileSnapshot)} - {"abc_class"}
    assert fields == columns  # abc_class is global: the client_profiles view joins it in


def test_profile_rows_follow_the_column_order() -> None:
    events = generate(clients=2, days=20, seed=1).events
    out = profile_batch(events, _store()[1])
    snap = out.snapshots[0]
    row = profile_row(snap)
    names = [name for name, _ in PROFILE_COLUMNS]
    assert row[names.index("client_id")] == snap.client_id
    assert row[names.index("revenue_90d")] == snap.revenue_90d
    assert row[names.index("version")] == snap.version
