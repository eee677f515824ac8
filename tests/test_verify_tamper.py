"""Acceptance: ``evidence verify`` pinpoints every kind of tampering (DESIGN §4).

Each test edits a sealed stream the way an attacker (or a broken pipe) would
and asserts the exact reason code, the 1-based line number, the 0-based seq
where meaningful, and that nothing else is reported.

The ``sealed`` fixture (conftest.py) is 25 events, checkpoint every 10:
  lines 1-10  seq 0-9   events
  line 11     seq 10    checkpoint
  lines 12-21 seq 11-20 events
  line 22     seq 21    checkpoint
  lines 23-27 seq 22-26 events
  line 28     seq 27    final checkpoint
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from agent_bom import _core
from agent_bom import evidence as ev

AGENT_BOM = Path(sys.executable).parent / "agent-bom"
CHECKPOINT_TYPE = "io.agentbom.evidence.checkpoint"
UNHASHED = ("chainhash", "contenthash", "seq", "streamid", "traceparent", "tracestate")


# --------------------------------------------------------------------------- helpers


def problems(report: ev.VerifyReport) -> list[tuple[str, int, int | None]]:
    return [(p.code, p.line, p.seq) for p in report.errors]


def other_hex(c: int) -> int:
    """A different lowercase hex digit (keeps the value well-formed)."""
    return ord("1") if c == ord("0") else ord("0")


def flip_hex_after(line: bytes, marker: bytes, offset: int = 0) -> bytes:
    """Change the hex digit ``offset`` characters after ``marker`` (first occurrence)."""
    at = line.index(marker) + len(marker) + offset
    assert chr(line[at]) in "0123456789abcdef", line[at - 20 : at + 20]
    return line[:at] + bytes([other_hex(line[at])]) + line[at + 1 :]


def rehash(line: bytes, prev_chainhash: str) -> bytes:
    """Recompute contenthash and chainhash of one sha256 record, as a forger would."""
    obj = orjson.loads(line)
    content = {k: v for k, v in obj.items() if k not in UNHASHED}
    ch = hashlib.sha256(_core.canonical_json(content)).digest()
    prev = bytes.fromhex(prev_chainhash.split(":", 1)[1])
    chain = hashlib.sha256(prev + ch + obj["seq"].to_bytes(8, "big")).digest()
    obj["contenthash"] = "sha256:" + ch.hex()
    obj["chainhash"] = "sha256:" + chain.hex()
    return _core.canonical_json(obj) + b"\n"


def tamper_signature(line: bytes) -> bytes:
    """Replace a checkpoint's signature with another valid-base64, 64-byte, wrong signature."""
    obj = orjson.loads(line)
    sig = bytearray(base64.b64decode(obj["data"]["payload"]["signature"]))
    sig[5] ^= 0x01
    obj["data"]["payload"]["signature"] = base64.b64encode(bytes(sig)).decode()
    return _core.canonical_json(obj) + b"\n"


# --------------------------------------------------------------------------- baseline


def test_verify_accepts_untouched_sealed_stream(sealed, verify_bytes):
    r = verify_bytes(sealed.lines)
    assert r.ok, problems(r)
    assert (r.events, r.checkpoints, r.records, r.lines) == (25, 3, 28, 28)
    assert r.sealed and r.stream_id == "s-test"
    assert r.errors == [] and r.warnings == [] and r.errors_total == 0
    assert sealed.checkpoint_indexes() == [10, 21, 27]
    last = orjson.loads(sealed.lines[-1])
    assert r.head == last["chainhash"]
    assert r.merkle_root == last["data"]["payload"]["merkle_root"]


# --------------------------------------------------------------------------- 1, 2: hashes


def test_verify_reports_hash_mismatch_at_line_of_edited_data_byte(sealed, verify_bytes):
    lines = list(sealed.lines)
    idx = 4  # line 5, seq 4
    lines[idx] = flip_hex_after(lines[idx], b'"correlation_id":"run-', 3)
    assert _core.canonicalize(lines[idx].rstrip(b"\n")) == lines[idx].rstrip(
        b"\n"
    )  # still canonical
    r = verify_bytes(lines)
    assert not r.ok
    assert problems(r) == [("HASH_MISMATCH", 5, 4)]
    assert r.errors_total == 1
    assert r.errors[0].found == orjson.loads(lines[idx])["contenthash"]


def test_verify_reports_hash_mismatch_at_line_of_edited_payload_text(sealed, verify_bytes):
    lines = list(sealed.lines)
    idx = 14  # line 15, seq 14
    text = lines[idx]
    m = re.search(rb'"payload":\{[^}]*?"[a-z_]+":"([a-z])', text)
    assert m, text[:300]
    at = m.start(1)
    lines[idx] = text[:at] + (b"x" if text[at : at + 1] != b"x" else b"y") + text[at + 1 :]
    r = verify_bytes(lines)
    assert problems(r) == [("HASH_MISMATCH", 15, 14)]
    assert r.errors_total == 1


@pytest.mark.parametrize("idx", [6, 10], ids=["event", "checkpoint"])
def test_verify_reports_only_hash_mismatch_for_edited_contenthash_attribute(
    sealed, verify_bytes, idx
):
    lines = list(sealed.lines)
    lines[idx] = flip_hex_after(lines[idx], b'"contenthash":"sha256:', 10)
    r = verify_bytes(lines)
    assert not r.ok
    # no CHAIN_MISMATCH / CHECKPOINT_MISMATCH follow-on, here or at later checkpoints
    assert problems(r) == [("HASH_MISMATCH", idx + 1, idx)]
    assert r.errors_total == 1
    assert r.warnings == []


# --------------------------------------------------------------------------- 3, 4, 5: sequence


def test_verify_reports_seq_gap_with_line_number(sealed, verify_bytes):
    lines = list(sealed.lines)
    del lines[4]  # seq 4 (was line 5); line 5 now holds seq 5
    r = verify_bytes(lines)
    assert not r.ok
    assert problems(r) == [("SEQ_GAP", 5, 5)]
    assert r.errors[0].expected == "4" and r.errors[0].found == "5"
    assert r.errors_total == 1


def test_verify_reports_seq_gap_for_deleted_checkpoint_line(sealed, verify_bytes):
    lines = list(sealed.lines)
    del lines[10]  # the first checkpoint (seq 10); line 11 now holds seq 11
    r = verify_bytes(lines)
    assert not r.ok
    assert problems(r)[0] == ("SEQ_GAP", 11, 11)
    assert {p.line for p in r.errors} <= {
        11,
        21,
    }  # at most a follow-on at the next checkpoint (line 21 now)


def test_verify_reports_seq_reorder_at_second_of_two_swapped_lines(sealed, verify_bytes):
    lines = list(sealed.lines)
    lines[12], lines[13] = lines[13], lines[12]  # lines 13, 14 hold seq 13, 12
    r = verify_bytes(lines)
    assert not r.ok
    assert problems(r) == [("SEQ_REORDER", 14, 12)]
    assert r.errors_total == 1


def test_verify_reports_seq_duplicate_at_the_duplicates_line(sealed, verify_bytes):
    lines = list(sealed.lines)
    lines.insert(8, lines[7])  # seq 7 on lines 8 and 9
    r = verify_bytes(lines)
    assert not r.ok
    assert problems(r) == [("SEQ_DUPLICATE", 9, 7)]
    assert r.errors_total == 1


def test_verify_reports_one_seq_gap_for_several_deleted_lines(sealed, verify_bytes):
    lines = list(sealed.lines)
    del lines[4:7]  # seq 4, 5, 6; line 5 now holds seq 7
    r = verify_bytes(lines)
    assert problems(r) == [("SEQ_GAP", 5, 7)]
    assert (r.errors[0].expected, r.errors[0].found) == ("4", "7")
    assert r.errors_total == 1


def test_verify_reports_seq_gap_at_line_1_when_first_record_deleted(sealed, verify_bytes):
    r = verify_bytes(sealed.lines[1:])
    assert problems(r) == [("SEQ_GAP", 1, 1)]
    assert r.errors[0].expected == "0"


def test_verify_reports_one_seq_reorder_where_a_moved_line_lands(sealed, verify_bytes):
    lines = list(sealed.lines)
    moved = lines.pop(3)  # seq 3
    lines.insert(8, moved)  # now line 9
    r = verify_bytes(lines)
    assert problems(r) == [("SEQ_REORDER", 9, 3)]
    assert r.errors_total == 1 and r.warnings == []


def test_verify_reports_one_seq_reorder_for_checkpoint_swapped_with_next_record(
    sealed, verify_bytes
):
    lines = list(sealed.lines)
    lines[10], lines[11] = lines[11], lines[10]  # seq 11 on line 11, checkpoint seq 10 on line 12
    r = verify_bytes(lines)
    assert problems(r) == [("SEQ_REORDER", 12, 10)]
    assert r.errors_total == 1 and r.warnings == [] and r.sealed


def test_verify_reports_only_seq_reorder_for_final_checkpoint_swapped_with_last_record(
    sealed, verify_bytes
):
    lines = list(sealed.lines)
    lines[26], lines[27] = (
        lines[27],
        lines[26],
    )  # final checkpoint (seq 27) on line 27, seq 26 on line 28
    r = verify_bytes(lines)
    assert problems(r) == [("SEQ_REORDER", 28, 26)]
    assert r.errors_total == 1
    # seq 26 is covered by the final checkpoint (last_seq 26): nothing is unsealed
    assert r.warnings == [], [(p.code, p.line, p.seq, p.detail) for p in r.warnings]
    assert r.sealed
    final = orjson.loads(sealed.lines[27])["data"]["payload"]
    assert r.merkle_root == final["merkle_root"]  # the final seal was checked, not skipped


def test_verify_still_checks_merkle_root_of_a_checkpoint_moved_before_its_last_record(
    sealed, verify_bytes
):
    lines = list(sealed.lines)
    prev_chain = orjson.loads(lines[26])["chainhash"]
    obj = orjson.loads(lines[27])
    real_root = obj["data"]["payload"]["merkle_root"]
    obj["data"]["payload"]["merkle_root"] = "sha256:" + "0" * 64
    lines[27] = rehash(
        _core.canonical_json(obj) + b"\n", prev_chain
    )  # a forged, consistently hashed seal
    lines[26], lines[27] = lines[27], lines[26]  # hide it before the record it covers
    r = verify_bytes(lines)
    assert not r.ok
    assert ("SEQ_REORDER", 28, 26) in problems(r)
    forged = [p for p in r.errors if p.code == "CHECKPOINT_MISMATCH"]
    assert [(p.line, p.seq) for p in forged] == [(27, 27)], problems(r)
    assert forged[0].expected == real_root


def test_verify_reports_seq_duplicate_for_repeated_final_checkpoint(sealed, verify_bytes):
    r = verify_bytes([*sealed.lines, sealed.lines[-1]])
    assert problems(r) == [("SEQ_DUPLICATE", 29, 27)]


# --------------------------------------------------------------------------- 6: truncation


def test_verify_warns_unsealed_tail_when_final_checkpoint_removed(sealed, verify_bytes):
    r = verify_bytes(sealed.lines[:-1])
    assert r.ok
    assert r.errors == []
    assert not r.sealed
    assert [(p.code, p.line, p.seq) for p in r.warnings] == [("UNSEALED_TAIL", 23, 22)]
    assert "5" in r.warnings[0].detail  # five records are unsealed


def test_verify_reports_malformed_json_and_unsealed_tail_for_stream_cut_mid_line(
    sealed, verify_bytes
):
    cut = b"".join(sealed.lines)[
        : -len(sealed.lines[-1]) + 100
    ]  # 100 bytes of the final checkpoint
    r = verify_bytes(cut)
    assert problems(r) == [("MALFORMED_JSON", 28, None)]
    assert [(p.code, p.line, p.seq) for p in r.warnings] == [("UNSEALED_TAIL", 23, 22)]
    assert not r.sealed


def test_verify_accepts_stream_without_final_newline(sealed, verify_bytes):
    r = verify_bytes(b"".join(sealed.lines).rstrip(b"\n"))
    assert r.ok and r.sealed and r.records == 28 and r.warnings == []


def test_verify_require_sealed_makes_unsealed_tail_an_error(sealed, verify_bytes):
    r = verify_bytes(sealed.lines[:-1], require_sealed=True)
    assert not r.ok
    assert problems(r) == [("UNSEALED_TAIL", 23, 22)]
    # a sealed stream still passes with require_sealed
    assert verify_bytes(sealed.lines, require_sealed=True).ok


def test_cli_verify_require_sealed_exits_1_for_truncated_stream(sealed, tmp_path, cli):
    cut = tmp_path / "cut.ndjson"
    cut.write_bytes(b"".join(sealed.lines[:-1]))
    relaxed = cli("evidence", "verify", cut, "--json")
    assert relaxed.returncode == 0, relaxed.stderr
    rep = json.loads(relaxed.stdout)
    assert rep["ok"] is True and rep["sealed"] is False
    assert [(w["code"], w["line"], w["seq"]) for w in rep["warnings"]] == [
        ("UNSEALED_TAIL", 23, 22)
    ]

    strict = cli("evidence", "verify", cut, "--require-sealed", "--json")
    assert strict.returncode == 1, strict.stderr
    rep = json.loads(strict.stdout)
    assert rep["ok"] is False
    assert [(e["code"], e["line"], e["seq"]) for e in rep["errors"]] == [("UNSEALED_TAIL", 23, 22)]


# --------------------------------------------------------------------------- 7: mixed streams


def test_verify_reports_stream_mixed_on_every_line_of_the_second_stream(
    native, make_stream, verify_bytes
):
    a = make_stream(native(25, seed=7), stream_id="stream-a").splitlines(keepends=True)
    b = make_stream(native(25, seed=8), stream_id="stream-b").splitlines(keepends=True)
    assert len(a) == len(b) == 28
    mixed = [
        line for pair in zip(a, b, strict=True) for line in pair
    ]  # A on odd lines, B on even lines
    r = verify_bytes(mixed)
    assert not r.ok
    assert r.stream_id == "stream-a"
    assert problems(r) == [("STREAM_MIXED", 2 * (i + 1), i) for i in range(28)]
    assert all(p.expected == "stream-a" and p.found == "stream-b" for p in r.errors)


# --------------------------------------------------------------------------- 8: signatures


def _signed(native, make_stream, keys) -> list[bytes]:
    data = make_stream(native(25, seed=7), signing_key=keys.private_pem, key_id="ci-key-1")
    return data.splitlines(keepends=True)


def test_verify_counts_valid_signatures_with_the_right_public_key(
    native, make_stream, verify_bytes, ed25519_keys
):
    lines = _signed(native, make_stream, ed25519_keys)
    payload = orjson.loads(lines[10])["data"]["payload"]
    assert payload["key_id"] == "ci-key-1" and isinstance(payload["signature"], str)
    r = verify_bytes(lines, public_key=ed25519_keys.public_pem)
    assert r.ok, problems(r)
    assert r.checkpoints == 3
    assert r.signatures_verified == r.checkpoints
    # without a key the signatures are reported as present but unchecked
    unchecked = verify_bytes(lines)
    assert (
        unchecked.ok and unchecked.signatures_verified == 0 and unchecked.signatures_unchecked == 3
    )


def test_verify_reports_signature_invalid_on_every_checkpoint_with_another_key(
    native, make_stream, verify_bytes, ed25519_keys
):
    lines = _signed(native, make_stream, ed25519_keys)
    r = verify_bytes(lines, public_key=ed25519_keys.other_public_pem)
    assert not r.ok
    assert problems(r) == [
        ("SIGNATURE_INVALID", 11, 10),
        ("SIGNATURE_INVALID", 22, 21),
        ("SIGNATURE_INVALID", 28, 27),
    ]
    assert r.signatures_verified == 0


def test_verify_reports_signature_invalid_at_line_of_tampered_signature(
    native, make_stream, verify_bytes, ed25519_keys
):
    lines = _signed(native, make_stream, ed25519_keys)
    lines[21] = tamper_signature(lines[21])  # second checkpoint, line 22, seq 21
    r = verify_bytes(lines, public_key=ed25519_keys.public_pem)
    assert not r.ok
    assert ("SIGNATURE_INVALID", 22, 21) in problems(r)
    # the edit also changes the record's content: HASH_MISMATCH may accompany it, on that line only
    assert {p.line for p in r.errors} == {22}
    assert {p.code for p in r.errors} <= {"SIGNATURE_INVALID", "HASH_MISMATCH"}
    assert r.signatures_verified == 2


def test_verify_reports_only_signature_invalid_when_forger_rehashes_checkpoint(
    native, make_stream, verify_bytes, ed25519_keys
):
    lines = _signed(native, make_stream, ed25519_keys)
    prev_chain = orjson.loads(lines[26])["chainhash"]
    lines[27] = rehash(tamper_signature(lines[27]), prev_chain)  # final checkpoint, line 28, seq 27
    # without the key the forgery is undetectable: it is a consistent stream
    assert verify_bytes(lines).ok
    r = verify_bytes(lines, public_key=ed25519_keys.public_pem)
    assert not r.ok
    assert problems(r) == [("SIGNATURE_INVALID", 28, 27)]
    assert r.signatures_verified == 2


def test_verify_reports_signature_invalid_for_unsigned_stream_given_a_public_key(
    sealed, verify_bytes, ed25519_keys
):
    r = verify_bytes(sealed.lines, public_key=ed25519_keys.public_pem)
    assert not r.ok
    assert problems(r) == [
        ("SIGNATURE_INVALID", 11, 10),
        ("SIGNATURE_INVALID", 22, 21),
        ("SIGNATURE_INVALID", 28, 27),
    ]


def test_cli_verify_public_key_exit_codes(native, tmp_path, cli, ed25519_keys):
    src = tmp_path / "in.ndjson"
    src.write_bytes(native(25, seed=7))
    out = tmp_path / "signed.ndjson"
    s = cli(
        "evidence",
        "stream",
        src,
        "-o",
        out,
        "--stream-id",
        "s-test",
        "--checkpoint-every",
        "10",
        "--signing-key",
        ed25519_keys.private_pem,
        "--key-id",
        "ci-key-1",
    )
    assert s.returncode == 0, s.stderr
    good = cli("evidence", "verify", out, "--public-key", ed25519_keys.public_pem, "--json")
    assert good.returncode == 0, good.stderr
    rep = json.loads(good.stdout)
    assert rep["signatures_verified"] == rep["checkpoints"] == 3
    bad = cli("evidence", "verify", out, "--public-key", ed25519_keys.other_public_pem, "--json")
    assert bad.returncode == 1, bad.stderr
    assert [(e["code"], e["line"]) for e in json.loads(bad.stdout)["errors"]] == [
        ("SIGNATURE_INVALID", 11),
        ("SIGNATURE_INVALID", 22),
        ("SIGNATURE_INVALID", 28),
    ]


# --------------------------------------------------------------------------- 9: canonical form


def test_verify_reports_not_canonical_for_spaced_separators_without_hash_errors(
    sealed, verify_bytes
):
    lines = list(sealed.lines)
    idx = 16  # line 17, seq 16
    lines[idx] = json.dumps(json.loads(lines[idx]), ensure_ascii=False).encode() + b"\n"
    assert b'", "' in lines[idx]
    r = verify_bytes(lines)
    assert not r.ok
    assert problems(r) == [("NOT_CANONICAL", 17, None)]
    assert r.errors_total == 1


def test_verify_reports_not_canonical_for_reordered_keys_without_hash_errors(sealed, verify_bytes):
    lines = list(sealed.lines)
    idx = 2  # line 3, seq 2
    obj = json.loads(lines[idx])
    reordered = dict(reversed(list(obj.items())))
    lines[idx] = json.dumps(reordered, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    r = verify_bytes(lines)
    assert not r.ok
    assert [p.code for p in r.errors] == ["NOT_CANONICAL"]
    assert r.errors[0].line == 3
    assert not {"HASH_MISMATCH", "CHAIN_MISMATCH", "CHECKPOINT_MISMATCH"} & {
        p.code for p in r.errors
    }


# --------------------------------------------------------------------------- 10: limits

TEN_MIB = 10 * 1024 * 1024
BIG_LINE = b'{"x":"' + b"a" * TEN_MIB + b'"}\n'
DEEP_LINE = b"[" * 100_000 + b"]" * 100_000 + b"\n"


def test_verify_reports_limit_exceeded_for_huge_and_deep_lines(sealed, verify_bytes):
    lines = [*sealed.lines[:3], BIG_LINE, *sealed.lines[3:7], DEEP_LINE, *sealed.lines[7:]]
    # line 4 is 10 MiB (over the 8 MiB default); line 9 is nested 100,000 deep (over 128)
    r = verify_bytes(lines)
    assert not r.ok
    assert problems(r) == [("LIMIT_EXCEEDED", 4, None), ("LIMIT_EXCEEDED", 9, None)]
    assert r.records == 28 and r.sealed


def test_verify_reports_limit_exceeded_for_unclosed_deep_nesting(sealed, verify_bytes):
    lines = [*sealed.lines[:5], b"[" * 100_000 + b"\n", *sealed.lines[5:]]
    r = verify_bytes(lines)
    assert problems(r) == [("LIMIT_EXCEEDED", 6, None)]


def test_stream_rejects_huge_and_deep_lines_and_keeps_the_good_ones(native, verify_bytes):
    good = native(6, seed=3).splitlines(keepends=True)
    src = b"".join([*good[:2], BIG_LINE, *good[2:4], DEEP_LINE, *good[4:]])
    rejects: list[ev.Reject] = []
    out = io.BytesIO()
    stats = ev.stream(
        io.BytesIO(src),
        out,
        stream_id="lim",
        checkpoint_every=0,
        threads=1,
        on_reject=rejects.append,
    )
    assert [(r.line, r.code) for r in rejects] == [(3, "LIMIT_EXCEEDED"), (6, "LIMIT_EXCEEDED")]
    assert stats.events == 6 and stats.rejected == 2 and stats.checkpoints == 1
    r = verify_bytes(out.getvalue())
    assert r.ok and r.events == 6 and r.sealed, problems(r)


def test_cli_stream_exits_3_for_huge_and_deep_lines(native, tmp_path, cli):
    good = native(6, seed=3).splitlines(keepends=True)
    src = tmp_path / "in.ndjson"
    src.write_bytes(b"".join([*good[:2], BIG_LINE, *good[2:4], DEEP_LINE, *good[4:]]))
    out, rej = tmp_path / "out.ndjson", tmp_path / "rejects.ndjson"
    p = cli("evidence", "stream", src, "-o", out, "--stream-id", "lim", "--rejects", rej)
    assert p.returncode == 3, p.stderr
    assert "Traceback" not in p.stderr
    assert re.search(r"line 3\b.*LIMIT_EXCEEDED", p.stderr), p.stderr
    assert re.search(r"line 6\b.*LIMIT_EXCEEDED", p.stderr), p.stderr
    recs = [orjson.loads(x) for x in rej.read_bytes().splitlines()]
    assert [(x["line"], x["code"]) for x in recs] == [(3, "LIMIT_EXCEEDED"), (6, "LIMIT_EXCEEDED")]
    assert len(out.read_bytes().splitlines()) == 7  # six events + the final checkpoint
    v = cli("evidence", "verify", out)
    assert v.returncode == 0, v.stderr


_PEAK_RSS = r"""
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True)
print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _peak_rss_kib(*argv: str | os.PathLike[str]) -> tuple[int, int]:
    """Exit code and peak RSS (KiB, Linux) of ``argv``, the only child of a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, *map(str, argv)],
        capture_output=True,
        check=True,
        text=True,
        timeout=60,
    ).stdout.split()
    return int(out[0]), int(out[1])


def test_verify_memory_stays_bounded_on_a_10_mib_line(sealed, tmp_path):
    small = sealed.path
    big = tmp_path / "big.ndjson"
    big.write_bytes(b"".join([*sealed.lines[:3], BIG_LINE, *sealed.lines[3:]]))
    one_mib = str(1 << 20)
    rc_base, base_kib = _peak_rss_kib(
        AGENT_BOM, "evidence", "verify", "--max-line-bytes", one_mib, small
    )
    rc_default, default_kib = _peak_rss_kib(AGENT_BOM, "evidence", "verify", big)
    rc_tight, tight_kib = _peak_rss_kib(
        AGENT_BOM, "evidence", "verify", "--max-line-bytes", one_mib, big
    )
    assert rc_base == 0
    assert rc_default == rc_tight == 1  # LIMIT_EXCEEDED is an integrity failure, not a crash
    # Bound, absolute: the interpreter with typer/rich/orjson/cryptography and
    # the core loaded peaks around 45 MiB verifying a 28-line stream (base_kib).
    # A streaming verifier may hold at most max_line_bytes (8 MiB by default)
    # of a line before it knows the line is too long, plus a few 256 KiB read
    # chunks: ~55 MiB. 200 MiB leaves ample room for allocator noise and
    # platform differences while catching a verifier that materializes the
    # line several times over (copies, a parse tree, a Python bytes object).
    assert default_kib < 200 * 1024, f"peak RSS {default_kib} KiB"
    # Bound, relative: with --max-line-bytes 1 MiB only 1 MiB + read chunks may
    # be held, so the 10 MiB line must add less than 4 MiB over the baseline;
    # a reader that buffers the whole line first would add >= 10 MiB.
    assert tight_kib - base_kib < 4 * 1024, f"peak {tight_kib} KiB vs baseline {base_kib} KiB"


# --------------------------------------------------------------------------- 11: checkpoint edits


def test_verify_fails_at_the_line_of_an_edited_checkpoint_head(sealed, verify_bytes):
    lines = list(sealed.lines)
    idx = 21  # second checkpoint: line 22, seq 21
    lines[idx] = flip_hex_after(lines[idx], b'"head":"sha256:', 0)
    r = verify_bytes(lines)
    assert not r.ok
    assert r.errors[0].line == 22 and r.errors[0].seq == 21
    assert {p.line for p in r.errors} == {22}
    assert "HASH_MISMATCH" in {p.code for p in r.errors}


def test_verify_reports_checkpoint_mismatch_for_forged_merkle_root(sealed, verify_bytes):
    lines = list(sealed.lines)
    # forge the final checkpoint's merkle_root and rehash the record so only the seal is wrong
    prev_chain = orjson.loads(lines[26])["chainhash"]
    obj = orjson.loads(lines[27])
    root = obj["data"]["payload"]["merkle_root"]
    obj["data"]["payload"]["merkle_root"] = root[:-1] + ("0" if root[-1] != "0" else "1")
    lines[27] = rehash(_core.canonical_json(obj) + b"\n", prev_chain)
    r = verify_bytes(lines)
    assert not r.ok
    assert problems(r) == [("CHECKPOINT_MISMATCH", 28, 27)]
    assert r.errors[0].expected == root


# --------------------------------------------------------------------------- 12: garbage


def test_verify_reports_malformed_json_with_its_line_number(sealed, verify_bytes):
    lines = [*sealed.lines[:12], b'{"specversion":"1.0", garbage\n', *sealed.lines[12:]]
    r = verify_bytes(lines)
    assert not r.ok
    assert problems(r) == [("MALFORMED_JSON", 13, None)]
    assert r.records == 28


def test_verify_reports_blank_line_as_malformed_json(sealed, verify_bytes):
    r = verify_bytes([*sealed.lines[:5], b"\n", *sealed.lines[5:]])
    assert problems(r) == [("MALFORMED_JSON", 6, None)]


def test_verify_reports_every_problem_sorted_by_line(sealed, verify_bytes):
    lines = list(sealed.lines)
    lines[1] = flip_hex_after(lines[1], b'"contenthash":"sha256:', 0)  # line 2
    lines[23], lines[24] = lines[24], lines[23]  # lines 24/25 -> reorder at 25
    lines.insert(15, b"not json\n")  # line 16, shifts the swap to lines 25/26
    r = verify_bytes(lines)
    assert problems(r) == [
        ("HASH_MISMATCH", 2, 1),
        ("MALFORMED_JSON", 16, None),
        ("SEQ_REORDER", 26, 23),
    ]
    assert r.errors_total == 3


def test_verify_reads_a_path_the_same_as_a_file_object(sealed, verify_bytes):
    by_path = ev.verify(sealed.path)
    by_obj = verify_bytes(sealed.lines)
    assert by_path.to_dict() == by_obj.to_dict()
    assert by_path.input_sha256 == hashlib.sha256(Path(sealed.path).read_bytes()).hexdigest()
