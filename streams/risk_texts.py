"""What an account manager reads: the English and Chinese sentence for each churn or SLA signal, and
the recommended actions per reason. Pure; kept apart from the rules in `streams.risk`."""

from __future__ import annotations

from typing import Any, Protocol


class _Evidence(Protocol):
    code: str
    evidence: dict[str, Any]


ACTIONS: dict[str, tuple[str, ...]] = {
    "cadence_broken": ("account_manager_visit",),
    "volume_decline": ("account_manager_visit", "pricing_review"),
    "service_failures": ("service_recovery_plan",),
    "complaint_pressure": ("compensation_review", "service_recovery_plan"),
    "complaint_rate": ("service_recovery_plan", "compensation_review"),
    "satisfaction": ("revisit_call",),
    "contract_end": ("pricing_review", "account_manager_visit"),
    "sla_response": ("service_recovery_plan",),
    "sla_resolution": ("service_recovery_plan", "compensation_review"),
    "tier_downgrade": ("account_manager_visit",),
}

ACTION_TEXT: dict[str, tuple[str, str]] = {
    "account_manager_visit": ("Account manager visits the client this week", "客户经理本周上门拜访"),
    "service_recovery_plan": ("Agree a service-recovery plan with operations", "与运营制定服务补救计划"),
    "compensation_review": ("Review compensation for the affected shipments", "评估受影响货件的赔偿方案"),
    "revisit_call": ("Call the client back (回访) to hear what went wrong", "安排回访，了解客户不满原因"),
    "pricing_review": ("Review pricing and contract terms", "复核价格与合同条款"),
}


# Signals whose sentence lists the parts of their evidence that are present: evidence key -> (en, zh).
_PARTS: dict[str, tuple[str, str, list[tuple[str, str, str]]]] = {
    "service_failures": (
        "Service failures in 30 days: ",
        "近 30 天服务问题：",
        [
            ("on_time_rate_30d", "on-time {on_time_rate_30d:.0%} (target {on_time_target:.0%})",
             "准时率 {on_time_rate_30d:.0%}（目标 {on_time_target:.0%}）"),
            ("intact_rate_30d", "intact {intact_rate_30d:.1%} (target {intact_target:.1%})",
             "完好率 {intact_rate_30d:.1%}（目标 {intact_target:.1%}）"),
            ("temperature_excursions_30d", "{temperature_excursions_30d} cold-chain temperature excursions",
             "冷链温度异常 {temperature_excursions_30d} 次"),
            ("failed_deliveries_30d", "{failed_deliveries_30d} failed deliveries ({failed_share_30d:.0%})",
             "配送失败 {failed_deliveries_30d} 次（{failed_share_30d:.0%}）"),
        ],
    ),
    "complaint_pressure": (
        "Complaint pressure in 30 days: ",
        "近 30 天投诉压力：",
        [
            ("complaints_30d", "{complaints_30d} complaints against a usual {usual_complaints_30d}",
             "投诉 {complaints_30d} 起（平时约 {usual_complaints_30d} 起）"),
            ("high_severity_30d", "{high_severity_30d} high-severity (usual {usual_high_severity_30d})",
             "高严重度 {high_severity_30d} 起（平时约 {usual_high_severity_30d} 起）"),
            ("reopened_30d", "{reopened_30d} reopened", "重开 {reopened_30d} 起"),
        ],
    ),
    "satisfaction": (
        "Low satisfaction: ",
        "满意度偏低：",
        [
            ("csat_latest", "latest CSAT {csat_latest}/5", "最新满意度 {csat_latest}/5"),
            ("nps_latest", "NPS detractor ({nps_latest}/10)", "NPS 贬损者（{nps_latest}/10）"),
            ("revisit_outcome_latest", "negative revisit call", "回访结果负面"),
            ("csat_mean_90d", "CSAT mean {csat_mean_90d} over 90 days", "90 天平均满意度 {csat_mean_90d}"),
        ],
    ),
}  # fmt: skip


def describe(s: _Evidence) -> tuple[str, str]:
    """English and Chinese sentence for a signal's evidence."""
    e = s.evidence
    match s.code:
        case "cadence_broken":
            return (
                f"No order for {e['days_since_last_order']} days, {e['silence_in_gaps']}x the usual gap of "
                f"{e['typical_gap_days']} days",
                f"已 {e['days_since_last_order']} 天未下单，是平时下单间隔（{e['typical_gap_days']} 天）的 "
                f"{e['silence_in_gaps']} 倍",
            )
        case "volume_decline":
            pct = round(100 * e["decline"])
            extra = " (seasonally adjusted)" if "seasonally_adjusted_ratio" in e else ""
            extra_zh = "（已剔除季节因素）" if "seasonally_adjusted_ratio" in e else ""
            return (
                f"Order volume down {pct}% against its baseline{extra}: {e['orders_recent']} orders in "
                f"{e['recent_days']} days, {e['orders_prev_90d']} in the 90 days before",
                f"业务量较基线下降 {pct}%{extra_zh}：近 {e['recent_days']} 天 {e['orders_recent']} 单，"
                f"此前 90 天 {e['orders_prev_90d']} 单",
            )
        case "service_failures" | "complaint_pressure" | "satisfaction":
            head_en, head_zh, parts = _PARTS[s.code]
            found = [(en.format(**e), zh.format(**e)) for key, en, zh in parts if key in e]
            return head_en + ", ".join(en for en, _ in found), head_zh + "，".join(zh for _, zh in found)
        case "complaint_rate":
            return (
                f"{e['complaints_90d']} complaints on {e['orders_90d']} orders in 90 days "
                f"({e['complaints_per_100_orders_90d']} per 100 orders)",
                f"近 90 天 {e['orders_90d']} 单中投诉 {e['complaints_90d']} 起（每百单 "
                f"{e['complaints_per_100_orders_90d']} 起）",
            )
        case "contract_end":
            return (
                f"Contract ends {e['contract_end']} ({e['days_left']} days) with no renewal on record",
                f"合同将于 {e['contract_end']} 到期（剩 {e['days_left']} 天），尚无续约记录",
            )
        case "sla_response" | "sla_resolution":
            what_en = "first response" if s.code == "sla_response" else "resolution"
            what_zh = "首次响应" if s.code == "sla_response" else "解决"
            return (
                f"Complaint {e['complaint_id']} ({e['category']}, {e['severity']}) missed its {what_en} "
                f"target of {e['target_hours']} h; {e['overdue_hours']} h overdue",
                f"投诉 {e['complaint_id']}（{e['category']}，{e['severity']}）超出{what_zh}时限 "
                f"{e['target_hours']} 小时，已超时 {e['overdue_hours']} 小时",
            )
        case "tier_downgrade":
            return (
                f"Key account downgraded to {e['new_tier']}: 90-day revenue {e['revenue_90d']}, "
                f"{e['orders_90d']} orders",
                f"重点客户降级为 {e['new_tier']}：近 90 天收入 {e['revenue_90d']}，订单 {e['orders_90d']} 单",
            )
    return s.code, s.code
