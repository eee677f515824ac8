"""The evidence stream output format (DESIGN.md §4): CloudEvents 1.0 structured
JSON, each line its own RFC 8785 form, hashes/chain/checkpoints recomputed
independently with hashlib, rfc8785 and a pure-Python RFC 6962 tree, and
every line parsed with the CloudEvents SDK."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as CoreCloudEvent
from cloudevents.v1.http import from_json as v1_from_json

from agent_bom import evidence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
import gen_events  # noqa: E402

STREAM_ID = "s-1"
COUNT = 300
EVERY = 100
CHECKPOINT_TYPE = "io.agentbom.evidence.checkpoint"
# DESIGN.md §3 registry (written out here, not read from the product)
REGISTRY = {
    "finding.created",
    "finding.updated",
    "exposure_path.created",
    "skill.verdict",
    "deploy.decision",
    "runtime.policy_decision",
    "audit.integrity",
    "runtime.exec",
    "runtime.fs",
    "runtime.net",
    "runtime.syscall",
    "security.alert.created",
    "evidence.checkpoint",
    "delivery.dead_lettered",
    "delivery.recovered",
}
HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
NOT_HASHED = ("contenthash", "chainhash", "seq", "streamid", "traceparent", "tracestate")
EVENT_ID_NS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:agent-bom:event-id:v1")


# --------------------------------------------------------------------------
# independent reference computations
# --------------------------------------------------------------------------


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _raw(tagged: str) -> bytes:
    alg, hexd = tagged.split(":", 1)
    assert alg == "sha256"
    return bytes.fromhex(hexd)


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 Merkle tree hash over already-computed leaf hashes."""
    if not leaves:
        return _h(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return _h(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:]))


def _evidence_root(contenthashes: list[str]) -> str:
    return "sha256:" + _mth([_h(b"\x00" + _raw(c)) for c in contenthashes]).hex()


def _content_hash(event: dict[str, Any]) -> str:
    body = {k: v for k, v in event.items() if k not in NOT_HASHED}
    return "sha256:" + hashlib.sha256(rfc8785.dumps(body)).hexdigest()


def _derived_id(native: dict[str, Any]) -> str:
    return str(uuid.uuid5(EVENT_ID_NS, rfc8785.dumps(native).decode("utf-8")))


def _parse_time(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _run(tmp: Path, lines: list[bytes], **opts: Any) -> tuple[list[bytes], Any]:
    src, dst = tmp / "in.ndjson", tmp / "out.ndjson"
    src.write_bytes(b"".join(line + b"\n" for line in lines))
    rejects: list[Any] = []
    # The mapping is under test here; redaction has its own tests.
    opts.setdefault("redact", False)
    stats = evidence.stream(src, dst, stream_id=STREAM_ID, on_reject=rejects.append, **opts)
    assert rejects == []
    raw = dst.read_bytes()
    assert raw.endswith(b"\n")
    return raw[:-1].split(b"\n"), stats


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):
    inputs = list(gen_events.generate(COUNT, 42))
    out, stats = _run(tmp_path_factory.mktemp("ce"), inputs, checkpoint_every=EVERY)
    return [json.loads(i) for i in inputs], out, [json.loads(line) for line in out], stats


def _non_checkpoints(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] != CHECKPOINT_TYPE]


# --------------------------------------------------------------------------
# CloudEvents SDK and attributes
# --------------------------------------------------------------------------


def test_every_line_parses_with_the_cloudevents_sdk(generated) -> None:
    _, lines, events, _ = generated
    fmt = JSONFormat()
    for line, ev in zip(lines, events, strict=True):
        ce = fmt.read(CoreCloudEvent, line)  # validates required/optional/extension attributes
        assert ce.get_specversion() == "1.0"
        assert ce.get_id() == ev["id"]
        assert ce.get_source() == ev["source"]
        assert ce.get_type() == ev["type"]
        assert ce.get_datacontenttype() == "application/json"
        assert ce.get_time() is not None and ce.get_time().utcoffset().total_seconds() == 0
        assert ce.get_data() == ev["data"]
        for ext in ("tenantid", "redactions", "streamid", "seq", "contenthash", "chainhash"):
            assert ce.get_extension(ext) == ev[ext]
        legacy = v1_from_json(line)  # the SDK's v1 structured-JSON reader as well
        assert legacy["id"] == ev["id"] and legacy["seq"] == ev["seq"]


def test_stream_has_input_events_plus_checkpoints(generated) -> None:
    natives, _, events, stats = generated
    assert len(_non_checkpoints(events)) == len(natives) == COUNT
    assert stats.events == COUNT
    assert stats.checkpoints == len(events) - COUNT == 3


def test_required_attributes_and_extensions(generated) -> None:
    _, _, events, _ = generated
    for ev in events:
        assert ev["specversion"] == "1.0"
        assert isinstance(ev["id"], str) and ev["id"]
        assert isinstance(ev["source"], str) and ev["source"]
        assert ev["datacontenttype"] == "application/json"
        assert RFC3339_Z.match(ev["time"]), ev["time"]
        assert ev["streamid"] == STREAM_ID
        assert isinstance(ev["redactions"], int) and not isinstance(ev["redactions"], bool)
        assert ev["redactions"] >= 0
        assert isinstance(ev["tenantid"], str) and ev["tenantid"]
        assert HASH_RE.match(ev["contenthash"]), ev["contenthash"]
        assert HASH_RE.match(ev["chainhash"]), ev["chainhash"]
        for name in ev:
            assert re.fullmatch(r"[a-z0-9]+", name), (
                f"attribute name {name!r} is not CloudEvents-legal"
            )


def test_seq_is_contiguous_from_zero(generated) -> None:
    _, _, events, _ = generated
    assert [e["seq"] for e in events] == list(range(len(events)))


def test_attributes_follow_the_native_event(generated) -> None:
    natives, _, events, _ = generated
    for native, ev in zip(natives, _non_checkpoints(events), strict=True):
        t = native["event_type"]
        assert ev["type"] == (f"io.agentbom.{t}" if t in REGISTRY else t)
        assert ev["source"] == native["source"]
        assert ev["tenantid"] == native["tenant_id"]
        assert _parse_time(ev["time"]) == _parse_time(native["created_at"])
        if "severity" in native:
            assert ev["severity"] == native["severity"]
        assert ev["data"]["event_type"] == t
        assert ev["data"]["tenant_id"] == native["tenant_id"]
        assert ev["data"]["event_id"] == ev["id"]
        assert ev["data"]["payload"] == native["payload"]


def test_custom_reverse_dns_types_are_unchanged(generated) -> None:
    _, _, events, _ = generated
    custom = [e for e in _non_checkpoints(events) if e["data"]["event_type"] not in REGISTRY]
    assert custom, "the generator should produce custom-typed events"
    assert all(e["type"] == "com.example.scanner.result" for e in custom)
    assert any(e["type"].startswith("io.agentbom.runtime.") for e in events)


# --------------------------------------------------------------------------
# canonical form, hashes, chain
# --------------------------------------------------------------------------


def test_every_line_is_its_own_rfc8785_form(generated) -> None:
    _, lines, events, _ = generated
    for line, ev in zip(lines, events, strict=True):
        assert rfc8785.dumps(ev) == line


def test_contenthash_recomputed_independently(generated) -> None:
    _, _, events, _ = generated
    for ev in events:
        assert ev["contenthash"] == _content_hash(ev), ev["seq"]


def test_chainhash_follows_the_design_recipe(generated) -> None:
    _, _, events, _ = generated
    prev = _h(b"agent-bom/chain/v1\0" + STREAM_ID.encode())
    for ev in events:
        prev = _h(prev + _raw(ev["contenthash"]) + ev["seq"].to_bytes(8, "big"))
        assert ev["chainhash"] == "sha256:" + prev.hex(), ev["seq"]
    assert generated[3].head == events[-1]["chainhash"]


def test_event_ids_are_unique(generated) -> None:
    _, _, events, _ = generated
    ids = [e["id"] for e in events]
    assert len(set(ids)) == len(ids)


# --------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------


def test_checkpoints_after_every_n_records_and_at_the_end(generated) -> None:
    _, _, events, _ = generated
    expected_positions = []
    others = 0
    for ev in events:
        if ev["type"] == CHECKPOINT_TYPE:
            expected_positions.append(ev["seq"])
            assert others == EVERY or ev is events[-1], (
                f"checkpoint at seq {ev['seq']} after {others} records"
            )
            others = 0
        else:
            assert others < EVERY, f"no checkpoint after {EVERY} records (seq {ev['seq']})"
            others += 1
    assert events[-1]["type"] == CHECKPOINT_TYPE
    assert expected_positions == [100, 201, 302]


def test_checkpoint_payloads(generated) -> None:
    _, _, events, stats = generated
    first = 0
    for ev in events:
        if ev["type"] != CHECKPOINT_TYPE:
            continue
        seq = ev["seq"]
        data = ev["data"]
        assert data["event_type"] == "evidence.checkpoint"
        p = data["payload"]
        assert p["stream_id"] == STREAM_ID
        assert p["last_seq"] == seq - 1
        assert p["first_seq"] == first
        assert p["count"] == seq - first
        assert p["head"] == events[seq - 1]["chainhash"]
        assert p["merkle_root"] == _evidence_root([e["contenthash"] for e in events[:seq]])
        assert _parse_time(ev["time"]) == _parse_time(events[seq - 1]["time"])
        first = seq + 1
    assert stats.merkle_root == events[-1]["data"]["payload"]["merkle_root"]


def test_pure_python_rfc6962_reference_matches_published_vectors() -> None:
    # guards the reference used above
    tree = json.loads((ROOT / "tests" / "vectors" / "rfc6962" / "tree_hashes.json").read_text())
    leaves = [_h(b"\x00" + bytes.fromhex(x)) for x in tree["leaves_hex"]]
    for n, root in tree["roots_hex"].items():
        assert _mth(leaves[: int(n)]).hex() == root


# --------------------------------------------------------------------------
# event ids, time normalization, unknown fields
# --------------------------------------------------------------------------


def test_derived_event_ids_use_the_documented_uuid5_recipe(generated) -> None:
    natives, _, events, _ = generated
    checked = 0
    for native, ev in zip(natives, _non_checkpoints(events), strict=True):
        if ev["redactions"]:
            continue  # the recipe hashes the redacted native event
        assert ev["id"] == _derived_id(native), ev["seq"]
        checked += 1
    assert checked >= COUNT - 10


def test_derived_event_id_includes_stream_defaults(tmp_path: Path) -> None:
    natives = [
        {
            "event_type": "finding.created",
            "created_at": "2026-05-01T00:00:00Z",
            "payload": {"finding_id": "F-1"},
        },
        {
            "event_type": "finding.created",
            "created_at": "2026-05-01T00:00:00Z",
            "payload": {"finding_id": "F-1"},
            "tenant_id": "globex",
        },
        {
            "event_type": "com.example.thing.happened",
            "created_at": "2026-05-01T00:00:01Z",
            "payload": {},
            "source": "urn:other",
        },
    ]
    lines, _ = _run(
        tmp_path,
        [json.dumps(n).encode() for n in natives],
        tenant_id="acme",
        source="urn:collector:x",
    )
    out = _non_checkpoints([json.loads(line) for line in lines])
    assert len(out) == 3
    for native, ev in zip(natives, out, strict=True):
        filled = {"tenant_id": "acme", "source": "urn:collector:x", **native}
        assert ev["tenantid"] == filled["tenant_id"]
        assert ev["source"] == filled["source"]
        assert ev["id"] == _derived_id(filled)


def test_producer_event_id_is_kept(tmp_path: Path) -> None:
    native = {
        "event_id": "evt-0001-from-producer",
        "tenant_id": "acme",
        "event_type": "deploy.decision",
        "created_at": "2026-05-01T00:00:00Z",
        "source": "urn:ci",
        "payload": {"decision": "allow"},
    }
    lines, _ = _run(tmp_path, [json.dumps(native).encode()])
    ev = json.loads(lines[0])
    assert ev["id"] == "evt-0001-from-producer"
    assert ev["data"]["event_id"] == "evt-0001-from-producer"
    assert ev["type"] == "io.agentbom.deploy.decision"


@pytest.mark.parametrize(
    ("created_at", "expected"),
    [
        ("2026-05-01T01:30:00+02:00", "2026-04-30T23:30:00Z"),
        ("2026-04-30T18:30:00-05:00", "2026-04-30T23:30:00Z"),
        ("2026-04-30T23:30:00+00:00", "2026-04-30T23:30:00Z"),
    ],
)
def test_time_is_normalized_to_utc(tmp_path: Path, created_at: str, expected: str) -> None:
    native = {
        "tenant_id": "acme",
        "event_type": "runtime.exec",
        "created_at": created_at,
        "source": "urn:proxy",
        "payload": {"exe": "/bin/sh"},
    }
    lines, _ = _run(tmp_path, [json.dumps(native).encode()])
    ev = json.loads(lines[0])
    assert ev["time"] == expected
    assert ev["data"]["created_at"] == expected
    assert JSONFormat().read(CoreCloudEvent, lines[0]).get_time() == datetime(
        2026, 4, 30, 23, 30, tzinfo=UTC
    )


def test_unknown_top_level_fields_land_in_payload(tmp_path: Path) -> None:
    native = {
        "tenant_id": "acme",
        "event_type": "com.example.thing.happened",
        "created_at": "2026-05-01T00:00:00Z",
        "source": "urn:importer",
        "payload": {"k": "v"},
        "extra_field": {"z": 1},
        "build_number": 7,
    }
    lines, _ = _run(tmp_path, [json.dumps(native).encode()])
    ev = json.loads(lines[0])
    assert ev["type"] == "com.example.thing.happened"
    assert ev["data"]["payload"] == {"k": "v", "extra_field": {"z": 1}, "build_number": 7}
    assert "extra_field" not in ev["data"] and "build_number" not in ev["data"]
    assert "extra_field" not in ev and "build_number" not in ev
    assert rfc8785.dumps(ev) == lines[0]
    assert ev["contenthash"] == _content_hash(ev)


def test_unknown_top_level_fields_without_payload_become_the_payload(tmp_path: Path) -> None:
    native = {
        "tenant_id": "acme",
        "event_type": "finding.created",
        "created_at": "2026-05-01T00:00:00Z",
        "source": "urn:scan",
        "top": [1, 2],
    }
    lines, _ = _run(tmp_path, [json.dumps(native).encode()])
    ev = json.loads(lines[0])
    assert ev["data"]["payload"] == {"top": [1, 2]}
    assert "top" not in ev["data"]
