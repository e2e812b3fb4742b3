"""Alert episodes (streams.alerting.step) and the batch assessment around them (streams.assessing).

Churn episodes are driven with assessments of chosen scores, so each threshold of `AlertRules` can be
hit exactly; SLA and downgrade alerts, `assess_batch` and `deadline` run on profiles replayed from events.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from schemas.alerts import SEVERITY_ORDER, Alert, AlertKind, AlertStatus, Severity, alert_id
from schemas.events import EVENT_MODELS, ClientPayload, Envelope
from sinks.alerts import ALERT_COLUMNS, RISK_COLUMNS
from streams import risk
from streams.alerting import AlertRules, RiskState, severity, step
from streams.assessing import RiskConfig, assess_batch, deadline
from streams.profile import ClientProfile, epoch_seconds, replay, snapshot
from streams.profiling import profile_batch
from streams.risk import RiskRules, cadence_deadline
from streams.sla import SlaRules, breaches, next_due
from streams.tiering import TierChange, TierRules
from tests.test_profile import complaint, order

DAY = timedelta(days=1)
H = timedelta(hours=1)
T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
EMITTED = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
RULES = AlertRules()
SLA = SlaRules(
    response_hours={"key": 2, "stable": 6, "potential": 12},
    resolution_hours={"key": 24, "stable": 48, "potential": 96},
    alert_window_hours=10 * 24,
)
TIERS = ("potential", "stable", "key")


def master(at: datetime, client: str = "C1") -> Envelope:
    payload = ClientPayload(
        name="Acme Foods",
        region="east",
        industry="ecommerce",
        account_manager="Li Hao",
        contract_start=date(2020, 1, 1),
    )
    return EVENT_MODELS["client.upserted"](
        event_id=uuid.uuid4(),
        event_type="client.upserted",
        schema_version=1,
        occurred_at=at,
        client_id=client,
        source="test",
        payload=payload,
    )


def build(events: list[Envelope], tier: str | None = "stable") -> ClientProfile:
    profile = replay("C1", sorted(events, key=lambda e: e.occurred_at))
    profile.tier = tier
    return profile


REASON = risk.Reason("cadence_broken", 50.0, {"days_since_last_order": 12.0}, "No order for 12 days", "已 12 天未下单")
ACTION = risk.Action("account_manager_visit", "cadence_broken", *risk.ACTION_TEXT["account_manager_visit"])


def assessment(score: int, at: datetime) -> risk.Assessment:
    return risk.Assessment("C1", at, score, (), (REASON,), (ACTION,))


class Churn:
    """One client's churn episodes, assessed at chosen instants with chosen scores."""

    def __init__(self, tier: str | None = "stable", rules: AlertRules = RULES) -> None:
        self.state = RiskState("C1")
        self.rules = rules
        self.profile = build([master(T0 - 300 * DAY)], tier)

    def at(self, when: datetime, score: int, emitted_at: datetime = EMITTED) -> list[Alert]:
        snap = snapshot(self.profile, when)
        return step(self.state, snap, assessment(score, when), [], None, self.rules, emitted_at)


def story(scores: list[int], tier: str = "stable") -> list[list[Alert]]:
    churn = Churn(tier)
    return [churn.at(T0 + i * DAY, s) for i, s in enumerate(scores)]


# ---------------------------------------------------------------- severity


def test_severity_grows_with_the_score_and_stays_in_range() -> None:
    for tier in (*TIERS, None):
        levels = [SEVERITY_ORDER[severity(s, tier)] for s in range(101)]
        assert levels == sorted(levels)
        assert len(set(levels)) >= (3 if tier in ("stable", None) else 2)  # bands, not one level
    assert severity(RULES.raise_at, "stable") is Severity.WARNING  # the lowest alert that asks for action
    assert severity(100, "stable") is Severity.CRITICAL


@pytest.mark.parametrize("score", range(0, 101, 5))
def test_key_accounts_one_step_up_potential_ones_one_step_down(score: int) -> None:
    mid = SEVERITY_ORDER[severity(score, "stable")]
    top = len(Severity) - 1
    assert SEVERITY_ORDER[severity(score, "key")] == min(top, mid + 1)
    assert SEVERITY_ORDER[severity(score, "potential")] == max(0, mid - 1)
    assert severity(score, None) is severity(score, "stable")


# ---------------------------------------------------------------- churn episodes


def test_alert_rules_validation() -> None:
    AlertRules(raise_at=40, resolve_below=40)  # no hysteresis is allowed
    for bad in (dict(raise_at=30, resolve_below=31), dict(raise_at=101), dict(resolve_below=-1)):
        with pytest.raises(ValueError):
            AlertRules(**bad)


def test_a_churn_episode_raises_escalates_and_resolves_with_hysteresis() -> None:
    r = RULES
    steps = [
        (r.raise_at - 1, None),  # below the threshold: nothing
        (r.raise_at, AlertStatus.RAISED),
        (r.raise_at - 1, None),  # between the thresholds: nothing changes
        (r.resolve_below, None),  # still not below resolve_below
        (r.raise_at + r.escalate_by - 1, None),  # not escalate_by above the last message, same band
        (r.raise_at + r.escalate_by, AlertStatus.ESCALATED),
        (r.resolve_below - 1, AlertStatus.RESOLVED),
        (r.raise_at - 1, None),  # a new episode needs raise_at again
        (r.raise_at, AlertStatus.RAISED),
    ]
    assert severity(r.raise_at + r.escalate_by - 1, "stable") is severity(r.raise_at, "stable")  # input check
    out = story([s for s, _ in steps])
    assert [a[0].status if a else None for a in out] == [status for _, status in steps]
    assert all(len(a) <= 1 for a in out)
    first, second = [a[0] for a in out[1:7] if a], out[8][0]
    assert [a.sequence for a in first] == [1, 2, 3]
    assert len({a.alert_id for a in first}) == 1
    assert first[0].episode == (T0 + 1 * DAY).isoformat()
    assert first[0].alert_id == alert_id("C1", AlertKind.CHURN_RISK, first[0].episode)
    assert second.sequence == 1 and second.episode == (T0 + 8 * DAY).isoformat()
    assert second.alert_id != first[0].alert_id


def test_a_higher_severity_band_escalates_even_without_escalate_by_points() -> None:
    # find a score just inside the next band, less than escalate_by above the raise
    start = RULES.raise_at
    band_up = next(s for s in range(start, 101) if severity(s, "stable") is not severity(start, "stable"))
    step_from = band_up - 1
    assert band_up - step_from < RULES.escalate_by
    churn = Churn()
    assert churn.at(T0, step_from)[0].status is AlertStatus.RAISED
    [escalated] = churn.at(T0 + DAY, band_up)
    assert escalated.status is AlertStatus.ESCALATED
    assert escalated.severity is severity(band_up, "stable")
    # a lower band later is no message; climbing back to the band already reported is none either
    assert churn.at(T0 + 2 * DAY, step_from) == []
    assert churn.at(T0 + 3 * DAY, band_up) == []


def test_escalation_is_measured_from_the_last_message() -> None:
    rules = AlertRules(escalate_by=5)
    raise_at = rules.raise_at
    churn = Churn("stable", rules)
    scores = [raise_at, raise_at + 5, raise_at + 9, raise_at + 10]
    assert len({severity(s, "stable") for s in scores}) == 1  # one band: only the points decide
    statuses = [[a.status for a in churn.at(T0 + i * DAY, s)] for i, s in enumerate(scores)]
    # +9 is escalate_by above the raise but only 4 above the last message
    assert statuses == [[AlertStatus.RAISED], [AlertStatus.ESCALATED], [], [AlertStatus.ESCALATED]]


def test_the_message_carries_the_assessment() -> None:
    churn = Churn("key")
    [a] = churn.at(T0, 70)
    assert (a.kind, a.status, a.client_id, a.client_name, a.account_manager, a.tier) == (
        AlertKind.CHURN_RISK,
        AlertStatus.RAISED,
        "C1",
        "Acme Foods",
        "Li Hao",
        "key",
    )
    assert a.score == 70 and a.severity is severity(70, "key")
    assert a.occurred_at == T0 and a.emitted_at == EMITTED
    assert [(x.code, x.points, x.evidence, x.text_en, x.text_zh) for x in a.reasons] == [
        (REASON.code, REASON.points, REASON.evidence, REASON.text_en, REASON.text_zh)
    ]
    assert [(x.code, x.for_reason) for x in a.actions] == [(ACTION.code, ACTION.for_reason)]
    [resolved] = churn.at(T0 + DAY, 0)
    assert resolved.status is AlertStatus.RESOLVED
    assert resolved.severity is Severity.INFO and resolved.actions == []


def test_an_action_two_reasons_call_for_is_listed_once_for_the_first() -> None:
    decline = risk.Reason("volume_decline", 30.0, {}, "down", "下降")
    visit = risk.ACTION_TEXT["account_manager_visit"]
    actions = (
        risk.Action("account_manager_visit", "cadence_broken", *visit),
        risk.Action("account_manager_visit", "volume_decline", *visit),
        risk.Action("pricing_review", "volume_decline", *risk.ACTION_TEXT["pricing_review"]),
    )
    churn = Churn()
    snap = snapshot(churn.profile, T0)
    a = risk.Assessment("C1", T0, 70, (), (REASON, decline), actions)
    [alert] = step(churn.state, snap, a, [], None, RULES, EMITTED)
    assert [(x.code, x.for_reason) for x in alert.actions] == [
        ("account_manager_visit", "cadence_broken"),
        ("pricing_review", "volume_decline"),
    ]


def test_reminders_after_the_cooldown_at_most_max_reminders() -> None:
    r = RULES
    churn = Churn()
    churn.at(T0, r.raise_at)
    cooldown = timedelta(days=r.cooldown_days)
    statuses = []
    t = T0
    for _ in range(int(r.cooldown_days) * (r.max_reminders + 3)):
        t += DAY
        for a in churn.at(t, r.raise_at - 1):  # at risk, between the thresholds
            statuses.append((t, a.status, a.sequence))
    expected = [(T0 + (i + 1) * cooldown, AlertStatus.REMINDER, i + 2) for i in range(r.max_reminders)]
    assert statuses == expected


def test_a_reminder_comes_exactly_when_the_cooldown_has_passed() -> None:
    churn = Churn()
    churn.at(T0, RULES.raise_at)
    due = T0 + timedelta(days=RULES.cooldown_days)
    assert churn.at(due - timedelta(seconds=1), RULES.raise_at) == []
    assert churn.at(due, RULES.raise_at)[0].status is AlertStatus.REMINDER


def test_the_cooldown_counts_from_the_last_message() -> None:
    r = RULES
    churn = Churn()
    churn.at(T0, r.raise_at)
    churn.at(T0 + 10 * DAY, r.raise_at + r.escalate_by)  # escalated
    cooldown = timedelta(days=r.cooldown_days)
    assert churn.at(T0 + cooldown, r.raise_at + r.escalate_by) == []
    assert churn.at(T0 + 10 * DAY + cooldown, r.raise_at + r.escalate_by)[0].status is AlertStatus.REMINDER


def test_reminders_start_over_in_a_new_episode() -> None:
    r = RULES
    churn = Churn()
    churn.at(T0, r.raise_at)
    cooldown = timedelta(days=r.cooldown_days)
    for i in range(1, r.max_reminders + 1):
        churn.at(T0 + i * cooldown, r.raise_at)
    assert churn.state.reminders == r.max_reminders
    t = T0 + (r.max_reminders + 1) * cooldown
    assert churn.at(t, 0)[0].status is AlertStatus.RESOLVED
    assert churn.at(t + DAY, r.raise_at)[0].status is AlertStatus.RAISED
    assert churn.at(t + DAY + cooldown, r.raise_at)[0].status is AlertStatus.REMINDER


def test_the_same_history_gives_the_same_alerts() -> None:
    scores = [10, 50, 55, 70, 90, 40, 41, 20, 60, 60, 5]
    first = story(scores)
    again = story(scores)
    assert first == again
    # another wall clock changes emitted_at only
    churn = Churn()
    later = [churn.at(T0 + i * DAY, s, emitted_at=EMITTED + 3 * H) for i, s in enumerate(scores)]
    flat = [a for alerts in first for a in alerts]
    flat_later = [a for alerts in later for a in alerts]
    assert [(a.alert_id, a.sequence, a.status) for a in flat] == [
        (a.alert_id, a.sequence, a.status) for a in flat_later
    ]
    assert len({a.alert_id for a in flat}) == 2  # two episodes
    assert len({(a.alert_id, a.sequence) for a in flat}) == len(flat)  # consumers dedupe on this pair


def test_step_records_the_score_even_without_a_message() -> None:
    churn = Churn()
    assert churn.at(T0, 12) == []
    assert (churn.state.score, churn.state.assessed_at) == (12, epoch_seconds(T0))
    assert churn.state.episode is None and churn.state.sequence == 0


# ---------------------------------------------------------------- SLA alerts


class Sla:
    """One key client's complaints, assessed through sla.breaches at chosen instants."""

    def __init__(self, events: list[Envelope], tier: str = "key") -> None:
        self.events = [master(T0 - 300 * DAY), *events]
        self.tier = tier
        self.state = RiskState("C1")

    def add(self, *events: Envelope) -> None:
        self.events += events

    def at(self, when: datetime) -> list[Alert]:
        profile = build(self.events, self.tier)
        found = breaches(profile, epoch_seconds(when), SLA)
        return step(self.state, snapshot(profile, when), assessment(0, when), found, None, RULES, EMITTED)


def test_an_sla_episode_raises_escalates_and_resolves() -> None:
    resp_due = T0 + SLA.response_hours["key"] * H
    res_due = T0 + SLA.resolution_hours["key"] * H
    sla = Sla([complaint("complaint.opened", "Q1", T0, category="damage", severity="high")])
    assert sla.at(resp_due) == []  # not passed yet
    [raised] = sla.at(resp_due + H)
    assert (raised.kind, raised.status, raised.sequence) == (AlertKind.SLA_BREACH, AlertStatus.RAISED, 1)
    assert raised.complaint_id == raised.episode == "Q1"
    assert raised.alert_id == alert_id("C1", AlertKind.SLA_BREACH, "Q1")
    [reason] = raised.reasons
    assert reason.code == "sla_response"
    assert reason.evidence["overdue_hours"] == 1.0 and reason.evidence["target_hours"] == SLA.response_hours["key"]
    assert (reason.evidence["complaint_id"], reason.evidence["category"], reason.evidence["severity"]) == (
        "Q1",
        "damage",
        "high",
    )
    assert "Q1" in reason.text_en and "Q1" in reason.text_zh
    assert raised.actions and {a.for_reason for a in raised.actions} == {"sla_response"}
    assert sla.at(resp_due + 3 * H) == []  # the same breach again: no new message
    sla.add(complaint("complaint.updated", "Q1", resp_due + 4 * H, category="damage", severity="high"))
    assert sla.at(resp_due + 5 * H) == []  # answered (late): still the response breach
    [escalated] = sla.at(res_due + H)
    assert (escalated.status, escalated.sequence, escalated.reasons[0].code) == (
        AlertStatus.ESCALATED,
        2,
        "sla_resolution",
    )
    assert escalated.alert_id == raised.alert_id
    assert sla.at(res_due + 2 * H) == []
    sla.add(complaint("complaint.resolved", "Q1", res_due + 3 * H, category="damage", severity="high"))
    [resolved] = sla.at(res_due + 3 * H)
    assert (resolved.status, resolved.sequence, resolved.severity) == (AlertStatus.RESOLVED, 3, Severity.INFO)
    assert resolved.actions == [] and resolved.alert_id == raised.alert_id
    assert sla.at(res_due + 30 * H) == []  # resolved: the episode is over


def test_first_seen_past_both_targets_raises_at_the_resolution_stage_once() -> None:
    res_due = T0 + SLA.resolution_hours["key"] * H
    sla = Sla([complaint("complaint.opened", "Q1", T0)])
    [raised] = sla.at(res_due + H)
    assert (raised.status, raised.reasons[0].code) == (AlertStatus.RAISED, "sla_resolution")
    assert sla.at(res_due + 5 * H) == []
    sla.add(complaint("complaint.resolved", "Q1", res_due + 6 * H))
    assert [(a.status, a.sequence) for a in sla.at(res_due + 6 * H)] == [(AlertStatus.RESOLVED, 2)]


def test_a_complaint_first_seen_already_resolved_alerts_nobody() -> None:
    res_due = T0 + SLA.resolution_hours["key"] * H
    sla = Sla([complaint("complaint.opened", "Q1", T0), complaint("complaint.resolved", "Q1", res_due + 5 * H)])
    profile = build(sla.events, "key")
    assert breaches(profile, epoch_seconds(res_due + 6 * H), SLA)  # breached, but closed
    assert sla.at(res_due + 6 * H) == []
    assert sla.state.sla == {}


def test_an_sla_alert_resolves_even_when_the_complaint_stayed_open_beyond_the_window() -> None:
    sla = Sla([complaint("complaint.opened", "Q1", T0)])
    [raised] = sla.at(T0 + 3 * H)
    assert raised.status is AlertStatus.RAISED
    late = T0 + timedelta(hours=SLA.alert_window_hours) + 5 * DAY
    assert sla.at(late - H) == []
    sla.add(complaint("complaint.resolved", "Q1", late))
    out = sla.at(late)
    assert [(a.status, a.alert_id) for a in out] == [(AlertStatus.RESOLVED, raised.alert_id)]


def test_each_complaint_is_its_own_episode() -> None:
    sla = Sla([complaint("complaint.opened", "Q1", T0), complaint("complaint.opened", "Q2", T0 + H)])
    out = sla.at(T0 + 4 * H)
    assert sorted((a.complaint_id, a.sequence, a.status) for a in out) == [
        ("Q1", 1, AlertStatus.RAISED),
        ("Q2", 1, AlertStatus.RAISED),
    ]
    assert len({a.alert_id for a in out}) == 2
    sla.add(complaint("complaint.resolved", "Q2", T0 + 5 * H))
    out = sla.at(T0 + 5 * H)
    assert [(a.complaint_id, a.status, a.sequence) for a in out] == [("Q2", AlertStatus.RESOLVED, 2)]


def test_sla_alerts_of_key_accounts_are_more_severe() -> None:
    def raised(tier: str) -> Alert:
        sla = Sla([complaint("complaint.opened", "Q1", T0)], tier)
        [a] = sla.at(T0 + (SLA.response_hours[tier] + 1) * H)
        return a

    key, stable = raised("key"), raised("stable")
    assert SEVERITY_ORDER[key.severity] > SEVERITY_ORDER[stable.severity] > SEVERITY_ORDER[Severity.INFO]


def test_a_critical_complaint_is_critical_for_every_tier() -> None:
    for tier in ("key", "stable", "potential"):
        sla = Sla([complaint("complaint.opened", "Q1", T0, severity="critical")], tier)
        [a] = sla.at(T0 + (SLA.response_hours[tier] + 1) * H)
        assert a.severity is Severity.CRITICAL, tier


def test_a_complaint_reopened_after_its_alert_resolved_is_raised_again_under_the_same_id() -> None:
    res_due = T0 + SLA.resolution_hours["key"] * H
    sla = Sla([complaint("complaint.opened", "Q1", T0)])
    [raised] = sla.at(res_due + H)
    sla.add(complaint("complaint.resolved", "Q1", res_due + 2 * H))
    [resolved] = sla.at(res_due + 2 * H)
    assert resolved.status is AlertStatus.RESOLVED
    sla.add(complaint("complaint.reopened", "Q1", res_due + 10 * H))
    [again] = sla.at(res_due + 11 * H)
    assert (again.status, again.sequence, again.alert_id) == (AlertStatus.RAISED, 3, raised.alert_id)
    assert sla.at(res_due + 12 * H) == []


def test_churn_and_sla_alerts_come_out_of_one_step() -> None:
    profile = build([master(T0 - 300 * DAY), complaint("complaint.opened", "Q1", T0)], "key")
    now = T0 + 5 * H
    state = RiskState("C1")
    out = step(
        state,
        snapshot(profile, now),
        assessment(80, now),
        breaches(profile, epoch_seconds(now), SLA),
        None,
        RULES,
        EMITTED,
    )
    assert sorted(a.kind for a in out) == sorted([AlertKind.CHURN_RISK, AlertKind.SLA_BREACH])
    assert all(a.score == 80 for a in out)


# ---------------------------------------------------------------- key-account downgrades


def change(old: str | None, new: str) -> TierChange:
    return TierChange("C1", old, new, T0, Decimal("12345.60"), 42, 400)  # type: ignore[arg-type]


@pytest.mark.parametrize("new", ["stable", "potential"])
def test_a_key_account_downgrade_is_one_message(new: str) -> None:
    profile = build([master(T0 - 300 * DAY)], new)
    out = step(RiskState("C1"), snapshot(profile, T0), assessment(0, T0), [], change("key", new), RULES, EMITTED)
    [a] = out
    assert (a.kind, a.status, a.sequence, a.severity) == (
        AlertKind.KEY_ACCOUNT_DOWNGRADE,
        AlertStatus.RAISED,
        1,
        Severity.HIGH,
    )
    assert a.episode == T0.isoformat()
    assert a.alert_id == alert_id("C1", AlertKind.KEY_ACCOUNT_DOWNGRADE, T0.isoformat())
    [reason] = a.reasons
    assert reason.code == "tier_downgrade"
    assert (reason.evidence["old_tier"], reason.evidence["new_tier"]) == ("key", new)
    assert new in reason.text_en and "重点客户" in reason.text_zh
    assert [x.code for x in a.actions] == ["account_manager_visit"]


@pytest.mark.parametrize(
    "old,new", [(None, "key"), (None, "potential"), ("stable", "potential"), ("potential", "key"), ("stable", "key")]
)
def test_other_tier_changes_alert_nobody(old: str | None, new: str) -> None:
    profile = build([master(T0 - 300 * DAY)], new)
    assert step(RiskState("C1"), snapshot(profile, T0), assessment(0, T0), [], change(old, new), RULES, EMITTED) == []


# ---------------------------------------------------------------- risk state


def test_risk_state_round_trips_through_bytes() -> None:
    assert RiskState.from_bytes(RiskState("C1").to_bytes()) == RiskState("C1")
    sla = Sla([complaint("complaint.opened", "Q1", T0), complaint("complaint.opened", "Q2", T0)])
    sla.at(T0 + 3 * H)
    state = sla.state
    step(state, snapshot(build(sla.events), T0 + 4 * H), assessment(90, T0 + 4 * H), [], None, RULES, EMITTED)
    state.due_at = epoch_seconds(T0 + 5 * H)
    assert state.episode is not None and set(state.sla) == {"Q1", "Q2"}
    data = state.to_bytes()
    again = RiskState.from_bytes(data)
    assert again == state
    assert again.to_bytes() == data
    # the copy goes on exactly like the original
    follow = sla.at(T0 + 30 * H)
    sla.state = again
    assert sla.at(T0 + 30 * H) == follow


# ---------------------------------------------------------------- assess_batch and deadline


def regular_orders(n: int, gap_days: float, last: datetime) -> list[Envelope]:
    return [
        order("order.created", f"O{i}", last - timedelta(days=(n - 1 - i) * gap_days), units=10, fee="100.00")
        for i in range(n)
    ]


class Store:
    """The worker's risk table: RiskState bytes per client."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def load(self, client_id: str) -> RiskState | None:
        return RiskState.from_bytes(self.data[client_id]) if client_id in self.data else None

    def save(self, states: dict[str, RiskState]) -> None:
        for client_id, state in states.items():
            self.data[client_id] = state.to_bytes()


CONFIG = RiskConfig(sla=SLA)


def stopped_client() -> tuple[ClientProfile, datetime]:
    last = T0
    profile = build([master(T0 - 300 * DAY), *regular_orders(60, 2.0, last)], "stable")
    return profile, last


def test_assess_batch_returns_states_alerts_rows_and_deadlines() -> None:
    profile, last = stopped_client()
    silent = last + timedelta(days=2 * RiskRules().cadence_k * 2.0)  # 2k gaps of silence
    store = Store()
    out = assess_batch([(profile, snapshot(profile, silent), None)], store.load, CONFIG, EMITTED)
    [alert] = out.alerts
    assert (alert.kind, alert.status, alert.occurred_at) == (AlertKind.CHURN_RISK, AlertStatus.RAISED, silent)
    assert "cadence_broken" in [r.code for r in alert.reasons]
    state = out.states["C1"]
    assert state.episode == silent.isoformat() and state.score == alert.score >= RULES.raise_at
    [history] = out.rows["client_risk_history"]
    assert len(history) == len(RISK_COLUMNS) and history[0] == "C1" and history[2] == alert.score
    [row] = out.rows["alerts"]
    assert len(row) == len(ALERT_COLUMNS) and row[0] == alert.alert_id
    assert out.deadlines["C1"] == state.due_at == deadline(profile, snapshot(profile, silent), state, CONFIG)
    store.save(out.states)
    # the same assessment again: nothing new to store, write or say; the deadline is still reported
    again = assess_batch([(profile, snapshot(profile, silent), None)], store.load, CONFIG, EMITTED)
    assert again.states == {} and again.alerts == [] and again.rows == {}
    assert again.deadlines == {"C1": state.due_at}


def test_a_history_row_only_when_the_score_moved_or_an_alert_went_out() -> None:
    profile = build([master(T0 - 300 * DAY), *regular_orders(10, 2.0, T0)], "stable")
    store = Store()
    first = assess_batch([(profile, snapshot(profile, T0), None)], store.load, CONFIG, EMITTED)
    assert first.states["C1"].score == 0
    assert "client_risk_history" not in first.rows and first.alerts == []
    store.save(first.states)
    later = T0 + 2 * H  # same score, later instant: the state moves, no row
    out = assess_batch([(profile, snapshot(profile, later), None)], store.load, CONFIG, EMITTED)
    assert out.states["C1"].assessed_at == epoch_seconds(later) and out.rows == {}
    store.save(out.states)
    # k gaps of silence: a weak cadence signal moves the score, below any alert: a row, no alert
    silent = T0 + timedelta(days=RiskRules().cadence_k * 2.0)
    out = assess_batch([(profile, snapshot(profile, silent), None)], store.load, CONFIG, EMITTED)
    assert out.alerts == [] and 0 < out.states["C1"].score < RULES.raise_at
    [row] = out.rows["client_risk_history"]
    assert row[2] == out.states["C1"].score and "alerts" not in out.rows


def test_a_downgrade_is_announced_even_when_nothing_else_changed() -> None:
    """A late cancellation (event time before the watermark) drops a key account below the key revenue:
    the snapshot is as of the same watermark, the score and deadlines do not move, but the downgrade
    must still be announced."""
    tiers = TierRules(key_revenue_90d="400", key_orders_90d=3, stable_revenue_90d="100", stable_orders_90d=1)
    events = [master(T0 - 300 * DAY), *regular_orders(4, 3.0, T0)]
    profiles: dict[str, ClientProfile] = {}
    store = Store()

    def run(batch: list[Envelope]):
        updates = profile_batch(batch, profiles.get, tiers)
        profiles.update(updates.profiles)
        changes = {c.client_id: c for c in updates.tier_changes}
        items = [(updates.profiles[s.client_id], s, changes.get(s.client_id)) for s in updates.snapshots]
        out = assess_batch(items, store.load, CONFIG, EMITTED)
        store.save(out.states)
        return updates, out

    updates, _ = run(events)
    assert updates.snapshots[0].tier == "key"
    updates, out = run([order("order.cancelled", "O0", T0 - 5 * DAY)])
    assert [(c.old, c.new) for c in updates.tier_changes] == [("key", "stable")]
    assert updates.snapshots[0].as_of == T0  # the same instant as the last assessment
    assert [a.kind for a in out.alerts] == [AlertKind.KEY_ACCOUNT_DOWNGRADE]
    assert len(out.rows["alerts"]) == 1


def test_the_event_time_timer_raises_a_silent_client_at_a_cadence_deadline() -> None:
    profile, last = stopped_client()
    store = Store()
    snap = snapshot(profile, last)
    steps = []
    for _ in range(10):
        out = assess_batch([(profile, snap, None)], store.load, CONFIG, EMITTED)
        store.save(out.states)
        if out.alerts:
            break
        due = out.deadlines["C1"]
        assert due is not None and due > epoch_seconds(snap.as_of)
        steps.append(due)
        snap = snapshot(profile, datetime.fromtimestamp(due, UTC))  # the timer: no event, the clock passed
    [alert] = out.alerts
    assert alert.status is AlertStatus.RAISED
    k, gap = RiskRules().cadence_k, 2.0
    cadence_steps = [epoch_seconds(last + timedelta(days=f * k * gap)) for f in (1.0, 1.25, 1.5, 1.75, 2.0)]
    assert steps == cadence_steps[: len(steps)]  # the timer waited for exactly the cadence steps
    assert epoch_seconds(alert.occurred_at) in cadence_steps


def test_deadline_is_the_earliest_of_cadence_sla_and_episode_checks() -> None:
    k, gap = RiskRules().cadence_k, 2.0
    orders = regular_orders(10, gap, T0)
    profile = build([master(T0 - 300 * DAY), *orders], "key")
    snap = snapshot(profile, T0)
    quiet = RiskState("C1")
    assert deadline(profile, snap, quiet, CONFIG) == epoch_seconds(T0 + timedelta(days=k * gap))
    # an open complaint: its response breach comes first
    profile = build([master(T0 - 300 * DAY), *orders, complaint("complaint.opened", "Q1", T0)], "key")
    snap = snapshot(profile, T0)
    sla_due = next_due(profile, epoch_seconds(T0), SLA)
    assert sla_due is not None and sla_due <= epoch_seconds(T0 + (SLA.response_hours["key"] * H)) + 1
    assert deadline(profile, snap, quiet, CONFIG) == sla_due
    # an open episode is looked at again within a day
    profile = build([master(T0 - 300 * DAY), *orders], "key")
    later = T0 + DAY  # cadence due in 5 days
    in_episode = RiskState("C1", episode=T0.isoformat(), emitted_at=epoch_seconds(T0))
    assert deadline(profile, snapshot(profile, later), in_episode, CONFIG) == epoch_seconds(later + DAY)
    # ... or at its reminder if that comes first
    reminder = epoch_seconds(T0) + int(RULES.cooldown_days * 86400)
    near = datetime.fromtimestamp(reminder, UTC) - 2 * H
    assert deadline(profile, snapshot(profile, near), in_episode, CONFIG) == reminder
    # no reminder left: only the daily check
    spent = RiskState("C1", episode=T0.isoformat(), emitted_at=epoch_seconds(T0), reminders=RULES.max_reminders)
    assert deadline(profile, snapshot(profile, near), spent, CONFIG) == epoch_seconds(near + DAY)
    # nothing to wait for
    assert deadline(build([master(T0)], "key"), snapshot(build([master(T0)], "key"), T0), quiet, CONFIG) is None


def test_a_client_with_only_orders_runs_through_every_step() -> None:
    events = [
        *regular_orders(30, 1.5, T0),
        order("order.updated", "O3", T0 - 38 * DAY, units=4),
        order("order.cancelled", "O5", T0 - 30 * DAY),
        order("order.cancelled", "O-unknown", T0 - 2 * DAY),
    ]
    profile = build(events, None)
    store = Store()
    kinds = set()
    for days in (0, 1, 3, 5, 7, 9, 12, 20, 40, 80, 200, 400):
        now = T0 + days * DAY
        for tier in (None, "potential", "stable", "key"):
            profile.tier = tier
            snap = snapshot(profile, now)
            assert breaches(profile, epoch_seconds(now), SLA) == []
            assert next_due(profile, epoch_seconds(now), SLA) is None
            cadence_deadline(snap, CONFIG.risk)
            out = assess_batch([(profile, snap, None)], store.load, CONFIG, EMITTED)
            store.save(out.states)
            kinds |= {a.kind for a in out.alerts}
            for a in out.alerts:
                assert all(r.code in ("cadence_broken", "volume_decline") for r in a.reasons)
    assert kinds == {AlertKind.CHURN_RISK}  # the silence is noticed, nothing else is invented


def test_an_open_episode_found_in_clickhouse_is_continued_not_raised_again() -> None:
    from streams.alerting import OpenEpisode, adopt_open_episode

    found = OpenEpisode(episode="2025-06-01T00:00:00+00:00", sequence=2, score=70, severity="high",
                        emitted_at=1_748_736_000, reminders=1)  # fmt: skip
    fresh = adopt_open_episode(None, "C1", found)  # the crash came before the first store
    assert fresh is not None and fresh.episode == found.episode and fresh.sequence == 2 and fresh.reminders == 1
    assert (fresh.emitted_score, fresh.emitted_severity, fresh.emitted_at) == (70, "high", 1_748_736_000)
    stale = RiskState("C1", score=20, due_at=123)
    patched = adopt_open_episode(stale, "C1", found)
    assert patched is not None and patched.episode == found.episode and patched.due_at == 123
    assert stale.episode is None  # the stored state is not mutated
    assert adopt_open_episode(patched, "C1", found) is None  # already known: nothing to store
    ahead = RiskState("C1", episode=found.episode, sequence=3)
    assert adopt_open_episode(ahead, "C1", found) is None  # the table knows a later message
