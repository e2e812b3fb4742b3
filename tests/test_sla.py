"""Complaint SLAs (streams.sla): response and resolution breaches on event time, per tier, and the next
due time the worker's event-time timer waits for. Profiles are replayed from complaint events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.events import Envelope
from streams.profile import ClientProfile, epoch_seconds, replay
from streams.sla import Breach, SlaRules, breaches, next_due
from tests.test_profile import complaint, order

H = timedelta(hours=1)
T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
RESPONSE = {"key": 1.0, "stable": 4.0, "potential": 12.0}
RESOLUTION = {"key": 10.0, "stable": 30.0, "potential": 60.0}
WINDOW_H = 7 * 24
RULES = SlaRules(response_hours=RESPONSE, resolution_hours=RESOLUTION, alert_window_hours=WINDOW_H)


def ts(t: datetime) -> int:
    return epoch_seconds(t)


def build(events: list[Envelope], tier: str | None = None) -> ClientProfile:
    profile = replay("C1", sorted(events, key=lambda e: e.occurred_at))
    profile.tier = tier
    return profile


def opened(cid: str = "Q1", t: datetime = T0, **kw) -> Envelope:
    return complaint("complaint.opened", cid, t, **kw)


def updated(cid: str, t: datetime, **kw) -> Envelope:
    return complaint("complaint.updated", cid, t, **kw)


def resolved(cid: str, t: datetime, **kw) -> Envelope:
    return complaint("complaint.resolved", cid, t, **kw)


def reopened(cid: str, t: datetime, **kw) -> Envelope:
    return complaint("complaint.reopened", cid, t, **kw)


def only(found: list[Breach]) -> Breach:
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------- response


@pytest.mark.parametrize("tier", ["key", "stable", "potential"])
def test_an_unanswered_complaint_breaches_its_response_target_once_the_due_time_passes(tier: str) -> None:
    profile = build([opened(category="damage", severity="high")], tier)
    due = T0 + RESPONSE[tier] * H
    assert breaches(profile, ts(due - timedelta(seconds=1)), RULES) == []
    assert breaches(profile, ts(due), RULES) == []  # not passed yet: a response now is in time
    b = only(breaches(profile, ts(due + 1.5 * H), RULES))
    assert b == Breach(
        complaint_id="Q1",
        stage="response",
        opened_at=ts(T0),
        due_at=ts(due),
        target_hours=RESPONSE[tier],
        overdue_hours=1.5,
        category="damage",
        severity="high",
        open=True,
    )


def test_an_update_in_time_is_the_response() -> None:
    due = T0 + RESPONSE["stable"] * H
    profile = build([opened(), updated("Q1", due)], "stable")  # exactly at the due time: in time
    assert breaches(profile, ts(due + 2 * H), RULES) == []


def test_a_late_response_is_overdue_until_it_came_not_until_now() -> None:
    due = T0 + RESPONSE["stable"] * H
    profile = build([opened(), updated("Q1", due + 2 * H)], "stable")
    b = only(breaches(profile, ts(due + 5 * H), RULES))
    assert (b.stage, b.overdue_hours, b.open) == ("response", 2.0, True)
    # before the late response arrived (a timer looking at an earlier instant) it was overdue until then
    b = only(breaches(profile, ts(due + H), RULES))
    assert (b.stage, b.overdue_hours) == ("response", 1.0)


def test_a_resolution_is_a_response_too() -> None:
    due = T0 + RESPONSE["stable"] * H
    profile = build([opened(), resolved("Q1", due - H)], "stable")
    assert breaches(profile, ts(T0 + 100 * H), RULES) == []
    profile = build([opened(), resolved("Q1", due + 3 * H)], "stable")  # late response, resolution in time
    b = only(breaches(profile, ts(T0 + 100 * H), RULES))
    assert (b.stage, b.overdue_hours, b.open) == ("response", 3.0, False)


def test_an_update_before_the_opening_is_no_response() -> None:
    due = T0 + RESPONSE["stable"] * H
    profile = build([updated("Q1", T0 - H), opened()], "stable")
    b = only(breaches(profile, ts(due + H), RULES))
    assert (b.stage, b.opened_at, b.overdue_hours) == ("response", ts(T0), 1.0)


# ---------------------------------------------------------------- resolution


def test_a_late_resolution_is_the_worse_breach_and_replaces_the_response_breach() -> None:
    res_due = T0 + RESOLUTION["stable"] * H
    events = [opened(), resolved("Q1", res_due + 3 * H)]  # never answered before: responded late too
    profile = build(events, "stable")
    b = only(breaches(profile, ts(res_due + 10 * H), RULES))
    assert b == Breach(
        complaint_id="Q1",
        stage="resolution",
        opened_at=ts(T0),
        due_at=ts(res_due),
        target_hours=RESOLUTION["stable"],
        overdue_hours=3.0,
        category="delay",
        severity="low",
        open=False,
    )


def test_an_open_complaint_past_its_resolution_target() -> None:
    res_due = T0 + RESOLUTION["potential"] * H
    profile = build([opened(), updated("Q1", T0 + H)], None)  # answered in time, never resolved
    assert breaches(profile, ts(res_due), RULES) == []
    b = only(breaches(profile, ts(res_due + 0.5 * H), RULES))
    assert (b.stage, b.overdue_hours, b.open, b.target_hours) == ("resolution", 0.5, True, RESOLUTION["potential"])


def test_resolved_in_time_is_no_breach() -> None:
    res_due = T0 + RESOLUTION["key"] * H
    profile = build([opened(), updated("Q1", T0 + 0.5 * H), resolved("Q1", res_due)], "key")
    assert breaches(profile, ts(res_due + 50 * H), RULES) == []


def test_a_reopened_complaint_is_open_again_and_resolved_at_its_last_resolution() -> None:
    res_due = T0 + RESOLUTION["stable"] * H
    cycle = [opened(), updated("Q1", T0 + H), resolved("Q1", T0 + 5 * H)]
    profile = build(cycle, "stable")
    assert breaches(profile, ts(res_due + 5 * H), RULES) == []
    cycle.append(reopened("Q1", T0 + 20 * H))
    profile = build(cycle, "stable")
    assert breaches(profile, ts(res_due - H), RULES) == []
    b = only(breaches(profile, ts(res_due + 5 * H), RULES))
    assert (b.stage, b.overdue_hours, b.open) == ("resolution", 5.0, True)
    cycle.append(resolved("Q1", res_due + 8 * H))
    profile = build(cycle, "stable")
    b = only(breaches(profile, ts(res_due + 20 * H), RULES))
    assert (b.stage, b.overdue_hours, b.open) == ("resolution", 8.0, False)


def test_reopened_and_resolved_again_in_time_is_no_breach() -> None:
    res_due = T0 + RESOLUTION["stable"] * H
    events = [opened(), updated("Q1", T0 + H), resolved("Q1", T0 + 2 * H), reopened("Q1", T0 + 3 * H)]
    events.append(resolved("Q1", res_due - H))
    assert breaches(build(events, "stable"), ts(res_due + 5 * H), RULES) == []


# ---------------------------------------------------------------- tiers, state, several complaints


def test_targets_depend_on_the_tier() -> None:
    events = [opened()]
    now = ts(T0 + 2 * H)  # past the key target (1 h), within stable (4 h) and potential (12 h)
    assert only(breaches(build(events, "key"), now, RULES)).target_hours == RESPONSE["key"]
    assert breaches(build(events, "stable"), now, RULES) == []
    assert breaches(build(events, None), now, RULES) == []  # unclassified: as potential
    later = ts(T0 + 13 * H)
    assert only(breaches(build(events, None), later, RULES)).target_hours == RESPONSE["potential"]
    assert only(breaches(build(events, "no-such-tier"), later, RULES)).target_hours == RESPONSE["potential"]


def test_default_targets_are_strictest_for_key_accounts() -> None:
    rules = SlaRules()
    key, stable, potential = (rules.targets(t) for t in ("key", "stable", "potential"))
    assert key[0] < stable[0] < potential[0] and key[1] < stable[1] < potential[1]
    assert all(r < s for r, s in (key, stable, potential))  # respond before resolving
    assert rules.targets(None) == potential


def test_category_and_severity_are_the_latest_known() -> None:
    events = [opened(category="delay", severity="low"), updated("Q1", T0 + 20 * H, category="loss", severity="high")]
    b = only(breaches(build(events, "key"), ts(T0 + 30 * H), RULES))
    assert (b.category, b.severity) == ("loss", "high")


def test_each_complaint_gets_its_own_worst_breach_sorted_by_id() -> None:
    events = [
        opened("Q3", T0),  # never answered
        opened("Q1", T0 + H),
        updated("Q1", T0 + 1.5 * H),  # answered in time
        opened("Q2", T0 + 5 * H),  # never answered
        opened("Q4", T0 + 7.5 * H),  # never answered
    ]
    now = T0 + 8 * H
    found = breaches(build(events, "key"), ts(now), RULES)
    assert [(b.complaint_id, b.stage, b.overdue_hours) for b in found] == [
        ("Q2", "response", 2.0),
        ("Q3", "response", 7.0),
    ]
    now = T0 + 11.5 * H
    found = breaches(build(events, "key"), ts(now), RULES)
    assert [(b.complaint_id, b.stage, b.overdue_hours) for b in found] == [
        ("Q1", "resolution", 0.5),
        ("Q2", "response", 5.5),
        ("Q3", "resolution", 1.5),
        ("Q4", "response", 3.0),
    ]


# ---------------------------------------------------------------- alert window


def test_only_recently_opened_open_complaints_are_reported() -> None:
    profile = build([opened()], "key")
    window_end = T0 + WINDOW_H * H
    assert only(breaches(profile, ts(window_end), RULES)).stage == "resolution"
    assert breaches(profile, ts(window_end + timedelta(seconds=1)), RULES) == []


def test_complaints_closed_long_ago_are_not_reported() -> None:
    res = T0 + 20 * H
    profile = build([opened(), resolved("Q1", res)], "key")  # resolution late by 10 h
    assert only(breaches(profile, ts(res + WINDOW_H * H), RULES)).open is False
    assert breaches(profile, ts(res + WINDOW_H * H + timedelta(seconds=1)), RULES) == []


def test_the_resolution_of_a_long_open_complaint_is_still_reported() -> None:
    """An SLA alert raised while the complaint was open must be able to resolve, however long it took:
    the resolution is reported (closed) even when the opening lies beyond the alert window."""
    res = T0 + 2 * WINDOW_H * H
    profile = build([opened(), resolved("Q1", res)], "key")
    b = only(breaches(profile, ts(res), RULES))
    assert (b.stage, b.open) == ("resolution", False)
    assert b.overdue_hours == 2 * WINDOW_H - RESOLUTION["key"]


def test_a_complaint_opened_after_now_is_not_judged_yet() -> None:
    profile = build([opened("Q1", T0 + 10 * H)], "key")
    assert breaches(profile, ts(T0 + 5 * H), RULES) == []
    assert next_due(profile, ts(T0 + 5 * H), RULES) is not None


# ---------------------------------------------------------------- next due time


def test_next_due_is_the_first_instant_a_breach_shows() -> None:
    """The timer assesses the client at next_due: a breach must be visible then, not one instant later."""
    profile = build([opened()], "stable")
    first = next_due(profile, ts(T0), RULES)
    assert first is not None
    assert breaches(profile, first - 1, RULES) == []
    assert only(breaches(profile, first, RULES)).stage == "response"
    # at the response due time exactly: the next check still catches the response breach
    due = ts(T0 + RESPONSE["stable"] * H)
    at_due = next_due(profile, due, RULES)
    assert at_due is not None and at_due <= due + 1
    assert breaches(profile, at_due, RULES) != []


def test_next_due_walks_response_then_resolution_then_stops() -> None:
    resp, res = ts(T0 + RESPONSE["key"] * H), ts(T0 + RESOLUTION["key"] * H)
    events = [opened()]
    profile = build(events, "key")
    first = next_due(profile, ts(T0), RULES)
    assert first is not None and resp <= first <= resp + 1
    second = next_due(profile, first, RULES)
    assert second is not None and res <= second <= res + 1
    assert next_due(profile, second, RULES) is None
    # answered: only the resolution is left
    profile = build([*events, updated("Q1", T0 + 0.5 * H)], "key")
    due = next_due(profile, ts(T0 + 0.5 * H), RULES)
    assert due is not None and res <= due <= res + 1
    # resolved: nothing left
    profile = build([*events, resolved("Q1", T0 + 0.5 * H)], "key")
    assert next_due(profile, ts(T0 + 0.5 * H), RULES) is None


def test_next_due_is_the_earliest_over_all_complaints() -> None:
    events = [opened("QA", T0), updated("QA", T0 + 0.5 * H), opened("QB", T0 + 3 * H), opened("QC", T0 + 4 * H)]
    profile = build(events, "stable")
    now = ts(T0 + 4 * H)
    due = next_due(profile, now, RULES)
    expected = ts(T0 + 3 * H + RESPONSE["stable"] * H)  # QB's response (QA's resolution is later)
    assert due is not None and expected <= due <= expected + 1


def test_a_reopened_complaint_has_its_resolution_due_again() -> None:
    res = ts(T0 + RESOLUTION["stable"] * H)
    events = [opened(), updated("Q1", T0 + H), resolved("Q1", T0 + 2 * H)]
    assert next_due(build(events, "stable"), ts(T0 + 2 * H), RULES) is None
    events.append(reopened("Q1", T0 + 3 * H))
    due = next_due(build(events, "stable"), ts(T0 + 3 * H), RULES)
    assert due is not None and res <= due <= res + 1


def test_a_client_without_complaints_has_no_breaches_and_no_due_time() -> None:
    profile = build([order("order.created", "O1", T0), order("order.cancelled", "O2", T0 + H)], "key")
    for now in (T0 - H, T0, T0 + 1000 * H):
        assert breaches(profile, ts(now), RULES) == []
        assert next_due(profile, ts(now), RULES) is None
        assert breaches(profile, ts(now), SlaRules()) == []
