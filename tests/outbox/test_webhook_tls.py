"""HTTPS delivery connects to the checked address yet keeps the name for SNI, Host and
certificate checks, so a DNS answer cannot change between the check and the connection."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from outbox_support import SECRET_REF, TENANT, cloudevents

from agent_bom.connectors.webhook import WebhookConnector
from agent_bom.outbox import Destination, OutboundEvent, OutboxRow, Status

HOST = "hooks.agent-bom.test"


def _cert(tmp: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for HOST signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agent-bom test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[int, Path, list[dict[str, str]]]]:
    ca, cert, key = _cert(tmp_path)
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            sni = getattr(self.connection, "sni", None)
            seen.append({"host": self.headers["host"], "sni": str(sni)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    def remember_sni(sock: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        sock.sni = name  # type: ignore[attr-defined]

    ctx.sni_callback = remember_sni  # type: ignore[assignment]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], ca, seen
    server.shutdown()
    server.server_close()


def _row(event: OutboundEvent) -> OutboxRow:
    return OutboxRow(
        1, TENANT, "dst_tls", event.event_id, event.event_type, event.body, Status.DELIVERING,
        0, 0.0, "scheduled", "w", None, None, None, 0.0, 0.0,
    )  # fmt: skip


def _send(port: int, ca: Path, answers: list[str], host: str = HOST) -> tuple[object, list[str]]:
    asked: list[str] = []

    async def resolver(name: str, _port: int) -> list[str]:
        asked.append(name)
        return answers

    dest = Destination(
        id="dst_tls", tenant_id=TENANT, kind="webhook", url=f"https://{host}:{port}/hook",
        secret_ref=SECRET_REF, allow_private_network=True,
    )  # fmt: skip
    event = OutboundEvent.from_cloudevent(cloudevents(1)[0])

    async def main() -> object:
        c = WebhookConnector(allow_private_networks=True, resolver=resolver, verify=str(ca))
        try:
            return await c.send(dest, _row(event))
        finally:
            await c.aclose()

    return asyncio.run(main()), asked


def test_https_goes_to_the_checked_address_with_the_name_in_sni_and_host(
    tls_receiver: tuple[int, Path, list[dict[str, str]]], secret: str
) -> None:
    port, ca, seen = tls_receiver
    result, asked = _send(port, ca, ["127.0.0.1"])
    assert result.status_code == 204, result  # type: ignore[attr-defined]
    assert asked == [HOST]  # resolved once, by the guard; httpx never resolved it again
    assert seen == [{"host": f"{HOST}:{port}", "sni": HOST}]


def test_the_certificate_must_match_the_name_not_the_pinned_address(
    tls_receiver: tuple[int, Path, list[dict[str, str]]], secret: str
) -> None:
    port, ca, seen = tls_receiver
    result, _ = _send(port, ca, ["127.0.0.1"], host="other.agent-bom.test")
    assert result.status_code is None  # type: ignore[attr-defined]
    assert "certificate" in (result.error or "").lower()  # type: ignore[attr-defined]
    assert seen == []
