"""Token-scoped reads, SSE, the outbox API, audit records, metrics, scanner ingest."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import orjson
import pytest
from server_support import Deployment, finding

from agent_bom.outbox import Completion
from agent_bom.server.scans import sign_scan
from agent_bom.server.store import AUDIT_TYPE

READ_ROUTES = [
    "/v1/events",
    "/v1/events/F-000001",
    "/v1/findings",
    "/v1/audit/export",
    "/v1/audit/verify",
    "/v1/posture/webhooks/outbox",
    "/v1/posture/webhooks/outbox/stats",
    "/v1/posture/webhooks/outbox/dead-letters",
]


def sse_events(
    url: str, headers: dict[str, str], count: int, **params: Any
) -> list[tuple[int, str, bytes]]:
    """Read ``count`` SSE events, then disconnect."""
    got: list[tuple[int, str, bytes]] = []
    with httpx.stream("GET", url, headers=headers, params=params, timeout=30) as r:
        assert r.status_code == 200
        event: dict[str, Any] = {}
        for line in r.iter_lines():
            if line.startswith("id: "):
                event["id"] = int(line[4:])
            elif line.startswith("event: "):
                event["type"] = line[7:]
            elif line.startswith("data: "):
                event["data"] = line[6:].encode()
            elif line == "" and event:
                got.append((event["id"], event["type"], event["data"]))
                event = {}
                if len(got) == count:
                    break
    return got


def test_openapi_health_and_readiness_are_served(deployment: Deployment) -> None:
    d = deployment
    assert httpx.get(f"{d.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{d.url}/readyz").json() == {"status": "ready"}
    paths = httpx.get(f"{d.url}/openapi.json").json()["paths"]
    assert "/v1/events" in paths and "/v1/posture/stream" in paths


@pytest.mark.parametrize("route", READ_ROUTES)
def test_tenant_b_never_sees_tenant_a(deployment: Deployment, route: str) -> None:
    d = deployment
    assert d.a.collector.post([finding(1), finding(2)]).status_code == 200
    d.store.add_destination(tenant_id="acme", url="https://siem.example.com/h", secret_ref="env:X")
    assert d.a.collector.post([finding(3)]).status_code == 200
    (c, *_) = d.store.claim_due("w", limit=1, lease_seconds=30)
    d.store.finish([Completion(c.row.id, "w", "dead_letter", time.time(), error="HTTP 400")])
    seen_by_a = httpx.get(f"{d.url}{route}", headers=d.a.auth)
    assert seen_by_a.status_code == 200 and b"acme" in seen_by_a.content
    seen_by_b = httpx.get(f"{d.url}{route}", headers=d.b.auth)
    assert b"acme" not in seen_by_b.content and b"finding 1" not in seen_by_b.content
    assert seen_by_b.status_code == (404 if route.endswith("F-000001") else 200)
    assert httpx.get(f"{d.url}{route}").status_code == 401  # no token
    bogus = {"authorization": "Bearer abt_not-a-token"}
    assert httpx.get(f"{d.url}{route}", headers=bogus).status_code == 401


def test_sse_is_tenant_scoped(deployment: Deployment) -> None:
    d = deployment
    assert d.a.collector.post([finding(1)]).status_code == 200
    assert d.b.collector.post([finding(2)]).status_code == 200
    got = sse_events(f"{d.url}/v1/posture/stream", d.b.auth, 1, channels="finding")
    assert len(got) == 1 and b"globex" in got[0][2] and b"acme" not in got[0][2]


def test_sse_resumes_with_last_event_id_exactly_once_in_order(deployment: Deployment) -> None:
    d = deployment
    url = f"{d.url}/v1/posture/stream"
    assert d.a.collector.post([finding(i) for i in range(10)]).status_code == 200
    first = sse_events(url, d.a.auth, 6, channels="finding")

    def post_more() -> None:
        for i in range(10, 30, 5):
            time.sleep(0.1)
            d.a.collector.post([finding(j) for j in range(i, i + 5)])

    t = threading.Thread(target=post_more)
    t.start()
    rest = sse_events(url, {**d.a.auth, "last-event-id": str(first[-1][0])}, 24, channels="finding")
    t.join()
    ids = [orjson.loads(data)["id"] for _, _, data in first + rest]
    assert ids == [f"F-{i:06d}" for i in range(30)]  # every event once, in order
    seqs = [s for s, _, _ in first + rest]
    assert seqs == sorted(seqs) and len(set(seqs)) == 30


def test_mutating_requests_are_chained_as_audit_records(deployment: Deployment) -> None:
    d = deployment
    assert d.a.collector.post([finding(1)]).status_code == 200
    records = [
        orjson.loads(e.body)["data"] for e in d.events.events("acme", event_types=[AUDIT_TYPE])
    ]
    assert len(records) == 1
    p = records[0]["payload"]
    assert p["action"] == "events.ingest" and p["outcome"] == 200
    assert p["actor"] == d.a.collector.collector_id and p["request"]["events"] == 1


def test_outbox_retry_needs_admin_and_is_audited(deployment: Deployment) -> None:
    d = deployment
    dest = d.store.add_destination(
        tenant_id="acme",
        url="https://h.example.com/",
        secret_ref="env:X",
        event_types=["finding.created"],
    )
    assert d.a.collector.post([finding(1)]).status_code == 200
    (row,) = d.store.list_rows(destination_id=dest.id)
    viewer, _ = d.events.add_token("acme", "viewer")
    url = f"{d.url}/v1/posture/webhooks/outbox/{row.id}/retry"
    assert httpx.post(url, headers={"authorization": f"Bearer {viewer}"}).status_code == 403
    assert httpx.post(url, headers=d.b.auth).status_code == 404  # another tenant's row
    r = httpx.post(url, headers=d.a.auth)
    assert r.status_code == 200 and r.json()["next_trigger"] == "manual"
    actions = [
        orjson.loads(e.body)["data"]["payload"]["action"]
        for e in d.events.events("acme", event_types=[AUDIT_TYPE])
    ]
    assert actions.count("outbox.retry") == 2  # the refused viewer attempt and the retry


def test_metrics_count_outcomes_and_the_outbox(deployment: Deployment) -> None:
    d = deployment
    d.a.collector.post([finding(1), finding(1), {**finding(2), "event_type": "nope"}])
    text = httpx.get(f"{d.url}/metrics").text
    assert 'agent_bom_ingest_events_total{code="",outcome="accepted"} 1.0' in text
    assert 'agent_bom_ingest_events_total{code="",outcome="duplicate"} 1.0' in text
    assert 'outcome="rejected"' in text and "agent_bom_outbox_rows" in text
    assert "agent_bom_ingest_lag_seconds_count 1.0" in text


def test_scan_results_need_the_v2_signature_over_the_body(deployment: Deployment) -> None:
    d = deployment
    secret = d.b.collector.secret or ""
    doc = {
        "scan_id": "scan-7",
        "tool_name": "trivy",
        "completed_at": "2026-05-01T10:00:00Z",
        "findings": [{"title": "CVE-2026-1", "severity": "HIGH", "package": "pkg:pypi/x@1"}],
    }
    body = orjson.dumps(doc)
    ts = int(time.time())
    headers = {
        "x-agent-bom-collector": d.b.collector.collector_id,
        "x-webhook-timestamp": str(ts),
        "x-webhook-signature": sign_scan(secret, body, "scan-7", "trivy", ts),
    }
    url = f"{d.url}/v1/webhooks/scan-results"
    r = httpx.post(url, content=body, headers=headers)
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    assert httpx.post(url, content=body, headers=headers).status_code == 401  # replay
    tampered = body.replace(b"HIGH", b"LOW")
    h2 = {**headers, "x-webhook-timestamp": str(ts + 1)}
    h2["x-webhook-signature"] = sign_scan(secret, body, "scan-7", "trivy", ts + 1)
    assert httpx.post(url, content=tampered, headers=h2).status_code == 401
    unsigned = {k: v for k, v in headers.items() if k != "x-webhook-signature"}
    assert httpx.post(url, content=body, headers=unsigned).status_code == 401
    (stored,) = d.events.events("globex", event_types=["finding.created"])
    assert orjson.loads(stored.body)["data"]["severity"] == "high"
