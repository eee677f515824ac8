"""Shared fixtures for the evidence acceptance tests.

Inputs come from the seeded generator in ``benches/gen_events.py`` so every
run sees the same bytes. Helpers are exposed as fixtures returning callables
(no ``from conftest import``).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

BENCHES = Path(__file__).resolve().parent.parent / "benches"
if str(BENCHES) not in sys.path:
    sys.path.insert(0, str(BENCHES))

from agent_bom import evidence as ev  # noqa: E402
from agent_bom.outbox import OutboxStore, open_store  # noqa: E402
from gen_events import generate  # noqa: E402

AGENT_BOM = Path(sys.executable).parent / "agent-bom"


def native_ndjson(count: int, seed: int = 1) -> bytes:
    """``count`` generated native events as NDJSON bytes (each line ends in '\\n')."""
    return b"".join(line + b"\n" for line in generate(count, seed))


def stream_bytes(
    data: bytes, *, stream_id: str = "s-test", checkpoint_every: int = 10, **kw: object
) -> bytes:
    """Run the Python API over ``data`` and return the evidence stream bytes."""
    out = io.BytesIO()
    ev.stream(
        io.BytesIO(data),
        out,
        stream_id=stream_id,
        checkpoint_every=checkpoint_every,
        threads=1,
        **kw,
    )  # type: ignore[arg-type]
    return out.getvalue()


@dataclass
class Sealed:
    """A generated, sealed evidence stream split into lines (each keeping its '\\n')."""

    lines: list[bytes]
    path: Path

    @property
    def data(self) -> bytes:
        return b"".join(self.lines)

    def types(self) -> list[str]:
        import orjson

        return [orjson.loads(line)["type"] for line in self.lines]

    def checkpoint_indexes(self) -> list[int]:
        return [i for i, t in enumerate(self.types()) if t == "io.agentbom.evidence.checkpoint"]


@dataclass
class CliResult:
    returncode: int
    stdout: bytes
    stderr: str


@pytest.fixture
def native() -> Callable[..., bytes]:
    return native_ndjson


@pytest.fixture
def make_stream() -> Callable[..., bytes]:
    return stream_bytes


@pytest.fixture
def sealed(tmp_path: Path) -> Sealed:
    """25 events with a checkpoint every 10: 28 records.

    seq 0-9 events (lines 1-10), seq 10 checkpoint (line 11), seq 11-20 events,
    seq 21 checkpoint (line 22), seq 22-26 events (lines 23-27), seq 27 final
    checkpoint (line 28).
    """
    data = stream_bytes(native_ndjson(25, seed=7), stream_id="s-test", checkpoint_every=10)
    path = tmp_path / "evidence.ndjson"
    path.write_bytes(data)
    lines = data.splitlines(keepends=True)
    assert len(lines) == 28
    return Sealed(lines=lines, path=path)


@pytest.fixture
def verify_bytes() -> Callable[..., ev.VerifyReport]:
    def run(data: bytes | Sequence[bytes], **kw: object) -> ev.VerifyReport:
        if not isinstance(data, bytes | bytearray):
            data = b"".join(data)
        return ev.verify(io.BytesIO(bytes(data)), **kw)  # type: ignore[arg-type]

    return run


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    """Run ``agent-bom ARGS`` in a subprocess; returns exit code, stdout bytes, stderr text."""

    def run(
        *args: str | os.PathLike[str], stdin: bytes | None = None, timeout: float = 60
    ) -> CliResult:
        env = dict(os.environ, COLUMNS="250", NO_COLOR="1", CI="1")
        p = subprocess.run(
            [str(AGENT_BOM), *map(str, args)],
            input=stdin if stdin is not None else b"",
            capture_output=True,
            timeout=timeout,
            env=env,
        )
        return CliResult(p.returncode, p.stdout, p.stderr.decode("utf-8", errors="replace"))

    return run


@dataclass
class KeyPair:
    private_pem: Path
    public_pem: Path
    other_public_pem: Path


@pytest.fixture
def ed25519_keys(tmp_path: Path) -> KeyPair:
    """An Ed25519 signing key (PKCS#8 PEM), its public key and an unrelated one (SPKI PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    def pub_pem(k: Ed25519PrivateKey) -> bytes:
        return k.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    kp = KeyPair(tmp_path / "checkpoint.key", tmp_path / "checkpoint.pub", tmp_path / "other.pub")
    kp.private_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    kp.public_pem.write_bytes(pub_pem(key))
    kp.other_public_pem.write_bytes(pub_pem(other))
    return kp


# --- PostgreSQL (see tests/pg.py and scripts/postgres.sh) --------------------------


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """DSN of the test PostgreSQL server (fails under CI=true, skips elsewhere, if none)."""
    from pg import postgres_dsn

    return postgres_dsn()


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """DSN of a new, empty database for this test; dropped afterwards."""
    from pg import drop_database, fresh_database

    dsn = fresh_database(postgres_url)
    try:
        yield dsn
    finally:
        drop_database(dsn)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every outbox test runs on the embedded SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "outbox.db")
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
def store(store_url: str) -> Iterator[OutboxStore]:
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The test Kafka broker's bootstrap address (tests/kafka_broker.py); fails under CI=true."""
    from kafka_broker import kafka_bootstrap as _kafka_bootstrap

    return _kafka_bootstrap()
