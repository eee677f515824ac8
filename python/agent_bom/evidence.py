"""Evidence streams: the Python face of the core.

``stream`` turns native NDJSON events into sealed CloudEvents, ``verify``
checks a stream or bundle, ``export`` writes a deterministic bundle, and
``prove`` / ``verify_proof`` handle RFC 6962 inclusion proofs. All hashing,
canonicalization and verification happens in ``agent_bom._core``.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal, cast

import orjson

from agent_bom import _core
from agent_bom.errors import ConfigError, IntegrityError
from agent_bom.keys import load_public_key, load_signing_seed
from agent_bom.redaction import load_redactor

__all__ = [
    "BUNDLE_FORMAT",
    "PROOF_FORMAT",
    "BackpressureError",
    "CaptureStats",
    "EvidenceStream",
    "Problem",
    "Reject",
    "StreamStats",
    "VerifyReport",
    "export",
    "prove",
    "stream",
    "verify",
    "verify_proof",
]

BUNDLE_FORMAT = "agent-bom.evidence-bundle/v1"
PROOF_FORMAT = "agent-bom.inclusion-proof/v1"
BUNDLE_EVENTS = "events.ndjson"
BUNDLE_MANIFEST = "manifest.json"

HashName = Literal["sha256", "blake3"]
Source = str | os.PathLike[str] | BinaryIO
Sink = str | os.PathLike[str] | BinaryIO


@dataclass(frozen=True)
class Reject:
    """An input line that did not become an event."""

    line: int
    code: str
    reason: str
    original: bytes


@dataclass(frozen=True)
class StreamStats:
    events: int
    rejected: int
    checkpoints: int
    redactions: int
    bytes_in: int
    bytes_out: int
    head: str | None
    merkle_root: str | None
    redactions_by_rule: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    line: int
    seq: int | None
    code: str
    detail: str
    expected: str | None = None
    found: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Facts about the raw input used for bundle manifests, not part of the report.
_REPORT_INTERNAL = frozenset({"lines", "bytes", "input_sha256"})


@dataclass
class VerifyReport:
    ok: bool
    events: int
    checkpoints: int
    sealed: bool
    stream_id: str | None
    head: str | None
    merkle_root: str | None
    hash_alg: str | None = None
    records: int = 0
    lines: int = 0
    bytes: int = 0
    input_sha256: str | None = None
    signatures_verified: int = 0
    signatures_unchecked: int = 0
    errors_total: int = 0
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The `verify --json` report (raw input facts stay out of it)."""
        return {k: v for k, v in asdict(self).items() if k not in _REPORT_INTERNAL}


@contextlib.contextmanager
def _open_source(src: Source) -> Iterator[BinaryIO]:
    if isinstance(src, str | os.PathLike):
        if str(src) == "-":
            yield sys.stdin.buffer
            return
        try:
            f = open(src, "rb")  # noqa: SIM115 - closed below
        except OSError as e:
            raise ConfigError(f"cannot read input {str(src)!r}: {e.strerror or e}") from None
        with f:
            yield f
    else:
        yield src


@contextlib.contextmanager
def _open_sink(dst: Sink) -> Iterator[BinaryIO]:
    """Paths are written to a temporary file and renamed on success, so a
    failed run never leaves a partial stream that looks complete."""
    if isinstance(dst, str | os.PathLike):
        if str(dst) == "-":
            yield sys.stdout.buffer
            sys.stdout.buffer.flush()
            return
        path = Path(dst)
        if path.exists() and not path.is_file():
            # A device, FIFO or socket (/dev/null, a named pipe): never rename over it.
            try:
                special = open(path, "wb")  # noqa: SIM115 - closed by the with below
            except OSError as e:
                raise ConfigError(f"cannot write output {str(dst)!r}: {e.strerror or e}") from None
            with special:
                yield special
            return
        try:
            fd, tmp = tempfile.mkstemp(
                prefix=f".{path.name}.", suffix=".partial", dir=path.parent or "."
            )
        except OSError as e:
            raise ConfigError(f"cannot write output {str(dst)!r}: {e.strerror or e}") from None
        try:
            with os.fdopen(fd, "wb", buffering=0) as f:
                yield f
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    else:
        yield dst


class _ProjectingReader:
    """A binary reader that adds OCSF projections to native NDJSON lines, in
    batches, on their way into the core (``stream(..., ocsf=True)``). A line
    longer than the limit is passed through untouched (the core rejects it)
    without ever being held whole."""

    CHUNK = 1 << 20

    def __init__(self, src: IO[bytes], max_line_bytes: int, **defaults: str | None) -> None:
        from agent_bom.ocsf import project_lines

        self._src, self._limit, self._defaults = src, max_line_bytes, defaults
        self._project = project_lines
        self._out = bytearray()
        self._tail = b""
        self._passthrough = False
        self._eof = False

    def _fill(self) -> None:
        chunk = self._src.read(self.CHUNK)
        if not chunk:
            self._eof = True
            if self._tail:
                self._emit_lines([self._tail], final=True)
                self._tail = b""
            return
        if self._passthrough:
            nl = chunk.find(b"\n")
            if nl < 0:
                self._out += chunk
                return
            self._out += chunk[: nl + 1]
            chunk = chunk[nl + 1 :]
            self._passthrough = False
        data = self._tail + chunk
        cut = data.rfind(b"\n")
        lines, self._tail = (data[:cut].split(b"\n"), data[cut + 1 :]) if cut >= 0 else ([], data)
        if cut >= 0:
            self._emit_lines(lines, final=False)
        if len(self._tail) > self._limit:
            self._out += self._tail
            self._tail = b""
            self._passthrough = True

    def _emit_lines(self, lines: list[bytes], final: bool) -> None:
        projected = self._project(lines, max_line_bytes=self._limit, **self._defaults)
        self._out += b"\n".join(projected)
        if not final:
            self._out += b"\n"

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._out) < n):
            self._fill()
        if n < 0:
            n = len(self._out)
        data = bytes(self._out[:n])
        del self._out[:n]
        return data


def stream(
    src: Source,
    dst: Sink,
    *,
    stream_id: str,
    tenant_id: str | None = None,
    source: str | None = None,
    checkpoint_every: int = 10_000,
    hash: HashName = "sha256",
    threads: int | None = None,
    signing_key: str | os.PathLike[str] | None = None,
    key_id: str | None = None,
    max_line_bytes: int = 1 << 20,
    max_depth: int = 64,
    redact: bool = True,
    redact_mode: Literal["mask", "hash"] = "mask",
    redact_key: bytes | None = None,
    redact_rules: str | os.PathLike[str] | None = None,
    ocsf: bool = False,
    on_reject: Callable[[Reject], None] | None = None,
    on_progress: Callable[[int, int, int], None] | None = None,
) -> StreamStats:
    """Stream native NDJSON events from ``src`` into sealed CloudEvents on ``dst``.

    ``src``/``dst`` are paths, ``"-"`` for stdin/stdout, or binary file objects.
    Secrets and PII are redacted before hashing unless ``redact=False``
    (see ``agent_bom.redaction``). With ``ocsf=True`` each event whose type
    maps cleanly gets its OCSF projection in the envelope's ``ocsf`` field
    (added in Python, in batches, before the core). Lines that are not valid events are passed
    to ``on_reject`` and counted; the rest of the stream is still complete and sealed.
    """
    if not stream_id:
        raise ConfigError("stream_id is required: pass --stream-id NAME (one id per stream)")
    if checkpoint_every < 0:
        raise ConfigError("checkpoint_every must be 0 (seal only at the end) or a positive count")
    if hash not in ("sha256", "blake3"):
        raise ConfigError(f"hash {hash!r} is not supported: use sha256 or blake3")
    if threads is not None and threads < 1:
        raise ConfigError("threads must be at least 1")
    if (signing_key is None) != (key_id is None):
        raise ConfigError("checkpoint signing needs both --signing-key PATH and --key-id ID")
    seed = load_signing_seed(signing_key) if signing_key is not None else None
    redactor = load_redactor(redact_mode, redact_key, redact_rules) if redact else None

    def reject_cb(line: int, code: str, reason: str, raw: bytes) -> None:
        if on_reject is not None:
            on_reject(Reject(line, code, reason, raw))

    with _open_source(src) as r, _open_sink(dst) as w:
        reader: IO[bytes] = r
        if ocsf:
            reader = cast(
                IO[bytes],
                _ProjectingReader(r, max_line_bytes, tenant_id=tenant_id, source=source),
            )
        try:
            raw_stats = _core.stream(
                reader,
                w,
                stream_id=stream_id,
                tenant_id=tenant_id,
                source=source,
                checkpoint_every=checkpoint_every,
                algorithm=hash,
                threads=threads or os.cpu_count() or 1,
                max_line_bytes=max_line_bytes,
                max_depth=max_depth,
                signing_seed=seed,
                key_id=key_id,
                redactor=redactor,
                on_reject=reject_cb,
                on_progress=on_progress,
            )
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return StreamStats(**raw_stats)


def _sniff(f: IO[bytes]) -> tuple[IO[bytes], bytes]:
    """The stream (wrapped if it cannot peek) and its first two bytes, unconsumed."""
    peekable: Any = f if hasattr(f, "peek") else io.BufferedReader(cast(Any, f))
    return peekable, bytes(peekable.peek(2)[:2])


def _is_bundle(head: bytes) -> bool:
    return head[:2] == b"\x1f\x8b"


def _report(raw: dict[str, Any]) -> VerifyReport:
    return VerifyReport(
        ok=raw["ok"],
        events=raw["events"],
        checkpoints=raw["checkpoints"],
        sealed=raw["sealed"],
        stream_id=raw["stream_id"],
        head=raw["head"],
        merkle_root=raw["merkle_root"],
        hash_alg=raw["hash_alg"],
        records=raw["records"],
        lines=raw["lines"],
        bytes=raw["bytes"],
        input_sha256=raw["input_sha256"],
        signatures_verified=raw["signatures_verified"],
        signatures_unchecked=raw["signatures_unchecked"],
        errors_total=raw["errors_total"],
        errors=[Problem(**p) for p in raw["errors"]],
        warnings=[Problem(**p) for p in raw["warnings"]],
    )


def _verify_raw(
    f: IO[bytes], public_key: bytes | None, require_sealed: bool, collect: bool, **limits: int
) -> dict[str, Any]:
    return _core.verify_stream(
        f, public_key=public_key, require_sealed=require_sealed, collect=collect, **limits
    )


def verify(
    src: Source,
    *,
    public_key: str | os.PathLike[str] | bytes | None = None,
    require_sealed: bool = False,
    max_line_bytes: int = 8 << 20,
    max_depth: int = 128,
    max_records: int = 1 << 31,
) -> VerifyReport:
    """Verify an evidence stream (NDJSON) or an export bundle (.tar.gz).

    Never raises for integrity problems: they are in the report
    (``ok``, ``errors``, ``warnings``). Raises ConfigError when the input or
    key cannot be read.
    """
    key = _public_key_bytes(public_key)
    limits = {"max_line_bytes": max_line_bytes, "max_depth": max_depth, "max_records": max_records}
    with _open_source(src) as f:
        peekable, head = _sniff(f)
        if _is_bundle(head):
            return _verify_bundle(peekable, key, require_sealed, limits)
        return _report(_verify_raw(peekable, key, require_sealed, False, **limits))


def _public_key_bytes(public_key: str | os.PathLike[str] | bytes | None) -> bytes | None:
    if public_key is None or isinstance(public_key, bytes):
        return public_key
    return load_public_key(public_key)


@contextlib.contextmanager
def _bundle_members(f: IO[bytes]) -> Iterator[Iterator[tuple[str, IO[bytes]]]]:
    """The regular files of a bundle, streamed in order. The gzip layer is read
    to its end afterwards so its CRC-32 and length trailer are checked too."""
    gz = gzip.GzipFile(fileobj=f, mode="rb")
    try:
        tar = tarfile.open(fileobj=gz, mode="r|")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ConfigError(
            f"input looks gzip-compressed but is not a readable bundle: {e}"
        ) from None

    def members() -> Iterator[tuple[str, IO[bytes]]]:
        for member in tar:
            fobj = tar.extractfile(member) if member.isfile() else None
            if fobj is not None:
                yield member.name, fobj

    try:
        with tar:
            yield members()
        while gz.read(1 << 20):
            pass
    except gzip.BadGzipFile as e:
        raise IntegrityError(f"bundle is damaged: {e}") from None
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise ConfigError(f"bundle is damaged or truncated: {e}") from None


def _verify_bundle(
    f: IO[bytes], key: bytes | None, require_sealed: bool, limits: dict[str, int]
) -> VerifyReport:
    manifest: dict[str, Any] | None = None
    report: VerifyReport | None = None
    with _bundle_members(f) as members:
        for name, fobj in members:
            if name == BUNDLE_MANIFEST:
                raw = fobj.read(1 << 20)
                try:
                    manifest = orjson.loads(raw)
                except orjson.JSONDecodeError as e:
                    raise IntegrityError(f"bundle manifest.json is not JSON: {e}") from None
                if _core.canonicalize(raw) != raw:
                    raise IntegrityError("bundle manifest.json is not in canonical (RFC 8785) form")
            elif name == BUNDLE_EVENTS:
                report = _report(_verify_raw(fobj, key, require_sealed, False, **limits))
    if manifest is None or report is None:
        missing = BUNDLE_MANIFEST if manifest is None else BUNDLE_EVENTS
        raise ConfigError(f"bundle has no {missing}: is it an agent-bom export?")
    _check_manifest(manifest, report)
    return report


def _check_manifest(manifest: dict[str, Any], report: VerifyReport) -> None:
    files = manifest.get("files", {}).get(BUNDLE_EVENTS, {})
    checks = [
        ("files.events.ndjson.sha256", files.get("sha256"), report.input_sha256),
        ("files.events.ndjson.bytes", files.get("bytes"), report.bytes),
        ("records", manifest.get("records"), report.records),
        ("head", manifest.get("head"), report.head),
        ("merkle_root", manifest.get("merkle_root"), report.merkle_root),
        ("stream_id", manifest.get("stream_id"), report.stream_id),
    ]
    for name, claimed, actual in checks:
        if claimed != actual:
            report.errors.append(
                Problem(
                    line=0,
                    seq=None,
                    code="HASH_MISMATCH" if name.startswith("files") else "CHECKPOINT_MISMATCH",
                    detail=f"bundle manifest {name} does not match {BUNDLE_EVENTS}",
                    expected=None if actual is None else str(actual),
                    found=None if claimed is None else str(claimed),
                )
            )
            report.errors_total += 1
            report.ok = False


def _spool(src: Source) -> tuple[Path, bool]:
    """A path to read twice: the input itself, or a temporary copy of a stream."""
    if isinstance(src, str | os.PathLike) and str(src) != "-":
        return Path(src), False
    fd, tmp = tempfile.mkstemp(prefix="agent-bom-", suffix=".ndjson")
    with _open_source(src) as r, os.fdopen(fd, "wb") as w:
        while chunk := r.read(1 << 20):
            w.write(chunk)
    return Path(tmp), True


def export(src: Source, dst: Sink) -> dict[str, Any]:
    """Write a deterministic ``.tar.gz`` bundle of a verified stream; returns the manifest.

    Refuses (IntegrityError) a stream that does not verify.
    """
    path, temporary = _spool(src)
    try:
        report = verify(path)
        if not report.ok:
            first = report.errors[0]
            raise IntegrityError(
                "refusing to export a stream that does not verify: "
                f"{report.errors_total} problem(s), "
                f"first at line {first.line}: {first.code} {first.detail}"
            )
        manifest = {
            "format": BUNDLE_FORMAT,
            "stream_id": report.stream_id,
            "hash_alg": report.hash_alg,
            "records": report.records,
            "events": report.events,
            "checkpoints": report.checkpoints,
            "sealed": report.sealed,
            "head": report.head,
            "merkle_root": report.merkle_root,
            "files": {BUNDLE_EVENTS: {"sha256": report.input_sha256, "bytes": report.bytes}},
        }
        manifest_bytes = _core.canonical_json(manifest)
        with _open_sink(dst) as out:
            _write_bundle(out, manifest_bytes, path, report.bytes)
        return manifest
    finally:
        if temporary:
            path.unlink(missing_ok=True)


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    # Fixed metadata: the bundle's bytes depend only on its contents.
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mtime = 0
    ti.mode = 0o644
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def _write_bundle(out: BinaryIO, manifest: bytes, events: Path, size: int) -> None:
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        tar.addfile(_tarinfo(BUNDLE_MANIFEST, len(manifest)), io.BytesIO(manifest))
        with events.open("rb") as ev:
            tar.addfile(_tarinfo(BUNDLE_EVENTS, size), ev)


def _open_events(src: Source) -> tuple[dict[str, Any], bool]:
    """Verify with leaves collected (plain stream or bundle)."""
    with _open_source(src) as f:
        peekable, head = _sniff(f)
        if _is_bundle(head):
            raw: dict[str, Any] | None = None
            with _bundle_members(peekable) as members:
                for name, fobj in members:
                    if name == BUNDLE_EVENTS:
                        raw = _core.verify_stream(fobj, collect=True)
            if raw is None:
                raise ConfigError(f"bundle has no {BUNDLE_EVENTS}")
            return raw, True
        return _core.verify_stream(peekable, collect=True), False


def prove(src: Source, seq: int) -> dict[str, Any]:
    """RFC 6962 inclusion proof for record ``seq`` against the last checkpoint covering it."""
    raw, _ = _open_events(src)
    if not raw["ok"]:
        first = raw["errors"][0]
        raise IntegrityError(
            f"stream does not verify ({first['code']} at line {first['line']}); "
            "run 'agent-bom evidence verify' for the full report"
        )
    leaves: list[str] = raw["leaves"]
    if not 0 <= seq < len(leaves):
        raise ConfigError(f"seq {seq} is not in this stream (it holds seq 0..{len(leaves) - 1})")
    covering = [c for c in raw["checkpoint_list"] if c["last_seq"] >= seq]
    if not covering:
        raise ConfigError(
            f"no checkpoint covers seq {seq}: it is in the unsealed tail or is the final checkpoint"
        )
    cp = covering[-1]
    payload = orjson.loads(cp["payload"])
    tree_size = cp["last_seq"] + 1
    return {
        "format": PROOF_FORMAT,
        "stream_id": raw["stream_id"],
        "hash_alg": raw["hash_alg"],
        "seq": seq,
        "contenthash": raw["contenthashes"][seq],
        "leaf_hash": leaves[seq],
        "tree_size": tree_size,
        "merkle_root": payload["merkle_root"],
        "audit_path": _core.inclusion_path_for_leaves(leaves, seq, tree_size),
        "checkpoint": {"seq": cp["seq"], "payload": payload},
    }


def verify_proof(
    proof: dict[str, Any],
    *,
    public_key: str | os.PathLike[str] | bytes | None = None,
    src: Source | None = None,
) -> list[Problem]:
    """Check an inclusion proof; returns the problems found (empty when it holds).

    With ``public_key`` the checkpoint signature inside the proof is checked;
    with ``src`` the proof is also matched against that stream.
    """
    problems: list[Problem] = []

    def bad(code: str, detail: str, expected: Any = None, found: Any = None) -> None:
        problems.append(
            Problem(
                0,
                proof.get("seq") if isinstance(proof.get("seq"), int) else None,
                code,
                detail,
                None if expected is None else str(expected),
                None if found is None else str(found),
            )
        )

    try:
        seq, size = int(proof["seq"]), int(proof["tree_size"])
        contenthash, leaf, root = proof["contenthash"], proof["leaf_hash"], proof["merkle_root"]
        path = list(proof["audit_path"])
        payload = dict(proof["checkpoint"]["payload"])
        algorithm = contenthash.split(":", 1)[0]
        computed_leaf = _core.evidence_leaf_hash(contenthash)
        computed_root = _core.root_from_inclusion_proof(leaf, seq, size, path, algorithm)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"not an agent-bom inclusion proof ({PROOF_FORMAT}): {e}") from None

    if computed_leaf != leaf:
        bad("HASH_MISMATCH", "leaf_hash is not H(0x00 || contenthash)", computed_leaf, leaf)
    tagged_root = None if computed_root is None else f"{algorithm}:{computed_root}"
    if tagged_root != root:
        bad("CHECKPOINT_MISMATCH", "audit path does not lead to merkle_root", tagged_root, root)
    if payload.get("merkle_root") != root:
        bad(
            "CHECKPOINT_MISMATCH",
            "checkpoint payload carries another merkle_root",
            root,
            payload.get("merkle_root"),
        )
    if payload.get("last_seq") != size - 1:
        bad(
            "CHECKPOINT_MISMATCH",
            "tree_size does not match the checkpoint's last_seq",
            size - 1,
            payload.get("last_seq"),
        )
    if payload.get("stream_id") != proof.get("stream_id"):
        bad(
            "STREAM_MIXED",
            "proof and checkpoint name different streams",
            proof.get("stream_id"),
            payload.get("stream_id"),
        )
    key = _public_key_bytes(public_key)
    if key is not None:
        sig = payload.get("signature")
        if not isinstance(sig, str):
            bad("SIGNATURE_INVALID", "checkpoint in the proof is not signed")
        else:
            import base64

            unsigned = {k: v for k, v in payload.items() if k != "signature"}
            try:
                sig_bytes = base64.b64decode(sig, validate=True)
            except ValueError:
                sig_bytes = b""
            if not _core.ed25519_verify(key, _core.canonical_json(unsigned), sig_bytes):
                bad("SIGNATURE_INVALID", "checkpoint signature does not verify with the given key")
    if src is not None:
        raw, _ = _open_events(src)
        cps = {c["seq"]: c for c in raw.get("checkpoint_list", [])}
        cp_seq = proof["checkpoint"].get("seq")
        if cp_seq not in cps or orjson.loads(cps[cp_seq]["payload"]) != payload:
            bad(
                "CHECKPOINT_MISMATCH",
                f"the stream has no checkpoint at seq {cp_seq} equal to the proof's",
            )
        hashes = raw.get("contenthashes", [])
        if seq >= len(hashes) or hashes[seq] != contenthash:
            bad(
                "HASH_MISMATCH",
                f"record seq {seq} in the stream has another contenthash",
                None,
                contenthash,
            )
    return problems


BackpressureError = _core.BackpressureError


@dataclass(frozen=True)
class CaptureStats:
    """What an ``EvidenceStream`` did: ``recorded`` = accepted into the queue,
    ``written`` = events in the stream, ``dropped`` = refused by a full queue."""

    recorded: int
    written: int
    dropped: int
    rejected: int
    redactions: int
    checkpoints: int
    head: str | None
    merkle_root: str | None
    redactions_by_rule: dict[str, int] = field(default_factory=dict)


def _is_bundle_path(sink: object) -> bool:
    return isinstance(sink, str | os.PathLike) and str(sink).endswith((".tar.gz", ".tgz"))


class EvidenceStream:
    """Bounded capture: push events from Python (any thread) into a sealed stream.

    ``sink`` is a path, ``"-"`` (stdout), a path ending in ``.tar.gz`` (an
    export bundle written at ``finish``), or a callable that receives batches
    of finished CloudEvent lines (``list[bytes]``, no newlines). Memory is
    bounded by ``capacity`` records and ``max_bytes`` queued bytes; when the
    queue is full ``when_full`` decides: ``"block"`` (wait, GIL released),
    ``"drop_newest"`` (drop and count; the next checkpoint records the count)
    or ``"error"`` (raise ``BackpressureError``).

    ``threads``: how many threads run the stages that need no order (parse, redact,
    map, hash) on batches taken from the queue; one thread writes them in record
    order, so the bytes are the same for any count. Default 1: a collector's capture
    shares the machine with what it observes. Beyond the queue's budget, about
    ``5 * threads`` takes of up to 256 KiB each are in flight.
    """

    def __init__(
        self,
        sink: Sink | Callable[[list[bytes]], object],
        *,
        stream_id: str,
        tenant_id: str | None = None,
        source: str | None = None,
        capacity: int = 8192,
        max_bytes: int = 64 << 20,
        when_full: Literal["block", "drop_newest", "error"] = "block",
        redact: bool = True,
        redact_mode: Literal["mask", "hash"] = "mask",
        redact_key: bytes | None = None,
        redact_rules: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 10_000,
        threads: int | None = None,
        hash: HashName = "sha256",
        signing_key: str | os.PathLike[str] | None = None,
        key_id: str | None = None,
        on_reject: Callable[[Reject], None] | None = None,
    ) -> None:
        if not stream_id:
            raise ConfigError("stream_id is required (one id per stream)")
        if capacity < 1 or max_bytes < 1:
            raise ConfigError("capacity and max_bytes must be positive")
        if when_full not in ("block", "drop_newest", "error"):
            raise ConfigError(f"when_full={when_full!r}: use 'block', 'drop_newest' or 'error'")
        if (signing_key is None) != (key_id is None):
            raise ConfigError("checkpoint signing needs both signing_key and key_id")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads={threads}: use at least 1 (or None for 1)")
        self._stack = contextlib.ExitStack()
        self._bundle: Path | None = None
        self._tmp: Path | None = None
        self._finished: CaptureStats | None = None

        def reject_cb(line: int, code: str, reason: str, raw: bytes) -> None:
            if on_reject is not None:
                on_reject(Reject(line, code, reason, raw))

        target: object
        if callable(sink):
            target, is_callable = sink, True
        elif _is_bundle_path(sink):
            self._bundle = Path(sink)  # type: ignore[arg-type]
            fd, tmp = tempfile.mkstemp(prefix="agent-bom-capture-", suffix=".ndjson")
            self._tmp = Path(tmp)
            target, is_callable = self._stack.enter_context(os.fdopen(fd, "wb")), False
        else:
            target, is_callable = self._stack.enter_context(_open_sink(sink)), False
        try:
            self._core = _core.Capture(
                target,
                callable=is_callable,
                stream_id=stream_id,
                tenant_id=tenant_id,
                source=source,
                checkpoint_every=checkpoint_every,
                algorithm=hash,
                capacity=capacity,
                max_bytes=max_bytes,
                when_full=when_full,
                signing_seed=load_signing_seed(signing_key) if signing_key is not None else None,
                key_id=key_id,
                redactor=load_redactor(redact_mode, redact_key, redact_rules) if redact else None,
                on_reject=reject_cb,
                threads=threads or 1,
            )
        except BaseException:
            self._stack.close()
            raise

    def record(self, event: dict[str, Any] | bytes | str) -> bool:
        """Queue one event; False when it was dropped (``when_full="drop_newest"``)."""
        return self._core.record(event)

    def record_many(self, events: Iterable[dict[str, Any] | bytes | str]) -> int:
        """Queue many events in one call; returns how many were queued."""
        queued, _dropped = self._core.record_many(list(events))
        return queued

    def note(self, message: str, *, created_at: str | None = None) -> None:
        """Record an annotation (an ``audit.integrity`` event with ``payload.note``).
        Its time is ``created_at`` or, by default, the time of the last event."""
        self._core.note(message, created_at)

    @property
    def recorded(self) -> int:
        return self._core.recorded

    @property
    def dropped(self) -> int:
        return self._core.dropped

    def finish(self) -> CaptureStats:
        """Drain the queue, seal the stream, close the sink; idempotent."""
        if self._finished is not None:
            return self._finished
        try:
            raw = self._core.finish()
        finally:
            self._stack.close()
        if self._bundle is not None and self._tmp is not None:
            try:
                export(self._tmp, self._bundle)
            finally:
                self._tmp.unlink(missing_ok=True)
        self._finished = CaptureStats(
            recorded=raw["recorded"],
            written=raw["events"],
            dropped=raw["dropped"],
            rejected=raw["rejected"],
            redactions=raw["redactions"],
            checkpoints=raw["checkpoints"],
            head=raw["head"],
            merkle_root=raw["merkle_root"],
            redactions_by_rule=raw["redactions_by_rule"],
        )
        return self._finished

    def __enter__(self) -> EvidenceStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()
