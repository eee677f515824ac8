"""A real `agent-bom serve` app on a loopback port, and a signing collector client."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import uvicorn

from agent_bom.outbox import OutboxStore
from agent_bom.server.keys import ServerKey
from agent_bom.server.store import Collector, EventStore
from agent_bom.signing import new_signing_key, signature_headers


def ed25519_collector(es: EventStore, tenant: str = "acme") -> tuple[Collector, str]:
    """A new tenant with one unscoped Ed25519 collector: (the collector, its whsk_ key)."""
    es.add_tenant(tenant)
    private, public = new_signing_key()
    c = es.add_collector(tenant, key_type="ed25519", public_key=public, secret_enc=None, scope={})
    return c, private


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn in a thread: real HTTP, real streaming, stopped cleanly."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class CollectorClient:
    url: str
    collector_id: str
    private_key: str | None = None
    secret: str | None = None

    def headers(
        self, body: bytes, *, msg_id: str | None = None, ts: int | None = None
    ) -> dict[str, str]:
        h = signature_headers(
            msg_id or f"req-{uuid.uuid4()}",
            int(time.time()) if ts is None else ts,
            body,
            secrets=[self.secret] if self.secret else [],
            signing_keys=[self.private_key] if self.private_key else [],
        )
        h["x-agent-bom-collector"] = self.collector_id
        h["content-type"] = "application/json"
        return h

    def post(self, events: Sequence[dict[str, Any]] | bytes, **kw: Any) -> httpx.Response:
        body = events if isinstance(events, bytes) else orjson.dumps(list(events))
        headers = self.headers(body, **kw)
        return httpx.post(f"{self.url}/v1/events", content=body, headers=headers, timeout=60)


def finding(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"F-{i:06d}",
        "event_type": "finding.created",
        "created_at": f"2026-05-01T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z",
        "source": "scanner://trivy",
        "severity": ("low", "medium", "high", "critical")[i % 4],
        "payload": {"finding_id": f"F-{i}", "title": f"finding {i}", "rule_id": "ABOM-1", **extra},
    }


@dataclass
class Tenant:
    id: str
    collector: CollectorClient
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


@dataclass
class Deployment:
    url: str
    store: OutboxStore
    events: EventStore
    server_key: ServerKey
    a: Tenant
    b: Tenant
