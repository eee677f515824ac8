"""Collector keys: Ed25519 public keys stored as is, HMAC secrets encrypted at rest.

The server key (32 random bytes, base64) lives behind a credential reference
(``--server-key env:NAME|file:/path``, default ``$AGENT_BOM_SERVER_KEY_REF``);
the database holds only AES-256-GCM ciphertexts bound to their collector id."""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent_bom.errors import ConfigError
from agent_bom.outbox.credentials import resolve

__all__ = ["ServerKey", "new_server_key"]

ENV_REF = "AGENT_BOM_SERVER_KEY_REF"


def new_server_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


class ServerKey:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("the server key must be 32 random bytes, base64-encoded")
        self._aead = AESGCM(key)

    @classmethod
    def from_ref(cls, ref: str | None) -> ServerKey:
        ref = ref or os.environ.get(ENV_REF)
        if not ref:
            raise ConfigError(
                "HMAC collectors need the server key: pass --server-key env:NAME|file:/path "
                f"or set {ENV_REF} (make one with `agent-bom collectors server-key`)"
            )
        try:
            return cls(base64.b64decode(resolve(ref), validate=True))
        except (binascii.Error, ValueError):
            raise ConfigError(f"server key behind {ref} is not base64") from None

    def seal(self, collector_id: str, secret: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, secret.encode(), collector_id.encode())

    def open(self, collector_id: str, blob: bytes) -> str:
        try:
            return self._aead.decrypt(blob[:12], blob[12:], collector_id.encode()).decode()
        except (InvalidTag, ValueError):
            raise ConfigError(
                f"cannot decrypt the secret of collector {collector_id}: wrong server key?"
            ) from None
