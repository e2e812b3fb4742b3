"""`clientpulse report`: a management report that can be mailed as it is, in HTML or Markdown.

The figures are the dashboard's (`clientpulse.dashboard.overview_data`, a year of weekly trends), so the
report and the dashboard never disagree. HTML carries its stylesheet and inline SVG charts; Markdown
uses tables and unicode sparklines: neither refers to any file, image or address outside itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from clientpulse import charts as c
from clientpulse.dashboard import Query, overview_data
from clientpulse.dashboard_assets import pages
from clientpulse.dashboard_assets.style import CSS

Row = dict[str, Any]
TREND_DAYS = 364  # 52 whole weeks


def build_report(q: Query, fmt: str, *, top: int = 10, now: datetime | None = None) -> str:
    data = overview_data(q, TREND_DAYS, watchlist_limit=top)
    generated = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    if data.get("as_of") is None:
        empty = "No KPI data yet (v_kpi_daily is empty)."
        return f"# Client health report\n\n{empty}\n" if fmt == "md" else pages.message_page("No data", empty, "")
    return markdown(data, generated) if fmt == "md" else html(data, generated)


def headline(data: Row) -> list[str]:
    """The three sentences a manager reads first (plain text, both formats)."""
    mix, watch, cards = data["tier_mix"], data["watchlist"], data["cards"]
    clients = sum(int(r["clients"]) for r in mix)
    revenue = sum((Decimal(r["revenue_365d"]) for r in mix), Decimal(0))
    at_risk = sum((Decimal(r["revenue_365d"] or 0) for r in watch["by_tier"]), Decimal(0))
    share = float(at_risk / revenue) if revenue else None
    key = next((r for r in watch["by_tier"] if r["tier"] == "key"), None)
    now, before = cards["current"], cards["previous"] or {}
    changes = ", ".join(
        f"{k.en.lower()} {k.fmt(now[k.key])} ({pages.delta(k, now[k.key], before.get(k.key))[0]})"
        for k in pages.KPIS[:5]
    )
    met = [r for r in data["sla"] if r["complaints"]]
    complaints = sum(int(r["complaints"]) for r in met)
    within = sum(int(r["complaints"]) - int(r["resolution_breached"]) for r in met)
    return [
        f"{clients} clients with {c.fmt_money(revenue)} revenue over 365 days; {watch['clients']} on the churn "
        f"watchlist holding {c.fmt_money(at_risk)} ({c.fmt_pct(share)}) of it"
        + (f", {key['clients']} of them key accounts." if key else ", none of them key accounts."),
        f"Last {cards['days']} days against the {cards['days']} before: {changes}.",
        f"Complaint SLA, last 90 days: {within} of {complaints} complaints within their tier's resolution target "
        f"({c.fmt_pct(within / complaints if complaints else None)}; resolved in time, or open and not yet late).",
    ]


# ------------------------------------------------------------------ HTML


def html(data: Row, generated: str) -> str:
    lines = "".join(f"<li>{pages.h(s)}</li>" for s in headline(data))
    body = (
        f"<h1>Client health report <small>客户健康报告 · data as of {data['as_of']} · generated {generated}"
        "</small></h1>"
        f'<div class="panel"><h3>Summary · 摘要</h3><ul class="tight">{lines}</ul></div>'
        f"<h2>KPIs <small>指标 · last {data['cards']['days']} days vs the {data['cards']['days']} before</small></h2>"
        f"{pages.kpi_cards(data['cards'])}"
        f"<h2>KPI trends <small>指标趋势 · per week, last 52 weeks</small></h2>"
        f"{pages.trend_charts(data['trend'], data['satisfaction'])}"
        "<h2>Tier mix <small>客户分级</small></h2>"
        f"{pages.tier_section(data['tier_mix'], data['watchlist'], data['abc'])}"
        f"<h2>Top risks <small>流失预警 · top {len(data['watchlist']['rows'])}, by tier then risk score</small></h2>"
        f"{pages.watchlist_section(data['watchlist'], None)}"
        f"<h2>Complaint SLA <small>投诉时效</small></h2>{pages.sla_section(data['sla'], data['complaint_categories'])}"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Client health report {data['as_of']} · clientpulse</title><style>{CSS}</style></head><body>"
        f"<main>{body}<footer>clientpulse · figures from the ClickHouse BI views v_kpi_daily, v_churn_watchlist, "
        "v_tier_mix, v_abc_pareto, v_complaint_sla</footer></main></body></html>"
    )


# ------------------------------------------------------------------ Markdown


def markdown(data: Row, generated: str) -> str:
    out = [
        "# Client health report · 客户健康报告",
        "",
        f"Data as of **{data['as_of']}** · generated {generated}",
        "",
        "## Summary · 摘要",
        "",
        *(f"- {_md(s)}" for s in headline(data)),
        "",
        *_md_kpis(data),
        *_md_tiers(data),
        *_md_risks(data["watchlist"]),
        *_md_sla(data),
        "",
        "_clientpulse · figures from the ClickHouse BI views v_kpi_daily, v_churn_watchlist, v_tier_mix, "
        "v_complaint_sla_",
        "",
    ]
    return "\n".join(out)


def _md_kpis(data: Row) -> list[str]:
    cards, weeks = data["cards"], data["trend"]["kpis"]
    now, before = cards["current"], cards["previous"] or {}
    rows = []
    for k in pages.KPIS:
        prev = before.get(k.key)
        rows.append([
            f"{k.en} {k.zh}", k.fmt(now[k.key]), k.fmt(prev), pages.delta(k, now[k.key], prev)[0],
            c.text_sparkline([w[k.key] for w in weeks]),
        ])  # fmt: skip
    days = cards["days"]
    return [
        f"## KPIs · 指标 (last {days} days)",
        "",
        *_md_table(
            ["KPI", f"last {days} days", f"previous {days} days", "change", "weekly, 52 weeks"], rows, (1, 2, 3)
        ),
        "",
    ]


def _md_tiers(data: Row) -> list[str]:
    at_risk = {r["tier"]: r for r in data["watchlist"]["by_tier"]}
    rows = [
        [f"{r['tier']} {_TIER_ZH.get(r['tier'], '')}", c.fmt_int(r["clients"]), c.fmt_pct(r["client_share"]),
         c.fmt_money(r["revenue_365d"]), c.fmt_pct(r["revenue_share"]),
         c.fmt_int(at_risk.get(r["tier"], {}).get("clients", 0)),
         c.fmt_money(at_risk.get(r["tier"], {}).get("revenue_365d", 0))]
        for r in data["tier_mix"]
    ]  # fmt: skip
    headers = ["Tier 分级", "Clients", "Share", "Revenue 365d", "Share", "At risk 预警", "Revenue at risk"]
    return ["## Tier mix · 客户分级", "", *_md_table(headers, rows, range(1, 7)), ""]


def _md_risks(watch: Row) -> list[str]:
    rows = watch["rows"]
    out = [f"## Top risks · 流失预警 (top {len(rows)}, by tier then risk score)", ""]
    if not rows:
        return [*out, "No client is on the churn watchlist.", ""]
    out += _md_table(
        ["#", "Client 客户", "Tier", "Score", "Severity", "Account manager", "Revenue 365d"],
        [
            [str(i), f"{r['client_id']} {r['name'] or ''}".strip(), r["tier"] or "–", str(r["score"]), r["severity"],
             r["account_manager"] or "–", c.fmt_money(r["revenue_365d"])]
            for i, r in enumerate(rows, 1)
        ],
        (0, 3, 6),
    )  # fmt: skip
    for i, r in enumerate(rows, 1):
        out += ["", f"### {i}. {_md(r['client_id'])} {_md(r['name'] or '')} — {r['tier']}, score {r['score']}", ""]
        out += ["Reasons · 原因:", "", *(f"- {_md(x)}" for x in r["reasons"]), ""]
        out += ["Recommended actions · 建议措施:", "", *(f"- {_md(x)}" for x in r["actions"])]
    return [*out, ""]


def _md_sla(data: Row) -> list[str]:
    rows = [
        [f"{r['tier']} {_TIER_ZH.get(r['tier'], '')}",
         f"{c.fmt_hours(r['response_target_hours'])} / {c.fmt_hours(r['resolution_target_hours'])}",
         c.fmt_int(r["complaints"]), c.fmt_pct(r["response_met"]), c.fmt_pct(r["resolution_met"]),
         c.fmt_hours(r["mean_response_hours"]), c.fmt_hours(r["mean_resolution_hours"]), c.fmt_int(r["open"])]
        for r in data["sla"]
    ]  # fmt: skip
    headers = ["Tier", "Target response / resolution", "Complaints", "Response met", "Resolution met",
               "Mean response", "Mean resolution", "Open"]  # fmt: skip
    categories = [[k, c.fmt_int(v)] for k, v in data["complaint_categories"]]
    return [
        "## Complaint SLA · 投诉时效 (complaints opened in the last 90 days)",
        "",
        *_md_table(headers, rows, range(2, 8)),
        "",
        "Complaints by category, last 52 weeks · 投诉类别:",
        "",
        *_md_table(["Category", "Complaints"], categories, (1,)),
    ]


_TIER_ZH = {"key": "重点", "stable": "稳定", "potential": "潜力"}


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> list[str]:
    right = ["---:" if i in numeric else "---" for i in range(len(headers))]
    return [
        "| " + " | ".join(_md(h) for h in headers) + " |",
        "| " + " | ".join(right) + " |",
        *("| " + " | ".join(_md(x) for x in r) + " |" for r in rows),
    ]
