"""`clientpulse` command line. Reads settings once, then hands them to the adapters."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import click

from clientpulse.alerts_cli import alerts
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
    report = create_topics(s.kafka_bootstrap, s.partitions, s.replication_factor)
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
    applied = run(s.clickhouse_dsn, s.clickhouse_database)
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
    create_topics(s.kafka_bootstrap, s.partitions, s.replication_factor)
    run_migrations(s.clickhouse_dsn, s.clickhouse_database)
    run_worker(s)


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

        with Publisher(ctx.settings.kafka_bootstrap) as pub:
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
    with Publisher(ctx.settings.kafka_bootstrap) as pub, Progress(*columns, console=err, transient=True) as bar:
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
    client = connect(s.clickhouse_dsn, s.clickhouse_database)
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
    client = connect(s.clickhouse_dsn, s.clickhouse_database)
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
@pass_ctx
def demo(ctx: Context, clients: int, days: int, seed: int, bad: int, as_json: bool) -> None:
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
    if not summary["accounted_for"]:
        sys.exit(1)


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
        message = str(exc).splitlines()[0] if str(exc) else ""
        click.echo(f"clientpulse: error: {type(exc).__name__}: {message}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
