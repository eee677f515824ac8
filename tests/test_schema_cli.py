"""`agent-bom schema export | validate`: per-line reports, exit codes, no tracebacks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from agent_bom import schemas
from agent_bom.envelope import example_event


def _line(obj: Any) -> bytes:
    return orjson.dumps(obj) + b"\n"


def test_export_writes_the_generated_files_and_check_detects_drift(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    out = tmp_path / "published"
    r = cli("schema", "export", "--out", out)
    assert r.returncode == 0, r.stderr
    assert {p.name for p in out.iterdir()} == set(schemas.FILES)
    for name, data in schemas.render().items():
        assert (out / name).read_bytes() == data
    assert cli("schema", "export", "--out", out, "--check").returncode == 0
    (out / schemas.ASYNCAPI).write_text("asyncapi: 2.6.0\n")
    r = cli("schema", "export", "--out", out, "--check")
    assert r.returncode == 1 and "asyncapi.yaml" in r.stderr and "out of date" in r.stderr


def test_validate_reports_line_numbers_and_paths_for_mixed_input(
    cli: Callable[..., Any], make_stream: Callable[..., bytes], tmp_path: Path
) -> None:
    good_envelope = example_event("finding.created")
    bad_envelope = {**example_event("runtime.exec"), "tenant_id": "a b"}
    bad_envelope["payload"]["pid"] = "4242"
    cloudevent = (
        make_stream(_line(example_event("runtime.net")), checkpoint_every=0).splitlines()[0] + b"\n"
    )
    bad_cloudevent = orjson.loads(cloudevent)
    bad_cloudevent["data"]["payload"]["dst_port"] = 70000
    data = (
        _line(good_envelope)  # 1
        + _line(bad_envelope)  # 2
        + b"\n"  # 3: blank, skipped
        + cloudevent  # 4
        + b"{nope\n"  # 5
        + _line(bad_cloudevent)  # 6
        + b"[1]\n"  # 7
    )
    path = tmp_path / "mixed.ndjson"
    path.write_bytes(data)
    r = cli("schema", "validate", path)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "line 2 (envelope): $.tenant_id:" in r.stderr
    assert "line 2 (envelope): $.payload.pid: must be a valid integer, got a string" in r.stderr
    assert "line 5 (unknown): $: not JSON" in r.stderr
    assert "line 6 (cloudevent): $.data.payload.dst_port:" in r.stderr
    assert "line 7 (envelope): $: must be a JSON object, got an array" in r.stderr
    assert "line 1 " not in r.stderr and "line 4 " not in r.stderr and "line 3 " not in r.stderr

    r = cli("schema", "validate", "--json", path)
    assert r.returncode == 1
    report = orjson.loads(r.stdout)
    assert (
        report["lines"] == 6 and report["valid_envelopes"] == 1 and report["valid_cloudevents"] == 1
    )
    assert report["invalid"] == 4 and report["ok"] is False
    found = {(p["line"], p["path"]) for p in report["problems"]}
    assert {
        (2, "$.tenant_id"),
        (2, "$.payload.pid"),
        (5, "$"),
        (6, "$.data.payload.dst_port"),
        (7, "$"),
    } == found


def test_validate_accepts_a_whole_stream_on_stdin(
    cli: Callable[..., Any], native: Callable[..., bytes]
) -> None:
    stream = cli(
        "evidence", "stream", "-", "--stream-id", "s1", "--checkpoint-every", "7", stdin=native(20)
    )
    assert stream.returncode == 0, stream.stderr
    r = cli("schema", "validate", "-", stdin=stream.stdout)
    assert r.returncode == 0, r.stderr
    assert "23 valid CloudEvents, 0 invalid" in r.stderr


def test_validate_unreadable_input_exits_2_without_traceback(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    r = cli("schema", "validate", tmp_path / "missing.ndjson")
    assert r.returncode == 2
    assert "cannot read" in r.stderr and "Traceback" not in r.stderr


def test_validate_flags_over_long_lines_and_goes_on(cli: Callable[..., Any]) -> None:
    data = b'{"x": "' + b"a" * 5000 + b'"}\n' + _line(example_event("runtime.fs"))
    r = cli("schema", "validate", "-", "--max-line-bytes", "1000", stdin=data)
    assert r.returncode == 1
    assert "line 1 (unknown): $: line is longer than 1000 bytes" in r.stderr
    assert "1 valid envelopes" in r.stderr


def test_help_teaches_with_an_example(cli: Callable[..., Any]) -> None:
    for command in ("validate", "export"):
        r = cli("schema", command, "--help")
        assert r.returncode == 0 and "Example:" in r.stdout.decode()
