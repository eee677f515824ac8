"""An event's `source` must be an RFC 3986 URI-reference, as CloudEvents requires. The
core (every stream) and the envelope contract (server, `schema validate`) check it with
one pattern; here both are held to the rfc3986-validator reference."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rfc3986_validator import validate_rfc3986

from agent_bom import _core
from agent_bom import evidence as ev
from agent_bom.envelope import check_envelope
from agent_bom.errors import ConfigError


def reference(s: str) -> bool:
    # Python's `$` also matches before a final newline, so the reference takes "a\n";
    # RFC 3986 does not (no control characters anywhere).
    return bool(validate_rfc3986(s, rule="URI_reference")) and not s.endswith("\n")


def event(source: str) -> dict[str, Any]:
    return {
        "event_id": "e-1",
        "tenant_id": "acme",
        "event_type": "finding.created",
        "created_at": "2026-05-01T00:00:00Z",
        "source": source,
        "payload": {"finding_id": "f-1", "title": "a finding"},
    }


def streamed(source: str, *, redact: bool = False) -> tuple[int, list[ev.Reject]]:
    """(events written, rejects) of a one-event stream through the core."""
    rejects: list[ev.Reject] = []
    out = io.BytesIO()
    stats = ev.stream(
        io.BytesIO(orjson.dumps(event(source)) + b"\n"),
        out,
        stream_id="s",
        checkpoint_every=0,
        redact=redact,
        on_reject=rejects.append,
    )
    return stats.events, rejects


VALID = [
    "urn:agent-bom:collector:devin",
    "scanner://trivy",
    "mcp://filesystem",
    "https://user:pw@example.com:8443/a/b?q=1&r=2#frag",
    "https://[::1]:8080/x",
    "//[2001:db8::7]/x",
    "//[::ffff:192.0.2.1]",
    "//[v1.fe]/x",
    "urn:",
    "mailto:ops@example.com",
    "/api/v1/scan",
    "relative/path:with-colon-later",
    "./x:y",
    "?query-only",
    "#fragment-only",
    "%41%62",
    "///x",
]
INVALID = [
    ("my scanner", "' ' must be percent-encoded"),
    ("tab\there", "'\\t' must be percent-encoded"),
    ("scanner/é", "'é' must be percent-encoded"),
    ('say"hi"', "'\"' must be percent-encoded"),
    ("a\\b", "'\\\\' must be percent-encoded"),
    ("{template}", "'{' must be percent-encoded"),
    ("1scanner:x", "syntax"),  # no scheme starts with a digit; a relative ref's first
    ("100%", "syntax"),  # segment has no ':'; '%' needs two hex digits
    ("a%zz", "syntax"),
    ("a#b#c", "syntax"),
    ("host[1]", "syntax"),
    ("//[zz]/x", "syntax"),
    ("//[1::2::3]", "syntax"),
    ("//[::ffff:1.2.3.256]", "syntax"),
    ("http://a]b", "syntax"),
    ("urn:x\n", "'\\n' must be percent-encoded"),
]


@pytest.mark.parametrize("source", VALID)
def test_uri_references_are_accepted_by_the_core_and_the_contract(source: str) -> None:
    assert reference(source)
    assert _core.uri_reference_problem(source) is None
    assert check_envelope(event(source)) == []
    assert streamed(source) == (1, [])


@pytest.mark.parametrize(("source", "why"), INVALID)
def test_other_sources_are_rejected_by_both_naming_the_problem(source: str, why: str) -> None:
    assert not reference(source)
    problem = _core.uri_reference_problem(source)
    assert problem is not None and why in problem, problem
    problems = check_envelope(event(source))
    assert [p.path for p in problems] == ["$.source"]
    assert problems[0].message == problem  # the core's own words, not the value
    written, rejects = streamed(source)
    assert written == 0 and len(rejects) == 1
    assert rejects[0].code == "INVALID_EVENT" and "field 'source'" in rejects[0].reason
    assert problem in rejects[0].reason


# Brackets are left out: random strings almost never form an IP literal, and the
# vectors above cover them.
_ALPHABET = "aZ09-._~!$&'()*+,;=:/?#@% \"<>\\^`{|}\té\n"


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=_ALPHABET, min_size=1, max_size=16))
def test_the_check_is_rfc3986s_for_any_string(source: str) -> None:
    ours = _core.uri_reference_problem(source) is None
    assert ours == reference(source), source
    assert (check_envelope(event(source)) == []) == ours, source


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(r"\A[A-Za-z][A-Za-z0-9+.-]{0,6}:(//[a-z0-9.-]{0,10}(:[0-9]{0,5})?)?"
                  r"(/[a-zA-Z0-9%:@-]{0,6}){0,3}(\?[a-z=&]{0,8})?(#[a-z]{0,5})?\Z")
)  # fmt: skip
def test_generated_uris_are_judged_as_the_reference_judges_them(source: str) -> None:
    assert (_core.uri_reference_problem(source) is None) == reference(source), source


def test_a_bad_source_option_is_refused_before_streaming(cli: Any, tmp_path: Any) -> None:
    src = tmp_path / "in.ndjson"
    src.write_bytes(
        orjson.dumps({k: v for k, v in event("urn:x").items() if k != "source"}) + b"\n"
    )
    r = cli("evidence", "stream", src, "-o", tmp_path / "out.ndjson", "--stream-id", "s",
            "--source", "my scanner")  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "--source" in r.stderr and "' ' must be percent-encoded" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out.ndjson").exists()


def test_a_source_holding_a_secret_is_redacted_then_refused_saying_why() -> None:
    """Redaction runs before anything is hashed, so its marker lands in `source`; the
    event is refused with a reason that says so rather than shipped with a source that
    is no URI (and the secret reaches no output)."""
    for source in ("https://ci:hunter2hunter2@gateway.example.com/hook", "mailto:ops@example.com"):
        assert streamed(source) == (1, [])  # a URI-reference as given
        written, rejects = streamed(source, redact=True)
        assert written == 0 and len(rejects) == 1
        assert "held a secret, now redacted" in rejects[0].reason


def test_an_api_default_source_is_checked_too() -> None:
    with pytest.raises(ConfigError, match="is not a URI-reference"):
        ev.stream(io.BytesIO(b""), io.BytesIO(), stream_id="s", source="my scanner")
