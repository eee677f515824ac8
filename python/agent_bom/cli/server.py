"""``agent-bom serve``, ``tenants``, ``collectors`` and ``tokens``: the ingestion server."""

from __future__ import annotations

import typer
from rich.markup import escape

from agent_bom.cli._console import err_console
from agent_bom.cli._db import DATABASE, JSON, print_json, store
from agent_bom.errors import ConfigError
from agent_bom.outbox.sqlite import SQLiteStore
from agent_bom.server.keys import ServerKey, new_server_key
from agent_bom.server.store import ROLES, EventStore
from agent_bom.signing import new_secret, new_signing_key

SERVER_KEY = typer.Option(
    None,
    "--server-key",
    metavar="REF",
    help="env:NAME or file:/path holding the server key that encrypts HMAC collector "
    "secrets. Default: $AGENT_BOM_SERVER_KEY_REF.",
)

tenants = typer.Typer(
    help="Tenants: each has its own chain, credentials and destinations.\n\n"
    "Example:  agent-bom tenants add acme",
    no_args_is_help=True,
)
collectors = typer.Typer(
    help="Collectors: the keys that sign POST /v1/events, each scoped to a tenant.\n\n"
    "Example:  agent-bom collectors add --tenant acme --key-type ed25519 --json",
    no_args_is_help=True,
)
tokens = typer.Typer(
    help="API tokens for the read APIs (Authorization: Bearer …), one tenant each.\n\n"
    "Example:  agent-bom tokens add --tenant acme --role viewer",
    no_args_is_help=True,
)


def _split(values: list[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


@tenants.command("add")
def tenants_add(
    tenant: str = typer.Argument(..., help="Tenant id (letters, digits, . _ -)."),
    database: str | None = DATABASE,
) -> None:
    """Add a tenant (and start its empty chain)."""
    with store(database) as s:
        EventStore(s).add_tenant(tenant)
    err_console.print(f"added tenant {escape(tenant)}")


@tenants.command("list")
def tenants_list(database: str | None = DATABASE, as_json: bool = JSON) -> None:
    """List tenants."""
    with store(database) as s:
        found = EventStore(s).tenants()
    if as_json:
        print_json([t.__dict__ for t in found])
    else:
        for t in found:
            typer.echo(t.id)


@collectors.command("add")
def collectors_add(
    tenant: str = typer.Option(..., "--tenant", help="The collector's tenant."),
    key_type: str = typer.Option("ed25519", "--key-type", help="ed25519 (v1a) or hmac (v1)."),
    event_types: list[str] = typer.Option([], "--event-types", help="Allowed event types."),
    connectors: list[str] = typer.Option([], "--connectors", help="Allowed payload.connector."),
    repos: list[str] = typer.Option([], "--repos", help="Allowed repositories."),
    environments: list[str] = typer.Option([], "--environments", help="Allowed environments."),
    server_key: str | None = SERVER_KEY,
    database: str | None = DATABASE,
    as_json: bool = JSON,
) -> None:
    """Add a collector and print its id and key ONCE (store the key in the collector's
    secret store; the server keeps only the public key or an encrypted secret)."""
    scope = {
        "event_types": _split(event_types),
        "connectors": _split(connectors),
        "repos": _split(repos),
        "environments": _split(environments),
    }
    with store(database) as s:
        es = EventStore(s)
        if key_type == "ed25519":
            private, public = new_signing_key()
            c = es.add_collector(
                tenant, key_type="ed25519", public_key=public, secret_enc=None, scope=scope
            )
            out = {"collector_id": c.id, "private_key": private}
        elif key_type == "hmac":
            key = ServerKey.from_ref(server_key)
            secret = new_secret()
            c = es.add_collector(
                tenant, key_type="hmac", public_key=None, secret_enc=b"", scope=scope
            )
            with s.transaction() as cur:
                cur.execute(
                    "UPDATE collectors SET secret_enc = ? WHERE id = ?",
                    (key.seal(c.id, secret), c.id),
                )
            out = {"collector_id": c.id, "secret": secret}
        else:
            raise ConfigError(f"--key-type {key_type!r}: use ed25519 or hmac")
    if as_json:
        print_json(out)
    else:
        for k, v in out.items():
            typer.echo(f"{k}: {v}")
        err_console.print("[yellow]the key is shown once; store it now[/]")


@collectors.command("server-key")
def collectors_server_key() -> None:
    """Print a new random server key (base64). Store it where --server-key points."""
    typer.echo(new_server_key())


@tokens.command("add")
def tokens_add(
    tenant: str = typer.Option(..., "--tenant", help="The token's tenant."),
    role: str = typer.Option("viewer", "--role", help=f"One of {', '.join(ROLES)}."),
    database: str | None = DATABASE,
    as_json: bool = JSON,
) -> None:
    """Add an API token and print it ONCE (only its hash is stored)."""
    with store(database) as s:
        token, token_id = EventStore(s).add_token(tenant, role)
    if as_json:
        print_json({"token": token, "token_id": token_id})
    else:
        typer.echo(token)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", help="Port to listen on."),
    server_key: str | None = SERVER_KEY,
    checkpoint_every: int = typer.Option(
        1000, "--checkpoint-every", min=1, help="Seal each tenant's chain every N records."
    ),
    database: str | None = DATABASE,
) -> None:
    """Run the ingestion server (FastAPI + uvicorn). Several processes may share one
    PostgreSQL database."""
    try:
        import uvicorn

        from agent_bom.server.app import ServerConfig, create_app
    except ImportError:
        raise ConfigError("the server needs its extra: pip install 'agent-bom[server]'") from None
    key = None
    try:
        key = ServerKey.from_ref(server_key)
    except ConfigError as e:
        if server_key:
            raise
        err_console.print(f"[yellow]note:[/] {escape(str(e))}; only Ed25519 collectors can post")
    s = store(database)
    if isinstance(s, SQLiteStore):
        s.checkpoint_in_background()
    app = create_app(s, config=ServerConfig(checkpoint_every=checkpoint_every), server_key=key)
    uvicorn.run(app, host=host, port=port, log_level="warning")
