"""Standard Webhooks signatures: ``v1`` (HMAC-SHA256) and ``v1a`` (Ed25519).

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}`` over the
exact body bytes sent. Secrets are ``whsec_`` + base64 (at least 24 bytes);
Ed25519 keys are ``whsk_`` (32-byte seed) and ``whpk_`` (32-byte public key),
base64. During key rotation every active key signs and the header carries all
signatures, space-separated; a receiver accepts any one that verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent_bom.errors import ConfigError, SignatureInvalid

__all__ = [
    "DEFAULT_TOLERANCE",
    "new_secret",
    "new_signing_key",
    "sign",
    "signature_headers",
    "verify",
]

DEFAULT_TOLERANCE = 300
_SECRET, _SIGNING_KEY, _PUBLIC_KEY = "whsec_", "whsk_", "whpk_"


def _decode(
    value: str, prefix: str, what: str, *, exact: int | None = None, minimum: int = 1
) -> bytes:
    if not value.startswith(prefix):
        raise ConfigError(f"{what} must start with {prefix!r} (Standard Webhooks format)")
    try:
        raw = base64.b64decode(value[len(prefix) :], validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{what} is not valid base64 after {prefix!r}") from None
    if exact is not None and len(raw) != exact:
        raise ConfigError(f"{what} must hold {exact} bytes, got {len(raw)}")
    if len(raw) < minimum:
        raise ConfigError(f"{what} holds {len(raw)} bytes; use at least {minimum} random bytes")
    return raw


def new_secret(nbytes: int = 32) -> str:
    """A fresh ``whsec_`` secret for ``v1`` signatures."""
    if nbytes < 24:
        raise ConfigError("a webhook secret needs at least 24 random bytes")
    return _SECRET + base64.b64encode(os.urandom(nbytes)).decode()


def new_signing_key() -> tuple[str, str]:
    """A fresh Ed25519 pair for ``v1a``: (``whsk_`` signing key, ``whpk_`` public key)."""
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return (
        _SIGNING_KEY + base64.b64encode(seed).decode(),
        _PUBLIC_KEY + base64.b64encode(public).decode(),
    )


def _content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    if not msg_id or any(c in msg_id for c in ". \n"):
        raise ConfigError(
            f"webhook id {msg_id!r} must be non-empty without '.', spaces or newlines"
        )
    return f"{msg_id}.{timestamp}.".encode() + body


def sign(
    msg_id: str,
    timestamp: int,
    body: bytes,
    *,
    secrets: Sequence[str] = (),
    signing_keys: Sequence[str] = (),
) -> str:
    """The ``webhook-signature`` header value: one signature per active key."""
    content = _content(msg_id, timestamp, body)
    parts = []
    for s in secrets:
        key = _decode(s, _SECRET, "webhook secret", minimum=24)
        mac = hmac.new(key, content, hashlib.sha256).digest()
        parts.append("v1," + base64.b64encode(mac).decode())
    for k in signing_keys:
        seed = _decode(k, _SIGNING_KEY, "webhook signing key", exact=32)
        sig = Ed25519PrivateKey.from_private_bytes(seed).sign(content)
        parts.append("v1a," + base64.b64encode(sig).decode())
    if not parts:
        raise ConfigError("nothing to sign with: give at least one secret or signing key")
    return " ".join(parts)


def signature_headers(
    msg_id: str,
    timestamp: int,
    body: bytes,
    *,
    secrets: Sequence[str] = (),
    signing_keys: Sequence[str] = (),
) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` for one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(
            msg_id, timestamp, body, secrets=secrets, signing_keys=signing_keys
        ),
    }


def verify(
    body: bytes,
    headers: Mapping[str, str],
    *,
    secrets: Sequence[str] = (),
    public_keys: Sequence[str] = (),
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Raise ``SignatureInvalid`` unless one signature verifies and the timestamp
    is within ``tolerance`` seconds of ``now`` (default: the current time)."""
    h = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, header = (
        h.get("webhook-id"),
        h.get("webhook-timestamp"),
        h.get("webhook-signature"),
    )
    if not (msg_id and stamp and header):
        raise SignatureInvalid("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureInvalid(
            f"webhook-timestamp {stamp!r} is not an integer (Unix seconds)"
        ) from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureInvalid(
            f"webhook-timestamp is more than {tolerance}s away from now (replay?)"
        )
    content = _content(msg_id, timestamp, body)
    macs = [
        hmac.new(
            _decode(s, _SECRET, "webhook secret", minimum=24), content, hashlib.sha256
        ).digest()
        for s in secrets
    ]
    keys = [
        Ed25519PublicKey.from_public_bytes(_decode(k, _PUBLIC_KEY, "webhook public key", exact=32))
        for k in public_keys
    ]
    for item in header.split():
        version, _, encoded = item.partition(",")
        try:
            sig = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if version == "v1" and any(hmac.compare_digest(m, sig) for m in macs):
            return
        if version == "v1a":
            for key in keys:
                try:
                    key.verify(sig, content)
                    return
                except InvalidSignature:
                    pass
    raise SignatureInvalid("no signature in webhook-signature verifies with the configured keys")
