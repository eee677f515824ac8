"""Secret and PII redaction (DESIGN §5), run by the core before hashing.

Rules are data: ``agent_bom/data/redaction-rules.json`` ships in the wheel;
``rules=PATH`` / ``--redact-rules PATH`` adds more in the same format. Two
modes: ``mask`` writes ``[REDACTED:<rule-id>]``; ``hash`` writes
``[REDACTED:<rule-id>:<first 16 hex of HMAC-SHA256(key, secret)>]``, a stable
pseudonym for correlation. Hash keys come from a file or an environment
variable, never from the command line.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from agent_bom import _core
from agent_bom.errors import ConfigError

__all__ = [
    "RULES_RESOURCE",
    "RedactionResult",
    "load_redactor",
    "read_key",
    "redact",
    "redact_many",
]

RULES_RESOURCE = "data/redaction-rules.json"
Mode = Literal["mask", "hash"]


@dataclass(frozen=True)
class RedactionResult:
    value: Any
    count: int
    by_rule: dict[str, int] = field(default_factory=dict)


def _shipped_rules() -> bytes:
    return (resources.files("agent_bom") / RULES_RESOURCE).read_bytes()


def _read_rules(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read redaction rules {str(path)!r}: {e.strerror or e}") from None


@functools.lru_cache(maxsize=16)
def _compiled(mode: str, key: bytes | None, extra: tuple[bytes, ...]) -> _core.Redactor:
    try:
        return _core.Redactor([_shipped_rules(), *extra], mode=mode, key=key)
    except ValueError as e:
        raise ConfigError(f"redaction rules: {e}") from None


def load_redactor(
    mode: Mode = "mask",
    key: bytes | None = None,
    rules: str | os.PathLike[str] | None = None,
) -> _core.Redactor:
    """The shipped rules (plus ``rules``, if given) compiled for ``mode``."""
    if mode not in ("mask", "hash"):
        raise ConfigError(f"redaction mode {mode!r} is not supported: use mask or hash")
    if mode == "hash" and not key:
        raise ConfigError(
            "hash mode needs a key: pass key=... (API) or --redact-key-file / --redact-key-env"
        )
    extra: tuple[bytes, ...] = ()
    if rules is not None:
        data = _read_rules(rules)
        try:  # on its own first, so a mistake is reported against its file
            _core.Redactor([data])
        except ValueError as e:
            raise ConfigError(f"redaction rules {str(rules)!r}: {e}") from None
        extra = (data,)
    return _compiled(mode, key if mode == "hash" else None, extra)


def read_key(key_file: str | os.PathLike[str] | None = None, key_env: str | None = None) -> bytes:
    """The HMAC key for hash mode, from a file or an environment variable (not both)."""
    if (key_file is None) == (key_env is None):
        raise ConfigError(
            "give the redaction key with exactly one of --redact-key-file or --redact-key-env"
        )
    if key_file is not None:
        try:
            key = Path(key_file).read_bytes().strip()
        except OSError as e:
            raise ConfigError(
                f"cannot read --redact-key-file {str(key_file)!r}: {e.strerror or e}"
            ) from None
        where = f"file {str(key_file)!r}"
    else:
        assert key_env is not None
        value = os.environ.get(key_env)
        if value is None:
            raise ConfigError(f"environment variable {key_env} (--redact-key-env) is not set")
        key = value.strip().encode()
        where = f"environment variable {key_env}"
    if len(key) < 16:
        raise ConfigError(
            f"the redaction key in {where} is {len(key)} bytes; use at least 16 random bytes "
            "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return key


def redact(
    obj: Any,
    *,
    mode: Mode = "mask",
    key: bytes | None = None,
    rules: str | os.PathLike[str] | None = None,
) -> RedactionResult:
    """Redact secrets and PII in a JSON value; returns a redacted copy and counts."""
    value, count, by_rule = load_redactor(mode, key, rules).redact(obj)
    return RedactionResult(value, count, by_rule)


def redact_many(
    objs: Iterable[Any],
    *,
    mode: Mode = "mask",
    key: bytes | None = None,
    rules: str | os.PathLike[str] | None = None,
) -> list[RedactionResult]:
    """``redact`` for many values in one call into the core (the GIL is released)."""
    results = load_redactor(mode, key, rules).redact_many(list(objs))
    return [RedactionResult(v, n, r) for v, n, r in results]
