"""`agent-bom serve` as users run it: CLI setup, then SIGKILL under load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from server_support import CollectorClient, finding, free_port

from agent_bom.outbox import open_store

Cli = Callable[..., Any]
AGENT_BOM = [sys.executable, "-c", "from agent_bom.cli import main; main()"]


def start_serve(store_url: str, port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"serve-{port}-{time.time_ns()}.log").open("wb")
    p = subprocess.Popen(
        [
            *AGENT_BOM,
            "serve",
            "--port",
            str(port),
            "--database",
            store_url,
            "--checkpoint-every",
            "50",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return p
        except httpx.HTTPError:
            time.sleep(0.1)
    p.kill()
    raise AssertionError(f"serve did not start: {Path(log.name).read_text()[-2000:]}")


def setup_tenant(cli: Cli, db: list[Any]) -> tuple[str, str, str]:
    assert cli("tenants", "add", "acme", *db).returncode == 0
    again = cli("tenants", "add", "acme", *db)
    assert again.returncode == 2 and "already exists" in again.stderr
    r = cli("collectors", "add", "--tenant", "acme", "--json", *db)
    assert r.returncode == 0, r.stderr
    col = orjson.loads(r.stdout)
    assert col["collector_id"].startswith("col_") and col["private_key"].startswith("whsk_")
    t = cli("tokens", "add", "--tenant", "acme", "--role", "viewer", "--json", *db)
    token = orjson.loads(t.stdout)["token"]
    return col["collector_id"], col["private_key"], token


def test_cli_sets_up_tenants_collectors_and_tokens(cli: Cli, store_url: str) -> None:
    db = ["--database", store_url]
    _, private, token = setup_tenant(cli, db)
    assert token.startswith("abt_")
    r = cli("collectors", "add", "--tenant", "nobody", *db)
    assert r.returncode == 2 and "tenants add nobody" in r.stderr
    r = cli("collectors", "add", "--tenant", "acme", "--key-type", "hmac", *db)
    assert r.returncode == 2 and "server key" in r.stderr and "Traceback" not in r.stderr
    r = cli("tokens", "add", "--tenant", "acme", "--role", "root", *db)
    assert r.returncode == 2 and "viewer, admin" in r.stderr
    listed = cli("tenants", "list", "--json", *db)
    assert [t["id"] for t in orjson.loads(listed.stdout)] == ["acme"]
    # Only the token's hash and the collector's public key are stored.
    with open_store(store_url) as s, s.transaction() as cur:
        cur.execute("SELECT token_hash FROM api_tokens")
        assert token not in str(cur.fetchall())
        cur.execute("SELECT public_key, secret_enc FROM collectors")
        assert private not in str(cur.fetchall())


def test_hmac_collectors_use_the_server_key_reference(
    cli: Cli, store_url: str, tmp_path: Path
) -> None:
    db = ["--database", store_url]
    assert cli("tenants", "add", "acme", *db).returncode == 0
    key = cli("collectors", "server-key").stdout.decode().strip()
    (tmp_path / "server.key").write_text(key)
    r = cli(
        "collectors", "add", "--tenant", "acme", "--key-type", "hmac", "--json",
        "--server-key", f"file:{tmp_path / 'server.key'}", *db,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert orjson.loads(r.stdout)["secret"].startswith("whsec_")


def test_serve_sigkilled_under_load_keeps_every_acknowledged_event(
    cli: Cli, store_url: str, tmp_path: Path
) -> None:
    db = ["--database", store_url]
    collector_id, private, token = setup_tenant(cli, db)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_serve(store_url, port, tmp_path)
    client = CollectorClient(url, collector_id, private_key=private)
    acknowledged: list[str] = []
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            batch = [finding(i + k) for k in range(20)]
            try:
                r = client.post(batch)
                if r.status_code == 200:
                    acknowledged.extend(e["event_id"] for e in batch)
            except httpx.HTTPError:
                time.sleep(0.05)  # the server is down; try the next batch
                continue
            i += 20

    threads = [threading.Thread(target=load) for _ in range(1)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            time.sleep(1.0)
            server.send_signal(signal.SIGKILL)
            server.wait()
            server = start_serve(store_url, port, tmp_path)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    try:
        auth = {"authorization": f"Bearer {token}"}
        assert len(acknowledged) > 100
        stored: set[str] = set()
        cursor = -1
        while True:
            page = httpx.get(
                f"{url}/v1/events", headers=auth, params={"cursor": cursor, "limit": 1000}
            ).json()
            stored.update(e["id"] for e in page["events"])
            if page["next_cursor"] is None:
                break
            cursor = page["next_cursor"]
        assert set(acknowledged) <= stored
        report = httpx.get(f"{url}/v1/audit/verify", headers=auth, timeout=60).json()
        assert report["ok"], report["errors"][:3]
        export = httpx.get(f"{url}/v1/audit/export", headers=auth, timeout=60).content
        (tmp_path / "export.ndjson").write_bytes(export)
        r = cli("evidence", "verify", tmp_path / "export.ndjson", "--require-sealed")
        assert r.returncode == 0, r.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)
