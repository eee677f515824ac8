"""The shipped rule file, the corpora and the pure-Python reference redactor.

These run without the Rust core: they keep the rule data portable (valid for
both Rust's ``regex`` crate and Python's ``re``), the corpora honest (every
family covered, checksums valid) and the reference correct, so the
differential tests in ``test_redaction.py`` compare against a trustworthy oracle.
"""

from __future__ import annotations

import json
import random
import re
import re._constants as sre_constants
import re._parser as sre_parse
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benches"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import redaction_corpus as corpus
from redact_reference import (
    SHIPPED_RULES,
    ReferenceRedactor,
    iban_ok,
    is_marker,
    luhn_ok,
    normalize_key,
    shannon_entropy,
    ssn_ok,
)

RULES_DOC = json.loads(SHIPPED_RULES.read_text(encoding="utf-8"))
RULES = RULES_DOC["rules"]
RULE_IDS = [r["id"] for r in RULES]
KEY = b"test-redaction-key-0123456789abcdef"

# Families the issue requires (DESIGN §5 and the acceptance list).
REQUIRED = [
    "aws-access-key-id", "aws-secret-access-key", "github-pat", "github-oauth-token",
    "github-app-token", "github-refresh-token", "github-fine-grained-pat", "gitlab-pat",
    "slack-token", "slack-webhook-url", "stripe-secret-key", "stripe-restricted-key",
    "google-api-key", "gcp-private-key-id", "private-key", "azure-storage-account-key",
    "azure-sas-signature", "openai-api-key", "anthropic-api-key", "npm-token", "pypi-token",
    "jwt", "url-credentials", "bearer-token", "basic-auth", "email", "payment-card", "us-ssn",
    "iban", "sendgrid-api-key", "twilio-api-key", "mailgun-api-key", "digitalocean-token",
    "shopify-token", "huggingface-token", "databricks-token", "azure-ad-client-secret",
    "google-oauth-client-secret", "vault-token", "age-secret-key", "doppler-token",
    "new-relic-key", "telegram-bot-token", "generic-secret-assignment",
]  # fmt: skip


@pytest.fixture(scope="module")
def reference() -> ReferenceRedactor:
    return ReferenceRedactor()


# ---------------------------------------------------------------------------
# The rule file


def test_rule_file_has_version_1_and_at_least_40_uniquely_named_rules() -> None:
    assert RULES_DOC["version"] == 1
    assert len(RULES) >= 40
    assert len(set(RULE_IDS)) == len(RULE_IDS)
    assert "sensitive-key" not in RULE_IDS, "reserved for member-name redaction"
    for rid in RULE_IDS:
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", rid), rid


def test_every_required_family_has_a_rule() -> None:
    assert not set(REQUIRED) - set(RULE_IDS)


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_rule_is_well_formed(rule: dict[str, Any]) -> None:
    assert set(rule) <= {
        "id",
        "description",
        "keywords",
        "keyword_followed_by",
        "regex",
        "entropy",
        "checksum",
        "min_digits",
    }
    assert rule["description"]
    keywords = rule["keywords"]
    assert all(k and k == k.lower() for k in keywords), "keywords are lowercase and non-empty"
    if not keywords:
        assert isinstance(rule.get("min_digits"), int) and rule["min_digits"] >= 1
    if "keyword_followed_by" in rule:
        assert keywords, "keyword_followed_by narrows keywords: the rule needs some"
        re.compile(rule["keyword_followed_by"])
    if "entropy" in rule:
        assert isinstance(rule["entropy"], float) and 0 < rule["entropy"] < 8
    assert rule.get("checksum") in (None, "luhn", "iban", "ssn")


def _walk(parsed: sre_parse.SubPattern) -> list[Any]:
    ops = []
    for op, av in parsed:
        ops.append(op)
        if op in (sre_constants.SUBPATTERN,):
            ops += _walk(av[-1])
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
            ops += _walk(av[2])
        elif op is sre_constants.BRANCH:
            for branch in av[1]:
                ops += _walk(branch)
        elif op in (
            sre_constants.ASSERT,
            sre_constants.ASSERT_NOT,
            sre_constants.ATOMIC_GROUP,
            sre_constants.POSSESSIVE_REPEAT,
        ):
            ops.append(op)
    return ops


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_rule_regex_uses_only_syntax_shared_by_rust_regex_and_python_re(
    rule: dict[str, Any],
) -> None:
    pattern = rule["regex"]
    compiled = re.compile(pattern)
    ops = _walk(sre_parse.parse(pattern))
    banned = {
        sre_constants.ASSERT: "lookaround",
        sre_constants.ASSERT_NOT: "negative lookaround",
        sre_constants.GROUPREF: "backreference",
        sre_constants.GROUPREF_EXISTS: "conditional group",
        sre_constants.ATOMIC_GROUP: "atomic group",
        sre_constants.POSSESSIVE_REPEAT: "possessive quantifier",
    }
    found = [banned[op] for op in ops if op in banned]
    assert not found, found
    # Inline flags only as a leading (?i); groups are (?:...) or the one (?P<secret>...).
    constructs = re.findall(r"(?<!\\)\(\?(P<\w+>|[^:])", pattern)
    allowed = {"P<secret>"} | ({"i"} if pattern.startswith("(?i)") else set())
    assert set(constructs) <= allowed, constructs
    assert pattern.count("(?i)") == (1 if pattern.startswith("(?i)") else 0)
    assert set(compiled.groupindex) <= {"secret"}
    assert "\\Z" not in pattern and "\\A" not in pattern
    assert not compiled.match(""), "a rule must not match the empty string"


def test_sensitive_names_are_already_normalized() -> None:
    keys = RULES_DOC["sensitive_keys"]
    for name in keys["exact"] + keys["suffix"]:
        assert name == normalize_key(name), name


def test_normalizing_a_member_name_drops_case_and_separators() -> None:
    assert normalize_key("X-Api-Key") == "xapikey"
    assert normalize_key("aws.Secret_access-key ID") == "awssecretaccesskeyid"


# ---------------------------------------------------------------------------
# The corpora


def test_corpus_has_a_generator_for_every_rule() -> None:
    assert list(corpus.GENERATORS) == RULE_IDS, "same families, same order as the rule file"


def test_corpus_places_secrets_in_every_placement_kind() -> None:
    kinds = {c.name.rsplit("-", 1)[1] for c in corpus.secret_cases()}
    assert kinds == set(corpus.PLACEMENTS)


def test_corpus_is_deterministic() -> None:
    assert corpus.secret_cases() == corpus.secret_cases()
    assert corpus.benign_strings() == corpus.benign_strings()


def test_generated_pii_has_valid_check_digits() -> None:
    rng = random.Random(7)
    for _ in range(500):
        assert luhn_ok(corpus.card_number(rng))
        assert iban_ok(corpus.iban(rng))
        assert ssn_ok(corpus.ssn(rng))


def test_benign_corpus_is_large_and_varied() -> None:
    benign = corpus.benign_strings()
    assert len(benign) >= 2000
    assert len(set(benign)) >= 1900


# ---------------------------------------------------------------------------
# Checksums and entropy against published examples


@pytest.mark.parametrize(
    ("number", "ok"),
    [
        ("4111111111111111", True),
        ("4111 1111 1111 1111", True),
        ("5555-5555-5555-4444", True),
        ("378282246310005", True),  # Amex test number
        ("4111111111111112", False),
        ("411111111111", False),  # 12 digits
        ("4111.1111.1111.1111", False),
    ],
)
def test_luhn(number: str, ok: bool) -> None:
    assert luhn_ok(number) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("GB82 WEST 1234 5698 7654 32", True),  # ISO 13616 example
        ("DE89370400440532013000", True),
        ("NL91ABNA0417164300", True),
        ("NO9386011117947", True),
        ("GB82 WEST 1234 5698 7654 33", False),
        ("gb82WEST12345698765432", False),
        ("GB82WEST1234", False),
    ],
)
def test_iban(value: str, ok: bool) -> None:
    assert iban_ok(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("123-45-6789", True),
        ("000-12-3456", False),
        ("666-12-3456", False),
        ("912-12-3456", False),
        ("123-00-6789", False),
        ("123-45-0000", False),
    ],
)
def test_ssn(value: str, ok: bool) -> None:
    assert ssn_ok(value) is ok


def test_entropy_is_bits_per_character() -> None:
    assert shannon_entropy("") == 0
    assert shannon_entropy("aaaa") == 0
    assert shannon_entropy("abcd") == 2
    assert shannon_entropy("aabb") == 1


def test_only_exact_markers_count_as_markers() -> None:
    assert is_marker("[REDACTED:github-pat]")
    assert is_marker("[REDACTED:sensitive-key:0123456789abcdef]")
    assert not is_marker("[REDACTED:see ghp_x]")
    assert not is_marker("[REDACTED:github-pat:0123]")
    assert not is_marker("x [REDACTED:github-pat]")


# ---------------------------------------------------------------------------
# The reference redactor


def test_reference_catches_every_corpus_secret_with_the_expected_rule(
    reference: ReferenceRedactor,
) -> None:
    cases = corpus.secret_cases() + corpus.key_cases() + corpus.composite_cases()
    missed = []
    for case in cases:
        res = reference.redact(case.value)
        out = json.dumps(res.value, ensure_ascii=False)
        leaked = [s for s in case.secrets if json.dumps(s, ensure_ascii=False)[1:-1] in out]
        if leaked or res.by_rule != case.by_rule:
            missed.append((case.name, res.by_rule, case.by_rule))
    print(f"reference catch rate: {len(cases) - len(missed)}/{len(cases)}")
    assert not missed, missed[:10]


def test_reference_false_positive_rate_on_benign_strings_is_at_most_one_percent(
    reference: ReferenceRedactor,
) -> None:
    benign = corpus.benign_strings()
    hits = [(s, r.by_rule) for s in benign if (r := reference.redact(s)).count]
    print(f"reference benign false positives: {len(hits)}/{len(benign)}")
    assert len(hits) / len(benign) <= 0.01, hits[:20]


def test_reference_leaves_agent_telemetry_alone(reference: ReferenceRedactor) -> None:
    for obj in corpus.telemetry_objects():
        res = reference.redact(obj)
        assert (res.value, res.count) == (obj, 0)


@pytest.mark.parametrize(("mode", "key"), [("mask", None), ("hash", KEY)])
def test_reference_is_idempotent(
    reference: ReferenceRedactor, mode: str, key: bytes | None
) -> None:
    values = [c.value for c in corpus.secret_cases() + corpus.composite_cases()]
    for v in values:
        once = reference.redact(v, mode=mode, key=key)
        twice = reference.redact(once.value, mode=mode, key=key)
        assert (twice.value, twice.count) == (once.value, 0)


def test_markers_in_any_context_match_no_rule(reference: ReferenceRedactor) -> None:
    # Idempotence must not rest on the engine skipping markers: no rule may
    # match a marker even where the text around it looks like an assignment.
    rng = random.Random(3)
    contexts = [
        ("", ""), ("password=", ""), ("token: ", " ok"), ("Authorization: Bearer ", ""),
        ("Basic ", " x"), ("aws_secret_access_key=", ""), ("postgres://u:", "@db/x"),
        ("curl -u u:", " https://x"), ("--password ", ""), ('{"api_key": "', '"}'),
        ("AccountKey=", ";"), ("?sig=", "&x=1"), ("IBAN ", ""), ("card ", " exp"),
    ]  # fmt: skip
    for rid in [*RULE_IDS, "sensitive-key"]:
        for _ in range(20):
            tag = "".join(rng.choice("0123456789abcdef") for _ in range(16))
            for marker in (f"[REDACTED:{rid}]", f"[REDACTED:{rid}:{tag}]"):
                for before, after in contexts:
                    text = before + marker + after
                    for rule in reference.rules:
                        for m in rule.regex.finditer(text):
                            a, b = m.span(rule.secret_group)
                            overlaps = a < len(before) + len(marker) and len(before) < b
                            assert not (overlaps and rule.accepts(text[a:b])), (rule.id, text)


def test_reference_combined_search_never_hides_a_rule_match(reference: ReferenceRedactor) -> None:
    # The single combined search is only a shortcut: whenever any candidate
    # rule has an accepted match, the per-rule pass must run and find it.
    def naive(s: str) -> bool:
        for i in reference.candidates(s):
            rule = reference.rules[i]
            for m in rule.regex.finditer(s):
                a, b = m.span(rule.secret_group)
                if a < b and rule.accepts(s[a:b]):
                    return True
        return False

    strings = list(corpus.benign_strings())
    for case in corpus.secret_cases() + corpus.composite_cases():
        strings += [v for v in _strings(case.value)]
    for s in strings:
        assert bool(reference.spans(s)) == naive(s), s


def _strings(v: Any) -> list[str]:
    if isinstance(v, str):
        return [v]
    if isinstance(v, dict):
        return [s for x in v.values() for s in _strings(x)]
    if isinstance(v, list):
        return [s for x in v for s in _strings(x)]
    return []


def test_reference_earlier_rule_wins_an_overlap_and_counts_once(
    reference: ReferenceRedactor,
) -> None:
    gh = "ghp_" + "Zq8LmN3xR7tY1wB5vK2pD9sF4hJ6gC0aE1uI"
    res = reference.redact(f"GITHUB_TOKEN={gh}")
    assert res.value == "GITHUB_TOKEN=[REDACTED:github-pat]"
    assert res.by_rule == {"github-pat": 1}


def test_reference_hash_mode_needs_a_key(reference: ReferenceRedactor) -> None:
    with pytest.raises(ValueError):
        reference.redact("x", mode="hash")
