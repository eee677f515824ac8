"""Credential references (``env:NAME``, ``file:/path``), resolved at send time.

The store keeps only the reference; the secret lives in the environment or a
file the operator controls, so rotating it needs no database change. Error
messages name the reference, never its content."""

from __future__ import annotations

import os
from dataclasses import dataclass

from agent_bom.errors import ConfigError
from agent_bom.outbox.model import check_credential_ref

__all__ = ["SigningMaterial", "resolve", "signing_material"]


def resolve(ref: str) -> str:
    """The secret text a reference points at (stripped)."""
    check_credential_ref(ref)
    kind, _, name = ref.partition(":")
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            raise ConfigError(f"credential reference {ref}: environment variable {name} is not set")
    else:
        try:
            with open(name, encoding="utf-8") as f:
                value = f.read()
        except OSError as e:
            raise ConfigError(
                f"credential reference {ref}: cannot read the file ({e.strerror})"
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(f"credential reference {ref}: the file is not UTF-8 text") from None
    value = value.strip()
    if not value:
        raise ConfigError(f"credential reference {ref} points at an empty value")
    return value


@dataclass(frozen=True)
class SigningMaterial:
    secrets: tuple[str, ...]  # whsec_… for v1
    signing_keys: tuple[str, ...]  # whsk_… for v1a


def signing_material(ref: str, scheme: str) -> SigningMaterial:
    """The active keys behind ``ref`` for ``scheme`` (``v1``, ``v1a`` or ``v1+v1a``).

    The referenced value holds one or more keys separated by whitespace; during
    rotation it holds the old and the new, and every one of them signs."""
    tokens = resolve(ref).split()
    secrets = tuple(t for t in tokens if t.startswith("whsec_"))
    keys = tuple(t for t in tokens if t.startswith("whsk_"))
    unknown = len(tokens) - len(secrets) - len(keys)
    if unknown:
        raise ConfigError(
            f"credential reference {ref} holds {unknown} value(s) that are neither whsec_ "
            "secrets nor whsk_ signing keys"
        )
    want_v1, want_v1a = scheme in ("v1", "v1+v1a"), scheme in ("v1a", "v1+v1a")
    if want_v1 and not secrets:
        raise ConfigError(f"signing scheme {scheme} needs a whsec_ secret in {ref}")
    if want_v1a and not keys:
        raise ConfigError(f"signing scheme {scheme} needs a whsk_ signing key in {ref}")
    return SigningMaterial(secrets if want_v1 else (), keys if want_v1a else ())
