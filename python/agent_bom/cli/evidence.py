"""``agent-bom evidence stream | verify | export | prove``."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import IO, Any

import orjson
import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from agent_bom import _core
from agent_bom import evidence as ev
from agent_bom.cli._console import err_console
from agent_bom.errors import ConfigError
from agent_bom.redaction import load_redactor, read_key

app = typer.Typer(
    help="Turn native events into sealed CloudEvents, verify them, bundle and prove them.",
    no_args_is_help=True,
)


def _uri_reference(value: str | None) -> str | None:
    """--source must be what CloudEvents requires of a source: a URI-reference."""
    if value is not None:
        problem = _core.uri_reference_problem(value)
        if problem is not None:
            raise typer.BadParameter(f"{value!r} {problem}")
    return value


# Reject messages printed to stderr before the rest only go to --rejects.
_STDERR_REJECT_LINES = 20


class _RejectSink:
    def __init__(self, path: Path | None, redactor: Any = None) -> None:
        self.count = 0
        self.redactor = redactor  # the stream's rules: a secret in a bad line stays out too
        self.file: IO[bytes] | None = None
        if path is not None:
            try:
                self.file = path.open("wb")
            except OSError as e:
                raise ConfigError(f"cannot write --rejects {str(path)!r}: {e.strerror}") from None

    def __call__(self, r: ev.Reject) -> None:
        self.count += 1
        if self.count <= _STDERR_REJECT_LINES:
            err_console.print(
                f"[yellow]line {r.line}[/]: {r.code}: {escape(r.reason)}", highlight=False
            )
        elif self.count == _STDERR_REJECT_LINES + 1:
            err_console.print("[yellow]… more rejected lines; see --rejects for all[/]")
        if self.file is not None:
            record = {
                "line": r.line,
                "code": r.code,
                "reason": r.reason,
                "original": self._original(r.original),
            }
            self.file.write(orjson.dumps(record) + b"\n")

    def _original(self, raw: bytes) -> str:
        """The rejected line as text, redacted: as JSON where it parses (sensitive keys
        too), else as one string (value rules only)."""
        text = raw.decode("utf-8", errors="replace")
        if self.redactor is None:
            return text
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return str(self.redactor.redact(text)[0])
        return orjson.dumps(self.redactor.redact(value)[0]).decode()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


@app.command("stream")
def stream_cmd(
    input: str = typer.Argument(
        "-", help="Native events, one JSON object per line; '-' reads stdin."
    ),
    output: str = typer.Option(
        "-", "-o", "--output", help="Where to write the CloudEvents; '-' is stdout."
    ),
    stream_id: str = typer.Option(
        ..., "--stream-id", help="Name of this stream (goes into every record and the chain)."
    ),
    tenant_id: str | None = typer.Option(
        None, "--tenant-id", help="Tenant for events that carry none."
    ),
    source: str | None = typer.Option(
        None,
        "--source",
        help="CloudEvents source for events that carry none: an RFC 3986 URI-reference, "
        "e.g. urn:agent-bom:collector:ci.",
        callback=_uri_reference,
    ),
    checkpoint_every: int = typer.Option(
        10_000,
        "--checkpoint-every",
        min=0,
        help="Seal with a checkpoint after this many records (0: only at the end).",
    ),
    hash: str = typer.Option("sha256", "--hash", help="Digest: sha256 or blake3."),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="Worker threads (default: all cores). Output is identical for any value.",
    ),
    signing_key: Path | None = typer.Option(
        None, "--signing-key", help="Ed25519 PEM private key that signs every checkpoint."
    ),
    key_id: str | None = typer.Option(
        None, "--key-id", help="Identifier of the signing key, recorded in each checkpoint."
    ),
    rejects: Path | None = typer.Option(
        None,
        "--rejects",
        help="Write every rejected line (number, reason, original) here as NDJSON; "
        "the original is redacted like the stream (unless --no-redact).",
    ),
    max_line_bytes: int = typer.Option(
        1 << 20, "--max-line-bytes", min=1, help="Reject input lines longer than this."
    ),
    no_redact: bool = typer.Option(
        False,
        "--no-redact",
        help="Do not redact secrets and PII (they are redacted by default, before hashing).",
    ),
    redact_mode: str = typer.Option(
        "mask",
        "--redact-mode",
        help="mask: [REDACTED:rule]; hash: [REDACTED:rule:HMAC prefix], stable for one key.",
    ),
    redact_key_file: Path | None = typer.Option(
        None, "--redact-key-file", help="File holding the HMAC key for --redact-mode hash."
    ),
    redact_key_env: str | None = typer.Option(
        None,
        "--redact-key-env",
        help="Environment variable holding the key for --redact-mode hash.",
    ),
    redact_rules: Path | None = typer.Option(
        None, "--redact-rules", help="Extra redaction rules (JSON, the shipped rules' format)."
    ),
    ocsf: bool = typer.Option(
        False,
        "--ocsf",
        help="Add each event's OCSF 1.7.0 projection to the envelope's ocsf field (slower).",
    ),
) -> None:
    """Stream native NDJSON events into canonical, hashed, chained, sealed CloudEvents.

    Bad lines are reported on stderr with their line number and reason,
    written to --rejects, and counted; every good line still goes out.
    Exit status: 0 all lines accepted, 3 some lines rejected, 2 usage or input error.

    Example:

        agent-bom evidence stream events.ndjson -o evidence.ndjson --stream-id ci-7 --tenant-id acme
    """
    if hash not in ("sha256", "blake3"):
        raise ConfigError(f"--hash {hash!r} is not supported: use sha256 or blake3")
    if redact_mode not in ("mask", "hash"):
        raise ConfigError(f"--redact-mode {redact_mode!r} is not supported: use mask or hash")
    redact_key = None
    if redact_mode == "hash" and not no_redact:
        redact_key = read_key(redact_key_file, redact_key_env)
    elif redact_key_file is not None or redact_key_env is not None:
        raise ConfigError("--redact-key-file/--redact-key-env only apply with --redact-mode hash")
    redactor = None
    if rejects is not None and not no_redact:
        redactor = load_redactor(redact_mode, redact_key, redact_rules)  # type: ignore[arg-type]
    sink = _RejectSink(rejects, redactor)
    show_progress = err_console.is_terminal and not os.environ.get("CI")
    started = time.perf_counter()
    progress = Progress(
        TextColumn("[bold]streaming"),
        BarColumn(bar_width=None) if False else TextColumn(""),
        TextColumn("{task.fields[events]:,} events · {task.fields[rejected]:,} rejected"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not show_progress,
    )
    try:
        with progress:
            task = progress.add_task("stream", total=None, events=0, rejected=0)

            def on_progress(events: int, rejected: int, _bytes: int) -> None:
                progress.update(task, events=events, rejected=rejected)

            stats = ev.stream(
                input,
                output,
                stream_id=stream_id,
                tenant_id=tenant_id,
                source=source,
                checkpoint_every=checkpoint_every,
                hash=hash,  # type: ignore[arg-type]
                threads=threads,
                signing_key=signing_key,
                key_id=key_id,
                max_line_bytes=max_line_bytes,
                redact=not no_redact,
                redact_mode=redact_mode,  # type: ignore[arg-type]
                redact_key=redact_key,
                redact_rules=redact_rules,
                ocsf=ocsf,
                on_reject=sink,
                on_progress=on_progress if show_progress else None,
            )
    finally:
        sink.close()
    elapsed = max(time.perf_counter() - started, 1e-9)
    err_console.print(
        f"{stats.events:,} events, {stats.rejected:,} rejected, {stats.checkpoints:,} checkpoints "
        f"in {elapsed:.2f}s ({stats.events / elapsed:,.0f} events/s); head {stats.head or '-'}",
        highlight=False,
    )
    if stats.redactions:
        per_rule = ", ".join(
            f"{rule} {n:,}" for rule, n in sorted(stats.redactions_by_rule.items())
        )
        err_console.print(f"redacted {stats.redactions:,} values: {per_rule}", highlight=False)
    elif no_redact:
        err_console.print("[yellow]redaction was off (--no-redact)[/]")
    if stats.rejected:
        raise typer.Exit(3)


def _print_report(report: ev.VerifyReport) -> None:
    for p in report.errors:
        where = f"line {p.line}" + (f" seq {p.seq}" if p.seq is not None else "")
        extra = ""
        if p.expected is not None or p.found is not None:
            extra = f" (expected {p.expected}, found {p.found})"
        err_console.print(
            f"[red]{where}: {p.code}[/]: {escape(p.detail)}{escape(extra)}", highlight=False
        )
    if report.errors_total > len(report.errors):
        err_console.print(f"… {report.errors_total - len(report.errors)} more problems not shown")
    for p in report.warnings:
        err_console.print(
            f"[yellow]line {p.line} seq {p.seq}: {p.code}[/]: {escape(p.detail)}", highlight=False
        )
    status = "[green]valid[/]" if report.ok else "[red]INVALID[/]"
    sealed = "sealed" if report.sealed else "not sealed"
    sig = ""
    if report.signatures_verified:
        sig = f", {report.signatures_verified} signature(s) verified"
    elif report.signatures_unchecked:
        sig = (
            f", {report.signatures_unchecked} signature(s) present but not checked"
            " (pass --public-key)"
        )
    err_console.print(
        f"{status}: stream {report.stream_id or '-'}: {report.events:,} events, "
        f"{report.checkpoints:,} checkpoints, {sealed}{sig}; head {report.head or '-'}",
        highlight=False,
    )


@app.command("verify")
def verify_cmd(
    input: str | None = typer.Argument(
        None, help="Evidence NDJSON, an export bundle (.tar.gz), or '-' for stdin."
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print a machine-readable report on stdout."
    ),
    public_key: Path | None = typer.Option(
        None,
        "--public-key",
        help="Ed25519 PEM public key: every checkpoint must carry a valid signature.",
    ),
    require_sealed: bool = typer.Option(
        False, "--require-sealed", help="Fail when records follow the last checkpoint."
    ),
    proof: Path | None = typer.Option(
        None,
        "--proof",
        help="Check an inclusion proof from 'evidence prove' (against INPUT too, if given).",
    ),
    max_line_bytes: int = typer.Option(
        8 << 20, "--max-line-bytes", min=1, help="Lines longer than this are LIMIT_EXCEEDED."
    ),
    max_depth: int = typer.Option(
        128, "--max-depth", min=1, help="JSON nesting deeper than this is LIMIT_EXCEEDED."
    ),
) -> None:
    """Verify an evidence stream or bundle and pinpoint any tampering.

    Every problem is reported with its line, seq and reason code
    (HASH_MISMATCH, CHAIN_MISMATCH, SEQ_GAP, SEQ_REORDER, …).
    Exit status: 0 valid, 1 integrity failure, 2 could not verify.
    """
    if proof is not None:
        _verify_proof(proof, input, public_key, json_out)
        return
    if input is None:
        raise ConfigError("give the evidence to verify: a file, a bundle, or '-' for stdin")
    report = ev.verify(
        input,
        public_key=public_key,
        require_sealed=require_sealed,
        max_line_bytes=max_line_bytes,
        max_depth=max_depth,
    )
    if json_out:
        sys.stdout.buffer.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        _print_report(report)
    raise typer.Exit(0 if report.ok else 1)


def _verify_proof(
    proof_path: Path, input: str | None, public_key: Path | None, json_out: bool
) -> None:
    try:
        proof: dict[str, Any] = orjson.loads(proof_path.read_bytes())
    except OSError as e:
        raise ConfigError(f"cannot read --proof {str(proof_path)!r}: {e.strerror}") from None
    except orjson.JSONDecodeError as e:
        raise ConfigError(f"--proof {str(proof_path)!r} is not JSON: {e}") from None
    problems = ev.verify_proof(proof, public_key=public_key, src=input)
    if json_out:
        out = {
            "ok": not problems,
            "seq": proof.get("seq"),
            "errors": [p.to_dict() for p in problems],
        }
        sys.stdout.buffer.write(orjson.dumps(out, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        for p in problems:
            err_console.print(
                f"[red]{p.code}[/]: {escape(p.detail)} (expected {p.expected}, found {p.found})",
                highlight=False,
            )
        if not problems:
            err_console.print(
                f"[green]proof valid[/]: seq {proof['seq']} is included in the tree of size "
                f"{proof['tree_size']} with root {proof['merkle_root']}",
                highlight=False,
            )
    raise typer.Exit(0 if not problems else 1)


@app.command("export")
def export_cmd(
    input: str = typer.Argument(..., help="Evidence NDJSON to bundle ('-' for stdin)."),
    output: str = typer.Option(
        ..., "-o", "--output", help="Bundle to write, e.g. evidence.tar.gz."
    ),
) -> None:
    """Write a deterministic .tar.gz bundle (events + JCS manifest) of a verified stream.

    The same stream always gives the same bundle bytes; 'evidence verify' accepts it.
    """
    manifest = ev.export(input, output)
    err_console.print(
        f"bundled {manifest['records']:,} records of stream {manifest['stream_id']} into {output}",
        highlight=False,
    )


@app.command("prove")
def prove_cmd(
    input: str = typer.Argument(..., help="Evidence NDJSON or bundle."),
    seq: int = typer.Option(..., "--seq", min=0, help="Record to prove."),
    output: str = typer.Option("-", "-o", "--output", help="Where to write the proof JSON."),
) -> None:
    """Print an RFC 6962 inclusion proof for record SEQ against the last checkpoint covering it.

    Check it later with: agent-bom evidence verify --proof proof.json [--public-key KEY]
    """
    proof = ev.prove(input, seq)
    data = orjson.dumps(proof, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    if output == "-":
        sys.stdout.buffer.write(data)
    else:
        try:
            Path(output).write_bytes(data)
        except OSError as e:
            raise ConfigError(f"cannot write {output!r}: {e.strerror}") from None
