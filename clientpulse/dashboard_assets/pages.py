"""HTML of the dashboard pages, built from the plain figures of `clientpulse.dashboard`. Pure.

Sections are separate functions because the management report (`clientpulse.report`) reuses them.
Everything user-visible from the database is escaped; links are relative to the mount point `base`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from html import escape
from typing import Any
from urllib.parse import quote

from clientpulse import charts as c
from clientpulse.dashboard_assets.style import CSS

Row = dict[str, Any]


def h(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, datetime):
        return escape(value.strftime("%Y-%m-%d %H:%M"))
    return escape(str(value))


def client_link(base: str | None, client_id: str, text: str | None = None) -> str:
    """A link to the client's page; plain text where there are no pages (a mailed report)."""
    if base is None:
        return f"<b>{h(text or client_id)}</b>"
    return f'<a href="{base}/client/{quote(client_id, safe="")}">{h(text or client_id)}</a>'


def tier_badge(tier: str | None) -> str:
    zh = {"key": "重点", "stable": "稳定", "potential": "潜力"}.get(tier or "")
    if not zh:
        return '<span class="badge tier-none">–</span>'
    return f'<span class="badge tier-{h(tier)}">{h(tier)} {zh}</span>'


def severity_badge(severity: str | None) -> str:
    if not severity:
        return "–"
    return f'<span class="badge sev-{h(severity)}">{h(severity)}</span>'


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """Cells are HTML already (escape at the call site); `numeric` columns align right."""
    head = "".join(f'<th class="num">{x}</th>' if i in numeric else f"<th>{x}</th>" for i, x in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{x}</td>' if i in numeric else f"<td>{x}</td>" for i, x in enumerate(r))
        + "</tr>"
        for r in rows
    )  # fmt: skip
    if not rows:
        body = f'<tr><td colspan="{len(headers)}" class="sub">none · 无</td></tr>'
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def bullet_list(items: Sequence[str], zh: Sequence[str] = ()) -> str:
    """English items; the Chinese text of each, where given, shows on hover."""
    if not items:
        return "–"
    titles = [zh[n] if n < len(zh) else "" for n in range(len(items))]
    rows = (f'<li title="{h(t)}">{h(i)}</li>' if t else f"<li>{h(i)}</li>" for i, t in zip(items, titles, strict=True))
    return '<ul class="tight">' + "".join(rows) + "</ul>"


# ------------------------------------------------------------------ KPI cards


@dataclass(frozen=True)
class Kpi:
    key: str
    en: str
    zh: str
    fmt: Callable[[Any], str]
    delta: str  # "relative" (counts, money), "points" (rates in pp), "absolute"
    higher_is_better: bool
    color: str
    digits: int = 1


KPIS = (
    Kpi("orders", "Orders", "订单量", c.fmt_int, "relative", True, c.BLUE),
    Kpi("revenue", "Revenue", "收入", c.fmt_money, "relative", True, c.TEAL),
    Kpi("on_time_rate", "On-time", "准时率", c.fmt_pct, "points", True, c.GREEN),
    Kpi("intact_rate", "Intact", "完好率", lambda v: c.fmt_pct(v, 2), "points", True, c.VIOLET),
    Kpi("complaints", "Complaints", "投诉", c.fmt_int, "relative", False, c.RED),
    Kpi("csat_mean", "CSAT (1-5)", "满意度", lambda v: c.fmt_num(v, 2), "absolute", True, c.AMBER, 2),
    Kpi("nps", "NPS", "净推荐值", lambda v: c.fmt_num(v, 0), "absolute", True, c.BLUE),
)


def delta(kpi: Kpi, now: Any, before: Any) -> tuple[str, str]:
    """(text, css class up|down|flat) of the change from `before` to `now`; up/down say good or bad."""
    if now is None or before is None:
        return "no comparison", "flat"
    now_f, before_f = float(now), float(before)
    if kpi.delta == "relative":
        if before_f == 0:
            return ("new", "flat") if now_f else ("±0.0%", "flat")
        change, unit, digits = (now_f / before_f - 1) * 100, "%", 1
    elif kpi.delta == "points":
        change, unit, digits = (now_f - before_f) * 100, " pp", 1
    else:
        change, unit, digits = now_f - before_f, "", kpi.digits
    shown = round(change, digits)
    if shown == 0:
        return f"±{0:.{digits}f}{unit}", "flat"
    arrow = "▲" if shown > 0 else "▼"
    return f"{arrow} {shown:+.{digits}f}{unit}", "up" if (shown > 0) == kpi.higher_is_better else "down"


def delta_html(kpi: Kpi, now: Any, before: Any) -> str:
    text, css = delta(kpi, now, before)
    return f'<span class="delta {css}">{text}</span>'


def kpi_cards(cards: Row, kpis: Sequence[Kpi] = KPIS) -> str:
    out = []
    previous = cards.get("previous") or {}
    for k in kpis:
        now = cards["current"][k.key]
        spark = c.sparkline([d[k.key] for d in cards["daily"]], color=k.color)
        out.append(
            f'<div class="card" data-kpi="{k.key}"><div class="label">{k.en} · {k.zh}</div>'
            f'<div class="value">{k.fmt(now)}</div>{delta_html(k, now, previous.get(k.key))}{spark}</div>'
        )
    return '<div class="cards">' + "".join(out) + "</div>"


# ------------------------------------------------------------------ trend charts


def trend_charts(trend: Row, satisfaction: Row | None = None) -> str:
    """Orders, revenue, service quality, complaints, CSAT and NPS over the trend's buckets."""
    labels, k = trend["labels"], trend["kpis"]
    per = "per day · 每日" if trend["bucket"] == "day" else "per week · 每周"
    sat = satisfaction or trend
    sat_per = "per day · 每日" if sat["bucket"] == "day" else "per week · 每周"

    def series(rows: Sequence[Row], key: str) -> list[Any]:
        return [r[key] for r in rows]

    panels = [
        ("Orders · 订单量", per, c.line_chart(labels, [c.Series("orders", series(k, "orders"), c.BLUE, "bars")],
                                           title="Orders", integer=True)),
        ("Revenue · 收入", per, c.line_chart(labels, [c.Series("revenue", series(k, "revenue"), c.TEAL, "area")],
                                          title="Revenue", y_format=c.fmt_money)),
        ("Service quality · 服务质量", per, c.line_chart(
            labels,
            [c.Series("on-time 准时率", series(k, "on_time_rate"), c.GREEN),
             c.Series("intact 完好率", series(k, "intact_rate"), c.VIOLET)],
            title="On-time and intact rate", y_format=lambda v: c.fmt_pct(v, 0), y_max=1.0, y_min=_floor_rate(k))),
        ("Complaints · 投诉", per, c.line_chart(
            labels,
            [c.Series("complaints 投诉", series(k, "complaints"), c.RED, "bars"),
             c.Series("resolved 已解决", series(k, "resolved_complaints"), c.SLATE, "bars")],
            title="Complaints", integer=True)),
        ("CSAT · 满意度", sat_per, c.line_chart(
            sat["labels"], [c.Series("CSAT mean (1-5)", series(sat["kpis"], "csat_mean"), c.AMBER)],
            title="CSAT", y_format=lambda v: f"{v:.1f}", y_min=1, y_max=5)),
        ("NPS · 净推荐值", sat_per, c.line_chart(
            sat["labels"], [c.Series("NPS", series(sat["kpis"], "nps"), c.BLUE, "step")],
            title="NPS", y_format=lambda v: f"{v:.0f}", y_min=-100, y_max=100)),
    ]  # fmt: skip
    return '<div class="grid">' + "".join(_panel(t, s, svg) for t, s, svg in panels) + "</div>"


def _floor_rate(rows: Sequence[Row]) -> float:
    """Rates live near 100%: start the axis a little under the lowest value, not at zero."""
    values = [r[k] for r in rows for k in ("on_time_rate", "intact_rate") if r[k] is not None]
    return max(0.0, min(values, default=0.8) - 0.05)


def _panel(title: str, sub: str, body: str, attrs: str = "") -> str:
    return f'<div class="panel"{attrs}><h3>{title} <small>{sub}</small></h3>{body}</div>'


# ------------------------------------------------------------------ watchlist, tiers, SLA, operations


def watchlist_section(watch: Row, base: str | None, *, limit: int | None = None) -> str:
    chips = [f'<div class="chip"><b>{watch["clients"]}</b> clients at risk · 流失预警客户</div>']
    for r in watch["by_tier"]:
        chips.append(
            f'<div class="chip">{tier_badge(r["tier"])} {r["clients"]} · revenue 365d at risk '
            f"<b>{c.fmt_money(r['revenue_365d'])}</b></div>"
        )
    rows = []
    for i, r in enumerate(watch["rows"][:limit] if limit else watch["rows"], 1):
        since = r["since"].date() if isinstance(r["since"], datetime) else r["since"]
        rows.append([
            str(i),
            client_link(base, r["client_id"]) + f'<div class="sub">{h(r["name"])}</div>'
            + f'<div class="sub">AM {h(r["account_manager"])}</div>',
            tier_badge(r["tier"]),
            f'{c.score_bar(r["score"])} <b>{r["score"]}</b><div>{severity_badge(r["severity"])} '
            f'<span class="sub">{h(r["status"] or "")}</span></div><div class="sub">since {h(since)}</div>',
            bullet_list(r["reasons"], r.get("reasons_zh") or ()),
            bullet_list(r["actions"], r.get("actions_zh") or ()),
            c.fmt_money(r["revenue_365d"]),
        ])  # fmt: skip
    headers = ["#", "Client 客户 · account manager 客户经理", "Tier 分级", "Risk 风险分 · severity",
               "Reasons 原因", "Recommended actions 建议措施", "Revenue 365d"]  # fmt: skip
    return '<div class="chips">' + "".join(chips) + "</div>" + table(headers, rows, numeric=(0, 6))


def tier_section(mix: Sequence[Row], watch: Row, abc: Row | None) -> str:
    at_risk = {r["tier"]: r for r in watch["by_tier"]}
    shares = c.share_bars(
        [
            ("clients 客户数", [(r["tier"] or "–", float(r["client_share"]), _tier_color(r["tier"])) for r in mix]),
            ("revenue 收入", [(r["tier"] or "–", float(r["revenue_share"]), _tier_color(r["tier"])) for r in mix]),
        ],
        title="Tier mix: share of clients and of 365-day revenue",
    )
    rows = [
        [tier_badge(r["tier"]), f'{c.fmt_int(r["clients"])} <span class="sub">{c.fmt_pct(r["client_share"])}</span>',
         f'{c.fmt_money(r["revenue_365d"])} <span class="sub">{c.fmt_pct(r["revenue_share"])}</span>',
         f'{c.fmt_int(at_risk.get(r["tier"], {}).get("clients", 0))} <span class="sub">'
         f'{c.fmt_money(at_risk.get(r["tier"], {}).get("revenue_365d", 0))}</span>']
        for r in mix
    ]  # fmt: skip
    headers = ["Tier 分级", "Clients · share", "Revenue 365d · share", "At risk 预警 · revenue"]
    out = [_panel("Tier mix · 客户分级", "clients and revenue by tier", shares + table(headers, rows, (1, 2, 3)))]
    if abc is not None and abc["curve"]:
        curve = abc["curve"]
        pareto = c.line_chart(
            [str(r["rank"]) for r in curve],
            [c.Series("cumulative share 累计收入占比", [r["cumulative_share"] for r in curve], c.VIOLET, "area")],
            title="Pareto: cumulative revenue share by client rank",
            y_format=lambda v: c.fmt_pct(v, 0), y_min=0, y_max=1, target=(0.8, "80%"),
        )  # fmt: skip
        classes = " · ".join(
            f"<b>{h(r['abc_class'])}</b> {r['clients']} clients, {c.fmt_money(r['revenue_365d'])}"
            for r in abc["classes"]
        )
        out.append(_panel("ABC Pareto · 帕累托分析", "clients ranked by 365-day revenue",
                          pareto + f'<div class="sub">{classes}</div>'))  # fmt: skip
    return '<div class="grid">' + "".join(out) + "</div>"


def sla_section(sla: Sequence[Row], categories: Sequence[tuple[str, int]] | None = None) -> str:
    rows = [
        [tier_badge(r["tier"]),
         f'{c.fmt_hours(r["response_target_hours"])} / {c.fmt_hours(r["resolution_target_hours"])}',
         c.fmt_int(r["complaints"]), _met(r["response_met"]), _met(r["resolution_met"]),
         c.fmt_hours(r["mean_response_hours"]), c.fmt_hours(r["mean_resolution_hours"]), c.fmt_int(r["open"])]
        for r in sla
    ]  # fmt: skip
    headers = ["Tier 分级", "Target response / resolution 时效目标", "Complaints 投诉", "Response met 响应达标",
               "Resolution met 解决达标", "Mean response", "Mean resolution", "Open 未结"]  # fmt: skip
    out = _panel("Complaint SLA · 投诉时效", "complaints opened in the last 90 days",
                 table(headers, rows, (2, 3, 4, 5, 6, 7)))  # fmt: skip
    if categories is not None:
        bars = c.hbar_chart([(k, v, c.RED) for k, v in categories[:10]], title="Complaints by category")
        out += '<div class="grid spaced">' + _panel(
            "Complaints by category · 投诉类别", "in the chart window", bars) + "</div>"  # fmt: skip
    return out


def _met(share: float | None) -> str:
    if share is None:
        return "–"
    css = "ok" if share >= 0.95 else "sev-warning" if share >= 0.85 else "bad"
    return f'<span class="badge {css}">{c.fmt_pct(share)}</span>'


def operations_section(warehouses: Sequence[Row], regions: Sequence[Row]) -> str:
    def rows(items: Sequence[Row]) -> list[list[str]]:
        return [
            [h(r["key"] or "–"), c.fmt_int(r["orders"]), c.fmt_money(r["revenue"]), c.fmt_int(r["deliveries"]),
             c.fmt_pct(r["on_time_rate"]), c.fmt_pct(r["intact_rate"], 2), c.fmt_int(r["complaints"])]
            for r in items
        ]  # fmt: skip

    head = ["Orders", "Revenue", "Deliveries", "On-time", "Intact", "Complaints"]
    return '<div class="grid">' + "".join([
        _panel("Warehouses · 仓库", "last 30 days", table(["Warehouse 仓库", *head], rows(warehouses), range(1, 7))),
        _panel("Regions · 区域", "last 30 days", table(["Region 区域", *head], rows(regions), range(1, 7))),
    ]) + "</div>"  # fmt: skip


def _tier_color(tier: str | None) -> str:
    return c.TIER_COLORS.get(tier or "", c.SLATE)


# ------------------------------------------------------------------ pages


def layout(title: str, body: str, base: str, as_of: date | None) -> str:
    nav = "".join(
        f'<a href="{base}/{anchor}">{label}</a>'
        for anchor, label in (("#kpis", "KPIs 指标"), ("#watchlist", "Watchlist 流失预警"),
                              ("#tiers", "Tiers 分级"), ("#sla", "SLA 投诉时效"), ("#operations", "Operations 运营"))
    )  # fmt: skip
    data_day = f" · data as of {as_of}" if as_of else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{h(title)} · clientpulse</title><style>{CSS}</style></head><body>"
        f'<header class="top"><a class="brand" href="{base}/">clientpulse<small>客户健康看板{data_day}</small></a>'
        f'<nav>{nav}</nav><form action="{base}/client" method="get">'
        '<input name="id" placeholder="client id 客户编号" aria-label="client id"><button>Open</button></form></header>'
        f"<main>{body}<footer>Read-only view of the ClickHouse BI views (v_kpi_daily, v_client_360, "
        "v_churn_watchlist, v_tier_mix, v_abc_pareto, v_complaint_sla) · 只读</footer></main></body></html>"
    )


def overview_page(data: Row, base: str) -> str:
    if data.get("as_of") is None:
        return message_page("No data yet · 暂无数据", "No KPI rows in v_kpi_daily yet: publish some events.", base)
    window = data["window_days"]
    windows = "".join(
        f'<a class="{"on" if w == window else ""}" href="{base}/?days={w}">{w}d</a>' for w in (30, 90, 180, 365)
    )
    cards = data["cards"]
    body = [
        '<div class="bar-row"><div><h1>Client health overview <small>客户健康总览</small></h1>'
        f'<div class="sub">KPI cards: last {cards["days"]} days to {data["as_of"]} vs the {cards["days"]} before · '
        f"近{cards['days']}天与前{cards['days']}天对比</div></div>"
        f'<div class="windows">chart window {windows}</div></div>',
        f'<section id="kpis">{kpi_cards(cards)}</section>',
        f'<section id="trends"><h2>Trends <small>趋势 · last {window} days</small></h2>'
        f"{trend_charts(data['trend'], data.get('satisfaction'))}</section>",
        '<section id="watchlist"><h2>Churn watchlist <small>流失预警 · by tier, then risk score</small></h2>'
        f"{watchlist_section(data['watchlist'], base)}</section>",
        '<section id="tiers"><h2>Tiers <small>客户分级</small></h2>'
        f"{tier_section(data['tier_mix'], data['watchlist'], data['abc'])}</section>",
        f'<section id="sla"><h2>Complaint SLA <small>投诉时效</small></h2>'
        f"{sla_section(data['sla'], data['complaint_categories'])}</section>",
        '<section id="operations"><h2>Operations <small>运营</small></h2>'
        f"{operations_section(data['warehouses'], data['regions'])}</section>",
    ]
    return layout("Client health overview", "".join(body), base, data["as_of"])


CLIENT_KPIS = tuple(k for k in KPIS if k.key != "nps")


def client_page(data: Row, base: str) -> str:
    p = data["profile"]
    risk = p.get("risk_score")
    reasons = [r for r in (p.get("risk_reasons") or []) if r]
    calm = "" if p.get("at_risk") else " calm"
    risk_text = "at risk · 流失风险" if p.get("at_risk") else "not at risk · 正常"
    facts = [
        ("Region 区域", p.get("region")), ("Industry 行业", p.get("industry")),
        ("Account manager 客户经理", p.get("account_manager")), ("Contract end 合同到期", p.get("contract_end")),
        ("Last order 最近下单", p.get("last_order_at")),
        ("Days since last order 未下单天数", c.fmt_num(p.get("days_since_last_order"))),
        ("Orders 30d 近30天订单", c.fmt_int(p.get("orders_30d"))), ("Revenue 30d", c.fmt_money(p.get("revenue_30d"))),
        ("Revenue 365d 年收入", c.fmt_money(p.get("revenue_365d"))),
        ("On-time 30d 准时率", c.fmt_pct(p.get("on_time_rate_30d"))),
        ("Intact 30d 完好率", c.fmt_pct(p.get("intact_rate_30d"), 2)),
        ("Complaints 30d / open 投诉", f"{c.fmt_int(p.get('complaints_30d'))} / {c.fmt_int(p.get('complaints_open'))}"),
        ("CSAT 90d 满意度", c.fmt_num(p.get("csat_mean_90d"), 2)), ("NPS 90d", c.fmt_num(p.get("nps_score_90d"), 0)),
    ]  # fmt: skip
    body = [
        f"<h1>{h(p.get('name') or p['client_id'])} <small>{h(p['client_id'])}</small> {tier_badge(p.get('tier'))} "
        f'<span class="badge abc">ABC {h(p.get("abc_class"))}</span></h1>',
        f'<div class="risk-box{calm}"><b>Risk score 风险分 {h(risk)}</b> {c.score_bar(risk or 0, width=160)} '
        f"{risk_text}{bullet_list(reasons) if reasons else ''}</div>",
        '<div class="facts">' + "".join(f"<div><span>{k}</span>{h(v)}</div>" for k, v in facts) + "</div>",
    ]
    if data.get("cards"):
        body.append(f'<section id="kpis">{kpi_cards(data["cards"], CLIENT_KPIS)}</section>')
    if data.get("trend"):
        body.append(
            f"<h2>KPI trends <small>指标趋势 · per week, up to 52 weeks</small></h2>{trend_charts(data['trend'])}"
        )
    history = data["risk_history"]
    if history:
        labels = [r["assessed_at"].strftime("%m-%d") for r in history]
        chart = c.line_chart(labels, [c.Series("risk score 风险分", [r["score"] for r in history], c.RED, "step")],
                             title="Risk score history", y_min=0, y_max=100, target=(45, "alert 45"),
                             width=1160, height=220)  # fmt: skip
        body.append('<h2>Risk history <small>风险分变化 · whenever the score changed</small></h2>'
                    f'<div class="panel" id="risk-history">{chart}</div>')  # fmt: skip
    body.append(
        '<h2 id="watchlist">Alerts <small>预警 · current state of each alert</small></h2>' + _alerts(data["alerts"])
    )
    body.append('<h2 id="sla">Complaints <small>投诉 · response and resolution against the SLA</small></h2>'
                + _complaints(data["complaints"]))  # fmt: skip
    if data["tier_history"]:
        rows = [[h(t["changed_at"]), tier_badge(t["old_tier"]) + " → " + tier_badge(t["new_tier"]),
                 c.fmt_money(t["revenue_90d"])] for t in data["tier_history"]]  # fmt: skip
        body.append('<h2 id="tiers">Tier history <small>分级变化</small></h2>'
                    + table(["When 时间", "Change 变化", "Revenue 90d"], rows, (2,)))  # fmt: skip
    return layout(p.get("name") or p["client_id"], "".join(body), base, data.get("as_of"))


def _alerts(alerts: Sequence[Row]) -> str:
    rows = []
    for a in alerts:
        reasons = "".join(f"<li>{h(r['text_en'])}<div class='zh'>{h(r['text_zh'])}</div></li>" for r in a["reasons"])
        actions = "".join(f"<li>{h(x['text_en'])}<div class='zh'>{h(x['text_zh'])}</div></li>" for x in a["actions"])
        rows.append([
            h(a["occurred_at"]),
            h(a["kind"]) + (f'<div class="sub">{h(a["complaint_id"])}</div>' if a["complaint_id"] else ""),
            h(a["status"]), severity_badge(a["severity"]), h(a["score"]),
            f'<ul class="tight">{reasons}</ul>', f'<ul class="tight">{actions}</ul>',
        ])  # fmt: skip
    return table(
        ["When 时间", "Kind 类型", "Status 状态", "Severity", "Score", "Reasons 原因", "Actions 措施"], rows, (4,)
    )


def _complaints(complaints: Sequence[Row]) -> str:
    def hours(value: Any, target: Any, breached: Any) -> str:
        flag = ' <span class="badge bad">breached 超时</span>' if breached else ""
        return f"{c.fmt_hours(value)} <span class='sub'>/ {c.fmt_hours(target)}</span>{flag}"

    rows = [
        [h(x["complaint_id"]), h(x["opened_at"]), h(x["category"]), h(x["severity"]),
         hours(x["response_hours"], x["response_target_hours"], x["response_breached"]),
         hours(x["resolution_hours"], x["resolution_target_hours"], x["resolution_breached"]), h(x["status"])]
        for x in complaints
    ]  # fmt: skip
    headers = ["Complaint 投诉", "Opened 提出", "Category 类别", "Severity", "Response / target 响应",
               "Resolution / target 解决", "Status 状态"]  # fmt: skip
    return table(headers, rows)


def message_page(title: str, text: str, base: str) -> str:
    return layout(title, f'<h1>{h(title)}</h1><p>{h(text)}</p><p><a href="{base}/">Overview · 总览</a></p>', base, None)
