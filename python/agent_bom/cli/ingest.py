"""``agent-bom ingest kafka``: consume CloudEvents into the tenant store."""

from __future__ import annotations

import typer
from rich.markup import escape

from agent_bom.cli._console import err_console
from agent_bom.cli._db import DATABASE, JSON, print_json, store
from agent_bom.errors import ConfigError

app = typer.Typer(
    help="Read events from a stream into the tenant store, through the same validation, "
    "authorization, redaction, idempotency and chaining as HTTP ingest.\n\n"
    "Example:  agent-bom ingest kafka --bootstrap 127.0.0.1:9092 --topic agent-bom.acme.posture "
    "--group ingest --collector col_…",
    no_args_is_help=True,
)


@app.command("kafka")
def kafka_cmd(
    topic: list[str] = typer.Option(..., "--topic", help="Topic(s) to read (repeatable)."),
    group: str = typer.Option(..., "--group", help="Consumer group: consumers share partitions."),
    collector_id: str = typer.Option(
        ..., "--collector", help="Collector whose tenant and scope the events are held to."
    ),
    bootstrap: str = typer.Option("127.0.0.1:9092", "--bootstrap", help="Kafka HOST:PORT."),
    batch: int = typer.Option(500, "--batch", min=1, help="Messages per store transaction."),
    idle_exit: float | None = typer.Option(
        None, "--idle-exit", help="Exit after this many seconds without a message."
    ),
    database: str | None = DATABASE,
    as_json: bool = JSON,
) -> None:
    """Consume CloudEvents (binary or structured) until SIGTERM; offsets are committed
    only after the store transaction commits (exactly once in the store by event id)."""
    from agent_bom.redaction import load_redactor
    from agent_bom.server.store import EventStore
    from agent_bom.sources.kafka import consume, stop_on_signals

    stop = stop_on_signals()
    with store(database) as s:
        events = EventStore(s)
        collector = events.collector(collector_id)
        if collector is None or not collector.enabled:
            raise ConfigError(f"--collector {collector_id}: no such enabled collector")

        def report(result: object, n: int) -> None:
            for e in getattr(result, "events", []):
                if e.status == "rejected":
                    err_console.print(
                        f"rejected ({escape(str(e.code))}): {escape(str(e.reason))}",
                        highlight=False,
                    )

        stats = consume(
            events,
            collector,
            bootstrap=bootstrap,
            topics=topic,
            group=group,
            redactor=load_redactor(),
            batch=batch,
            idle_exit=idle_exit,
            stop=stop,
            on_batch=report,
        )
    if as_json:
        print_json(stats.__dict__)
    else:
        err_console.print(
            f"{stats.messages} messages: {stats.accepted} stored, {stats.duplicates} already "
            f"stored, {stats.rejected} rejected",
            highlight=False,
        )
