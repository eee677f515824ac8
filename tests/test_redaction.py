"""Acceptance: secret and PII redaction (DESIGN §5) through the public API and the CLI.

Inputs come from the seeded corpora in ``tests/redaction_corpus.py`` (fake
secrets of every rule family in many placements, and > 2,000 benign strings).
The oracle for exact values is the pure-Python reference redactor in
``benches/redact_reference.py``, written independently from the rule-file
contract.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
import rfc8785

import agent_bom
from agent_bom import evidence as ev

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benches"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import redaction_corpus as corpus
from redact_reference import ReferenceRedactor

KEY = b"test-redaction-key-0123456789abcdef"
OTHER_KEY = b"another-redaction-key-fedcba987654"
MARKER = re.compile(r"\[REDACTED:([a-z0-9-]+)(?::([0-9a-f]{16}))?\]")
SECRET_CASES = corpus.secret_cases()
KEY_CASES = corpus.key_cases()
COMPOSITE_CASES = corpus.composite_cases()
ALL_CASES = SECRET_CASES + KEY_CASES + COMPOSITE_CASES
BENIGN = corpus.benign_strings()


@pytest.fixture(scope="module")
def reference() -> ReferenceRedactor:
    return ReferenceRedactor()


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def leaked(secrets: tuple[str, ...], text: str) -> list[str]:
    """Secrets still present in ``text``, raw or as they look inside a JSON string."""
    return [s for s in secrets if s in text or json.dumps(s, ensure_ascii=False)[1:-1] in text]


def by_rule_total(cases: list[corpus.Case]) -> Counter[str]:
    total: Counter[str] = Counter()
    for c in cases:
        total.update(c.by_rule)
    return total


# ---------------------------------------------------------------------------
# Every secret goes


def _cases_by_rule() -> dict[str, list[corpus.Case]]:
    groups: dict[str, list[corpus.Case]] = defaultdict(list)
    for c in SECRET_CASES:
        groups[next(iter(c.by_rule))].append(c)
    return groups


@pytest.mark.parametrize(("rule", "cases"), sorted(_cases_by_rule().items()))
def test_every_corpus_secret_of_a_family_is_redacted_by_its_rule(
    rule: str, cases: list[corpus.Case]
) -> None:
    results = agent_bom.redact_many([c.value for c in cases])
    assert len(results) == len(cases)
    for case, res in zip(cases, results, strict=True):
        out = dumps(res.value)
        assert not leaked(case.secrets, out), f"{case.name}: secret survived in {out[:300]}"
        assert res.by_rule == case.by_rule, f"{case.name}: {res.by_rule} != {case.by_rule}"
        assert res.count == case.count
        assert f"[REDACTED:{rule}]" in out


@pytest.mark.parametrize("case", COMPOSITE_CASES, ids=lambda c: c.name)
def test_blobs_with_several_secrets_lose_all_of_them(case: corpus.Case) -> None:
    res = agent_bom.redact(case.value)
    assert not leaked(case.secrets, dumps(res.value))
    assert res.by_rule == case.by_rule
    assert res.count == case.count


def test_redact_returns_a_copy_and_leaves_the_input_untouched() -> None:
    case = COMPOSITE_CASES[1]
    before = json.dumps(case.value)
    res = agent_bom.redact(case.value)
    assert json.dumps(case.value) == before
    assert res.value != case.value


def test_redact_many_gives_the_same_results_as_one_call_each() -> None:
    values = [c.value for c in ALL_CASES[::7]]
    many = agent_bom.redact_many(values)
    for v, m in zip(values, many, strict=True):
        one = agent_bom.redact(v)
        assert (m.value, m.count, m.by_rule) == (one.value, one.count, one.by_rule)


# ---------------------------------------------------------------------------
# Sensitive member names


@pytest.mark.parametrize("case", KEY_CASES, ids=lambda c: c.name)
def test_value_under_a_sensitive_name_is_replaced_whole_at_any_depth(case: corpus.Case) -> None:
    res = agent_bom.redact(case.value)
    out = dumps(res.value)
    assert not leaked(case.secrets, out)
    assert res.by_rule == {"sensitive-key": 1}
    assert out.count('"[REDACTED:sensitive-key]"') == 1
    assert '"status": "ok"' in out, "neighbouring members stay"


def test_agent_telemetry_counters_and_ids_are_not_sensitive() -> None:
    for obj in corpus.telemetry_objects():
        res = agent_bom.redact(obj)
        assert res.count == 0, res.by_rule
        assert res.value == obj


def test_member_names_are_matched_case_and_separator_insensitively() -> None:
    names = ["API_KEY", "api-key", "Api.Key", "api key", "ApiKey", "x-Api-Key", "MY_CLIENT_SECRET"]
    res = agent_bom.redact({n: "plain-value" for n in names})
    assert res.value == {n: "[REDACTED:sensitive-key]" for n in names}
    assert res.by_rule == {"sensitive-key": len(names)}


def test_member_names_themselves_are_never_redacted() -> None:
    gh = "ghp_" + "Zq8LmN3xR7tY1wB5vK2pD9sF4hJ6gC0aE1uI"
    res = agent_bom.redact({gh: 1, "note": "x"})
    assert res.value == {gh: 1, "note": "x"}
    assert res.count == 0


# ---------------------------------------------------------------------------
# False positives


def test_benign_false_positive_rate_is_at_most_one_percent() -> None:
    assert len(BENIGN) >= 2000
    results = agent_bom.redact_many(BENIGN)
    hits = [(s, r.by_rule) for s, r in zip(BENIGN, results, strict=True) if r.count]
    rate = len(hits) / len(BENIGN)
    print(f"benign false positives: {len(hits)}/{len(BENIGN)} = {rate:.3%}")
    assert rate <= 0.01, hits[:20]
    for s, r in zip(BENIGN, results, strict=True):
        if not r.count:
            assert r.value == s


# ---------------------------------------------------------------------------
# Idempotence, markers, keys


@pytest.mark.parametrize(("mode", "key"), [("mask", None), ("hash", KEY)])
def test_redacting_twice_changes_nothing(mode: str, key: bytes | None) -> None:
    values = [c.value for c in ALL_CASES] + BENIGN
    once = agent_bom.redact_many(values, mode=mode, key=key)
    twice = agent_bom.redact_many([r.value for r in once], mode=mode, key=key)
    for a, b in zip(once, twice, strict=True):
        assert b.count == 0, b.by_rule
        assert b.value == a.value


def test_hash_marker_is_the_truncated_hmac_of_the_secret() -> None:
    gh = "ghp_" + "Zq8LmN3xR7tY1wB5vK2pD9sF4hJ6gC0aE1uI"
    res = agent_bom.redact({"log": f"cloned with {gh} ok"}, mode="hash", key=KEY)
    tag = hmac.new(KEY, gh.encode(), hashlib.sha256).hexdigest()[:16]
    assert res.value == {"log": f"cloned with [REDACTED:github-pat:{tag}] ok"}


def test_hash_marker_of_a_sensitive_name_covers_the_canonical_json_of_its_value() -> None:
    value = {"user": "svc", "pass": "ünïcode-ok", "n": 1.5e-7, "list": [3, True, None]}
    res = agent_bom.redact({"credentials": value}, mode="hash", key=KEY)
    tag = hmac.new(KEY, rfc8785.dumps(value), hashlib.sha256).hexdigest()[:16]
    assert res.value == {"credentials": f"[REDACTED:sensitive-key:{tag}]"}


def test_only_the_secret_part_of_a_contextual_match_is_replaced() -> None:
    res = agent_bom.redact("postgres://app:S3cr3t-Passw0rd@db.internal:5432/app")
    assert res.value == "postgres://app:[REDACTED:url-credentials]@db.internal:5432/app"


_HASH_SCRIPT = """
import json, sys
sys.path[:0] = [sys.argv[1]]
import agent_bom, redaction_corpus as corpus
cases = corpus.secret_cases() + corpus.key_cases() + corpus.composite_cases()
out = agent_bom.redact_many([c.value for c in cases], mode="hash", key=sys.argv[2].encode())
sys.stdout.write(json.dumps([r.value for r in out], ensure_ascii=False, sort_keys=True))
"""


def _hash_in_subprocess(key: bytes) -> list[Any]:
    p = subprocess.run(
        [sys.executable, "-c", _HASH_SCRIPT, str(Path(__file__).parent), key.decode()],
        capture_output=True,
        check=True,
        timeout=120,
        env=dict(os.environ, PYTHONHASHSEED="random"),
    )
    return json.loads(p.stdout)


def test_hash_mode_is_stable_across_processes_and_depends_on_the_key() -> None:
    here = [
        r.value for r in agent_bom.redact_many([c.value for c in ALL_CASES], mode="hash", key=KEY)
    ]
    there = _hash_in_subprocess(KEY)
    assert json.loads(json.dumps(here, ensure_ascii=False, sort_keys=True)) == there
    other = _hash_in_subprocess(OTHER_KEY)
    tags = {m.group(2) for m in MARKER.finditer(dumps(there))}
    other_tags = {m.group(2) for m in MARKER.finditer(dumps(other))}
    assert len(tags) > 500 and None not in tags
    assert not tags & other_tags, "another key gives other pseudonyms"


def test_same_secret_gets_the_same_pseudonym_everywhere() -> None:
    gh = "ghp_" + "Zq8LmN3xR7tY1wB5vK2pD9sF4hJ6gC0aE1uI"
    res = agent_bom.redact({"a": gh, "b": [f"x {gh} y"], "c": {"d": gh}}, mode="hash", key=KEY)
    assert len({m.group(0) for m in MARKER.finditer(dumps(res.value))}) == 1


def test_hash_mode_without_a_key_is_refused() -> None:
    with pytest.raises((ValueError, agent_bom.ConfigError)):
        agent_bom.redact({"a": "b"}, mode="hash")


def test_unknown_mode_is_refused() -> None:
    with pytest.raises((ValueError, agent_bom.ConfigError)):
        agent_bom.redact({"a": "b"}, mode="scramble")  # type: ignore[arg-type]


def test_a_string_that_only_looks_like_a_marker_still_loses_its_secret() -> None:
    # Only exact markers ([REDACTED:<rule-id>] or [REDACTED:<rule-id>:<16 hex>]) are
    # left alone; anything else that starts the same way must not shield what follows.
    gh = "ghp_" + "Zq8LmN3xR7tY1wB5vK2pD9sF4hJ6gC0aE1uI"
    for text in (f"[REDACTED: see {gh}", f"[REDACTED:see {gh}]", f"[REDACTED:x] {gh}"):
        res = agent_bom.redact({"m": text})
        assert gh not in dumps(res.value), text
        assert res.by_rule == {"github-pat": 1}


# ---------------------------------------------------------------------------
# Extra rules and the reference


def test_extra_rules_file_adds_rules_after_the_shipped_ones(
    tmp_path: Path, reference: ReferenceRedactor
) -> None:
    rules = tmp_path / "extra.json"
    rules.write_text(
        json.dumps(
            {
                "version": 1,
                "rules": [
                    {
                        "id": "acme-employee-id",
                        "description": "ACME employee number",
                        "keywords": ["emp-"],
                        "regex": r"\bEMP-(?P<secret>[0-9]{6})\b",
                    }
                ],
            }
        )
    )
    value = {"log": "badge EMP-123456 opened door; token=Xq9!k2LmZ7", "n": "EMP-12"}
    res = agent_bom.redact(value, rules=rules)
    assert res.value == {
        "log": "badge EMP-[REDACTED:acme-employee-id] opened door; "
        "token=[REDACTED:generic-secret-assignment]",
        "n": "EMP-12",
    }
    assert res.by_rule == {"acme-employee-id": 1, "generic-secret-assignment": 1}
    ref = ReferenceRedactor(rules).redact(value)
    assert (ref.value, ref.by_rule) == (res.value, res.by_rule)
    assert agent_bom.redact(value).by_rule == {"generic-secret-assignment": 1}


def test_an_extra_rules_file_with_a_broken_regex_is_a_config_error_naming_the_rule(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "bad.json"
    rules.write_text(json.dumps({"rules": [{"id": "broken-one", "keywords": ["x"], "regex": "("}]}))
    with pytest.raises(agent_bom.ConfigError, match="broken-one"):
        agent_bom.redact({"a": "x"}, rules=rules)


def test_a_rules_file_with_more_keywords_than_the_prefilter_holds_is_refused(
    tmp_path: Path,
) -> None:
    """Refused at load, naming the problem: a keyword rule that can never run would let
    its secrets through silently."""
    import itertools
    import string

    words = [
        "".join(p) for p in itertools.product(string.ascii_lowercase + string.digits, repeat=3)
    ]
    rules = tmp_path / "huge.json"
    rules.write_text(
        json.dumps(
            {"rules": [{"id": "many-words", "keywords": words[:4000], "regex": "zz(?P<secret>q+)"}]}
        )
    )
    with pytest.raises(agent_bom.ConfigError, match="too many for the keyword prefilter"):
        agent_bom.redact({"a": "x"}, rules=rules)


@pytest.mark.parametrize(("mode", "key"), [("mask", None), ("hash", KEY)])
def test_core_and_pure_python_reference_agree_on_the_whole_corpus(
    mode: str, key: bytes | None, reference: ReferenceRedactor
) -> None:
    values = [c.value for c in ALL_CASES] + BENIGN + corpus.telemetry_objects()
    core = agent_bom.redact_many(values, mode=mode, key=key)
    differ = []
    for v, c in zip(values, core, strict=True):
        r = reference.redact(v, mode=mode, key=key)
        if (c.value, c.count, c.by_rule) != (r.value, r.count, r.by_rule):
            differ.append((v, c, r))
    assert not differ, f"{len(differ)} differ; first: {differ[0]}"


# ---------------------------------------------------------------------------
# evidence stream


@pytest.fixture(scope="module")
def secret_ndjson(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("redaction") / "native.ndjson"
    events = corpus.secret_events(ALL_CASES)
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def _events(out: bytes) -> list[dict[str, Any]]:
    return [
        e
        for e in map(orjson.loads, out.splitlines())
        if e["type"] != "io.agentbom.evidence.checkpoint"
    ]


def test_evidence_stream_redacts_by_default_and_counts_per_event(
    cli: Any, secret_ndjson: Path, tmp_path: Path
) -> None:
    out = tmp_path / "evidence.ndjson"
    p = cli("evidence", "stream", secret_ndjson, "-o", out, "--stream-id", "red-1")
    assert p.returncode == 0, p.stderr
    data = out.read_bytes()
    text = data.decode()
    survivors = [(c.name, s) for c in ALL_CASES for s in leaked(c.secrets, text)]
    assert not survivors, survivors[:5]
    events = _events(data)
    assert len(events) == len(ALL_CASES)
    for case, e in zip(ALL_CASES, events, strict=True):
        assert e["data"]["payload"]["case"] == case.name
        assert e["redactions"] == case.count, case.name
    total = sum(c.count for c in ALL_CASES)
    assert f"redacted {total:,} values" in " ".join(p.stderr.split())
    verify = cli("evidence", "verify", out)
    assert verify.returncode == 0, verify.stderr


def test_evidence_stream_no_redact_keeps_the_values(
    cli: Any, secret_ndjson: Path, tmp_path: Path
) -> None:
    out = tmp_path / "raw.ndjson"
    p = cli("evidence", "stream", secret_ndjson, "-o", out, "--stream-id", "raw", "--no-redact")
    assert p.returncode == 0, p.stderr
    events = _events(out.read_bytes())
    assert all(e["redactions"] == 0 for e in events)
    assert "[REDACTED:" not in out.read_text()


def test_evidence_stream_hash_mode_reads_the_key_from_a_file_or_the_environment(
    cli: Any, secret_ndjson: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "redact.key"
    key_file.write_bytes(KEY + b"\n")
    a, b, c = tmp_path / "a.ndjson", tmp_path / "b.ndjson", tmp_path / "c.ndjson"
    common = ["evidence", "stream", secret_ndjson, "--stream-id", "h", "--redact-mode", "hash"]
    assert cli(*common, "-o", a, "--redact-key-file", key_file).returncode == 0
    monkeypatch.setenv("AGENT_BOM_TEST_REDACT_KEY", KEY.decode())
    assert cli(*common, "-o", b, "--redact-key-env", "AGENT_BOM_TEST_REDACT_KEY").returncode == 0
    other_file = tmp_path / "other.key"
    other_file.write_bytes(OTHER_KEY)
    assert cli(*common, "-o", c, "--redact-key-file", other_file).returncode == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert not [s for case in ALL_CASES for s in leaked(case.secrets, a.read_text())]
    # The stream's pseudonyms are the API's: one key, one pseudonym per secret.
    events = _events(a.read_bytes())
    api = agent_bom.redact_many([c.value for c in ALL_CASES], mode="hash", key=KEY)
    for case, e, r in zip(ALL_CASES, events, api, strict=True):
        assert e["data"]["payload"]["evidence"] == r.value, case.name


def test_evidence_stream_refuses_hash_mode_without_a_key(cli: Any, secret_ndjson: Path) -> None:
    p = cli("evidence", "stream", secret_ndjson, "--stream-id", "x", "--redact-mode", "hash")
    assert p.returncode == 2
    assert "--redact-key-file" in p.stderr or "--redact-key-env" in p.stderr


def test_evidence_stream_applies_an_extra_rules_file(cli: Any, tmp_path: Path) -> None:
    rules = tmp_path / "extra.json"
    rules.write_text(
        json.dumps(
            {"rules": [{"id": "acme-ticket", "keywords": ["tkt-"], "regex": r"\bTKT-[0-9]{5}\b"}]}
        )
    )
    event = {
        "tenant_id": "acme",
        "event_type": "runtime.exec",
        "created_at": "2026-05-01T00:00:00Z",
        "source": "urn:test",
        "payload": {"note": "see TKT-01234"},
    }
    src = tmp_path / "in.ndjson"
    src.write_bytes(orjson.dumps(event) + b"\n")
    out = tmp_path / "out.ndjson"
    p = cli("evidence", "stream", src, "-o", out, "--stream-id", "x", "--redact-rules", rules)
    assert p.returncode == 0, p.stderr
    [e] = _events(out.read_bytes())
    assert e["data"]["payload"]["note"] == "see [REDACTED:acme-ticket]"
    assert e["redactions"] == 1


def test_stream_stats_report_redactions_per_rule(secret_ndjson: Path) -> None:
    out = io.BytesIO()
    stats = ev.stream(io.BytesIO(secret_ndjson.read_bytes()), out, stream_id="stats", threads=2)
    expected = by_rule_total(ALL_CASES)
    assert stats.redactions == sum(expected.values())
    assert {k: v for k, v in stats.redactions_by_rule.items() if v} == dict(expected)


def test_stream_finds_secrets_behind_json_escapes_in_the_raw_line() -> None:
    # Producers may escape '/' as '\/' or any character as \\uXXXX: the keyword
    # prefilter must not be fooled by the raw bytes.
    gh = "ghp_" + "Zq8LmN3xR7tY1wB5vK2pD9sF4hJ6gC0aE1uI"
    event = {
        "tenant_id": "acme",
        "event_type": "runtime.exec",
        "created_at": "2026-05-01T00:00:00Z",
        "source": "urn:test",
        "payload": {
            "dsn": "postgres://app:S3cretPassw0rd@db/app",
            "tok": gh,
            "who": "ops@example.com",
        },
    }
    line = (
        json.dumps(event).replace("/", "\\/").replace("ghp_", "\\u0067hp_").replace("@", "\\u0040")
    )
    out = io.BytesIO()
    stats = ev.stream(io.BytesIO(line.encode() + b"\n"), out, stream_id="esc")
    assert stats.redactions_by_rule.get("github-pat") == 1
    assert stats.redactions_by_rule.get("url-credentials") == 1
    assert stats.redactions_by_rule.get("email") == 1
    for s in (gh, "S3cretPassw0rd", "ops@example.com"):
        assert s.encode() not in out.getvalue()


def test_redaction_happens_before_hashing() -> None:
    # Two events differing only in their secret are the same evidence after redaction.
    def event(secret: str) -> bytes:
        e = {
            "tenant_id": "acme",
            "event_type": "runtime.exec",
            "created_at": "2026-05-01T00:00:00Z",
            "source": "urn:test",
            "payload": {"argv": ["curl", "-H", f"Authorization: Bearer {secret}"]},
        }
        return orjson.dumps(e) + b"\n"

    a = "aX9" + "k2Lm7Qp4Rs8Tv1Wx5Yz0Bc3Df6Gh" * 2
    b = "bY8" + "p4Rs8Tv1Wx5Yz0Bc3Df6Ghk2Lm7Q" * 2
    out = io.BytesIO()
    ev.stream(io.BytesIO(event(a) + event(b)), out, stream_id="pre")
    first, second = _events(out.getvalue())
    assert first["data"] == second["data"]
    assert first["id"] == second["id"]
    assert first["contenthash"] == second["contenthash"]
