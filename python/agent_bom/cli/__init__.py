"""The ``agent-bom`` command line. One module per command group."""

from __future__ import annotations

import sys

import typer

from agent_bom import __version__
from agent_bom.cli import destinations, evidence, ingest, outbox, schema, server
from agent_bom.cli._console import err_console
from agent_bom.errors import AgentBomError

app = typer.Typer(
    name="agent-bom",
    help="Tamper-evident security evidence: stream, seal, verify and deliver.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(evidence.app, name="evidence")
app.add_typer(schema.app, name="schema")
app.add_typer(destinations.app, name="destinations")
app.add_typer(outbox.app, name="outbox")
app.add_typer(server.tenants, name="tenants")
app.add_typer(server.collectors, name="collectors")
app.add_typer(server.tokens, name="tokens")
app.command("serve")(server.serve)
app.add_typer(ingest.app, name="ingest")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"agent-bom {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Tamper-evident security evidence: stream, seal, verify and deliver."""


def main() -> None:
    try:
        app()
    except AgentBomError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False)
        sys.exit(e.exit_code)
    except BrokenPipeError:
        # Output was closed early (e.g. piped into `head`): not an error of ours.
        sys.stderr.close()
        sys.exit(0)
    except OSError as e:
        # The environment failed us (disk full, device gone): say so, no traceback.
        where = f" ({e.filename})" if e.filename else ""
        err_console.print(
            f"[bold red]error:[/] I/O failed{where}: {e.strerror or e}", highlight=False
        )
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
