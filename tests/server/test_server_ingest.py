"""POST /v1/events: signed, validated, authorized, redacted, idempotent, chained."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from server_support import Deployment, ed25519_collector, finding

from agent_bom import evidence as ev
from agent_bom.server.store import stream_id_of


def export(d: Deployment, tenant: Any) -> bytes:
    r = httpx.get(f"{d.url}/v1/audit/export", headers=tenant.auth, timeout=60)
    assert r.status_code == 200
    return r.content


def test_1000_events_posted_twice_are_stored_once_and_verify_offline(
    deployment: Deployment, cli: Callable[..., Any], tmp_path: Path
) -> None:
    d = deployment
    events = [finding(i) for i in range(1000)]
    for _ in range(2):
        for i in range(0, 1000, 100):
            r = d.a.collector.post(events[i : i + 100])
            assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 0 and body["duplicates"] == 100
    stored = d.events.events("acme", limit=5000, event_types=["finding.created"])
    assert [e.event_id for e in stored] == [e["event_id"] for e in events]
    data = export(d, d.a)
    path = tmp_path / "acme.ndjson"
    path.write_bytes(data)
    r = cli("evidence", "verify", path, "--require-sealed", "--json")
    assert r.returncode == 0, r.stdout
    report = orjson.loads(r.stdout)
    assert report["ok"] and report["stream_id"] == stream_id_of("acme")
    assert report["events"] == 1000 + 20  # and one audit record per request


def test_the_tenant_chain_is_byte_identical_to_evidence_stream(deployment: Deployment) -> None:
    d = deployment
    events = [finding(i) for i in range(250)]
    for i in range(0, 250, 70):  # batches that straddle the checkpoints
        assert d.a.collector.post(events[i : i + 70]).status_code == 200
    exported = export(d, d.a)
    # Re-stream the stored envelopes (findings and the audit records between them):
    # the core must write exactly the chain the server stored.
    natives = [
        orjson.loads(line)["data"]
        for line in exported.splitlines()
        if b'"io.agentbom.evidence.checkpoint"' not in line
    ]
    assert sum(n["event_type"] == "finding.created" for n in natives) == 250
    out = io.BytesIO()
    ev.stream(
        io.BytesIO(b"".join(orjson.dumps(n) + b"\n" for n in natives)),
        out,
        stream_id=stream_id_of("acme"),
        tenant_id="acme",
        source="urn:agent-bom:ingest",
        checkpoint_every=100,
        threads=1,
    )
    assert exported == out.getvalue()


def test_each_event_gets_its_own_verdict(deployment: Deployment) -> None:
    d = deployment
    good, bad_type = finding(1), {**finding(2), "event_type": "not-a-type"}
    other_tenant = {**finding(3), "tenant_id": "globex"}
    r = d.a.collector.post([good, bad_type, other_tenant, finding(1)])
    assert r.status_code == 207
    verdicts = r.json()["events"]
    assert [v["status"] for v in verdicts] == ["accepted", "rejected", "rejected", "duplicate"]
    assert "event_type" in verdicts[1]["reason"]
    assert (
        verdicts[2]["code"] == "FORBIDDEN" and "comes from the credential" in verdicts[2]["reason"]
    )
    assert verdicts[0]["seq"] == 0


def test_ndjson_batches_report_bad_lines_by_index(deployment: Deployment) -> None:
    d = deployment
    body = orjson.dumps(finding(1)) + b"\n{not json\n" + orjson.dumps(finding(2)) + b"\n"
    h = d.a.collector.headers(body)
    h["content-type"] = "application/x-ndjson"
    r = httpx.post(f"{d.url}/v1/events", content=body, headers=h)
    assert r.status_code == 207
    v = r.json()["events"]
    assert [x["status"] for x in v] == ["accepted", "rejected", "accepted"]
    assert v[1]["index"] == 1 and v[1]["code"] == "MALFORMED_JSON"


def test_authentication_failures_are_401(deployment: Deployment) -> None:
    d = deployment
    body = orjson.dumps([finding(1)])
    h = d.a.collector.headers(body, msg_id="req-replayed")
    assert httpx.post(f"{d.url}/v1/events", content=body, headers=h).status_code == 200
    before = len(d.events.events(d.a.id, limit=1000))
    replay = httpx.post(f"{d.url}/v1/events", content=body, headers=h)
    assert replay.status_code == 401 and "replay" in replay.json()["detail"]
    bad = b"[not json"  # a request whose body is refused is guarded against replay too
    h_bad = d.a.collector.headers(bad, msg_id="req-bad-body")
    assert httpx.post(f"{d.url}/v1/events", content=bad, headers=h_bad).status_code == 400
    r = httpx.post(f"{d.url}/v1/events", content=bad, headers=h_bad)
    assert r.status_code == 401 and "replay" in r.json()["detail"]
    # The replays stored nothing: only the bad body's audit record was chained.
    assert len(d.events.events(d.a.id, limit=1000)) == before + 1
    stale = d.a.collector.headers(body, ts=int(time.time()) - 3600)
    assert httpx.post(f"{d.url}/v1/events", content=body, headers=stale).status_code == 401
    wrong = d.b.collector.headers(body)
    wrong["x-agent-bom-collector"] = d.a.collector.collector_id  # b's key, a's id
    assert httpx.post(f"{d.url}/v1/events", content=body, headers=wrong).status_code == 401
    unknown = d.a.collector.headers(body)
    unknown["x-agent-bom-collector"] = "col_nobody"
    r = httpx.post(f"{d.url}/v1/events", content=body, headers=unknown)
    assert r.status_code == 401 and "unknown" in r.json()["detail"]
    tampered = d.a.collector.headers(body)
    r = httpx.post(f"{d.url}/v1/events", content=body.replace(b"F-1", b"F-9"), headers=tampered)
    assert r.status_code == 401


def test_hmac_collectors_sign_with_their_encrypted_secret(deployment: Deployment) -> None:
    d = deployment
    r = d.b.collector.post([finding(7)])
    assert r.status_code == 200 and r.json()["accepted"] == 1
    with d.store.transaction() as cur:
        cur.execute("SELECT secret_enc FROM collectors WHERE id = ?", (d.b.collector.collector_id,))
        (blob,) = cur.fetchone()
    assert d.b.collector.secret and d.b.collector.secret.encode() not in bytes(blob)


def test_events_outside_the_collector_scope_are_403_naming_it(deployment: Deployment) -> None:
    d = deployment
    private, public = __import__("agent_bom.signing", fromlist=["x"]).new_signing_key()
    c = d.events.add_collector(
        "acme",
        key_type="ed25519",
        public_key=public,
        secret_enc=None,
        scope={"event_types": ["finding.created"], "repos": ["acme/api"], "environments": ["prod"]},
    )
    from server_support import CollectorClient

    client = CollectorClient(d.url, c.id, private_key=private)
    ok = finding(1, repository="acme/api", environment="prod")
    r = client.post([ok, {**finding(2, repository="acme/web", environment="prod")}])
    assert r.status_code == 207
    assert "repository 'acme/web' is outside" in r.json()["events"][1]["reason"]
    r = client.post([{**finding(3, repository="acme/api", environment="dev")}])
    assert r.status_code == 403 and "environment 'dev'" in r.json()["events"][0]["reason"]
    from agent_bom.envelope import example_event

    skill = example_event("skill.verdict")
    skill.pop("tenant_id")
    skill["payload"] |= {"repository": "acme/api", "environment": "prod"}
    r = client.post([skill])
    assert r.status_code == 403 and "event type 'skill.verdict'" in r.text


def test_oversized_and_malformed_bodies(deployment: Deployment) -> None:
    d = deployment
    big = orjson.dumps([finding(i, blob="x" * 2000) for i in range(600)])
    assert len(big) > 1 << 20
    r = httpx.post(f"{d.url}/v1/events", content=big, headers=d.a.collector.headers(big))
    assert r.status_code == 413
    bad = b'[{"event_type": "finding.created",]'
    r = httpx.post(f"{d.url}/v1/events", content=bad, headers=d.a.collector.headers(bad))
    assert r.status_code == 400 and "line 1 column" in r.json()["detail"]


def test_planted_secrets_never_reach_the_database(
    deployment: Deployment, store_url: str, tmp_path: Path
) -> None:
    d = deployment
    aws = "AKIAQYLPMN5HHHFPZAM2"
    token = "ghp_R8fT2kLmQ9vXw3ZpN7bYc4HdJ6sAe1GuK0oV"
    r = d.a.collector.post(
        [
            finding(
                1,
                note=f"creds {aws}",
                password="hunter2-very-secret",
                cmd=f"curl -H 'token {token}'",
            )
        ]
    )
    assert r.status_code == 200, r.text
    stored = d.events.events("acme", limit=10)[0].body
    assert b"[REDACTED:" in stored
    if store_url.startswith("postgresql://"):
        import glob
        import shutil
        import subprocess

        exe = shutil.which("pg_dump") or sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"))[-1]
        dump = subprocess.run([exe, "--dbname", store_url], check=True, capture_output=True).stdout
    else:
        dump = b"".join(p.read_bytes() for p in Path(store_url).parent.glob("outbox.db*"))
    for secret in (aws, token, "hunter2-very-secret"):
        assert secret.encode() not in dump


def test_accepted_events_fan_out_to_the_outbox_in_the_same_transaction(
    deployment: Deployment,
) -> None:
    d = deployment
    dest = d.store.add_destination(
        tenant_id="acme",
        url="https://siem.example.com/hook",
        secret_ref="env:X",
        min_severity="high",
    )
    assert d.a.collector.post([finding(i) for i in range(8)]).status_code == 200
    rows = d.store.list_rows(destination_id=dest.id)
    assert len(rows) == 4  # high and critical only
    stored = {e.event_id: e.body for e in d.events.events("acme")}
    assert all(r.body == stored[r.event_id] for r in rows)


def test_control_characters_in_ids_are_rejected_not_500(deployment: Deployment) -> None:
    d = deployment
    r = d.a.collector.post([{**finding(1), "event_id": "F-\x00-1"}, finding(2)])
    assert r.status_code == 207
    assert r.json()["events"][0]["reason"].startswith("$.event_id")
    got = httpx.get(f"{d.url}/v1/events/F-%00-1", headers=d.a.auth)
    assert got.status_code == 422


def test_concurrent_identical_requests_each_get_an_audit_record(deployment: Deployment) -> None:
    import threading

    d = deployment
    codes: list[int] = []

    def post(k: int) -> None:
        codes.append(d.a.collector.post([finding(k * 100 + i) for i in range(20)]).status_code)

    threads = [threading.Thread(target=post, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 8
    audits = d.events.events("acme", event_types=["dev.agent-bom.audit.action"])
    assert len(audits) == 8


def test_an_append_committed_while_waiting_for_the_ledger_lock_is_seen_as_duplicates(
    pg_database: str, monkeypatch: Any
) -> None:
    """On PostgreSQL the duplicate check runs under the tenant's ledger lock: an append
    by another process that holds the lock and commits while we wait for it is seen,
    so each event is stored once and the chain verifies."""
    import threading
    import time

    import psycopg

    from agent_bom.outbox import open_store
    from agent_bom.redaction import load_redactor
    from agent_bom.server.store import EventStore

    mine, theirs = open_store(pg_database), open_store(pg_database)  # two processes' pools
    try:
        es, other = EventStore(mine), EventStore(theirs)
        es.add_tenant("acme")
        batch = [orjson.dumps(finding(i)) for i in range(5)]
        redactor = load_redactor()
        holding, go = threading.Event(), threading.Event()
        insert = theirs.insert_many

        def held_insert(*args: Any) -> None:  # the other process, holding the lock
            holding.set()
            assert go.wait(30)
            insert(*args)

        monkeypatch.setattr(theirs, "insert_many", held_insert)
        out: dict[str, Any] = {}
        first = threading.Thread(
            target=lambda: other.append("acme", batch[:3], redactor=redactor), daemon=True
        )
        first.start()
        assert holding.wait(30)

        def ours() -> None:
            try:
                out["r"] = es.append("acme", batch, redactor=redactor)[0]
            except Exception as e:  # reported below
                out["error"] = e

        second = threading.Thread(target=ours, daemon=True)
        second.start()
        with psycopg.connect(pg_database, autocommit=True) as watch:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # until ours waits for the row lock
                row = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                ).fetchone()
                if row and row[0]:
                    break
                time.sleep(0.01)
            else:
                raise AssertionError("the second append never waited for the ledger lock")
        go.set()
        first.join(30)
        second.join(30)
        assert "r" in out, out.get("error")
        results = out["r"]
        assert [r[0] for r in results] == ["duplicate"] * 3 + ["accepted"] * 2
        stored = es.events("acme", limit=100, include_checkpoints=False)
        assert sorted(e.event_id for e in stored) == sorted(r[1] for r in results)
        es.seal("acme")
        chain = b"".join(e.body + b"\n" for e in es.events("acme", limit=100))
        report = ev.verify(io.BytesIO(chain))
        assert report.ok, report.to_dict()
    finally:
        mine.close()
        theirs.close()


def test_ingest_lag_is_measured_from_the_newest_instant_not_the_largest_text(
    tmp_path: Path,
) -> None:
    from datetime import datetime

    from agent_bom.outbox import open_store
    from agent_bom.server.ingest import ingest
    from agent_bom.server.store import EventStore

    store = open_store(str(tmp_path / "o.db"))
    try:
        es = EventStore(store)
        c, _ = ed25519_collector(es)
        later = {**finding(1), "created_at": "2026-05-01T11:00:00Z"}
        earlier = {**finding(2), "created_at": "2026-05-01T12:00:00+02:00"}  # 10:00Z, larger text
        result = ingest(es, c, [later, earlier])
        assert result.count("accepted") == 2
        newest = datetime.fromisoformat("2026-05-01T11:00:00+00:00").timestamp()
        (lag,) = result.lags
        assert abs(lag - (time.time() - newest)) < 60
    finally:
        store.close()
