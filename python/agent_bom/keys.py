"""Ed25519 key files for checkpoint signing (PEM, PKCS#8 / SubjectPublicKeyInfo).

Generate a pair with::

    openssl genpkey -algorithm ed25519 -out checkpoint.key
    openssl pkey -in checkpoint.key -pubout -out checkpoint.pub
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent_bom.errors import ConfigError

_GENERATE_HINT = "create one with: openssl genpkey -algorithm ed25519 -out checkpoint.key"


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {str(path)!r}: {e.strerror or e}") from None


def load_signing_seed(path: str | os.PathLike[str]) -> bytes:
    """The 32-byte Ed25519 seed from a PEM (PKCS#8) private key file."""
    data = _read(path, "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"signing key {str(path)!r} is not an unencrypted PEM private key ({e}); "
            f"{_GENERATE_HINT}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(
            f"signing key {str(path)!r} is a {type(key).__name__}, not Ed25519; {_GENERATE_HINT}"
        )
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def load_public_key(path: str | os.PathLike[str]) -> bytes:
    """The 32 raw bytes of an Ed25519 public key from a PEM file.

    A private key file is accepted too (its public half is used)."""
    data = _read(path, "public key")
    key: object
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError) as e:
            raise ConfigError(
                f"public key {str(path)!r} is not a PEM Ed25519 key ({e}); "
                "export one with: openssl pkey -in checkpoint.key -pubout -out checkpoint.pub"
            ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"public key {str(path)!r} is a {type(key).__name__}, not Ed25519")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
