"""`clientpulse` command line. Reads settings once, then hands them to the adapters."""

from __future__ import annotations

import csv
import io
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from clientpulse.alerts_cli import alerts
from clientpulse.security import clickhouse_connect_kwargs, kafka_python_config, settings_error_line
from clientpulse.settings import Settings


class Context:
    def __init__(self, **overrides: Any) -> None:
        self.overrides = {k: v for k, v in overrides.items() if v is not None}
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings(**self.overrides)
        return self._settings

    def use_data_dir(self, data_dir: Path | None) -> None:
        """A command's own --data-dir (same meaning as the global option, accepted after the command too)."""
        if data_dir is not None:
            self.overrides["data_dir"] = data_dir
            self._settings = None


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", type=click.Path(path_type=Path), help="Embedded state (env CLIENTPULSE_DATA_DIR).")
@click.option("--kafka-bootstrap", help="Kafka bootstrap servers (env CLIENTPULSE_KAFKA_BOOTSTRAP).")
@click.option(
    "--clickhouse-dsn", help="chdb://PATH or http(s)://user:pass@host:8123/db (env CLIENTPULSE_CLICKHOUSE_DSN)."
)
@click.version_option(package_name="clientpulse")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, kafka_bootstrap: str | None, clickhouse_dsn: str | None) -> None:
    """clientpulse: live client 360 profiles, tiers and churn warnings for a 3PL."""
    ctx.obj = Context(data_dir=data_dir, kafka_bootstrap=kafka_bootstrap, clickhouse_dsn=clickhouse_dsn)


# ------------------------------------------------------------------ broker, topics, migrations


@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Loopback port (default: from bootstrap).")
@pass_ctx
def broker(ctx: Context, port: int | None) -> None:
    """Run the local Kafka-protocol broker (tansu, memory storage) on loopback, in the foreground."""
    from clientpulse.broker import LocalBroker

    if port is None:
        port = int(ctx.settings.kafka_bootstrap.rsplit(":", 1)[-1])
    b = LocalBroker(port).start()
    click.echo(f"tansu broker on {b.bootstrap} (memory storage; Ctrl-C stops it and loses all topics)")
    try:
        assert b.process is not None
        b.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        b.stop()


@cli.group()
def topics() -> None:
    """Kafka topics of the registry."""


@topics.command("create")
@pass_ctx
def topics_create(ctx: Context) -> None:
    """Create the registry's topics (idempotent) on the configured broker."""
    from producers.admin import create_topics

    s = ctx.settings
    report = create_topics(s.kafka_bootstrap, s.partitions, s.replication_factor, **kafka_python_config(s))
    for name in report.created:
        click.echo(f"created  {name}")
    for name in report.existing:
        click.echo(f"exists   {name}")


@topics.command("list")
def topics_list() -> None:
    """Print the topic registry."""
    from schemas.topics import ALL_TOPICS

    for t in ALL_TOPICS:
        configs = ",".join(f"{k}={v}" for k, v in t.configs.items())
        click.echo(f"{t.name:34} {t.purpose}{'  [' + configs + ']' if configs else ''}")


@cli.command()
@pass_ctx
def migrate(ctx: Context) -> None:
    """Apply pending ClickHouse migrations (idempotent)."""
    from sinks.clickhouse import migrate as run

    s = ctx.settings
    applied = run(clickhouse_connect_kwargs(s), s.clickhouse_database)
    click.echo(f"applied migrations: {applied}" if applied else "schema is up to date")


# ------------------------------------------------------------------ worker


@cli.command()
@pass_ctx
def worker(ctx: Context) -> None:
    """Run the stream worker (faust) in the foreground."""
    from producers.admin import create_topics
    from sinks.clickhouse import migrate as run_migrations
    from streams.worker import run_worker

    s = ctx.settings
    _stop_cleanly_until_the_worker_runs()
    create_topics(s.kafka_bootstrap, s.partitions, s.replication_factor, **kafka_python_config(s))
    _wait_for_clickhouse(lambda: run_migrations(clickhouse_connect_kwargs(s), s.clickhouse_database))
    if s.embedded_clickhouse and s.worker_web_port:
        click.echo(f"dashboard: http://127.0.0.1:{s.worker_web_port}/dashboard/  (read-only, while the worker runs)",
                   err=True)  # fmt: skip
    run_worker(s)


def _wait_for_clickhouse(migrate: Callable[[], object], max_backoff: float = 30.0) -> None:
    """A ClickHouse server that is down when the worker starts is waited for (nothing is consumed
    meanwhile); an SQL error in a migration is not a connection problem and stops the worker."""
    from clickhouse_connect.driver.exceptions import OperationalError

    delay = 0.5
    while True:
        try:
            migrate()
            return
        except OperationalError as exc:  # type name only: the message may carry the server address
            why = type(exc).__name__
            click.echo(f"clientpulse: ClickHouse unreachable ({why}); retrying in {delay:.1f}s", err=True)
            time.sleep(delay)
            delay = min(delay * 2, max_backoff)


def _stop_cleanly_until_the_worker_runs() -> None:
    """SIGTERM/SIGINT while topics, migrations or ClickHouse are still being set up: nothing has been
    consumed, so exit 0 at once. The faust worker installs its own handlers (flush, commit) later."""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)


# ------------------------------------------------------------------ schemas


@cli.group()
def schema() -> None:
    """The event contract."""


@schema.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def schema_export(directory: Path) -> None:
    """Write one JSON Schema per event type into DIRECTORY."""
    from schemas.export import export

    for path in export(directory):
        click.echo(str(path))


# ------------------------------------------------------------------ producing


@cli.command()
@click.option("--clients", type=click.IntRange(1, 1_000_000), default=200, show_default=True)
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First day (default 2025-01-01).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write JSONL here ('-' = stdout).")
@click.option("--publish", is_flag=True, help="Publish to Kafka instead of writing a file.")
@click.option("--labels", type=click.Path(dir_okay=False, path_type=Path), help="Write ground-truth labels (JSON).")
@pass_ctx
def generate(
    ctx: Context, clients: int, days: int, seed: int, start: Any, out: Path | None, publish: bool, labels: Path | None
) -> None:
    """Generate a deterministic synthetic 3PL history (orders, deliveries, complaints, feedback, churn)."""
    from producers.generator import generate as make_history

    if bool(out) == publish:
        raise click.UsageError("give exactly one of --out PATH or --publish")
    history = make_history(clients=clients, days=days, seed=seed, start=start.date() if start else None)
    if labels:
        labels.write_text(json.dumps([lab.to_json() for lab in history.labels], indent=1) + "\n")
    if publish:
        from producers.publisher import Publisher

        with Publisher(ctx.settings.kafka_bootstrap, **kafka_python_config(ctx.settings)) as pub:
            for e in history.events:
                pub.publish_validated(e)
        click.echo(f"published {len(history.events)} events to {ctx.settings.kafka_bootstrap}", err=True)
    else:
        assert out is not None
        stream = sys.stdout if str(out) == "-" else out.open("w", encoding="utf-8")
        try:
            for e in history.events:
                stream.write(e.model_dump_json() + "\n")
        finally:
            if stream is not sys.stdout:
                stream.close()
        click.echo(f"wrote {len(history.events)} events to {out}", err=True)


@cli.command()
@click.argument("path")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default=None, help="Default: from extension.")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False), help="CSV column mapping (JSON/TOML).")
@click.option("--skip-invalid", is_flag=True, help="Exit 0 even if some lines were invalid (they are still skipped).")
@pass_ctx
def publish(ctx: Context, path: str, fmt: str | None, mapping: str | None, skip_invalid: bool) -> None:
    """Validate and publish events from a JSONL or CSV file (PATH, or - for stdin)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from producers.files import detect_format, load_mapping, read_events
    from producers.publisher import Publisher

    if path != "-" and not Path(path).is_file():
        raise click.BadParameter(f"no such file: {path}", param_hint="PATH")
    try:
        fmt = fmt or detect_format(path)
        csv_mapping = load_mapping(mapping) if mapping else None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if fmt == "csv" and csv_mapping is None:
        raise click.UsageError("CSV input needs --mapping FILE (which column is which field)")
    err = Console(stderr=True)
    total = None if path == "-" else _count_lines(Path(path))
    sent = invalid = 0
    columns = (TextColumn("publishing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with (
        Publisher(ctx.settings.kafka_bootstrap, **kafka_python_config(ctx.settings)) as pub,
        Progress(*columns, console=err, transient=True) as bar,
    ):
        task = bar.add_task("lines", total=total)
        for result in read_events(path, fmt, csv_mapping):
            if result.event is None:
                invalid += 1
                err.print(f"line {result.line}: {result.error}", markup=False, highlight=False)
            else:
                e = result.event
                pub.publish_validated(e)
                sent += 1
            bar.update(task, completed=result.line)
    click.echo(f"published {sent} event(s); {invalid} invalid line(s) not sent", err=True)
    if invalid and not skip_invalid:
        sys.exit(1)


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


# ------------------------------------------------------------------ querying


@cli.command()
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@pass_ctx
def sql(ctx: Context, query: str, fmt: str) -> None:
    """Run a read-only SQL query against the configured ClickHouse and print the result."""
    from sinks.clickhouse import connect, query_readonly

    s = ctx.settings
    client = connect(clickhouse_connect_kwargs(s), s.clickhouse_database)
    try:
        columns, rows = query_readonly(client, query)
    finally:
        client.close()
    click.echo(render(columns, rows, fmt), nl=False)


def render(columns: list[str], rows: list[list[Any]], fmt: str) -> str:
    if fmt == "json":
        import orjson

        records = [dict(zip(columns, row, strict=True)) for row in rows]
        return orjson.dumps(records, default=str, option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        writer.writerows(rows)
        return buf.getvalue()
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console = Console(file=io.StringIO(), width=200, force_terminal=False)
    console.print(table)
    console.print(f"{len(rows)} row(s)")
    return console.file.getvalue()  # type: ignore[attr-defined]


@cli.command()
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True, help="Print the profile as one JSON object.")
@pass_ctx
def profile(ctx: Context, client_id: str, as_json: bool) -> None:
    """Print one client's 360 profile (latest version in ClickHouse)."""
    from sinks.clickhouse import connect, query_readonly

    s = ctx.settings
    client = connect(clickhouse_connect_kwargs(s), s.clickhouse_database)
    try:
        columns, rows = query_readonly(
            client, "SELECT * FROM client_profiles WHERE client_id = {client_id:String}", {"client_id": client_id}
        )
    finally:
        client.close()
    if not rows:
        raise click.ClickException(f"no profile for client {client_id!r}")
    record = dict(zip(columns, rows[0], strict=True))
    if as_json:
        import orjson

        click.echo(orjson.dumps(record, default=str).decode())
        return
    click.echo(render_profile(record), nl=False)


PROFILE_SECTIONS: dict[str, tuple[str, ...]] = {
    "client": ("client_id", "name", "industry", "region", "account_manager", "contract_start", "contract_end",
               "tier", "abc_class", "version", "last_event_at"),
    "orders": ("orders_30d", "orders_90d", "orders_365d", "orders_lifetime", "revenue_30d", "revenue_90d",
               "revenue_365d", "revenue_lifetime", "cancelled_90d", "first_order_at", "last_order_at",
               "typical_gap_days", "order_trend"),
    "deliveries": ("deliveries_30d", "deliveries_90d", "on_time_rate_30d", "on_time_rate_90d", "intact_rate_30d",
                   "intact_rate_90d", "failed_90d", "temperature_excursions_90d"),
    "complaints": ("complaints_30d", "complaints_90d", "complaints_open", "complaints_by_category_90d",
                   "resolution_hours_mean_90d", "resolution_hours_p90_90d", "reopened_90d"),
    "feedback": ("csat_latest", "csat_mean_90d", "nps_latest", "nps_score_90d", "revisit_outcome_latest"),
}  # fmt: skip


def render_profile(record: dict[str, Any]) -> str:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=io.StringIO(), width=100, force_terminal=False)
    for section, names in PROFILE_SECTIONS.items():
        table = Table("", "", title=section, show_header=False, title_justify="left")
        for name in names:
            value = record.get(name)
            if isinstance(value, float):
                value = f"{value:.3f}"
            table.add_row(name, "" if value is None else str(value))
        console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


# ------------------------------------------------------------------ the main job


@cli.command()
@click.option("--clients", type=click.IntRange(1, 100_000), default=200, show_default=True)
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--bad", type=click.IntRange(0, 100_000), default=12, show_default=True,
              help="Malformed records injected to show the dead-letter path.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--serve", is_flag=True, help="Afterwards keep the dashboard up on loopback until Ctrl-C.")
@click.option("--dashboard-port", type=click.IntRange(0, 65535), default=None,
              help="Port for --serve (default CLIENTPULSE_DASHBOARD_PORT, 8050; 0 = any free port).")  # fmt: skip
@pass_ctx
def demo(
    ctx: Context, clients: int, days: int, seed: int, bad: int, as_json: bool, serve: bool, dashboard_port: int | None
) -> None:
    """Run everything embedded: broker, topics, ClickHouse, worker, synthetic history, summary."""
    from clientpulse.demo import DemoError, print_summary, run_demo

    try:
        summary = run_demo(ctx.settings, clients=clients, days=days, seed=seed, bad=bad, quiet=as_json)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(summary, default=str))
    else:
        print_summary(summary)
    if serve:
        # the worker has stopped, so this process may open chdb now; the URL goes where the summary went
        _serve_dashboard(ctx.settings, None, dashboard_port, url_to_stderr=as_json)
    if not summary["accounted_for"]:
        sys.exit(1)


# ------------------------------------------------------------------ dashboard and report


@cli.command()
@click.option("--host", default=None, help="Listen address (default CLIENTPULSE_DASHBOARD_HOST, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port (default CLIENTPULSE_DASHBOARD_PORT, 8050; 0 = any free port).")  # fmt: skip
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Same as the global option.")
@pass_ctx
def dashboard(ctx: Context, host: str | None, port: int | None, data_dir: Path | None) -> None:
    """Serve the read-only dashboard over existing data (a running worker serves it at /dashboard/ itself)."""
    ctx.use_data_dir(data_dir)
    _serve_dashboard(ctx.settings, host, port, url_to_stderr=False)


def _serve_dashboard(s: Settings, host: str | None, port: int | None, *, url_to_stderr: bool) -> None:
    from clientpulse.dashboard import NotReady, serve

    def ready(url: str) -> None:
        click.echo(f"dashboard: {url}  (read-only; Ctrl-C stops it)", err=url_to_stderr)

    try:
        serve(clickhouse_connect_kwargs(s), s.clickhouse_database, host or s.dashboard_host, _port(port, s), ready)
    except NotReady as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host or s.dashboard_host}:{_port(port, s)}: {exc.strerror}"
        ) from None


def _port(port: int | None, s: Settings) -> int:
    return s.dashboard_port if port is None else port


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default=None,
              help="Default: from the --out extension (.md or .html).")  # fmt: skip
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the report ('-' = stdout).")  # fmt: skip
@click.option("--top", type=click.IntRange(1, 200), default=10, show_default=True, help="Risks to list.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Same as the global option.")
@pass_ctx
def report(ctx: Context, fmt: str | None, out: Path, top: int, data_dir: Path | None) -> None:
    """Write a self-contained management report (tier mix, KPI trends, top risks, complaint SLAs)."""
    from clientpulse.dashboard import NotReady, open_checked, reader
    from clientpulse.report import build_report

    ctx.use_data_dir(data_dir)
    to_stdout = str(out) == "-"
    fmt = fmt or {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html"}.get(out.suffix.lower())
    if fmt is None:
        raise click.UsageError("give --format md|html (the --out name does not end in .md or .html)")
    if not to_stdout and not out.parent.is_dir():
        raise click.BadParameter(f"no such directory: {out.parent}", param_hint="--out")
    s = ctx.settings
    try:
        client = open_checked(clickhouse_connect_kwargs(s), s.clickhouse_database)
    except NotReady as exc:
        raise click.ClickException(str(exc)) from None
    try:
        text = build_report(reader(client), fmt, top=top)
    finally:
        client.close()
    if to_stdout:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {fmt} report to {out}", err=True)


@cli.command()
@click.option("--clients", type=click.IntRange(10, 100_000), default=200, show_default=True)
@click.option("--days", type=click.IntRange(30, 3650), default=365, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--orders-only", is_flag=True, help="Keep only order events (as from a CSV order export).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@click.pass_obj
def evaluate(ctx: Context, clients: int, days: int, seed: int, orders_only: bool, as_json: bool) -> None:
    """Replay a generated history through the churn rules and score the alerts against its labels."""
    from clientpulse.evaluate import evaluate as run_evaluation

    quality = run_evaluation(
        clients, days, seed, ctx.settings.risk_config, ctx.settings.tiers, orders_only=orders_only
    ).to_json()
    if as_json:
        click.echo(json.dumps(quality, indent=1))
        return
    for key in (
        "events", "churners", "detected", "flagged_clients", "precision", "recall", "median_lead_days",
        "seasonal_clients", "seasonal_flagged_share", "false_alerts_per_100_month",
        "churn_alerts", "sla_alerts", "downgrade_alerts",
    ):  # fmt: skip
        click.echo(f"{key:28} {quality[key]}")
    click.echo(f"{'missed churners':28} {', '.join(quality['missed']) or '-'}")
    click.echo(f"{'false positives':28} {', '.join(quality['false_positives']) or '-'}")


# ------------------------------------------------------------------ operations (docs/operations.md)


def _ops(action: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a clientpulse.ops function; its expected failures become the one-line error."""
    from clientpulse.ops import OpsError

    try:
        return action(*args, **kwargs)
    except OpsError as exc:
        raise click.ClickException(str(exc)) from None


@cli.group("dead-letters")
def dead_letters() -> None:
    """The dead-letter topic: count its records, redrive them after a fix."""


@dead_letters.command("list")
@click.option("--reason", default=None, help="Only this reason code (e.g. schema_violation).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@pass_ctx
def dead_letters_list(ctx: Context, reason: str | None, fmt: str) -> None:
    """Count the dead-letter topic's records by reason and origin topic, and those not yet redriven."""
    from clientpulse.ops import count_dead_letters

    counts = _ops(count_dead_letters, ctx.settings, reason)
    rows = [[c.reason, c.origin_topic, c.records, c.not_redriven] for c in counts]
    click.echo(render(["reason", "origin_topic", "records", "not_redriven"], rows, fmt), nl=False)


@dead_letters.command("redrive")
@click.option("--reason", "reasons", multiple=True, help="Only this reason code; repeatable (default: every reason).")
@click.option("--dry-run", is_flag=True, help="Count what would be redriven; publish and commit nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
@pass_ctx
def dead_letters_redrive(ctx: Context, reasons: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Re-publish dead letters (original key and bytes) to their original topics, each once per reason group."""
    from clientpulse.ops import redrive

    report = _ops(redrive, ctx.settings, reasons, dry_run=dry_run)
    for letter in report.no_origin:
        click.echo(f"skipped {letter.position} ({letter.reason}): no inbound origin topic ({letter.origin_topic})",
                   err=True)  # fmt: skip
    total, already = sum(report.redriven.values()), sum(report.already.values())
    if as_json:
        by_reason: dict[str, dict[str, int]] = {}
        for (reason, topic), n in sorted(report.redriven.items()):
            by_reason.setdefault(reason, {})[topic] = n
        click.echo(json.dumps({"redriven": by_reason, "already_redriven": dict(report.already), "dry_run": dry_run,
                               "not_selected": report.not_selected, "duplicates": report.duplicates,
                               "no_origin": len(report.no_origin)}))  # fmt: skip
        return
    verb = "would redrive" if dry_run else "redriven"
    for (reason, topic), n in sorted(report.redriven.items()):
        click.echo(f"{verb:14} {reason:24} {topic:30} {n}")
    click.echo(f"{'would redrive' if dry_run else 'redrove'} {total} dead letter(s); {already} redriven by an "
               f"earlier run; {report.duplicates} duplicate copies skipped; {report.not_selected} of other reasons "
               "left alone"
               + ("; dry run: nothing published or committed" if dry_run else ""), err=True)  # fmt: skip


@cli.group()
def offsets() -> None:
    """The worker group's offsets on the inbound topics: show them, reset them to replay."""


@offsets.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print them as one JSON object.")
@pass_ctx
def offsets_show(ctx: Context, as_json: bool) -> None:
    """Committed offset, end offset and lag of the worker group on every inbound partition."""
    from clientpulse.ops import show_offsets

    view = _ops(show_offsets, ctx.settings)
    if as_json:
        parts = [{"topic": p.topic, "partition": p.partition, "beginning": p.beginning, "committed": p.committed,
                  "end": p.end, "lag": p.lag} for p in view.partitions]  # fmt: skip
        click.echo(json.dumps({"group": view.group, "state": view.state.state, "members": list(view.state.members),
                               "partitions": parts}))  # fmt: skip
        return
    click.echo(f"group {view.group}: {view.state.state}, {len(view.state.members)} member(s)")
    for member in view.state.members:
        click.echo(f"  member {member}")
    rows = [[p.topic, p.partition, "-" if p.committed is None else p.committed, p.end, p.lag] for p in view.partitions]
    click.echo(render(["topic", "partition", "committed", "end", "lag"], rows, "table"), nl=False)


@offsets.command("reset")
@click.option("--to", "to", required=True, metavar="earliest|DATETIME",
              help="earliest, or an ISO-8601 instant with a timezone (Kafka record time = publish time).")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Show the new offsets; commit nothing.")
@pass_ctx
def offsets_reset(ctx: Context, to: str, dry_run: bool) -> None:
    """Move the worker group's offsets so the next start replays the inbound topics (stop every worker first)."""
    from clientpulse.ops import parse_target, reset_offsets

    try:
        target = parse_target(to)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from None
    changes = _ops(reset_offsets, ctx.settings, target, dry_run=dry_run)
    rows = [[c.topic, c.partition, "-" if c.old is None else c.old, c.new, c.end] for c in changes]
    click.echo(render(["topic", "partition", "committed", "new", "end"], rows, "table"), nl=False)
    replay = sum(c.end - c.new for c in changes)
    click.echo(f"{'dry run: would reset' if dry_run else 'reset'} group {ctx.settings.app_id} on {len(changes)} "
               f"partition(s); the next worker start reads {replay} record(s)", err=True)  # fmt: skip


@cli.command()
@click.option("--profiles", is_flag=True, help="Client profiles and churn-risk state, from the inbound events.")
@click.option("--allow-missing-history", is_flag=True, help="Rebuild even if retention deleted old inbound events.")
@pass_ctx
def rebuild(ctx: Context, profiles: bool, allow_missing_history: bool) -> None:
    """Rebuild worker state from the inbound topics (stop every worker first)."""
    from clientpulse.ops import rebuild_profiles

    if not profiles:
        raise click.UsageError("say what to rebuild: --profiles")
    done = _ops(rebuild_profiles, ctx.settings, allow_missing_history=allow_missing_history)
    click.echo(f"reset group     {ctx.settings.app_id} to earliest on {len(done.offsets)} partition(s)")
    for topic in done.deleted_topics:
        click.echo(f"deleted topic   {topic}")
    if done.removed_dir is not None:
        click.echo(f"removed         {done.removed_dir}")
    replay = sum(c.end - c.new for c in done.offsets)
    click.echo(f"start the worker: it re-reads {replay} inbound record(s) and rebuilds every profile", err=True)


cli.add_command(alerts)


def main(argv: list[str] | None = None) -> None:
    """Entry point: click errors and expected failures become one line on stderr and a non-zero exit."""
    try:
        cli.main(args=argv, prog_name="clientpulse", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("clientpulse: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        hint = f" (try '{exc.ctx.command_path} --help')" if exc.ctx else ""
        click.echo(f"clientpulse: error: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"clientpulse: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code or 1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError) and exc.title == "Settings":  # name the variables, never their values
            click.echo(f"clientpulse: error: {settings_error_line(exc)}", err=True)
            sys.exit(2)
        message = str(exc).splitlines()[0] if str(exc) else ""
        click.echo(f"clientpulse: error: {type(exc).__name__}: {message}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
