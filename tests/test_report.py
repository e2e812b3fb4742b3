"""`clientpulse report` on a history published through the real pipeline (`clientpulse demo`), checked
against figures read independently from the BI views, and for being self-contained."""

from __future__ import annotations

import re
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

import pytest

from clientpulse import charts
from clientpulse.dashboard import open_checked, reader
from tests.test_dashboard import chdb_dsn, cli, populated_data_dir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the report must say, straight from the views (own SQL, not the dashboard's)."""
    data_dir = populated_data_dir(tmp_path_factory)
    client = open_checked(chdb_dsn(data_dir), "clientpulse")
    try:
        q = reader(client)
        [as_of] = q("SELECT as_of_day FROM v_as_of", None)
        day = as_of["as_of_day"]
        [last30] = q(
            "SELECT sum(orders) AS orders, sum(revenue) AS revenue, "
            "sum(on_time_deliveries) / sum(deliveries) AS on_time, sum(complaints) AS complaints "
            "FROM v_kpi_daily WHERE grain = 'client' AND day > {d:Date} - 30 AND day <= {d:Date}",
            {"d": day},
        )
        watch = q("SELECT client_id, name, reasons, actions, revenue_365d FROM v_churn_watchlist", None)
        sla = q(
            "SELECT tier, count() AS n, countIf(NOT resolution_breached) AS in_time FROM v_complaint_sla "
            "WHERE toDate(opened_at) > {d:Date} - 90 GROUP BY tier",
            {"d": day},
        )
        return {
            "data_dir": data_dir,
            "as_of": day,
            "last30": last30,
            "watchlist": watch,
            "tiers": q("SELECT tier, clients, revenue_365d FROM v_tier_mix", None),
            "sla": {r["tier"]: r for r in sla},
        }
    finally:
        client.close()


def write_report(views: dict[str, Any], out: Path, *args: str) -> str:
    result = cli("report", "--data-dir", str(views["data_dir"]), "--out", str(out), *args)
    assert result.returncode == 0, result.stderr
    return out.read_text(encoding="utf-8")


def test_html_report_is_self_contained_and_agrees_with_the_views(views: dict[str, Any], tmp_path: Path) -> None:
    html = write_report(views, tmp_path / "report.html")
    # mailable as is: nothing to fetch, no script
    assert not re.findall(r"""(?:src|href|action)\s*=\s*["']?(?:[a-z]+:)?//""", html, re.I)
    assert not re.search(r"<script|<link|<img|@import|url\(", html, re.I)
    assert html.count('class="chart"') >= 8  # six KPI trends, tier shares, Pareto (and categories)
    points = [int(n) for n in re.findall(r'class="series"[^>]*data-points="(\d+)"', html)]
    assert sum(1 for n in points if n >= 40) >= 3, points  # weekly lines over most of a year
    assert f"data as of {views['as_of']}" in html

    watch = views["watchlist"]
    assert watch, "the demo history must put someone on the watchlist"
    top = watch[0]  # the view's own order: key accounts first, then score
    assert top["client_id"] in html and (top["name"] or "") in html
    for text in top["reasons"][:2] + top["actions"][:2]:
        assert escape(text) in html
    at_risk = sum((r["revenue_365d"] for r in watch), Decimal(0))
    assert f"{len(watch)} on the churn watchlist holding {charts.fmt_money(at_risk)}" in html

    last30 = views["last30"]
    cards = dict(re.findall(r'data-kpi="(\w+)"><div class="label">[^<]*</div><div class="value">([^<]*)<', html))
    assert cards["orders"] == charts.fmt_int(last30["orders"])
    assert cards["revenue"] == charts.fmt_money(last30["revenue"])
    assert cards["on_time_rate"] == charts.fmt_pct(last30["on_time"])
    assert cards["complaints"] == charts.fmt_int(last30["complaints"])
    for tier in views["tiers"]:
        assert f"{tier['tier']} " in html and f"{charts.fmt_money(tier['revenue_365d'])} <span" in html
    complaints = sum(r["n"] for r in views["sla"].values())
    in_time = sum(r["in_time"] for r in views["sla"].values())
    assert f"{in_time} of {complaints} complaints within their tier&#x27;s resolution target" in html


def test_markdown_report_has_tables_sparklines_and_the_top_risks(views: dict[str, Any], tmp_path: Path) -> None:
    md = write_report(views, tmp_path / "report.md", "--top", "3")
    assert "http" not in md and "<" not in md.replace("<br>", "")
    assert md.startswith("# Client health report")
    assert f"Data as of **{views['as_of']}**" in md
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert any(line.startswith("| Orders 订单量 | " + charts.fmt_int(views["last30"]["orders"])) for line in rows)
    assert any(re.search(f"[{charts.BLOCKS}]{{20,}}", line) for line in rows), "weekly sparklines"
    for tier in views["tiers"]:
        assert any(line.startswith(f"| {tier['tier']} ") and f"| {charts.fmt_int(tier['clients'])} |" in line
                   for line in rows)  # fmt: skip
    shown = re.findall(r"^### \d\. (\S+)", md, re.M)
    assert shown == [w["client_id"] for w in views["watchlist"][:3]]
    assert "Recommended actions · 建议措施:" in md and "## Complaint SLA" in md


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--format", "pdf", "--out", "r.pdf"], "--format"),
        (["--format", "md"], "--out"),
        (["--out", "report.txt"], "--format md|html"),
        (["--out", "/no/such/dir/report.md"], "no such directory"),
        (["--out", "r.md", "--top", "0"], "--top"),
    ],
)
def test_bad_report_arguments_give_one_line_and_exit_2(args: list[str], needle: str, tmp_path: Path) -> None:
    result = cli("report", "--data-dir", str(tmp_path), *args)
    err = result.stderr.strip()
    assert result.returncode == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("clientpulse: error:") and needle in err


def test_report_without_data_says_so_in_one_line(tmp_path: Path) -> None:
    result = cli("report", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "r.md"))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"clientpulse: error: no embedded ClickHouse data at {tmp_path / 'empty' / 'clickhouse'} "
        "(run `clientpulse demo` there, or pass --data-dir)"
    )
    assert not (tmp_path / "r.md").exists()
