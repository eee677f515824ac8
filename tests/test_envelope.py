"""The envelope model and the registry: the core's list, the core's rules, every problem
reported at once with its JSON path."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from agent_bom import _core
from agent_bom import evidence as ev
from agent_bom.envelope import (
    REGISTRY,
    REGISTRY_TYPES,
    PostureEvent,
    check_envelope,
    check_envelopes,
    epoch_millis,
    example_event,
    parse_event,
)
from agent_bom.errors import InvalidEvent


def test_registry_is_the_cores_registry_and_every_type_has_a_payload_model() -> None:
    assert list(REGISTRY) == list(_core.REGISTRY_TYPES)
    assert list(REGISTRY_TYPES) == list(_core.REGISTRY_TYPES)
    for model in REGISTRY.values():
        assert issubclass(model, BaseModel)


@pytest.mark.parametrize("event_type", list(_core.REGISTRY_TYPES))
def test_example_of_each_registry_type_is_a_valid_envelope(event_type: str) -> None:
    event = PostureEvent.model_validate(example_event(event_type))
    typed = event.typed_payload()
    assert isinstance(typed, REGISTRY[event_type])
    assert event.to_json_dict()["payload"] == example_event(event_type)["payload"]


def test_validation_reports_every_problem_at_once_with_json_paths() -> None:
    event = {
        "event_id": "",
        "tenant_id": "no spaces",
        "event_type": "finding.created",
        "created_at": "2026-05-01T12:00:00",
        "risk_score": 101,
        "entity_refs": [{"kind": "package"}],
        "payload": {"title": 7, "cve": "CVE-1"},
    }
    problems = {p.path: p.message for p in check_envelope(event)}
    assert set(problems) == {
        "$.event_id",
        "$.tenant_id",
        "$.created_at",
        "$.source",
        "$.risk_score",
        "$.entity_refs[0].id",
        "$.payload.finding_id",
        "$.payload.title",
        "$.payload.cve",
    }
    assert "time zone" in problems["$.created_at"]
    assert problems["$.source"] == "is required"
    assert "no spaces" in problems["$.tenant_id"]
    with pytest.raises(InvalidEvent, match=r"\$\.payload\.finding_id: is required"):
        parse_event(event)


def test_custom_reverse_dns_types_carry_an_open_payload() -> None:
    event = {**example_event("runtime.exec"), "event_type": "com.example.scanner.result"}
    event["payload"] = {"anything": [1, {"goes": None}]}
    assert check_envelope(event) == []
    assert PostureEvent.model_validate(event).typed_payload() is None


@pytest.mark.parametrize(
    "event_type",
    [
        "bogus",
        "com.example",
        "io.agentbom.finding.created",
        "Com.Example.Thing",
        "com..x.y",
        "finding",
    ],
)
def test_other_event_types_are_rejected_with_the_rule(event_type: str) -> None:
    (problem,) = check_envelope({**example_event("runtime.exec"), "event_type": event_type})
    assert problem.path == "$.event_type"
    assert event_type in problem.message and "reverse-DNS" in problem.message


@pytest.mark.parametrize("member", ["received_at", "seq", "stored_seq"])
def test_persistence_metadata_never_appears_in_an_envelope(member: str) -> None:
    (problem,) = check_envelope({**example_event("runtime.exec"), member: 1})
    assert problem.path == f"$.{member}" and "persistence metadata" in problem.message


def test_nulls_are_rejected_like_the_core_does() -> None:
    for member in ("severity", "risk_score", "entity_refs", "ocsf", "audit_ref", "correlation_id"):
        (problem,) = check_envelope({**example_event("runtime.exec"), member: None})
        assert problem.path == f"$.{member}" and "null" in problem.message
    event = example_event("finding.created")
    event["payload"]["rule_id"] = None
    (problem,) = check_envelope(event)
    assert problem.path == "$.payload.rule_id"


def test_strict_json_types_no_coercion() -> None:
    event = example_event("runtime.exec")
    event["risk_score"] = "50"
    event["payload"]["pid"] = True
    paths = {p.path for p in check_envelope(event)}
    assert paths == {"$.risk_score", "$.payload.pid"}


def test_runtime_net_needs_a_destination_and_real_ip_addresses() -> None:
    event = example_event("runtime.net")
    event["payload"] = {"pid": 1, "operation": "open", "src_ip": "999.1.1.1"}
    messages = [str(p) for p in check_envelope(event)]
    assert any("$.payload.src_ip" in m and "IPv4 or IPv6" in m for m in messages)
    event["payload"] = {"pid": 1, "operation": "open"}
    assert [p.message for p in check_envelope(event)] == ["give dst_ip or dst_host (or both)"]


# --- agreement with the core on native envelopes -------------------------------------------

_CORPUS: list[tuple[str, Any]] = [
    ("valid", {}),
    ("tenant with dots", {"tenant_id": "acme.eu-1_x"}),
    ("tenant too long", {"tenant_id": "a" * 129}),
    ("tenant 128", {"tenant_id": "a" * 128}),
    ("tenant leading dash", {"tenant_id": "-acme"}),
    ("tenant empty", {"tenant_id": ""}),
    ("tenant number", {"tenant_id": 7}),
    ("type bogus", {"event_type": "bogus"}),
    ("type two labels", {"event_type": "com.example"}),
    ("type reserved", {"event_type": "io.agentbom.custom.thing"}),
    ("type custom", {"event_type": "com.example.thing.happened"}),
    ("type upper", {"event_type": "Com.Example.Thing"}),
    ("type digit first", {"event_type": "1com.example.thing"}),
    ("time no zone", {"created_at": "2026-05-01T12:00:00"}),
    ("time lowercase", {"created_at": "2026-05-01t12:00:00z"}),
    ("time space", {"created_at": "2026-05-01 12:00:00+02:00"}),
    ("time fraction 9", {"created_at": "2026-05-01T12:00:00.123456789Z"}),
    ("time fraction 10", {"created_at": "2026-05-01T12:00:00.1234567891Z"}),
    ("time leap second", {"created_at": "2026-06-30T23:59:60Z"}),
    ("time feb 29 non-leap", {"created_at": "2026-02-29T00:00:00Z"}),
    ("time feb 29 leap", {"created_at": "2028-02-29T00:00:00Z"}),
    ("time 24h", {"created_at": "2026-05-01T24:00:00Z"}),
    ("time offset 23:59", {"created_at": "2026-05-01T12:00:00+23:59"}),
    ("time offset 24", {"created_at": "2026-05-01T12:00:00+24:00"}),
    ("time past 9999", {"created_at": "9999-12-31T23:59:59-01:00"}),
    ("time before 0000", {"created_at": "0000-01-01T00:00:00+01:00"}),
    ("time year 0", {"created_at": "0000-01-01T00:00:00Z"}),
    ("time words", {"created_at": "yesterday"}),
    ("severity bad", {"severity": "urgent"}),
    ("severity upper", {"severity": "HIGH"}),
    ("risk 100", {"risk_score": 100}),
    ("risk 100.5", {"risk_score": 100.5}),
    ("risk negative", {"risk_score": -0.1}),
    ("risk string", {"risk_score": "5"}),
    ("risk bool", {"risk_score": True}),
    ("refs object", {"entity_refs": {"kind": "a", "id": "b"}}),
    ("refs missing id", {"entity_refs": [{"kind": "a"}]}),
    ("refs empty kind", {"entity_refs": [{"kind": "", "id": "b"}]}),
    ("refs extra member", {"entity_refs": [{"kind": "a", "id": "b", "name": "n"}]}),
    ("refs empty list", {"entity_refs": []}),
    ("schema version 2", {"schema_version": "2"}),
    ("schema version int", {"schema_version": 1}),
    ("payload list", {"payload": [1]}),
    ("ocsf list", {"ocsf": [1]}),
    ("audit_ref string", {"audit_ref": "x"}),
    ("event_id empty", {"event_id": ""}),
    ("event_id number", {"event_id": 5}),
    ("source empty", {"source": ""}),
    ("correlation number", {"correlation_id": 1}),
    ("exposure path id", {"exposure_path_id": "EP-1"}),
    ("null severity", {"severity": None}),
    ("null payload", {"payload": None}),
]


def test_envelope_rules_agree_with_the_core_on_a_corpus() -> None:
    """The core (rust/cloudevent.rs) accepts exactly the envelopes the model accepts.

    Custom-typed events keep payload checks out of the comparison (the core checks no
    payload); the envelope's own rules are what must agree."""
    base = {**example_event("runtime.exec"), "event_type": "com.example.scan.done"}
    events = []
    for _, change in _CORPUS:
        event = {**base, **change}
        events.append(event)
    data = b"".join(orjson.dumps(e) + b"\n" for e in events)
    rejected: set[int] = set()
    ev.stream(
        io.BytesIO(data),
        io.BytesIO(),
        stream_id="s-agree",
        checkpoint_every=0,
        threads=1,
        on_reject=lambda r: rejected.add(r.line),
    )
    assert 20 < len(rejected) < len(_CORPUS) - 10
    for line, ((name, _), event) in enumerate(zip(_CORPUS, events, strict=True), start=1):
        core_ok = line not in rejected
        model_ok = check_envelope(event) == []
        assert core_ok == model_ok, (
            f"{name}: core {'accepts' if core_ok else 'rejects'}, model does not"
        )


_zones = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9998, 12, 30), timezones=_zones)
)
def test_epoch_millis_matches_the_standard_library(when: datetime) -> None:
    text = when.isoformat()
    expected = (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    offset = when.utcoffset()
    assert offset is not None
    assert epoch_millis(text) == (expected, int(offset.total_seconds() // 60))


def test_posture_event_is_immutable_and_rejects_unknown_members() -> None:
    event = PostureEvent.model_validate(example_event("skill.verdict"))
    with pytest.raises(ValidationError):
        event.tenant_id = "x"  # type: ignore[misc]
    (problem,) = check_envelope({**example_event("skill.verdict"), "traceparent": "00-x"})
    assert problem.path == "$.traceparent" and "payload" in problem.message


def _accepts(validate: Any, event: Any) -> bool:
    try:
        validate(event)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("event_type", list(_core.REGISTRY_TYPES))
def test_the_typed_fast_path_accepts_exactly_what_the_envelope_accepts(event_type: str) -> None:
    """check_envelope's one-pass validator (payload typed as the contract) may only
    ever say "valid" where PostureEvent does, on envelope and payload mutations."""
    from agent_bom.envelope import _batch_validator, _typed_envelope

    fast = _typed_envelope(event_type).validate_python
    base = {**example_event(event_type), "event_type": event_type}
    cases: list[Any] = [
        base,
        {**base, "payload": {}},
        {k: v for k, v in base.items() if k != "payload"},
    ]
    cases += [{**base, **change} for _, change in _CORPUS]
    payload = base["payload"]
    wrong: list[Any] = [None, 0, 1.5, -1, "", "x" * 5000, [], {}, True, "2026-05-01", "1.2.3.4"]
    for key in payload:
        cases.append({**base, "payload": {k: v for k, v in payload.items() if k != key}})
        cases += [{**base, "payload": {**payload, key: w}} for w in wrong]
    cases.append({**base, "payload": {**payload, "unexpected": 1}})
    cases.append({**base, "payload": [payload]})
    batch = _batch_validator().validate_python
    assert _accepts(fast, base)  # the common case takes the fast path
    assert _accepts(batch, [base, base])
    accepted = 0
    for event in cases:
        slow_ok = _accepts(PostureEvent.model_validate, event)
        assert _accepts(fast, event) == slow_ok or event.get("event_type") != event_type, event
        # the batch path: never valid where the envelope says not, wherever in a batch
        assert _accepts(batch, [base, event]) <= slow_ok, event
        assert (check_envelope(event) == []) == slow_ok, event
        assert check_envelopes([base, event, base]) == [[], check_envelope(event), []]
        accepted += slow_ok
    assert 0 < accepted < len(cases)


@pytest.mark.parametrize(
    "field", ["event_id", "exposure_path_id", "correlation_id", "causation_id"]
)
def test_string_limits_count_characters_in_the_core_as_in_the_contract(field: str) -> None:
    """256 two-byte characters are 512 bytes: within the limit for both, and one more
    character is over it for both (the core counted bytes before)."""
    for n, ok in ((256, True), (257, False)):
        event = {
            "event_id": "e-1",
            "tenant_id": "acme",
            "event_type": "finding.created",
            "created_at": "2026-05-01T00:00:00Z",
            "source": "urn:x",
            "payload": {"finding_id": "f-1", "title": "a finding"},
            field: "é" * n,
        }
        assert (check_envelope(event) == []) == ok, (field, n)
        rejects: list[ev.Reject] = []
        stats = ev.stream(
            io.BytesIO(orjson.dumps(event) + b"\n"),
            io.BytesIO(),
            stream_id="s",
            redact=False,
            on_reject=rejects.append,
        )
        assert stats.events == (1 if ok else 0), (field, n, rejects)
        if not ok:
            assert f"field '{field}': is longer than 256 characters" in rejects[0].reason
