"""Acceptance: the ``agent-bom evidence stream | verify | export | prove`` command line.

Every test runs the installed ``agent-bom`` script in a subprocess and checks
exit codes, stdout/stderr and files, as a user or CI job would see them.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import re
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import orjson
import pytest

from agent_bom import _core

AGENT_BOM = Path(sys.executable).parent / "agent-bom"
REPORT_KEYS = {
    "ok",
    "events",
    "checkpoints",
    "sealed",
    "stream_id",
    "head",
    "merkle_root",
    "errors",
}
PROBLEM_KEYS = {"line", "seq", "code", "detail", "expected", "found"}


def flip_last_hex(s: str) -> str:
    return s[:-1] + ("0" if s[-1] != "0" else "1")


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def native_file(tmp_path, native) -> Path:
    p = tmp_path / "native.ndjson"
    p.write_bytes(native(60, seed=11))
    return p


@pytest.fixture
def evidence_file(tmp_path, native_file, cli) -> Path:
    """60 events, checkpoint every 16: 64 records, sealed."""
    out = tmp_path / "evidence.ndjson"
    p = cli(
        "evidence",
        "stream",
        native_file,
        "-o",
        out,
        "--stream-id",
        "cli-test",
        "--checkpoint-every",
        "16",
    )
    assert p.returncode == 0, p.stderr
    assert len(out.read_bytes().splitlines()) == 64
    return out


# --------------------------------------------------------------------------- stream: rejects

BAD_LINES = {
    # line number in the mixed input -> (code, words the reason must contain, text)
    2: ("INVALID_EVENT", ["object"], b"[1,2,3]"),
    4: (
        "INVALID_EVENT",
        ["created_at"],
        b'{"tenant_id":"acme","source":"urn:x","event_type":"finding.created","payload":{"a":2}}',
    ),
    5: (
        "INVALID_EVENT",
        ["event_type", "bogus"],
        b'{"tenant_id":"acme","source":"urn:x","event_type":"bogus","created_at":"2026-05-01T12:00:00Z"}',
    ),
    7: (
        "INVALID_EVENT",
        ["created_at", "yesterday"],
        b'{"tenant_id":"acme","source":"urn:x","event_type":"finding.created","created_at":"yesterday"}',
    ),
    8: (
        "INVALID_EVENT",
        ["created_at"],
        b'{"tenant_id":"acme","source":"urn:x","event_type":"finding.created","created_at":"2026-13-45T99:00:00Z"}',
    ),
    10: ("MALFORMED_JSON", [], b'{"tenant_id":"acme", "source": oops'),
}


def _mixed_input(native) -> tuple[bytes, int]:
    good = iter(native(5, seed=21).splitlines())
    lines = [BAD_LINES[n][2] if n in BAD_LINES else next(good) for n in range(1, 12)]
    assert next(good, None) is None
    return b"\n".join(lines) + b"\n", 11 - len(BAD_LINES)


def test_stream_reports_each_bad_line_and_still_streams_the_good_ones(tmp_path, native, cli):
    data, n_good = _mixed_input(native)
    src, out, rej = tmp_path / "mixed.ndjson", tmp_path / "out.ndjson", tmp_path / "rejects.ndjson"
    src.write_bytes(data)
    p = cli("evidence", "stream", src, "-o", out, "--stream-id", "mixed", "--rejects", rej)
    assert p.returncode == 3, p.stderr
    assert "Traceback" not in p.stderr
    for n, (code, words, _) in BAD_LINES.items():
        m = re.search(rf"^line {n}: {code}: (.*)$", p.stderr, re.M)
        assert m, f"line {n} {code} not on stderr:\n{p.stderr}"
        for w in words:
            assert w in m.group(1), (n, m.group(1))
    reported = {int(n) for n in re.findall(r"^line (\d+):", p.stderr, re.M)}
    assert reported == set(BAD_LINES)

    records = [orjson.loads(x) for x in rej.read_bytes().splitlines()]
    assert [r["line"] for r in records] == sorted(BAD_LINES)
    for r in records:
        code, words, text = BAD_LINES[r["line"]]
        assert set(r) == {"line", "code", "reason", "original"}
        assert r["code"] == code
        assert r["original"] == text.decode()
        assert all(w in r["reason"] for w in words), r

    events = out.read_bytes().splitlines()
    assert len(events) == n_good + 1  # the good events + the final checkpoint
    v = cli("evidence", "verify", out, "--json")
    assert v.returncode == 0, v.stderr
    rep = json.loads(v.stdout)
    assert rep["ok"] and rep["events"] == n_good and rep["sealed"]


def test_the_rejects_file_carries_no_secret_unless_redaction_is_off(tmp_path, cli):
    """A rejected line is written to --rejects redacted like the stream: as JSON where
    it parses (sensitive keys too), else as text (value rules)."""
    token = "ghp_R7xkP2mQ9vLc4TzW8nYb3HsJ6dFq1GaE5uKo"
    lines = [
        b'{"event_type": "finding.created", "password": "hunter2-hunter2", "note": "'
        + token.encode()
        + b'"}',  # valid JSON, not an event (no created_at, ...)
        b'{"broken json with ' + token.encode(),
    ]
    src = tmp_path / "in.ndjson"
    src.write_bytes(b"\n".join(lines) + b"\n")
    for flags, leaks in (([], False), (["--no-redact"], True)):
        rej = tmp_path / "rejects.ndjson"
        p = cli("evidence", "stream", src, "-o", tmp_path / "out.ndjson", "--stream-id", "s",
                "--rejects", rej, *flags)  # fmt: skip
        assert p.returncode == 3, p.stderr
        text = rej.read_text()
        records = [json.loads(line) for line in text.splitlines()]
        assert [r["code"] for r in records] == ["INVALID_EVENT", "MALFORMED_JSON"]
        assert (token in text) is leaks and ("hunter2-hunter2" in text) is leaks, text
        if not leaks:
            assert "[REDACTED:" in records[0]["original"] and "[REDACTED:" in records[1]["original"]


def test_stream_exits_0_when_every_line_is_accepted(native_file, tmp_path, cli):
    out = tmp_path / "out.ndjson"
    p = cli(
        "evidence",
        "stream",
        native_file,
        "-o",
        out,
        "--stream-id",
        "ok",
        "--rejects",
        tmp_path / "r.ndjson",
    )
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "r.ndjson").read_bytes() == b""
    assert re.search(r"\b60 events, 0 rejected", p.stderr), p.stderr


def test_stream_reports_rejects_in_input_order_across_threads_and_caps_stderr(
    tmp_path, native, cli
):
    good = iter(native(3000, seed=9).splitlines())
    bad = list(range(5, 3000, 97))  # 31 bad lines spread over many read batches
    lines = [b'{"oops"' if n in bad else next(good) for n in range(1, 3000 + len(bad) + 1)]
    src = tmp_path / "many.ndjson"
    src.write_bytes(b"\n".join(lines) + b"\n")
    outs = []
    for threads in ("1", "4"):
        out, rej = tmp_path / f"out-{threads}.ndjson", tmp_path / f"rej-{threads}.ndjson"
        p = cli(
            "evidence",
            "stream",
            src,
            "-o",
            out,
            "--stream-id",
            "many",
            "--threads",
            threads,
            "--checkpoint-every",
            "100",
            "--rejects",
            rej,
        )
        assert p.returncode == 3, p.stderr
        assert [orjson.loads(x)["line"] for x in rej.read_bytes().splitlines()] == bad
        shown = [int(n) for n in re.findall(r"^line (\d+): MALFORMED_JSON", p.stderr, re.M)]
        assert shown == bad[:20]  # the first 20 on stderr, then a pointer to --rejects
        assert "--rejects" in p.stderr
        assert re.search(r"3,000 events, 31 rejected, 30 checkpoints", p.stderr), p.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_stream_reject_line_numbers_count_blank_lines(tmp_path, native, cli):
    good = native(3, seed=4).splitlines()
    src = tmp_path / "blank.ndjson"
    src.write_bytes(b"\n".join([good[0], b"", b"   ", good[1], b"{bad", good[2]]) + b"\n")
    rej = tmp_path / "r.ndjson"
    p = cli(
        "evidence", "stream", src, "-o", tmp_path / "o.ndjson", "--stream-id", "b", "--rejects", rej
    )
    assert p.returncode == 3, p.stderr
    assert [(r["line"], r["code"]) for r in map(orjson.loads, rej.read_bytes().splitlines())] == [
        (5, "MALFORMED_JSON")
    ]
    assert len((tmp_path / "o.ndjson").read_bytes().splitlines()) == 4


# --------------------------------------------------------------------------- verify --json


def test_verify_json_report_for_valid_stream_exits_0(evidence_file, cli):
    p = cli("evidence", "verify", evidence_file, "--json")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert set(rep) >= REPORT_KEYS
    assert rep["ok"] is True and rep["errors"] == []
    assert (rep["events"], rep["checkpoints"], rep["sealed"], rep["stream_id"]) == (
        60,
        4,
        True,
        "cli-test",
    )
    last = orjson.loads(evidence_file.read_bytes().splitlines()[-1])
    assert rep["head"] == last["chainhash"]
    assert rep["merkle_root"] == last["data"]["payload"]["merkle_root"]


def test_verify_json_report_for_tampered_stream_exits_1(evidence_file, tmp_path, cli):
    lines = evidence_file.read_bytes().splitlines(keepends=True)
    lines[30], lines[31] = lines[31], lines[30]
    bad = tmp_path / "bad.ndjson"
    bad.write_bytes(b"".join(lines))
    p = cli("evidence", "verify", bad, "--json")
    assert p.returncode == 1, p.stderr
    rep = json.loads(p.stdout)
    assert set(rep) >= REPORT_KEYS
    assert rep["ok"] is False
    assert [set(e) for e in rep["errors"]] == [PROBLEM_KEYS]
    e = rep["errors"][0]
    assert (e["code"], e["line"], e["seq"]) == ("SEQ_REORDER", 32, 30)


def test_verify_human_report_names_line_seq_and_code(evidence_file, tmp_path, cli):
    lines = evidence_file.read_bytes().splitlines(keepends=True)
    del lines[40]
    bad = tmp_path / "bad.ndjson"
    bad.write_bytes(b"".join(lines))
    p = cli("evidence", "verify", bad)
    assert p.returncode == 1
    assert re.search(r"line 41 seq 41: SEQ_GAP", p.stderr), p.stderr
    assert "INVALID" in p.stderr


def test_verify_reads_stdin_dash(evidence_file, cli):
    p = cli("evidence", "verify", "-", "--json", stdin=evidence_file.read_bytes())
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["events"] == 60


# --------------------------------------------------------------------------- unusable input


def _assert_clean_usage_error(p, *needles: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    assert "error" in p.stderr.lower()
    for n in needles:
        assert n in p.stderr, (n, p.stderr)


def test_verify_missing_file_exits_2_without_traceback(tmp_path, cli):
    missing = tmp_path / "nope.ndjson"
    _assert_clean_usage_error(cli("evidence", "verify", missing), "nope.ndjson")


def test_verify_unreadable_public_key_exits_2_without_traceback(evidence_file, tmp_path, cli):
    junk = tmp_path / "junk.pub"
    junk.write_text("not a key\n")
    _assert_clean_usage_error(
        cli("evidence", "verify", evidence_file, "--public-key", junk), "junk.pub"
    )
    _assert_clean_usage_error(
        cli("evidence", "verify", evidence_file, "--public-key", tmp_path / "absent.pub"),
        "absent.pub",
    )


def test_stream_missing_input_exits_2_and_writes_no_output(tmp_path, cli):
    out = tmp_path / "out.ndjson"
    p = cli("evidence", "stream", tmp_path / "nope.ndjson", "-o", out, "--stream-id", "x")
    _assert_clean_usage_error(p, "nope.ndjson")
    assert list(tmp_path.iterdir()) == []  # no output, no partial file


def test_stream_with_non_key_signing_key_exits_2_and_writes_no_output(native_file, tmp_path, cli):
    not_a_key = tmp_path / "notakey.pem"
    not_a_key.write_text("-----BEGIN NONSENSE-----\nAAAA\n-----END NONSENSE-----\n")
    out = tmp_path / "out.ndjson"
    p = cli(
        "evidence",
        "stream",
        native_file,
        "-o",
        out,
        "--stream-id",
        "x",
        "--signing-key",
        not_a_key,
        "--key-id",
        "k1",
    )
    _assert_clean_usage_error(p, "notakey.pem")
    assert not out.exists()
    assert not list(tmp_path.glob("*.partial"))


def test_stream_signing_key_without_key_id_exits_2(native_file, tmp_path, cli, ed25519_keys):
    p = cli(
        "evidence",
        "stream",
        native_file,
        "-o",
        tmp_path / "o",
        "--stream-id",
        "x",
        "--signing-key",
        ed25519_keys.private_pem,
    )
    _assert_clean_usage_error(p, "--key-id")


@pytest.mark.parametrize(
    "args, needle",
    [
        (["evidence", "stream", "{native}", "--stream-id=", "-o", "{tmp}/o"], "stream"),
        (
            ["evidence", "stream", "{native}", "--stream-id", "x", "-o", "{tmp}/no/such/dir/o"],
            "no/such/dir",
        ),
        (
            [
                "evidence",
                "stream",
                "{native}",
                "--stream-id",
                "x",
                "-o",
                "{tmp}/o",
                "--rejects",
                "{tmp}/no/r",
            ],
            "--rejects",
        ),
        (
            [
                "evidence",
                "stream",
                "{native}",
                "--stream-id",
                "x",
                "-o",
                "{tmp}/o",
                "--signing-key",
                "{tmp}",
                "--key-id",
                "k",
            ],
            "signing key",
        ),
        (["evidence", "verify", "{tmp}"], "cannot read"),
        (["evidence", "verify"], "verify"),
        (["evidence", "verify", "--proof", "{native}"], "--proof"),
        (["evidence", "verify", "--proof", "{tmp}/absent.json"], "absent.json"),
        (["evidence", "prove", "{tmp}/absent.ndjson", "--seq", "1"], "absent.ndjson"),
        (["evidence", "export", "{tmp}/absent.ndjson", "-o", "{tmp}/b.tar.gz"], "absent.ndjson"),
    ],
    ids=[
        "empty-stream-id",
        "output-dir-missing",
        "rejects-dir-missing",
        "signing-key-is-dir",
        "verify-dir",
        "verify-no-input",
        "proof-not-json",
        "proof-missing",
        "prove-missing",
        "export-missing",
    ],
)
def test_unusable_input_or_option_exits_2_without_traceback(
    args, needle, native_file, tmp_path, cli
):
    work = tmp_path / "work"
    work.mkdir()
    argv = [a.format(native=native_file, tmp=work) for a in args]
    _assert_clean_usage_error(cli(*argv), needle)
    assert not (work / "o").exists() and not list(work.glob("*.partial"))


def test_verify_proof_with_missing_fields_exits_2(tmp_path, cli):
    p = tmp_path / "p.json"
    p.write_text('{"seq": 1}')
    _assert_clean_usage_error(cli("evidence", "verify", "--proof", p), "inclusion proof")


# --------------------------------------------------------------------------- export


def test_export_twice_gives_byte_identical_bundles_that_verify(evidence_file, tmp_path, cli):
    b1, b2 = tmp_path / "one.tar.gz", tmp_path / "two.tar.gz"
    for b in (b1, b2):
        p = cli("evidence", "export", evidence_file, "-o", b)
        assert p.returncode == 0, p.stderr
    assert b1.read_bytes() == b2.read_bytes()
    # from stdin too: same bytes
    b3 = tmp_path / "three.tar.gz"
    p = cli("evidence", "export", "-", "-o", b3, stdin=evidence_file.read_bytes())
    assert p.returncode == 0, p.stderr
    assert b3.read_bytes() == b1.read_bytes()

    with tarfile.open(b1, "r:gz") as tar:
        names = tar.getnames()
        assert set(names) == {"manifest.json", "events.ndjson"}
        for m in tar.getmembers():
            assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")
        manifest_raw = tar.extractfile("manifest.json").read()
        events = tar.extractfile("events.ndjson").read()
    assert events == evidence_file.read_bytes()
    assert _core.canonicalize(manifest_raw) == manifest_raw
    manifest = json.loads(manifest_raw)
    assert manifest["records"] == 64 and manifest["stream_id"] == "cli-test"

    v = cli("evidence", "verify", b1, "--json")
    assert v.returncode == 0, v.stderr
    rep = json.loads(v.stdout)
    assert rep["ok"] and rep["events"] == 60 and rep["head"] == manifest["head"]


def _rebuild_bundle(bundle: Path, out: Path, edit) -> None:
    with tarfile.open(bundle, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    buf = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for m, data in members:
            if m.name == "events.ndjson":
                data = edit(data)
            m.size = len(data)
            tar.addfile(m, io.BytesIO(data))
    out.write_bytes(buf.getvalue())


def test_verify_rejects_bundle_with_an_edited_event(evidence_file, tmp_path, cli):
    bundle = tmp_path / "b.tar.gz"
    assert cli("evidence", "export", evidence_file, "-o", bundle).returncode == 0

    def edit(data: bytes) -> bytes:
        lines = data.splitlines(keepends=True)
        i = lines[20].index(b'"correlation_id":"run-') + len(b'"correlation_id":"run-')
        lines[20] = (
            lines[20][:i] + (b"0" if lines[20][i : i + 1] != b"0" else b"1") + lines[20][i + 1 :]
        )
        return b"".join(lines)

    bad = tmp_path / "bad.tar.gz"
    _rebuild_bundle(bundle, bad, edit)
    p = cli("evidence", "verify", bad, "--json")
    assert p.returncode == 1, p.stderr
    rep = json.loads(p.stdout)
    assert rep["ok"] is False
    assert ("HASH_MISMATCH", 21, 20) in [(e["code"], e["line"], e["seq"]) for e in rep["errors"]]


@pytest.mark.parametrize("where", [0.002, 0.25, 0.5, 0.75], ids=lambda w: f"at-{w:.0%}")
def test_verify_rejects_bundle_with_a_flipped_payload_byte_without_traceback(
    evidence_file, tmp_path, cli, where
):
    bundle = tmp_path / "b.tar.gz"
    assert cli("evidence", "export", evidence_file, "-o", bundle).returncode == 0
    data = bytearray(bundle.read_bytes())
    pos = max(
        10, int(len(data) * where)
    )  # past the 10-byte gzip header, inside the deflate payload
    assert pos < len(data) - 8  # before the CRC32/ISIZE trailer
    data[pos] ^= 0x20
    bad = tmp_path / "flipped.tar.gz"
    bad.write_bytes(bytes(data))
    p = cli("evidence", "verify", bad)
    assert p.returncode in (1, 2), (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr


def test_verify_rejects_truncated_bundle_with_exit_2(evidence_file, tmp_path, cli):
    bundle = tmp_path / "b.tar.gz"
    assert cli("evidence", "export", evidence_file, "-o", bundle).returncode == 0
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
    _assert_clean_usage_error(cli("evidence", "verify", cut))


def test_export_refuses_a_stream_that_does_not_verify(evidence_file, tmp_path, cli):
    lines = evidence_file.read_bytes().splitlines(keepends=True)
    del lines[5]
    bad = tmp_path / "bad.ndjson"
    bad.write_bytes(b"".join(lines))
    out = tmp_path / "b.tar.gz"
    p = cli("evidence", "export", bad, "-o", out)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert "SEQ_GAP" in p.stderr and "line 6" in p.stderr
    assert not out.exists()


# --------------------------------------------------------------------------- prove


@pytest.fixture
def proof(evidence_file, tmp_path, cli) -> tuple[Path, dict, int]:
    # 64 records; the final checkpoint (seq 63) covers seq 0..62
    seq = random.Random(20260501).randrange(0, 63)
    path = tmp_path / "proof.json"
    p = cli("evidence", "prove", evidence_file, "--seq", str(seq), "-o", path)
    assert p.returncode == 0, p.stderr
    return path, json.loads(path.read_bytes()), seq


def test_prove_random_seq_verifies_alone_and_against_input(proof, evidence_file, cli):
    path, pr, seq = proof
    assert pr["seq"] == seq and pr["stream_id"] == "cli-test"
    assert pr["tree_size"] == pr["checkpoint"]["payload"]["last_seq"] + 1 > seq
    assert (
        pr["contenthash"]
        == orjson.loads(evidence_file.read_bytes().splitlines()[seq])["contenthash"]
    )
    assert pr["audit_path"], "a tree of more than one leaf needs a non-empty audit path"
    alone = cli("evidence", "verify", "--proof", path)
    assert alone.returncode == 0, alone.stderr
    with_input = cli("evidence", "verify", evidence_file, "--proof", path, "--json")
    assert with_input.returncode == 0, with_input.stderr
    assert json.loads(with_input.stdout) == {"ok": True, "seq": seq, "errors": []}


def test_prove_stdout_matches_file_output(proof, evidence_file, cli):
    path, _, seq = proof
    p = cli("evidence", "prove", evidence_file, "--seq", str(seq))
    assert p.returncode == 0
    assert p.stdout == path.read_bytes()


def test_verify_proof_fails_for_altered_audit_path_entry(proof, evidence_file, tmp_path, cli):
    _, pr, _ = proof
    pr["audit_path"][0] = flip_last_hex(pr["audit_path"][0])
    bad = tmp_path / "bad-proof.json"
    bad.write_text(json.dumps(pr))
    p = cli("evidence", "verify", "--proof", bad, "--json")
    assert p.returncode == 1, p.stderr
    assert "CHECKPOINT_MISMATCH" in [e["code"] for e in json.loads(p.stdout)["errors"]]
    assert cli("evidence", "verify", evidence_file, "--proof", bad).returncode == 1


def test_verify_proof_fails_for_altered_contenthash(proof, evidence_file, tmp_path, cli):
    _, pr, _ = proof
    pr["contenthash"] = flip_last_hex(pr["contenthash"])
    bad = tmp_path / "bad-proof.json"
    bad.write_text(json.dumps(pr))
    p = cli("evidence", "verify", "--proof", bad, "--json")
    assert p.returncode == 1, p.stderr
    assert "HASH_MISMATCH" in [e["code"] for e in json.loads(p.stdout)["errors"]]
    assert cli("evidence", "verify", evidence_file, "--proof", bad).returncode == 1


def test_verify_proof_against_another_stream_fails(proof, tmp_path, native, cli):
    path, _, _ = proof
    other_src = tmp_path / "other-native.ndjson"
    other_src.write_bytes(native(60, seed=12))
    other = tmp_path / "other.ndjson"
    assert (
        cli(
            "evidence",
            "stream",
            other_src,
            "-o",
            other,
            "--stream-id",
            "cli-test",
            "--checkpoint-every",
            "16",
        ).returncode
        == 0
    )
    p = cli("evidence", "verify", other, "--proof", path)
    assert p.returncode == 1, p.stderr


def test_prove_accepts_a_bundle_and_gives_the_same_proof(proof, evidence_file, tmp_path, cli):
    path, _, seq = proof
    bundle = tmp_path / "b.tar.gz"
    assert cli("evidence", "export", evidence_file, "-o", bundle).returncode == 0
    p = cli("evidence", "prove", bundle, "--seq", str(seq))
    assert p.returncode == 0, p.stderr
    assert p.stdout == path.read_bytes()
    assert cli("evidence", "verify", bundle, "--proof", path).returncode == 0


def test_verify_proof_checks_checkpoint_signature_with_public_key(
    native_file, tmp_path, cli, ed25519_keys
):
    signed = tmp_path / "signed.ndjson"
    assert (
        cli(
            "evidence",
            "stream",
            native_file,
            "-o",
            signed,
            "--stream-id",
            "sig",
            "--checkpoint-every",
            "16",
            "--signing-key",
            ed25519_keys.private_pem,
            "--key-id",
            "k1",
        ).returncode
        == 0
    )
    proof_path = tmp_path / "proof.json"
    assert cli("evidence", "prove", signed, "--seq", "17", "-o", proof_path).returncode == 0
    ok = cli("evidence", "verify", "--proof", proof_path, "--public-key", ed25519_keys.public_pem)
    assert ok.returncode == 0, ok.stderr
    wrong = cli(
        "evidence",
        "verify",
        "--proof",
        proof_path,
        "--public-key",
        ed25519_keys.other_public_pem,
        "--json",
    )
    assert wrong.returncode == 1, wrong.stderr
    assert [e["code"] for e in json.loads(wrong.stdout)["errors"]] == ["SIGNATURE_INVALID"]


def test_prove_seq_out_of_range_exits_2(evidence_file, cli):
    p = cli("evidence", "prove", evidence_file, "--seq", "64")
    _assert_clean_usage_error(p, "64")


# --------------------------------------------------------------------------- determinism


def test_stream_output_is_identical_for_1_and_2_threads_in_separate_processes(
    tmp_path, native, cli
):
    src = tmp_path / "in.ndjson"
    src.write_bytes(native(5000, seed=5))
    outs = []
    for threads in ("1", "2"):
        out = tmp_path / f"out-{threads}.ndjson"
        p = cli(
            "evidence",
            "stream",
            src,
            "-o",
            out,
            "--stream-id",
            "det",
            "--checkpoint-every",
            "500",
            "--threads",
            threads,
        )
        assert p.returncode == 0, p.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert len(outs[0].splitlines()) == 5000 + 10


def test_stream_with_blake3_verifies(tmp_path, native, cli):
    src = tmp_path / "in.ndjson"
    src.write_bytes(native(300, seed=6))
    outs = []
    for threads in ("1", "3"):
        out = tmp_path / f"b3-{threads}.ndjson"
        p = cli(
            "evidence",
            "stream",
            src,
            "-o",
            out,
            "--stream-id",
            "b3",
            "--checkpoint-every",
            "64",
            "--hash",
            "blake3",
            "--threads",
            threads,
        )
        assert p.returncode == 0, p.stderr
        outs.append(out)
    assert outs[0].read_bytes() == outs[1].read_bytes()
    first = orjson.loads(outs[0].read_bytes().splitlines()[0])
    assert re.fullmatch(r"blake3:[0-9a-f]{64}", first["contenthash"])
    assert re.fullmatch(r"blake3:[0-9a-f]{64}", first["chainhash"])
    v = cli("evidence", "verify", outs[0], "--json")
    assert v.returncode == 0, v.stderr
    rep = json.loads(v.stdout)
    assert rep["hash_alg"] == "blake3" and rep["events"] == 300 and rep["checkpoints"] == 5
    assert rep["merkle_root"].startswith("blake3:")


def test_stream_rejects_unknown_hash_with_exit_2(native_file, tmp_path, cli):
    p = cli(
        "evidence", "stream", native_file, "-o", tmp_path / "o", "--stream-id", "x", "--hash", "md5"
    )
    _assert_clean_usage_error(p, "md5")


# --------------------------------------------------------------------------- stdin / stdout


def test_stream_reads_stdin_and_writes_stdout_in_a_pipeline(native_file, tmp_path, cli):
    out = tmp_path / "piped.ndjson"
    cmd = (
        f"cat {shlex.quote(str(native_file))} | {shlex.quote(str(AGENT_BOM))} evidence stream - "
        f"--stream-id x > {shlex.quote(str(out))}"
    )
    p = subprocess.run(cmd, shell=True, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    ref = tmp_path / "ref.ndjson"
    assert cli("evidence", "stream", native_file, "-o", ref, "--stream-id", "x").returncode == 0
    assert out.read_bytes() == ref.read_bytes()
    assert len(out.read_bytes().splitlines()) == 61
    assert cli("evidence", "verify", out).returncode == 0


# --------------------------------------------------------------------------- help

HELP_EXIT_CODES = {
    "stream": "Exit status: 0 all lines accepted, 3 some lines rejected, 2 usage or input error.",
    "verify": "Exit status: 0 valid, 1 integrity failure, 2 could not verify.",
    "export": None,
    "prove": None,
}


@pytest.mark.parametrize("command", sorted(HELP_EXIT_CODES))
def test_help_of_each_command_exits_0_and_documents_exit_codes(command, cli):
    p = cli("evidence", command, "--help")
    assert p.returncode == 0, p.stderr
    text = one_line(p.stdout.decode())
    assert f"Usage: agent-bom evidence {command}" in text
    if HELP_EXIT_CODES[command]:
        assert HELP_EXIT_CODES[command] in text, text


def test_top_level_and_group_help_exit_0(cli):
    for args in (("--help",), ("evidence", "--help")):
        p = cli(*args)
        assert p.returncode == 0, p.stderr
        text = p.stdout.decode()
        for cmd in (
            ("stream", "verify", "export", "prove") if args[0] == "evidence" else ("evidence",)
        ):
            assert cmd in text
