"""`clientpulse alerts`: consume the alerts topic and deliver each alert to a webhook, a JSONL file or stdout."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from clientpulse.security import kafka_python_config
from schemas.alerts import AlertKind, Severity

if TYPE_CHECKING:
    # Not imported at run time: clientpulse.cli imports this module (and may be running as __main__).
    from clientpulse.cli import Context


def _parse_headers(values: tuple[str, ...]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected 'Name: value', got {value!r}", param_hint="--header")
        headers[name.strip()] = content.strip()
    return headers


@click.command()
@click.option("--webhook", metavar="URL", help="POST each alert as JSON to this http(s) URL.")
@click.option("--jsonl", type=click.Path(dir_okay=False, path_type=Path), help="Append each alert as a JSON line.")
@click.option("--stdout", "to_stdout", is_flag=True, help="Print alerts for people (the default target).")
@click.option("--min-severity", type=click.Choice([s.value for s in Severity]), help="Drop less severe alerts.")
@click.option("--tier", "tiers", multiple=True, help="Only clients of this tier (repeatable), e.g. key.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice([k.value for k in AlertKind]), help="Repeatable.")
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True, help="Language of --stdout.")
@click.option("--group", help="Consumer group (default clientpulse-alerts-<webhook|jsonl|stdout>).")
@click.option(
    "--dead-letter",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Undeliverable alerts and unparseable messages (default <data dir>/alerts/dead-letter.jsonl).",
)
@click.option("--max-attempts", type=click.IntRange(1, 100), default=5, show_default=True, help="Webhook attempts.")
@click.option("--header", "headers", multiple=True, metavar="'NAME: VALUE'", help="Extra webhook header (repeatable).")
@click.option(
    "--idle-exit", type=click.FloatRange(0, min_open=True), metavar="SECONDS", help="Exit when idle this long."
)
@click.option("--max-alerts", type=click.IntRange(1), metavar="N", help="Exit after N alerts were delivered.")
@click.pass_obj
def alerts(
    ctx: Context,
    webhook: str | None,
    jsonl: Path | None,
    to_stdout: bool,
    min_severity: str | None,
    tiers: tuple[str, ...],
    kinds: tuple[str, ...],
    lang: str,
    group: str | None,
    dead_letter: Path | None,
    max_attempts: int,
    headers: tuple[str, ...],
    idle_exit: float | None,
    max_alerts: int | None,
) -> None:
    """Deliver alerts from the alerts topic (at-least-once; receivers dedupe on the Idempotency-Key)."""
    from producers.admin import TopicLayoutError, create_topics
    from sinks.alert_consumer import ConsumerOptions, consume_alerts, default_group
    from sinks.alert_delivery import (
        AlertFilter,
        AlertTarget,
        ConsoleTarget,
        DeadLetterFile,
        FilteredTarget,
        JsonlTarget,
        WebhookTarget,
        check_webhook_url,
    )

    chosen = [name for name, given in (("webhook", webhook), ("jsonl", jsonl), ("stdout", to_stdout)) if given]
    if len(chosen) > 1:
        raise click.UsageError("give only one of --webhook URL, --jsonl PATH or --stdout")
    kind = chosen[0] if chosen else "stdout"
    if webhook is not None:
        try:
            check_webhook_url(webhook)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--webhook") from None
    extra_headers = _parse_headers(headers)

    s = ctx.settings
    dead_letters = DeadLetterFile(dead_letter or s.data_dir / "alerts" / "dead-letter.jsonl")
    target: AlertTarget
    if webhook is not None:
        target = WebhookTarget(webhook, dead_letters, max_attempts=max_attempts, headers=extra_headers)
    elif jsonl is not None:
        target = JsonlTarget(jsonl)
    else:
        target = ConsoleTarget(sys.stdout, lang="zh" if lang == "zh" else "en")
    alert_filter = AlertFilter(
        min_severity=Severity(min_severity) if min_severity else None,
        tiers=frozenset(tiers) or None,
        kinds=frozenset(AlertKind(k) for k in kinds) or None,
    )
    options = ConsumerOptions(
        bootstrap=s.kafka_bootstrap,
        group=group or default_group(kind),
        idle_exit_seconds=idle_exit,
        max_alerts=max_alerts,
        client_config=kafka_python_config(s),
    )
    # Like the worker, safe to start alone: the alerts topic exists before we subscribe. The inbound
    # topics' partition layout is the worker's concern, so a mismatch there does not stop alert delivery.
    with contextlib.suppress(TopicLayoutError):
        create_topics(s.kafka_bootstrap, s.partitions, s.replication_factor, **kafka_python_config(s))
    try:
        counts = consume_alerts(FilteredTarget(target, alert_filter), options, dead_letters)
    finally:
        target.close()
    click.echo(f"alerts ({options.group}): {counts.summary()}", err=True)
