"""Typed contract of the native module (the Rust/Python seam)."""

from collections.abc import Callable
from typing import IO, Any

__version__: str
REGISTRY_TYPES: list[str]
EVENT_ID_NAMESPACE: str

def canonical_json(obj: Any, /) -> bytes: ...
def epoch_millis(value: str, /) -> tuple[int, int] | None: ...
def kafka_binary(
    lines: list[bytes], /
) -> list[tuple[bytes | None, list[tuple[str, bytes]]] | str]: ...
def canonicalize(data: bytes, max_depth: int = 128) -> bytes: ...
def content_hash(obj: Any, algorithm: str = "sha256") -> str: ...
def hash_bytes(data: bytes, algorithm: str = "sha256") -> str: ...
def merkle_root(leaves: list[bytes], algorithm: str = "sha256") -> str: ...
def inclusion_proof(leaves: list[bytes], index: int, algorithm: str = "sha256") -> list[str]: ...
def root_from_inclusion_proof(
    leaf_hash: str, index: int, size: int, path: list[str], algorithm: str = "sha256"
) -> str | None: ...
def evidence_leaf_hash(contenthash: str) -> str: ...
def inclusion_path_for_leaves(leaves: list[str], index: int, size: int) -> list[str]: ...
def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool: ...
def stream(
    reader: IO[bytes],
    writer: IO[bytes],
    *,
    stream_id: str,
    tenant_id: str | None = None,
    source: str | None = None,
    checkpoint_every: int = 10000,
    algorithm: str = "sha256",
    threads: int = 1,
    max_line_bytes: int = 1048576,
    max_depth: int = 64,
    max_records: int = 2147483647,
    signing_seed: bytes | None = None,
    key_id: str | None = None,
    redactor: Redactor | None = None,
    on_reject: Callable[[int, str, str, bytes], None] | None = None,
    on_progress: Callable[[int, int, int], None] | None = None,
) -> dict[str, Any]: ...
def verify_stream(
    reader: IO[bytes],
    *,
    public_key: bytes | None = None,
    require_sealed: bool = False,
    max_line_bytes: int = 8388608,
    max_depth: int = 128,
    max_records: int = 2147483648,
    max_problems: int = 1000,
    collect: bool = False,
) -> dict[str, Any]: ...

class Redactor:
    def __init__(
        self, rule_files: list[bytes], mode: str = "mask", key: bytes | None = None
    ) -> None: ...
    @property
    def rule_ids(self) -> list[str]: ...
    def redact(self, obj: Any, /) -> tuple[Any, int, dict[str, int]]: ...
    def redact_many(self, objs: list[Any], /) -> list[tuple[Any, int, dict[str, int]]]: ...

# RFC 3986 URI-reference (CloudEvents `source`), the pattern the core checks.
URI_REFERENCE: str

def uri_reference_problem(s: str, /) -> str | None: ...

class BackpressureError(RuntimeError): ...

class Capture:
    def __init__(
        self,
        sink: Any,
        *,
        callable: bool,
        stream_id: str,
        tenant_id: str | None = None,
        source: str | None = None,
        checkpoint_every: int = 10000,
        algorithm: str = "sha256",
        capacity: int = 8192,
        max_bytes: int = 67108864,
        when_full: str = "block",
        max_depth: int = 64,
        signing_seed: bytes | None = None,
        key_id: str | None = None,
        redactor: Redactor | None = None,
        on_reject: Callable[[int, str, str, bytes], None] | None = None,
        threads: int = 1,
    ) -> None: ...
    def record(self, event: Any, /) -> bool: ...
    def record_many(self, events: Any, /) -> tuple[int, int]: ...
    def note(self, message: str, created_at: str | None = None) -> None: ...
    @property
    def recorded(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    def finish(self) -> dict[str, Any]: ...

def redact_lines(data: bytes, redactor: Redactor | None = None) -> int: ...

class PreparedBatch:
    """Events parsed, redacted, mapped and hashed for a Ledger; not yet chained."""

    def results(self) -> list[tuple[str, str, int | str]]: ...
    def redactions_by_rule(self) -> dict[str, int]: ...

class Ledger:
    """A chain continued across transactions: state bytes in, records and state out."""

    def __init__(
        self,
        stream_id: str,
        *,
        tenant_id: str,
        source: str | None = None,
        checkpoint_every: int = 10000,
        algorithm: str = "sha256",
        state: bytes | None = None,
        max_line_bytes: int = 1048576,
        max_depth: int = 64,
        signing_seed: bytes | None = None,
        key_id: str | None = None,
        redactor: Redactor | None = None,
    ) -> None: ...
    @property
    def seq(self) -> int: ...
    @property
    def algorithm(self) -> str: ...
    def prepare(self, events: list[bytes]) -> PreparedBatch: ...
    def append(self, batch: PreparedBatch, keep: list[bool]) -> bytes: ...
    def append_records(
        self, batch: PreparedBatch, keep: list[bool], then: PreparedBatch | None = None
    ) -> list[tuple[int, str, str, str | None, str, bytes]]:
        """Like append; one (seq, id, event_type, severity, time, line) per record.
        ``then``: a second batch chained whole right after, in the same call."""
    def seal(self) -> bytes: ...
    def state(self) -> bytes: ...

class Contract:
    """The envelope contract compiled into the core (agent_bom.envelope.core_contract)."""

    def __init__(self, spec: bytes) -> None: ...
    def check(
        self, events: list[bytes], tenant: str, *, scoped: bool, max_bytes: int
    ) -> tuple[
        list[int],
        list[bytes],
        int | None,
        list[tuple[str, str | None, str | None, str | None, int]] | None,
    ]: ...

def split_json_array(text: bytes) -> list[bytes] | None: ...
