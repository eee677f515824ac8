"""``agent-bom outbox enqueue | run | status | list | attempts | retry | recover``."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from pathlib import Path
from typing import BinaryIO

import typer
from rich.markup import escape
from rich.table import Table

from agent_bom.cli._console import err_console, out_console
from agent_bom.cli._db import DATABASE, JSON, iso, parse_time, print_json, store
from agent_bom.errors import AgentBomError, ConfigError
from agent_bom.outbox.model import EnqueueResult, OutboundEvent, Status
from agent_bom.outbox.policy import DEFAULT_SCHEDULE, RetryPolicy
from agent_bom.outbox.sqlite import SQLiteStore
from agent_bom.outbox.store import DEFAULT_RECOVER_CAP

app = typer.Typer(
    help=(
        "The transactional outbox: events are persisted for every matching destination "
        "before the first attempt, then delivered under a lease with retries and dead "
        "letters.\n\nExample:  agent-bom evidence stream events.ndjson --stream-id s1 | "
        "agent-bom outbox enqueue -  &&  agent-bom outbox run --once"
    ),
    no_args_is_help=True,
)

_ENQUEUE_BATCH = 1000
_LOG_LEVELS = ("debug", "info", "warning", "error")
_DEFAULT_SCHEDULE = ",".join(f"{d:g}s" for d in DEFAULT_SCHEDULE)


def _open_input(source: str) -> BinaryIO:
    if source == "-":
        return sys.stdin.buffer
    try:
        return Path(source).open("rb")
    except OSError as e:
        raise ConfigError(f"cannot read {source}: {e.strerror}") from None


@app.command("enqueue")
def enqueue_cmd(
    source: str = typer.Argument("-", help="CloudEvents NDJSON (evidence stream output) or -."),
    database: str | None = DATABASE,
    as_json: bool = JSON,
) -> None:
    """Enqueue each CloudEvent for every matching enabled destination of its tenant.

    Idempotent: an event already queued for a destination counts as a duplicate.
    Bad lines are reported with their line number and skipped; exit 3 if any."""
    total, rejected = EnqueueResult(), 0
    with store(database) as s, _open_input(source) as f:
        batch: list[OutboundEvent] = []
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                batch.append(OutboundEvent.from_cloudevent(line))
            except AgentBomError as e:
                rejected += 1
                err_console.print(f"line {lineno}: {escape(str(e))}", highlight=False)
                continue
            if len(batch) >= _ENQUEUE_BATCH:
                total += s.enqueue(batch)
                batch = []
        if batch:
            total += s.enqueue(batch)
    summary = {
        "events": total.events,
        "rows": total.rows,
        "duplicates": total.duplicates,
        "unmatched": total.unmatched,
        "rejected": rejected,
    }
    if as_json:
        print_json(summary)
    else:
        err_console.print(
            f"{total.events} events: {total.rows} rows queued, {total.duplicates} already "
            f"queued, {total.unmatched} matched no destination, {rejected} rejected",
            highlight=False,
        )
    if rejected:
        raise typer.Exit(3)


@app.command("run")
def run_cmd(
    once: bool = typer.Option(False, "--once", help="Deliver what is due now, then exit."),
    concurrency: int = typer.Option(
        8, "--concurrency", min=1, help="Requests in flight per destination."
    ),
    batch: int = typer.Option(128, "--batch", min=1, help="Rows leased at once."),
    timeout: float = typer.Option(15.0, "--timeout", min=0.1, help="Seconds per request."),
    lease: float = typer.Option(
        60.0, "--lease", help="Seconds a claimed row stays leased (must exceed --timeout)."
    ),
    retry_schedule: str = typer.Option(
        _DEFAULT_SCHEDULE, "--retry-schedule", help="Delays after each failure, e.g. 5s,5m,30m."
    ),
    jitter: float = typer.Option(0.2, "--jitter", help="Random spread of each delay (0.2 = ±20%)."),
    allow_private_networks: bool = typer.Option(
        False,
        "--allow-private-networks",
        help="Operator policy: let destinations that allow private networks reach them.",
    ),
    poll: float = typer.Option(0.5, "--poll", help="Seconds between polls when idle."),
    ca_bundle: Path | None = typer.Option(
        None, "--ca-bundle", help="PEM CA bundle for receivers behind a private CA."
    ),
    log_level: str = typer.Option(
        "info",
        "--log-level",
        help="What the worker logs to stderr as it runs: error (disabled destinations, "
        "stream errors), warning (also dead letters, open circuits, lost leases), info "
        "(also start and stop), debug (also every retry).",
    ),
    database: str | None = DATABASE,
    as_json: bool = JSON,
) -> None:
    """Deliver due rows until SIGTERM/SIGINT (or, with --once, until nothing is due).

    On SIGTERM the worker stops claiming, lets sends in flight finish and records
    them, and hands every other leased row back as pending. Log lines name rows,
    events and destinations, never payloads or credentials."""
    from agent_bom.connectors.webhook import WebhookConnector
    from agent_bom.outbox.worker import OutboxWorker

    if log_level.lower() not in _LOG_LEVELS:
        raise ConfigError(f"--log-level {log_level!r}: use one of {', '.join(_LOG_LEVELS)}")
    if lease <= timeout + 1:
        raise ConfigError(f"--lease {lease:g} must exceed --timeout {timeout:g} by more than 1s")
    _log_to_stderr(log_level)
    policy = RetryPolicy.parse(retry_schedule, jitter=jitter)
    if ca_bundle is not None and not ca_bundle.is_file():
        raise ConfigError(f"--ca-bundle {ca_bundle}: no such file")

    async def main() -> dict[str, int]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        webhook = WebhookConnector(
            timeout=timeout,
            allow_private_networks=allow_private_networks,
            verify=str(ca_bundle) if ca_bundle else "",
        )
        try:
            with store(database) as s:
                if isinstance(s, SQLiteStore):
                    s.checkpoint_in_background()
                worker = OutboxWorker(
                    s,
                    {"webhook": webhook},
                    policy=policy,
                    concurrency=concurrency,
                    batch=batch,
                    lease_seconds=lease,
                    poll_interval=poll,
                )
                stats = await worker.run(once=once, stop=stop)
        finally:
            await webhook.aclose()
        return dict(stats.__dict__)

    started = time.perf_counter()
    stats = asyncio.run(main())
    if as_json:
        print_json(stats)
    else:
        err_console.print(
            f"delivered {stats['delivered']}, retried {stats['retried']}, dead-lettered "
            f"{stats['dead_lettered']}, deferred {stats['deferred']}, released "
            f"{stats['released']} in {time.perf_counter() - started:.1f}s",
            highlight=False,
        )
        if stats["stream_errors"]:
            err_console.print(
                f"{stats['stream_errors']} stream(s) stopped on an error, retried once their "
                f"lease expires; last: {stats['last_error']}",
                highlight=False,
                markup=False,
            )


def _log_to_stderr(level: str) -> None:
    """The worker's log lines on stderr, timestamped in UTC."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logger = logging.getLogger("agent_bom.outbox")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


@app.command("status")
def status_cmd(
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant."),
    database: str | None = DATABASE,
    as_json: bool = JSON,
) -> None:
    """Rows per status and per destination, and how long the oldest due row has waited."""
    with store(database) as s:
        stats = s.stats(tenant)
    if as_json:
        print_json(stats)
        return
    statuses = [str(x) for x in Status]
    table = Table("destination", "tenant", "state", *statuses, "oldest due")
    for dest_id, d in stats["destinations"].items():
        oldest = d.get("oldest_due_seconds")
        table.add_row(
            dest_id,
            d.get("tenant_id", "?"),
            "enabled" if d.get("enabled", True) else f"disabled: {d.get('disabled_reason')}",
            *(str(d[x]) for x in statuses),
            "-" if oldest is None else f"{oldest:.0f}s",
        )
    table.add_row("total", "", "", *(str(stats["totals"][x]) for x in statuses), "")
    out_console.print(table)


@app.command("list")
def list_cmd(
    status: str | None = typer.Option(
        None, "--status", help="pending, delivering, delivered or dead_letter."
    ),
    destination: str | None = typer.Option(None, "--destination", help="Only this destination."),
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant."),
    limit: int = typer.Option(100, "--limit", min=1, help="At most this many rows."),
    after: int = typer.Option(0, "--after", help="Rows with an id above this (paging)."),
    database: str | None = DATABASE,
    as_json: bool = JSON,
) -> None:
    """List outbox rows (oldest first) with their state and last error."""
    if status is not None and status not in {str(x) for x in Status}:
        raise ConfigError(f"--status {status!r} is not one of {', '.join(str(x) for x in Status)}")
    with store(database) as s:
        rows = s.list_rows(
            status=status,
            destination_id=destination,
            tenant_id=tenant,
            limit=limit,
            after_id=after,
        )
    if as_json:
        print_json([r.to_dict() for r in rows])
        return
    table = Table("id", "destination", "event", "status", "attempts", "next attempt", "last error")
    for r in rows:
        table.add_row(
            str(r.id),
            r.destination_id,
            r.event_id,
            str(r.status),
            str(r.attempts),
            iso(r.next_attempt_at) if r.status == Status.PENDING else "-",
            escape(r.last_error or ""),
        )
    out_console.print(table)


@app.command("attempts")
def attempts_cmd(
    row_id: int = typer.Argument(..., help="Outbox row id."),
    database: str | None = DATABASE,
    as_json: bool = JSON,
) -> None:
    """The attempt log of one row: trigger, status, latency, error, response excerpt."""
    with store(database) as s:
        attempts = s.attempts(row_id)
    if as_json:
        print_json([a.to_dict() for a in attempts])
        return
    table = Table("#", "trigger", "at", "status", "latency ms", "error", "response")
    for a in attempts:
        table.add_row(
            str(a.attempt),
            a.trigger,
            iso(a.at),
            str(a.status_code or "-"),
            f"{a.latency_ms:.1f}" if a.latency_ms is not None else "-",
            escape(a.error or ""),
            escape((a.response_excerpt or "")[:200]),
        )
    out_console.print(table)


@app.command("retry")
def retry_cmd(
    row_id: int = typer.Argument(..., help="Outbox row id (see `outbox list`)."),
    database: str | None = DATABASE,
    as_json: bool = JSON,
) -> None:
    """Make a row due now with its attempts reset (the next attempt is `manual`)."""
    with store(database) as s:
        row = s.retry(row_id)
    if as_json:
        print_json(row.to_dict())
    else:
        err_console.print(f"row {row_id} is due now (attempts reset)")


@app.command("recover")
def recover_cmd(
    destination: str = typer.Option(..., "--destination", help="Destination id."),
    since: str = typer.Option(..., "--since", help="RFC 3339 time, Unix seconds or '24h' ago."),
    until: str | None = typer.Option(None, "--until", help="End of the window (default: now)."),
    max_rows: int = typer.Option(
        DEFAULT_RECOVER_CAP, "--max", min=1, help="Refuse if more dead letters than this match."
    ),
    database: str | None = DATABASE,
    as_json: bool = JSON,
) -> None:
    """Requeue a destination's dead letters enqueued in a time window."""
    now = time.time()
    start = parse_time(since, now=now, option="--since")
    end = None if until is None else parse_time(until, now=now, option="--until")
    with store(database) as s:
        count = s.recover(destination, since=start, until=end, cap=max_rows)
    if as_json:
        print_json({"recovered": count})
    else:
        err_console.print(f"requeued {count} dead letters for {escape(destination)}")
