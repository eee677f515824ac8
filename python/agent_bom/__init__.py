"""agent-bom: tamper-evident, standards-based security evidence streaming.

The hot path (RFC 8785 canonicalization, hashing, chaining, RFC 6962 sealing,
CloudEvent mapping, verification) runs in the Rust core ``agent_bom._core``.
"""

from __future__ import annotations

from typing import Any, Literal

from agent_bom import _core
from agent_bom.errors import (
    AgentBomError,
    ConfigError,
    DeliveryError,
    IntegrityError,
    InvalidEvent,
    LimitExceeded,
)
from agent_bom.redaction import RedactionResult, redact, redact_many

__version__: str = _core.__version__

__all__ = [
    "AgentBomError",
    "ConfigError",
    "DeliveryError",
    "IntegrityError",
    "InvalidEvent",
    "LimitExceeded",
    "RedactionResult",
    "__version__",
    "canonical_json",
    "content_hash",
    "redact",
    "redact_many",
]


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 (JCS) canonical UTF-8 bytes of a JSON value.

    Raises ValueError naming the JSON path of anything JSON cannot carry
    exactly: NaN/Infinity, integers beyond ±(2**53-1), non-string keys,
    lone surrogates, non-JSON types.
    """
    return _core.canonical_json(obj)


def content_hash(obj: Any, algorithm: Literal["sha256", "blake3"] = "sha256") -> str:
    """``<algorithm>:<hex>`` digest of ``canonical_json(obj)``."""
    return _core.content_hash(obj, algorithm)
