"""The Python face of `evidence`: sinks, options and bundle integrity."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import agent_bom
from agent_bom import evidence as ev
from agent_bom.errors import ConfigError, IntegrityError
from gen_events import generate


def _native(n: int = 30) -> bytes:
    return b"".join(line + b"\n" for line in generate(n, seed=3))


def test_stream_writes_through_a_fifo_without_replacing_it(tmp_path: Path) -> None:
    # A path that exists but is not a regular file (a FIFO here, /dev/null in
    # practice) must be written in place, never renamed over.
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    received = bytearray()
    import threading

    def drain() -> None:
        with open(fifo, "rb") as f:
            received.extend(f.read())

    t = threading.Thread(target=drain)
    t.start()
    stats = ev.stream(io.BytesIO(_native()), fifo, stream_id="fifo", threads=1)
    t.join(timeout=10)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert stats.events == 30
    assert received.count(b"\n") == 30 + stats.checkpoints
    assert not list(tmp_path.glob("*.partial"))


def test_stream_to_dev_null_leaves_the_device_alone() -> None:
    ev.stream(io.BytesIO(_native(5)), "/dev/null", stream_id="null", threads=1)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_failed_stream_leaves_no_output_file(tmp_path: Path) -> None:
    out = tmp_path / "evidence.ndjson"

    def boom(_reject: ev.Reject) -> None:
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        ev.stream(io.BytesIO(b"not json\n"), out, stream_id="x", on_reject=boom, threads=1)
    assert not out.exists()
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stream_id": ""}, "stream_id is required"),
        ({"stream_id": "s", "hash": "md5"}, "not supported"),
        ({"stream_id": "s", "threads": 0}, "at least 1"),
        ({"stream_id": "s", "checkpoint_every": -1}, "checkpoint_every"),
        ({"stream_id": "s", "key_id": "k"}, "--signing-key PATH and --key-id"),
    ],
)
def test_stream_rejects_bad_options_with_a_message_naming_them(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        ev.stream(io.BytesIO(b""), io.BytesIO(), **options)  # type: ignore[arg-type]


def test_stream_reports_rejects_in_input_order_and_keeps_the_rest() -> None:
    good = list(generate(3, seed=9))
    data = b"\n".join([good[0], b"[1,2]", good[1], b'{"event_type":"x"}', good[2]]) + b"\n"
    rejects: list[ev.Reject] = []
    out = io.BytesIO()
    stats = ev.stream(io.BytesIO(data), out, stream_id="r", on_reject=rejects.append, threads=2)
    assert [(r.line, r.code) for r in rejects] == [(2, "INVALID_EVENT"), (4, "INVALID_EVENT")]
    assert rejects[0].original == b"[1,2]"
    assert stats.events == 3 and stats.rejected == 2
    report = ev.verify(io.BytesIO(out.getvalue()))
    assert report.ok and report.sealed and report.events == 3


def test_empty_input_gives_an_empty_stream_that_is_not_sealed() -> None:
    out = io.BytesIO()
    stats = ev.stream(io.BytesIO(b"\n\n"), out, stream_id="empty", threads=1)
    assert (stats.events, stats.checkpoints, out.getvalue()) == (0, 0, b"")
    assert ev.verify(io.BytesIO(b"")).ok
    assert not ev.verify(io.BytesIO(b""), require_sealed=True).ok


def test_bundle_with_corrupted_gzip_trailer_fails_integrity(tmp_path: Path) -> None:
    src = tmp_path / "evidence.ndjson"
    ev.stream(io.BytesIO(_native()), src, stream_id="b", threads=1)
    bundle = tmp_path / "evidence.tar.gz"
    ev.export(src, bundle)
    assert ev.verify(bundle).ok
    data = bytearray(bundle.read_bytes())
    data[-6] ^= 0xFF  # inside the CRC-32 of the gzip trailer; the archive itself is intact
    bundle.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="damaged"):
        ev.verify(bundle)


def test_canonical_json_and_content_hash_are_exported_at_top_level() -> None:
    assert (
        agent_bom.canonical_json({"b": [1.0, None], "a": "é"}) == '{"a":"é","b":[1,null]}'.encode()
    )
    assert agent_bom.content_hash({"a": 1}, "blake3").startswith("blake3:")
    with pytest.raises(ValueError, match=r"\$\.a\[1\]"):
        agent_bom.canonical_json({"a": [1, float("nan")]})


def test_ocsf_option_adds_projections_before_sealing() -> None:
    lines = list(generate(300, seed=8))
    data = b"\n".join(lines) + b"\n"
    plain, projected = io.BytesIO(), io.BytesIO()
    ev.stream(io.BytesIO(data), plain, stream_id="o", threads=1)
    stats = ev.stream(io.BytesIO(data), projected, stream_id="o", threads=2, ocsf=True)
    assert stats.rejected == 0
    records = [json.loads(line) for line in projected.getvalue().splitlines()]
    findings = [r for r in records if r["type"] == "io.agentbom.finding.created"]
    assert findings and all(r["data"]["ocsf"]["class_uid"] in (2002, 2004) for r in findings)
    assert all("ocsf" not in json.loads(line)["data"] for line in plain.getvalue().splitlines())
    assert ev.verify(io.BytesIO(projected.getvalue())).ok


def test_ocsf_option_still_rejects_an_overlong_line_without_reading_it_whole() -> None:
    good = list(generate(2, seed=8))
    data = good[0] + b"\n" + b'{"x":"' + b"a" * (3 << 20) + b'"}\n' + good[1] + b"\n"
    rejects: list[ev.Reject] = []
    out = io.BytesIO()
    stats = ev.stream(io.BytesIO(data), out, stream_id="o", ocsf=True, on_reject=rejects.append)
    assert stats.events == 2
    assert [(r.line, r.code) for r in rejects] == [(2, "LIMIT_EXCEEDED")]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "agent-bom"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60)


def test_cli_reports_a_full_disk_without_a_traceback(tmp_path: Path) -> None:
    src = tmp_path / "in.ndjson"
    src.write_bytes(_native(50))
    p = _cli("evidence", "stream", str(src), "-o", "/dev/full", "--stream-id", "x")
    assert p.returncode == 2
    assert "No space left on device" in p.stderr and "Traceback" not in p.stderr


def test_cli_names_a_bad_extra_rules_file(tmp_path: Path) -> None:
    src, rules = tmp_path / "in.ndjson", tmp_path / "mine.json"
    src.write_bytes(_native(5))
    rules.write_text('{"rules": [{"id": "Bad_ID", "keywords": ["x"], "regex": "x"}]}')
    p = _cli("evidence", "stream", str(src), "--stream-id", "x", "--redact-rules", str(rules))
    assert p.returncode == 2
    assert "mine.json" in p.stderr and "Bad_ID" in p.stderr and "Traceback" not in p.stderr
