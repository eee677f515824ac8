"""The ``--database`` option every store-backed command shares."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import typer

from agent_bom.errors import ConfigError
from agent_bom.outbox import OutboxStore, open_store
from agent_bom.outbox.policy import parse_duration

DATABASE = typer.Option(
    None,
    "--database",
    metavar="URL",
    help=(
        "postgresql://… or a SQLite path. Default: $AGENT_BOM_DATABASE_URL, else the SQLite "
        "file at $AGENT_BOM_DB, else ~/.local/share/agent-bom/agent-bom.db."
    ),
    show_default=False,
)
JSON = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")


def store(database: str | None) -> OutboxStore:
    return open_store(database)


def print_json(value: Any) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())


def parse_time(text: str, *, now: float, option: str) -> float:
    """RFC 3339 / ISO 8601 (``2026-11-22T10:00:00Z``), Unix seconds, or a duration
    meaning "that long ago" (``24h``)."""
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            return now - parse_duration(value)
        except ConfigError:
            raise ConfigError(
                f"{option} {text!r} is not a time: use RFC 3339 (2026-11-22T10:00:00Z), "
                "Unix seconds, or a duration ago (24h)"
            ) from None
    if dt.tzinfo is None:
        raise ConfigError(f"{option} {text!r} has no time zone; add Z or an offset")
    return dt.timestamp()


def iso(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")
