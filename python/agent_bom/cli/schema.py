"""``agent-bom schema export | validate``: the published contracts."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
import typer
from rich.markup import escape

from agent_bom import schemas
from agent_bom.cli._console import err_console
from agent_bom.envelope import Problem, check_cloudevent, check_envelope
from agent_bom.errors import ConfigError

app = typer.Typer(
    help=(
        "Export the published JSON Schemas and AsyncAPI document, and validate events "
        "against them.\n\nExample:  agent-bom schema validate events.ndjson"
    ),
    no_args_is_help=True,
)

# Human output stops listing problems after this many; --json always has them all.
_SHOWN_PROBLEMS = 200


@app.command("export")
def export_cmd(
    out: Path = typer.Option(
        Path("schemas"), "-o", "--out", help="Directory to write into (created if needed)."
    ),
    check: bool = typer.Option(
        False,
        "--check",
        help="Write nothing; exit 1 if the files in --out differ from what this version generates.",
    ),
) -> None:
    """Write posture-event.v1.schema.json, evidence-event.v1.schema.json and asyncapi.yaml.

    They are generated from the models in agent_bom.envelope: JSON Schema 2020-12
    for the envelope (the registry as a union on event_type) and for the
    CloudEvent that carries it, and AsyncAPI 3.0 for the Kafka topic, webhook
    delivery and the SSE stream.

    Example:  agent-bom schema export --out schemas/    (CI: add --check)
    """
    if check:
        stale = schemas.stale(out)
        for name in stale:
            err_console.print(
                f"[red]{escape(str(out / name))}[/] is missing or out of date", highlight=False
            )
        if stale:
            err_console.print(
                "run: agent-bom schema export --out " + escape(str(out)), highlight=False
            )
            raise typer.Exit(1)
        err_console.print(f"[green]up to date[/]: {escape(str(out))}", highlight=False)
        return
    for path in schemas.export(out):
        err_console.print(f"wrote {escape(str(path))}", highlight=False)


@dataclass
class _LineResult:
    line: int
    kind: str
    problems: list[Problem]


@dataclass
class _Report:
    lines: int = 0
    envelopes: int = 0
    cloudevents: int = 0
    invalid: list[_LineResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": not self.invalid,
            "lines": self.lines,
            "valid": self.lines - len(self.invalid),
            "valid_envelopes": self.envelopes,
            "valid_cloudevents": self.cloudevents,
            "invalid": len(self.invalid),
            "problems": [
                {"line": r.line, "kind": r.kind, **p.to_dict()}
                for r in self.invalid
                for p in r.problems
            ],
        }


def _read_lines(f: IO[bytes], limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) per non-blank line; None for a line over ``limit`` bytes,
    which is skipped without being held in memory."""
    number = 0
    while True:
        chunk = f.readline(limit + 1)
        if not chunk:
            return
        number += 1
        if len(chunk) > limit and not chunk.endswith(b"\n"):
            while chunk and not chunk.endswith(b"\n"):
                chunk = f.readline(1 << 16)
            yield number, None
            continue
        if chunk.strip():
            yield number, chunk


def _check_line(number: int, raw: bytes | None, limit: int) -> _LineResult:
    if raw is None:
        return _LineResult(
            number,
            "unknown",
            [Problem("$", f"line is longer than {limit} bytes (--max-line-bytes)")],
        )
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return _LineResult(number, "unknown", [Problem("$", f"not JSON ({e.msg} at byte {e.pos})")])
    if isinstance(obj, dict) and "specversion" in obj:
        return _LineResult(number, "cloudevent", check_cloudevent(obj))
    return _LineResult(number, "envelope", check_envelope(obj))


def _open(src: str) -> IO[bytes]:
    if src == "-":
        return sys.stdin.buffer
    try:
        return open(src, "rb")  # closed by the caller
    except OSError as e:
        raise ConfigError(f"cannot read {src!r}: {e.strerror or e}") from None


@app.command("validate")
def validate_cmd(
    input: str = typer.Argument(
        ..., help="NDJSON of posture event envelopes or of evidence CloudEvents; '-' reads stdin."
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print a machine-readable report on stdout."
    ),
    max_line_bytes: int = typer.Option(
        8 << 20, "--max-line-bytes", min=1, help="Lines longer than this are invalid."
    ),
) -> None:
    """Validate each line against the published contracts (validate-contracts).

    A line with 'specversion' is checked as an evidence CloudEvent (DESIGN §4,
    with the envelope in data); any other line as a posture event envelope
    (DESIGN §3). Every problem is reported with its line number and JSON path,
    e.g. 'line 7: $.payload.finding_id: is required'. Blank lines are skipped.
    Native input for 'evidence stream' may lack event_id (the stream derives
    it): validate the stream's output instead.
    Exit status: 0 every line valid, 1 some line invalid, 2 unreadable input.

    Example:  agent-bom schema validate events.ndjson
              agent-bom evidence stream in.ndjson --stream-id s | agent-bom schema validate -
    """
    report = _Report()
    f = _open(input)
    try:
        for number, raw in _read_lines(f, max_line_bytes):
            report.lines += 1
            result = _check_line(number, raw, max_line_bytes)
            if result.problems:
                report.invalid.append(result)
            elif result.kind == "cloudevent":
                report.cloudevents += 1
            else:
                report.envelopes += 1
    except OSError as e:
        raise ConfigError(f"cannot read {input!r}: {e.strerror or e}") from None
    finally:
        if f is not sys.stdin.buffer:
            f.close()

    if json_out:
        sys.stdout.buffer.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        shown = 0
        for r in report.invalid:
            for p in r.problems:
                shown += 1
                if shown <= _SHOWN_PROBLEMS:
                    err_console.print(
                        f"[red]line {r.line}[/] ({r.kind}): {escape(p.path)}: {escape(p.message)}",
                        highlight=False,
                    )
        if shown > _SHOWN_PROBLEMS:
            err_console.print(f"… {shown - _SHOWN_PROBLEMS} more problems (use --json for all)")
        status = "[red]INVALID[/]" if report.invalid else "[green]valid[/]"
        err_console.print(
            f"{status}: {report.lines:,} lines, {report.envelopes:,} valid envelopes, "
            f"{report.cloudevents:,} valid CloudEvents, {len(report.invalid):,} invalid",
            highlight=False,
        )
    raise typer.Exit(1 if report.invalid else 0)
