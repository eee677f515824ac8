"""Helpers for the outbox suites: a real HTTP receiver and real CloudEvents."""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from agent_bom.evidence import stream

TENANT = "acme"
SECRET_REF = "env:AGENT_BOM_TEST_WEBHOOK_SECRET"


def cloudevents(n: int, tenant: str = TENANT, *, start: int = 0, **extra: Any) -> list[bytes]:
    """``n`` sealed CloudEvent lines from the core (the checkpoint records are dropped)."""
    natives = [
        {
            "event_id": f"evt-{tenant}-{i:06d}",
            "tenant_id": tenant,
            "event_type": "finding.created",
            "created_at": f"2026-05-01T00:{(i // 60) % 60:02d}:{i % 60:02d}Z",
            "source": "scanner://test",
            "severity": ("info", "low", "medium", "high", "critical")[i % 5],
            "payload": {"finding_id": f"F-{i}", "title": f"finding {i}", **extra},
        }
        for i in range(start, start + n)
    ]
    out = io.BytesIO()
    stream(
        io.BytesIO(b"".join(orjson.dumps(e) + b"\n" for e in natives)),
        out,
        stream_id=f"test-{tenant}",
        checkpoint_every=0,
        threads=1,
    )
    lines = out.getvalue().splitlines()
    return [line for line in lines if b'"io.agentbom.evidence.checkpoint"' not in line]


@dataclass
class Response:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """A real HTTP server on loopback that records every request and answers from a
    script (per webhook-id: a list of responses used in turn; then ``default``)."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.script: dict[str, list[Response]] = {}
        self.default = Response()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                size = int(self.headers.get("content-length", 0))
                body = self.rfile.read(size)
                if len(body) != size:
                    return  # the sender died mid-request: nothing was delivered
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.deliveries.append(Delivery(self.path, headers, body, time.time()))
                    queue = receiver.script.get(headers.get("webhook-id", ""), [])
                    resp = queue.pop(0) if queue else receiver.default
                if resp.delay:
                    time.sleep(resp.delay)
                try:
                    self.send_response(resp.status)
                    for k, v in resp.headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(resp.body)))
                    self.end_headers()
                    self.wfile.write(resp.body)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default 5 resets connections under load

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # senders killed mid-request reset their connections; that is the test

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def respond(self, event_id: str, *responses: Response) -> None:
        with self._lock:
            self.script[event_id] = list(responses)

    def ids(self) -> list[str]:
        with self._lock:
            return [d.headers.get("webhook-id", "") for d in self.deliveries]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def python_binary_record(line: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The CloudEvents Kafka binary mode of one line in plain Python (the reference for
    the core's ``kafka_binary``): value = the RFC 8785 form of ``data`` (``rfc8785``
    from PyPI), headers in RFC 8785 member order of the attribute names (code-point
    order: the same for names in the Basic Multilingual Plane)."""
    import rfc8785

    ce = orjson.loads(line)
    headers = [("content-type", str(ce.get("datacontenttype", "application/json")).encode())]
    for name, value in sorted(ce.items()):
        if name not in ("data", "datacontenttype"):
            text = value.encode() if isinstance(value, str) else rfc8785.dumps(value)
            headers.append(("ce_" + name, text))
    return rfc8785.dumps(ce["data"]), headers
