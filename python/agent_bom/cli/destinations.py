"""``agent-bom destinations add | list | disable | enable``."""

from __future__ import annotations

import asyncio

import typer
from rich.markup import escape
from rich.table import Table

from agent_bom.cli._console import err_console, out_console
from agent_bom.cli._db import DATABASE, JSON, print_json, store
from agent_bom.connectors.netguard import check_url, resolve
from agent_bom.errors import ConfigError, DeliveryError
from agent_bom.outbox.model import SEVERITIES, SIGNING_SCHEMES

app = typer.Typer(
    help=(
        "Where each tenant's events are delivered. A destination holds a credential "
        "reference (env:NAME or file:/path), never a secret.\n\n"
        "Example:  agent-bom destinations add --tenant acme --url https://siem.example.com/hook "
        "--secret-ref env:ACME_WEBHOOK_SECRET"
    ),
    no_args_is_help=True,
)


def _split(values: list[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


@app.command("add")
def add_cmd(
    tenant: str = typer.Option(..., "--tenant", help="Tenant whose events go here."),
    url: str | None = typer.Option(
        None, "--url", help="Webhook URL (https unless --allow-http). Webhooks only."
    ),
    secret_ref: str | None = typer.Option(
        None,
        "--secret-ref",
        help=(
            "Webhook: env:NAME or file:/path holding the whsec_ secret (v1) and/or whsk_ key "
            "(v1a); several whitespace-separated keys all sign (rotation). Kafka: USER:PASSWORD "
            "(Confluent Cloud API_KEY:API_SECRET) or the Event Hubs connection string. "
            "Resolved at send time."
        ),
    ),
    kind: str = typer.Option("webhook", "--kind", help="webhook or kafka."),
    bootstrap: str | None = typer.Option(
        None, "--bootstrap", help="Kafka: bootstrap servers HOST:PORT[,HOST:PORT]."
    ),
    topic: str | None = typer.Option(
        None, "--topic", help="Kafka: topic or template, e.g. agent-bom.{tenant_id}.posture."
    ),
    mode: str = typer.Option(
        "binary", "--mode", help="Kafka: CloudEvents binary (ce_ headers) or structured."
    ),
    preset: str | None = typer.Option(
        None, "--preset", help="Kafka: azure-event-hubs or confluent-cloud (SASL_SSL/PLAIN)."
    ),
    event_types: list[str] = typer.Option(
        [], "--event-types", help="Only these types (comma-separated or repeated). Default: all."
    ),
    min_severity: str | None = typer.Option(
        None, "--min-severity", help=f"Only events at least this severe: {', '.join(SEVERITIES)}."
    ),
    signing: str = typer.Option(
        "v1", "--signing", help=f"Signature scheme: {', '.join(SIGNING_SCHEMES)}."
    ),
    allow_private_network: bool = typer.Option(
        False,
        "--allow-private-network",
        help="Allow private/loopback addresses (the worker must allow them too).",
    ),
    allow_http: bool = typer.Option(False, "--allow-http", help="Allow plain http:// URLs."),
    database: str | None = DATABASE,
    as_json: bool = JSON,
) -> None:
    """Add a destination and print its id. An unsafe URL, an unreachable broker or a
    missing topic is refused at once (exit 2), naming the setting."""
    if kind == "kafka":
        _add_kafka(tenant, bootstrap, topic, mode, preset, secret_ref, event_types,
                   min_severity, database, as_json)  # fmt: skip
        return
    if kind != "webhook":
        raise ConfigError(f"--kind {kind!r}: use webhook or kafka")
    if url is None or secret_ref is None:
        raise ConfigError("a webhook destination needs --url and --secret-ref")
    target = check_url(url, allow_private_network=allow_private_network, allow_http=allow_http)
    try:
        asyncio.run(resolve(target, allow_private_network=allow_private_network))
    except DeliveryError as e:
        err_console.print(f"[yellow]warning:[/] {escape(str(e))}; checked again at each send")
    with store(database) as s:
        dest = s.add_destination(
            tenant_id=tenant,
            url=url,
            kind=kind,
            secret_ref=secret_ref,
            signing=signing,
            event_types=_split(event_types),
            min_severity=min_severity,
            allow_private_network=allow_private_network,
            allow_http=allow_http,
        )
    if as_json:
        print_json(dest.to_dict())
    else:
        typer.echo(dest.id)


def _add_kafka(
    tenant: str,
    bootstrap: str | None,
    topic: str | None,
    mode: str,
    preset: str | None,
    secret_ref: str | None,
    event_types: list[str],
    min_severity: str | None,
    database: str | None,
    as_json: bool,
) -> None:
    from agent_bom.connectors.kafka import PRESETS, check_destination
    from agent_bom.outbox.model import Destination, check_credential_ref

    if not bootstrap or not topic:
        raise ConfigError("a kafka destination needs --bootstrap HOST:PORT and --topic TEMPLATE")
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r}: use {' or '.join(PRESETS)}")
    if secret_ref is not None:
        check_credential_ref(secret_ref)
    config: dict[str, object] = {"topic": topic, "mode": mode}
    if preset is not None:
        config["preset"] = preset
    probe = Destination(
        id="dst_probe", tenant_id=tenant, kind="kafka", url=bootstrap, secret_ref=secret_ref,
        config=config,
    )  # fmt: skip
    for note in check_destination(probe):
        err_console.print(f"[yellow]note:[/] {escape(note)}")
    with store(database) as s:
        dest = s.add_destination(
            tenant_id=tenant,
            url=bootstrap,
            kind="kafka",
            secret_ref=secret_ref,
            event_types=_split(event_types),
            min_severity=min_severity,
            config=config,
        )
    if as_json:
        print_json(dest.to_dict())
    else:
        typer.echo(dest.id)


@app.command("list")
def list_cmd(
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant."),
    database: str | None = DATABASE,
    as_json: bool = JSON,
) -> None:
    """List destinations."""
    with store(database) as s:
        dests = s.list_destinations(tenant)
    if as_json:
        print_json([d.to_dict() for d in dests])
        return
    table = Table("id", "tenant", "kind", "url", "filters", "signing", "state")
    for d in dests:
        filters = ", ".join([*d.event_types, *([f">= {d.min_severity}"] if d.min_severity else [])])
        state = "enabled" if d.enabled else f"disabled: {d.disabled_reason}"
        table.add_row(d.id, d.tenant_id, d.kind, d.url, filters or "all", d.signing, state)
    if dests:
        out_console.print(table)
    else:
        err_console.print("no destinations; add one with `agent-bom destinations add`")


@app.command("disable")
def disable_cmd(
    destination_id: str = typer.Argument(..., help="Destination id (dst_…)."),
    reason: str = typer.Option("disabled by operator", "--reason", help="Why (kept and shown)."),
    database: str | None = DATABASE,
    as_json: bool = JSON,
) -> None:
    """Stop delivering to a destination; its queued rows wait until it is enabled."""
    with store(database) as s:
        dest = s.set_enabled(destination_id, False, reason)
    if as_json:
        print_json(dest.to_dict())
    else:
        err_console.print(f"disabled {escape(destination_id)}")


@app.command("enable")
def enable_cmd(
    destination_id: str = typer.Argument(..., help="Destination id (dst_…)."),
    database: str | None = DATABASE,
    as_json: bool = JSON,
) -> None:
    """Resume delivering to a destination (its waiting rows go out again)."""
    with store(database) as s:
        dest = s.set_enabled(destination_id, True)
    if as_json:
        print_json(dest.to_dict())
    else:
        err_console.print(f"enabled {escape(destination_id)}")
