"""Pure-Python reference implementations of `evidence stream`.

`ReferencePipeline` is byte-identical to the Rust core, written from
DESIGN §4 with `rfc8785`, `hashlib` and `uuid` only: the differential test
compares the two, and the benchmark measures how much faster the core is.

`fast_pipeline` is what a Python team would write for speed (orjson with
sorted keys + hashlib): not canonical (orjson sorts by UTF-8, formats floats
its own way) but a fair speed reference. `sha256_ceiling` only hashes the input
lines: the ceiling for any pipeline that hashes every byte.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import rfc8785

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:agent-bom:event-id:v1")
REGISTRY = {
    "finding.created", "finding.updated", "exposure_path.created", "skill.verdict",
    "deploy.decision", "runtime.policy_decision", "audit.integrity", "runtime.exec",
    "runtime.fs", "runtime.net", "runtime.syscall", "security.alert.created",
    "evidence.checkpoint", "delivery.dead_lettered", "delivery.recovered",
}  # fmt: skip
ENVELOPE = {
    "event_id", "tenant_id", "event_type", "created_at", "source", "severity", "risk_score",
    "entity_refs", "exposure_path_id", "payload", "ocsf", "audit_ref", "schema_version",
    "correlation_id", "causation_id", "traceparent", "tracestate",
}  # fmt: skip
UNHASHED = ("chainhash", "contenthash", "seq", "streamid", "traceparent", "tracestate")
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$"
)


def normalize_time(s: str) -> str:
    m = _RFC3339.match(s)
    if not m:
        raise ValueError(f"bad time {s!r}")
    y, mo, d, h, mi, se, frac, tz = m.groups()
    t = datetime(int(y), int(mo), int(d), int(h), int(mi), int(se), tzinfo=UTC)
    if tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        t -= sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    out = t.strftime("%Y-%m-%dT%H:%M:%S")
    frac = (frac or "").rstrip("0")
    return out + (f".{frac}" if frac else "") + "Z"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise ValueError("duplicate key")
    return d


def _h(alg: str, *parts: bytes) -> bytes:
    h = hashlib.sha256() if alg == "sha256" else hashlib.blake2b(digest_size=32)
    for p in parts:
        h.update(p)
    return h.digest()


class _Merkle:
    """RFC 6962 append-only accumulator (stack of perfect subtrees)."""

    def __init__(self, alg: str) -> None:
        self.alg = alg
        self.stack: list[tuple[int, bytes]] = []

    def push(self, contenthash: bytes) -> None:
        node = (0, _h(self.alg, b"\x00", contenthash))
        while self.stack and self.stack[-1][0] == node[0]:
            height, left = self.stack.pop()
            node = (height + 1, _h(self.alg, b"\x01", left, node[1]))
        self.stack.append(node)

    def root(self) -> bytes:
        if not self.stack:
            return _h(self.alg, b"")
        acc = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            acc = _h(self.alg, b"\x01", left, acc)
        return acc


class ReferencePipeline:
    """DESIGN §4 in plain Python. Supports sha256 only (hashlib has no BLAKE3)."""

    def __init__(
        self,
        stream_id: str,
        *,
        tenant_id: str | None = None,
        source: str | None = None,
        checkpoint_every: int = 10_000,
    ) -> None:
        self.alg = "sha256"
        self.stream_id = stream_id
        self.tenant_id = tenant_id
        self.source = source
        self.checkpoint_every = checkpoint_every
        self.seq = 0
        self.prev = _h(self.alg, b"agent-bom/chain/v1\x00", stream_id.encode())
        self.merkle = _Merkle(self.alg)
        self.since = 0
        self.first = 0
        self.last_time = ""
        self.last_tenant = ""

    def _map(self, native: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        tenant = native.get("tenant_id", self.tenant_id)
        source = native.get("source", self.source)
        event_type = native["event_type"]
        time = normalize_time(native["created_at"])
        payload = dict(native.get("payload", {}))
        payload.update({k: v for k, v in native.items() if k not in ENVELOPE})
        event_id = native.get("event_id")
        if event_id is None:
            named = dict(native)
            named.setdefault("tenant_id", tenant)
            named.setdefault("source", source)
            event_id = str(uuid.uuid5(NAMESPACE, rfc8785.dumps(named).decode()))
        data: dict[str, Any] = {
            "event_id": event_id,
            "tenant_id": tenant,
            "event_type": event_type,
            "created_at": time,
            "source": source,
            "payload": payload,
            "schema_version": "1",
        }
        for k in ("severity", "risk_score", "entity_refs", "exposure_path_id", "ocsf",
                  "audit_ref", "correlation_id", "causation_id"):  # fmt: skip
            if k in native:
                data[k] = native[k]
        ce: dict[str, Any] = {
            "specversion": "1.0",
            "id": event_id,
            "source": source,
            "type": f"io.agentbom.{event_type}" if event_type in REGISTRY else event_type,
            "time": time,
            "datacontenttype": "application/json",
            "data": data,
            "tenantid": tenant,
            "redactions": 0,
        }
        if "severity" in native:
            ce["severity"] = native["severity"]
        refs = native.get("entity_refs") or []
        if refs:
            ce["subject"] = refs[0]["id"]
        trace = {k: native[k] for k in ("traceparent", "tracestate") if k in native}
        return ce, trace

    def _append(self, ce: dict[str, Any], trace: dict[str, Any]) -> bytes:
        content = _h(self.alg, rfc8785.dumps(ce))
        chain = _h(self.alg, self.prev, content, self.seq.to_bytes(8, "big"))
        full = dict(ce, **trace)
        full.update(
            contenthash=f"{self.alg}:{content.hex()}",
            chainhash=f"{self.alg}:{chain.hex()}",
            seq=self.seq,
            streamid=self.stream_id,
        )
        self.merkle.push(content)
        self.prev = chain
        self.seq += 1
        return rfc8785.dumps(full) + b"\n"

    def event(self, line: bytes) -> list[bytes]:
        native = json.loads(line, object_pairs_hook=_no_duplicates)
        ce, trace = self._map(native)
        out = [self._append(ce, trace)]
        self.since += 1
        self.last_time = ce["time"]
        self.last_tenant = ce["tenantid"]
        if self.checkpoint_every and self.since >= self.checkpoint_every:
            out.append(self.checkpoint())
        return out

    def checkpoint(self) -> bytes:
        last = self.seq - 1
        payload = {
            "count": self.since,
            "first_seq": self.first,
            "head": f"{self.alg}:{self.prev.hex()}",
            "last_seq": last,
            "merkle_root": f"{self.alg}:{self.merkle.root().hex()}",
            "stream_id": self.stream_id,
        }
        name = rfc8785.dumps({"checkpoint": last, "stream_id": self.stream_id}).decode()
        native = {
            "event_id": str(uuid.uuid5(NAMESPACE, name)),
            "event_type": "evidence.checkpoint",
            "created_at": self.last_time,
            "tenant_id": self.tenant_id or self.last_tenant,
            "source": self.source or "urn:agent-bom:evidence",
            "entity_refs": [{"id": self.stream_id, "kind": "stream"}],
            "payload": payload,
        }
        ce, trace = self._map(native)
        line = self._append(ce, trace)
        self.since = 0
        self.first = self.seq
        return line

    def run(self, lines: Iterable[bytes]) -> Iterator[bytes]:
        for line in lines:
            if line.strip():
                yield from self.event(line)
        if self.since:
            yield self.checkpoint()


def reference_stream(lines: Iterable[bytes], stream_id: str, **options: Any) -> bytes:
    return b"".join(ReferencePipeline(stream_id, **options).run(lines))


def fast_pipeline(lines: Iterable[bytes], stream_id: str, checkpoint_every: int = 10_000) -> int:
    """orjson + hashlib: same envelope, chain and Merkle work, not canonical. Returns bytes out."""
    sha = hashlib.sha256
    prev = sha(b"agent-bom/chain/v1\x00" + stream_id.encode()).digest()
    merkle = _Merkle("sha256")
    total = 0
    since = 0
    for seq, line in enumerate(lines):
        native = orjson.loads(line)
        tenant = native.get("tenant_id")
        event_id = native.get("event_id") or str(
            uuid.uuid5(NAMESPACE, orjson.dumps(native, option=orjson.OPT_SORT_KEYS).decode())
        )
        payload = native.get("payload", {})
        data = {k: v for k, v in native.items() if k != "payload"}
        data.update(event_id=event_id, payload=payload, schema_version="1")
        ce = {
            "specversion": "1.0", "id": event_id, "source": native.get("source"),
            "type": "io.agentbom." + native["event_type"], "time": native["created_at"],
            "datacontenttype": "application/json", "data": data, "tenantid": tenant,
            "redactions": 0,
        }  # fmt: skip
        content = sha(orjson.dumps(ce, option=orjson.OPT_SORT_KEYS)).digest()
        chain = sha(prev + content + seq.to_bytes(8, "big")).digest()
        ce.update(contenthash="sha256:" + content.hex(), chainhash="sha256:" + chain.hex(),
                  seq=seq, streamid=stream_id)  # fmt: skip
        total += len(orjson.dumps(ce, option=orjson.OPT_SORT_KEYS)) + 1
        merkle.push(content)
        prev = chain
        since += 1
        if since >= checkpoint_every:
            merkle.root()
            since = 0
    return total


def sha256_ceiling(blob: bytes) -> None:
    """One SHA-256 pass over the whole input (OpenSSL, SHA-NI where present)."""
    hashlib.sha256(blob).digest()
