"""The dashboard: read-only figures from the BI views, served as HTML pages and JSON.

One module reads the figures (`overview_data`, `client_data`) through a read-only clickhouse-connect
client and `dashboard_assets.pages` turns them into HTML; two thin adapters serve the same pages:

- `serve()`: a small aiohttp server in this process (`clientpulse demo --serve`, `clientpulse dashboard`);
- `mount_on_faust()`: routes under /dashboard/ on the live worker's faust web server, because with
  embedded ClickHouse (chdb) the worker is the one process that may open the data directory.

Read-only twice over: the client is opened with ClickHouse's `readonly=1` for its whole session, and
every query runs through `sinks.clickhouse.query_readonly`. The only user input (a client id) is a
bound query parameter. No page loads anything from anywhere: styles and SVG charts are inline, and a
Content-Security-Policy header forbids the browser any other request.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from clickhouse_connect.driver.client import Client

from clientpulse.dashboard_assets import pages
from clientpulse.security import redacted_dsn
from sinks.clickhouse import connect, query_readonly
from sinks.migrations import BI_VIEWS

log = logging.getLogger(__name__)

Query = Callable[[str, Mapping[str, Any] | None], list[dict[str, Any]]]
Row = dict[str, Any]

TIERS = ("key", "stable", "potential")
CARD_DAYS = 30  # KPI cards: the last 30 days against the 30 before
SLA_DAYS = 90
WINDOWS = (30, 90, 180, 365)
WEEKLY_FROM_DAYS = 120  # longer windows are charted per week: a year of daily points is noise


class NotReady(RuntimeError):
    """Nothing to show: no data directory, one locked by another process, or a database not migrated."""


def open_reader(dsn: str | Mapping[str, Any], database: str) -> Client:
    """A client whose whole ClickHouse session is readonly=1 (DDL, DML and SET refused)."""
    return connect(dsn, database, readonly=1)


def open_checked(dsn: str | Mapping[str, Any], database: str) -> Client:
    """`open_reader`, with the usual reasons it fails said in words, and the BI views checked."""
    where = redacted_dsn(dsn if isinstance(dsn, str) else dsn["dsn"])  # for messages: never the password
    if where.startswith("chdb://"):
        path = Path(where.removeprefix("chdb://"))
        if not (path / "metadata").is_dir():
            raise NotReady(f"no embedded ClickHouse data at {path} (run `clientpulse demo` there, or pass --data-dir)")
    try:
        client = open_reader(dsn, database)
    except Exception as exc:
        text = str(exc)
        if "Unable to open the chdb engine" in text or "Cannot lock file" in text:
            raise NotReady(
                f"cannot open {where}: another process owns it (chdb allows one), e.g. a running worker, which "
                "serves this dashboard itself at http://127.0.0.1:<worker web port>/dashboard/"
            ) from None
        if "UNKNOWN_DATABASE" in text:
            raise NotReady(f"no database {database!r} at {where} (run `clientpulse migrate` or a demo)") from None
        raise
    found = {
        r["name"] for r in reader(client)("SELECT name FROM system.tables WHERE database = currentDatabase()", None)
    }
    missing = [v for v in BI_VIEWS if v not in found]
    if missing:
        client.close()
        raise NotReady(f"BI views missing in {database!r}: {', '.join(missing)} (run `clientpulse migrate`)")
    return client


def reader(client: Client) -> Query:
    def query(sql: str, parameters: Mapping[str, Any] | None = None) -> list[Row]:
        columns, rows = query_readonly(client, sql, parameters)
        return [dict(zip(columns, row, strict=True)) for row in rows]

    return query


# ------------------------------------------------------------------ KPI sums per day (v_kpi_daily)

# Numerators and denominators only, so that any window or bucket adds up exactly; the rates are derived
# afterwards, as v_kpi_daily's column comments prescribe (an average of daily rates would weigh a quiet
# day like a busy one). `v.` names the view's column where an alias has the same name.
_KPI_SUMS = """
    sum(v.orders) AS orders, sum(v.units) AS units, sum(v.revenue) AS revenue,
    sum(v.deliveries) AS deliveries, sum(v.failed_deliveries) AS failed_deliveries,
    sum(v.on_time_deliveries) AS on_time, sum(v.delivered_units) AS delivered_units,
    sum(v.delivered_units) - sum(v.defective_units) AS intact_units,
    sum(v.complaints) AS complaints, sum(v.resolved_complaints) AS resolved_complaints,
    sum(v.resolution_hours_total) AS resolution_hours,
    sum(v.csat_sum) AS csat_sum, sum(v.csat_responses) AS csat_responses,
    100 * (toInt64(sum(v.nps_promoters)) - toInt64(sum(v.nps_detractors))) AS nps_points,
    sum(v.nps_responses) AS nps_responses
"""
_SUM_FIELDS = (
    "orders", "units", "revenue", "deliveries", "failed_deliveries", "on_time", "delivered_units", "intact_units",
    "complaints", "resolved_complaints", "resolution_hours", "csat_sum", "csat_responses", "nps_points",
    "nps_responses",
)  # fmt: skip


def as_of(q: Query) -> date | None:
    """The views' event-time 'today' (v_as_of): windows end there, so a replayed year reads as that year."""
    [row] = q("SELECT as_of_day, as_of FROM v_as_of", None)
    return row["as_of_day"] if row["as_of"] and row["as_of"].year > 1970 else None


def daily_sums(q: Query, end: date, days: int, key: str | None = None) -> list[Row]:
    """One row of sums per day in (end - days, end], every day present (zeros where nothing happened)."""
    rows = q(
        f"SELECT day, {_KPI_SUMS} FROM v_kpi_daily AS v "
        "WHERE grain = 'client' AND day > {start:Date} AND day <= {end:Date}"
        + (" AND key = {key:String}" if key is not None else "")
        + " GROUP BY day ORDER BY day",
        {"start": end - timedelta(days=days), "end": end, "key": key},
    )
    by_day = {r["day"]: r for r in rows}
    out = []
    for i in range(days - 1, -1, -1):
        d = end - timedelta(days=i)
        out.append(by_day.get(d) or {"day": d, **dict.fromkeys(_SUM_FIELDS, 0)})
    return out


def add_up(rows: Sequence[Row]) -> Row:
    total: Row = {}
    for name in _SUM_FIELDS:
        total[name] = sum((r[name] or 0 for r in rows), Decimal(0) if name == "revenue" else 0)
    return total


def kpis(sums: Row) -> Row:
    """The business KPIs from summed parts."""

    def ratio(part: str, base: str) -> float | None:
        return float(sums[part]) / sums[base] if sums[base] else None

    return {
        "orders": int(sums["orders"]),
        "units": int(sums["units"]),
        "revenue": sums["revenue"],
        "deliveries": int(sums["deliveries"]),
        "failed_deliveries": int(sums["failed_deliveries"]),
        "on_time_rate": ratio("on_time", "deliveries"),  # a failed delivery counts as late
        "intact_rate": ratio("intact_units", "delivered_units"),  # by units, as v_kpi_daily defines it
        "complaints": int(sums["complaints"]),
        "resolved_complaints": int(sums["resolved_complaints"]),
        "mean_resolution_hours": ratio("resolution_hours", "resolved_complaints"),
        "csat_mean": ratio("csat_sum", "csat_responses"),
        "csat_responses": int(sums["csat_responses"]),
        "nps": ratio("nps_points", "nps_responses"),
        "nps_responses": int(sums["nps_responses"]),
    }


def buckets(days: Sequence[Row], weekly: bool) -> list[tuple[date, Row]]:
    """(first day, KPIs) per day or per whole ISO week (a cut-off week would look like a collapse)."""
    if not weekly:
        return [(r["day"], kpis(r)) for r in days]
    weeks: dict[date, list[Row]] = {}
    for r in days:
        weeks.setdefault(r["day"] - timedelta(days=r["day"].weekday()), []).append(r)
    return [(start, kpis(add_up(rows))) for start, rows in weeks.items() if len(rows) == 7]


def trend(days: Sequence[Row], weekly: bool) -> Row:
    points = buckets(days, weekly)
    return {
        "bucket": "week" if weekly else "day",
        "labels": [d.strftime("%m-%d") for d, _ in points],
        "starts": [d for d, _ in points],
        "kpis": [k for _, k in points],
    }


def cards(days: Sequence[Row]) -> Row:
    """KPIs of the last CARD_DAYS against the CARD_DAYS before, with the daily values for sparklines."""
    current, previous = days[-CARD_DAYS:], days[-2 * CARD_DAYS : -CARD_DAYS]
    return {
        "days": CARD_DAYS,
        "current": kpis(add_up(current)),
        "previous": kpis(add_up(previous)) if previous else None,
        "daily": [kpis(r) for r in current],
    }


# ------------------------------------------------------------------ the overview


def overview_data(q: Query, window: int = 90, watchlist_limit: int = 25) -> Row:
    end = as_of(q)
    if end is None:
        return {"as_of": None}
    days = daily_sums(q, end, max(window, 2 * CARD_DAYS))
    since = end - timedelta(days=window)
    [categories] = q(
        "SELECT sumMap(complaints_by_category) AS m FROM v_kpi_daily "
        "WHERE grain = 'client' AND day > {start:Date} AND day <= {end:Date}",
        {"start": since, "end": end},
    )
    return {
        "as_of": end,
        "window_days": window,
        "cards": cards(days),
        "trend": trend(days[-window:], weekly=window >= WEEKLY_FROM_DAYS),
        "satisfaction": trend(days[-window:], weekly=True),  # few responses a day: weekly means are readable
        "complaint_categories": sorted(((k, int(v)) for k, v in categories["m"].items() if v), key=lambda kv: -kv[1]),
        "tier_mix": tier_mix(q),
        "abc": abc(q),
        "watchlist": watchlist(q, watchlist_limit),
        "sla": sla_by_tier(q, end),
        "warehouses": by_key(q, "warehouse", end, CARD_DAYS),
        "regions": by_key(q, "region", end, CARD_DAYS),
    }


def tier_mix(q: Query) -> list[Row]:
    rows = q("SELECT tier, clients, client_share, revenue_365d, revenue_share FROM v_tier_mix", None)
    return sorted(rows, key=lambda r: _tier_rank(r["tier"]))


def abc(q: Query) -> Row:
    curve = q("SELECT rank, cumulative_share, abc_class FROM v_abc_pareto ORDER BY rank", None)
    classes = q(
        "SELECT abc_class, count() AS clients, sum(revenue_365d) AS revenue_365d FROM v_abc_pareto "
        "GROUP BY abc_class ORDER BY abc_class",
        None,
    )
    return {"curve": curve, "classes": classes}


def watchlist(q: Query, limit: int) -> Row:
    rows = q(
        "SELECT client_id, name, tier, account_manager, score, severity, status, since, reasons, reasons_zh, "
        "reason_codes, actions, actions_zh, revenue_365d FROM v_churn_watchlist "
        "ORDER BY tier_rank, score DESC, client_id LIMIT {limit:UInt32}",  # the view's own order, made explicit
        {"limit": limit},
    )
    by_tier = q(
        "SELECT tier, count() AS clients, sum(revenue_365d) AS revenue_365d FROM v_churn_watchlist GROUP BY tier",
        None,
    )
    return {
        "rows": rows,
        "clients": sum(int(r["clients"]) for r in by_tier),
        "by_tier": sorted(by_tier, key=lambda r: _tier_rank(r["tier"])),
    }


def sla_by_tier(q: Query, end: date, days: int = SLA_DAYS) -> list[Row]:
    """Complaints opened in the last `days`: how many met their tier's response and resolution targets."""
    rows = q(
        "SELECT tier, count() AS complaints, countIf(response_breached) AS response_breached, "
        "countIf(resolution_breached) AS resolution_breached, avg(response_hours) AS mean_response_hours, "
        "avg(resolution_hours) AS mean_resolution_hours, countIf(resolved_at IS NULL) AS open, "
        "any(response_target_hours) AS response_target_hours, "
        "any(resolution_target_hours) AS resolution_target_hours "
        "FROM v_complaint_sla WHERE opened_at >= {since:Date} AND opened_at < {until:Date} GROUP BY tier",
        {"since": end - timedelta(days=days - 1), "until": end + timedelta(days=1)},
    )
    for r in rows:
        n = r["complaints"]
        r["response_met"] = 1 - r["response_breached"] / n if n else None
        r["resolution_met"] = 1 - r["resolution_breached"] / n if n else None
    return sorted(rows, key=lambda r: _tier_rank(r["tier"]))


def by_key(q: Query, grain: str, end: date, days: int, limit: int = 12) -> list[Row]:
    rows = q(
        f"SELECT key, {_KPI_SUMS} FROM v_kpi_daily AS v WHERE grain = {{grain:String}} "
        "AND day > {start:Date} AND day <= {end:Date} GROUP BY key ORDER BY revenue DESC, key LIMIT {limit:UInt32}",
        {"grain": grain, "start": end - timedelta(days=days), "end": end, "limit": limit},
    )
    return [{"key": r["key"], **kpis(r)} for r in rows]


# ------------------------------------------------------------------ one client


def client_data(q: Query, client_id: str) -> Row | None:
    profiles = q("SELECT * FROM v_client_360 WHERE client_id = {client_id:String}", {"client_id": client_id})
    if not profiles:
        return None
    end = as_of(q)
    days = _from_first_activity(daily_sums(q, end, 365, key=client_id)) if end else []
    param = {"client_id": client_id}
    alerts = q(
        "SELECT occurred_at, kind, status, severity, score, sequence, complaint_id, reasons_json, actions_json "
        "FROM alert_states WHERE client_id = {client_id:String} ORDER BY occurred_at DESC LIMIT 25",
        param,
    )
    for a in alerts:
        a["reasons"] = json.loads(a.pop("reasons_json"))
        a["actions"] = json.loads(a.pop("actions_json"))
    return {
        "as_of": end,
        "profile": profiles[0],
        "cards": cards(days) if days else None,
        "trend": trend(days, weekly=True) if days else None,  # weekly: one client's days are mostly empty
        "risk_history": q(
            "SELECT assessed_at, score, at_risk, signal_codes FROM client_risk_history FINAL "
            "WHERE client_id = {client_id:String} ORDER BY assessed_at",
            param,
        ),
        "alerts": alerts,
        "complaints": q(
            "SELECT complaint_id, category, severity, opened_at, response_hours, response_target_hours, "
            "response_breached, resolution_hours, resolution_target_hours, resolution_breached, status "
            "FROM v_complaint_sla WHERE client_id = {client_id:String} ORDER BY opened_at DESC LIMIT 25",
            param,
        ),
        "tier_history": q(
            "SELECT changed_at, old_tier, new_tier, revenue_90d FROM client_tier_history "
            "WHERE client_id = {client_id:String} ORDER BY changed_at",
            param,
        ),
    }


def _from_first_activity(days: list[Row]) -> list[Row]:
    """A client's days from its first activity on (an onboarded client's empty months are no trend),
    keeping at least the card windows."""
    first = next((i for i, r in enumerate(days) if any(r[k] for k in _SUM_FIELDS)), len(days))
    return days[max(0, min(first, len(days) - 2 * CARD_DAYS)) :]


def _tier_rank(tier: str | None) -> int:
    return TIERS.index(tier) if tier in TIERS else len(TIERS)


# ------------------------------------------------------------------ serving


SECURITY_HEADERS = {
    # The browser may fetch nothing at all: inline styles and SVG only, forms only to this server.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class Reply:
    status: int
    body: str
    content_type: str = "text/html"
    headers: dict[str, str] = field(default_factory=lambda: dict(SECURITY_HEADERS))


class Dashboard:
    """The pages over one read-only client. Every call into ClickHouse runs on `executor`: chdb wants
    one thread, and in the worker that thread is the one that already owns the writer's client."""

    def __init__(
        self, dsn: str | Mapping[str, Any], database: str, executor: Callable[[], Executor | None], base: str = ""
    ) -> None:
        self.dsn, self.database, self.base = dsn, database, base.rstrip("/")
        self._executor = executor
        self._client: Client | None = None

    def open(self) -> Query:
        if self._client is None:
            self._client = open_checked(self.dsn, self.database)
        return reader(self._client)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _run(self, build: Callable[[Query], Reply]) -> Reply:
        executor = self._executor()
        if executor is None:
            return Reply(503, pages.message_page("Starting · 启动中", "ClickHouse is not open yet.", self.base))
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, lambda: build(self.open()))
        except NotReady as exc:
            return Reply(503, pages.message_page("Not ready · 未就绪", str(exc), self.base))
        except Exception as exc:  # a page must say what failed, not hang up
            log.exception("dashboard page failed")
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return Reply(500, pages.message_page("Error · 出错", text, self.base))

    async def overview(self, window: str | None) -> Reply:
        days = int(window) if window in {str(w) for w in WINDOWS} else 90
        return await self._run(lambda q: Reply(200, pages.overview_page(overview_data(q, days), self.base)))

    async def client(self, client_id: str) -> Reply:
        def build(q: Query) -> Reply:
            data = client_data(q, client_id)
            if data is None:
                return Reply(404, pages.message_page("Not found · 未找到", f"No client {client_id!r}.", self.base))
            return Reply(200, pages.client_page(data, self.base))

        return await self._run(build)

    async def api_overview(self, window: str | None) -> Reply:
        days = int(window) if window in {str(w) for w in WINDOWS} else 90
        return await self._run(lambda q: _json(overview_data(q, days)))

    async def api_client(self, client_id: str) -> Reply:
        def build(q: Query) -> Reply:
            data = client_data(q, client_id)
            return _json(data) if data is not None else _json({"error": f"no client {client_id!r}"}, 404)

        return await self._run(build)

    def find(self, client_id: str | None) -> Reply:
        """The search box: redirect to the client's page."""
        target = f"{self.base}/client/{quote(client_id.strip(), safe='')}" if client_id else f"{self.base}/"
        return Reply(302, "", headers={**SECURITY_HEADERS, "Location": target})


def _json(data: Any, status: int = 200) -> Reply:
    body = orjson.dumps(data, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    return Reply(status, body, content_type="application/json")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(type(value).__name__)


# ------------------------------------------------------------------ adapter 1: aiohttp in this process


def aiohttp_app(dashboard: Dashboard) -> Any:
    from aiohttp import web

    def respond(reply: Reply) -> web.Response:
        return web.Response(
            status=reply.status, text=reply.body, content_type=reply.content_type, headers=reply.headers
        )

    async def overview(request: web.Request) -> web.Response:
        return respond(await dashboard.overview(request.query.get("days")))

    async def client(request: web.Request) -> web.Response:
        return respond(await dashboard.client(request.match_info["client_id"]))

    async def find(request: web.Request) -> web.Response:
        return respond(dashboard.find(request.query.get("id")))

    async def api_overview(request: web.Request) -> web.Response:
        return respond(await dashboard.api_overview(request.query.get("days")))

    async def api_client(request: web.Request) -> web.Response:
        return respond(await dashboard.api_client(request.match_info["client_id"]))

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    b = dashboard.base
    app.router.add_get(f"{b}/", overview)
    app.router.add_get(f"{b}/client", find)
    app.router.add_get(f"{b}/client/{{client_id}}", client)
    app.router.add_get(f"{b}/api/overview", api_overview)
    app.router.add_get(f"{b}/api/client/{{client_id}}", api_client)
    app.router.add_get("/healthz", health)
    return app


async def serve_until_stopped(
    dashboard: Dashboard, host: str, port: int, on_ready: Callable[[str], None], stop: asyncio.Event | None = None
) -> None:
    """Serve until SIGINT/SIGTERM (or `stop`); `on_ready` gets the URL once the socket is bound."""
    import signal

    from aiohttp import web

    runner = web.AppRunner(aiohttp_app(dashboard), access_log=None)
    await runner.setup()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]  # the real port when 0 asked for any free one
        shown = f"[{host}]" if ":" in host else host
        on_ready(f"http://{shown}:{bound}{dashboard.base}/")
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()


def serve(dsn: str | Mapping[str, Any], database: str, host: str, port: int, on_ready: Callable[[str], None]) -> None:
    """Blocking: the dashboard on host:port until Ctrl-C or SIGTERM."""
    executor = ThreadPoolExecutor(1, thread_name_prefix="clickhouse")
    dashboard = Dashboard(dsn, database, lambda: executor)
    try:
        executor.submit(dashboard.open).result()  # a locked or empty data dir fails here, not on the first page
        asyncio.run(serve_until_stopped(dashboard, host, port, on_ready))
    finally:
        executor.submit(dashboard.close).result()
        executor.shutdown()


# ------------------------------------------------------------------ adapter 2: the worker's faust web server


DASHBOARD_PATH = "/dashboard"


def mount_on_faust(
    app: Any, dsn: str | Mapping[str, Any], database: str, executor: Callable[[], Executor | None]
) -> Dashboard:
    """Routes under /dashboard/ on faust's web server (its own routes, e.g. the GET / health check, stay)."""
    from faust import web

    dashboard = Dashboard(dsn, database, executor, base=DASHBOARD_PATH)

    def respond(view: web.View, reply: Reply) -> Any:
        return view.text(reply.body, content_type=reply.content_type, status=reply.status, headers=reply.headers)

    @app.page(f"{DASHBOARD_PATH}/", name="dashboard_overview")
    class Overview(web.View):
        async def get(self, request: web.Request) -> Any:
            return respond(self, await dashboard.overview(request.query.get("days")))

    @app.page(f"{DASHBOARD_PATH}/client", name="dashboard_find")
    class Find(web.View):
        async def get(self, request: web.Request) -> Any:
            return respond(self, dashboard.find(request.query.get("id")))

    @app.page(f"{DASHBOARD_PATH}/client/{{client_id}}", name="dashboard_client")
    class ClientPage(web.View):
        async def get(self, request: web.Request, client_id: str) -> Any:
            return respond(self, await dashboard.client(client_id))

    @app.page(f"{DASHBOARD_PATH}/api/overview", name="dashboard_api_overview")
    class ApiOverview(web.View):
        async def get(self, request: web.Request) -> Any:
            return respond(self, await dashboard.api_overview(request.query.get("days")))

    @app.page(f"{DASHBOARD_PATH}/api/client/{{client_id}}", name="dashboard_api_client")
    class ApiClient(web.View):
        async def get(self, request: web.Request, client_id: str) -> Any:
            return respond(self, await dashboard.api_client(client_id))

    return dashboard
