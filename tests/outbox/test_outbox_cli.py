"""`agent-bom destinations …` and `agent-bom outbox …` end to end, as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from outbox_support import SECRET_REF, TENANT, Receiver, Response, cloudevents

from agent_bom.outbox import OutboxStore, Status, open_store

Cli = Callable[..., Any]


def add_args(url: str, *extra: str) -> list[str]:
    return [
        "destinations",
        "add",
        "--tenant",
        TENANT,
        "--url",
        url,
        "--secret-ref",
        SECRET_REF,
        *extra,
    ]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1/hook", "loopback"),
        ("https://10.1.2.3/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://metadata.google.internal/x", "metadata"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("http://example.com/hook", "--allow-http"),
        ("https://0x7f.0.0.1/hook", "127.0.0.1"),
        ("ftp://example.com/x", "scheme"),
    ],
)
def test_destinations_add_refuses_an_unsafe_url_at_once(
    cli: Cli, tmp_path: Path, url: str, reason: str
) -> None:
    r = cli(*add_args(url), "--database", tmp_path / "db.sqlite")
    assert r.returncode == 2
    assert reason in r.stderr and "Traceback" not in r.stderr
    with open_store(str(tmp_path / "db.sqlite")) as s:
        assert s.list_destinations() == []


def test_destinations_add_refuses_a_raw_secret_instead_of_a_reference(
    cli: Cli, tmp_path: Path
) -> None:
    r = cli(
        "destinations", "add", "--tenant", TENANT, "--url", "https://hooks.example.com/x",
        "--secret-ref", "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "--database", tmp_path / "d.db",
    )  # fmt: skip
    assert r.returncode == 2 and "env:NAME or file:/absolute/path" in r.stderr
    assert "c2VjcmV0c2VjcmV0" not in r.stderr


def test_the_whole_cli_flow_on_both_stores(
    cli: Cli, store_url: str, receiver: Receiver, secret: str, tmp_path: Path
) -> None:
    db = ["--database", store_url]
    r = cli(*add_args(receiver.url, "--allow-http", "--allow-private-network"), *db)
    assert r.returncode == 0, r.stderr
    dest = r.stdout.decode().strip()
    assert dest.startswith("dst_")
    listed = orjson.loads(cli("destinations", "list", "--json", *db).stdout)
    assert [d["id"] for d in listed] == [dest] and listed[0]["secret_ref"] == SECRET_REF

    lines = cloudevents(6)
    bad = b'{"not": "a cloudevent"}\n'
    src = tmp_path / "events.ndjson"
    src.write_bytes(b"\n".join(lines[:3]) + b"\n" + bad + b"\n".join(lines[3:]) + b"\n")
    r = cli("outbox", "enqueue", src, "--json", *db)
    assert r.returncode == 3 and "line 4:" in r.stderr and "tenantid" in r.stderr
    assert orjson.loads(r.stdout) == {
        "events": 6, "rows": 6, "duplicates": 0, "unmatched": 0, "rejected": 1,
    }  # fmt: skip
    again = cli("outbox", "enqueue", "-", "--json", *db, stdin=b"\n".join(lines) + b"\n")
    assert again.returncode == 0 and orjson.loads(again.stdout)["duplicates"] == 6

    event_ids = [orjson.loads(line)["id"] for line in lines]
    receiver.respond(event_ids[0], Response(400))
    r = cli("outbox", "run", "--once", "--allow-private-networks", "--json", *db)
    assert r.returncode == 0, r.stderr
    assert orjson.loads(r.stdout)["delivered"] == 5
    # The worker's log on stderr: start, the dead letter as it happened, stop.
    log = r.stderr.splitlines()
    assert any(" INFO agent_bom.outbox: worker " in line and "started" in line for line in log)
    (dead_line,) = [line for line in log if "dead-lettered after" in line]
    assert " WARNING " in dead_line and event_ids[0] in dead_line and dest in dead_line
    assert dead_line.endswith("HTTP 400 is not retryable")
    assert "stopped: delivered 5, retried 0, dead-lettered 1" in r.stderr
    assert secret not in r.stderr

    status = orjson.loads(cli("outbox", "status", "--json", *db).stdout)
    assert status["totals"] == {"pending": 0, "delivering": 0, "delivered": 5, "dead_letter": 1}
    (dead,) = orjson.loads(cli("outbox", "list", "--status", "dead_letter", "--json", *db).stdout)
    assert dead["event_id"] == event_ids[0] and dead["last_error"] == "HTTP 400 is not retryable"
    attempts = orjson.loads(cli("outbox", "attempts", str(dead["id"]), "--json", *db).stdout)
    assert [(a["attempt"], a["status_code"]) for a in attempts] == [(1, 400)]

    assert cli("outbox", "retry", str(dead["id"]), *db).returncode == 0
    r = cli("outbox", "run", "--once", "--allow-private-networks", "--json", *db)
    assert orjson.loads(r.stdout)["delivered"] == 1
    assert receiver.ids().count(event_ids[0]) == 2

    r = cli("outbox", "recover", "--destination", dest, "--since", "1h", "--json", *db)
    assert r.returncode == 0 and orjson.loads(r.stdout) == {"recovered": 0}
    r = cli("outbox", "recover", "--destination", dest, "--since", "yesterday", *db)
    assert r.returncode == 2 and "RFC 3339" in r.stderr

    assert cli("destinations", "disable", dest, "--reason", "rotating", *db).returncode == 0
    listed = orjson.loads(cli("destinations", "list", "--json", *db).stdout)
    assert listed[0]["enabled"] is False and listed[0]["disabled_reason"] == "rotating"
    enabled = cli("destinations", "enable", dest, "--json", *db)
    assert enabled.returncode == 0 and orjson.loads(enabled.stdout)["enabled"] is True


def test_outbox_commands_explain_bad_input_without_a_traceback(cli: Cli, tmp_path: Path) -> None:
    db = ["--database", tmp_path / "x.db"]
    cases = [
        (["outbox", "list", "--status", "lost", *db], "is not one of"),
        (["outbox", "retry", "99", *db], "no outbox row 99"),
        (["outbox", "enqueue", tmp_path / "missing.ndjson", *db], "cannot read"),
        (["destinations", "disable", "dst_nope", *db], "no destination 'dst_nope'"),
        (["outbox", "run", "--timeout", "30", "--lease", "20", *db], "--lease 20 must exceed"),
        (["outbox", "run", "--retry-schedule", "5s,soon", *db], "duration 'soon'"),
        (["outbox", "run", "--log-level", "loud", *db], "--log-level 'loud': use one of"),
        (["outbox", "status", "--database", "mysql://x/y"], "not supported"),
    ]
    for args, message in cases:
        r = cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_help_teaches_each_command(cli: Cli) -> None:
    for group, commands in {
        "destinations": ["add", "list", "disable", "enable"],
        "outbox": ["enqueue", "run", "status", "list", "attempts", "retry", "recover"],
    }.items():
        top = cli(group, "--help")
        assert top.returncode == 0 and all(c in top.stdout.decode() for c in commands)
        for c in commands:
            assert cli(group, c, "--help").returncode == 0


def test_sigterm_finishes_sends_in_flight_and_releases_the_rest(
    store: OutboxStore, store_url: str, receiver: Receiver, secret: str
) -> None:
    store.add_destination(
        tenant_id=TENANT, url=receiver.url, secret_ref=SECRET_REF, allow_http=True,
        allow_private_network=True,
    )  # fmt: skip
    from agent_bom.outbox import OutboundEvent

    store.enqueue([OutboundEvent.from_cloudevent(line) for line in cloudevents(20)])
    receiver.default = Response(204, delay=1.0)
    p = subprocess.Popen(
        [sys.executable, "-c", "from agent_bom.cli import main; main()", "outbox", "run",
         "--database", store_url, "--allow-private-networks", "--concurrency", "2",
         "--batch", "10", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ),
    )  # fmt: skip
    deadline = time.time() + 30
    while len(receiver.deliveries) < 2 and time.time() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    stats = orjson.loads(out)
    assert stats["delivered"] == len(receiver.deliveries) == 2
    rows = store.list_rows()
    assert sum(r.status == Status.DELIVERED for r in rows) == 2
    rest = [r for r in rows if r.status != Status.DELIVERED]
    assert len(rest) == 18
    assert all(
        r.status == Status.PENDING and r.lease_owner is None and r.attempts == 0 for r in rest
    )
