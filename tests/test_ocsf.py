"""OCSF projections, checked against pydantic-ocsf (OCSF 1.7.0 models) and the OCSF
1.7.0 schema it ships: the class each projection claims, every attribute known to
that class (or to a profile the projection declares), required attributes and
constraints at every depth, sibling labels, and the time from created_at."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import ocsf as ocsf_pkg
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocsf.v1_7_0 import events as ocsf_events
from ocsf.v1_7_0 import objects as ocsf_objects
from pydantic import BaseModel, ValidationError

import agent_bom
from agent_bom import evidence as ev
from agent_bom.envelope import REGISTRY_TYPES, PostureEvent, example_event
from agent_bom.ocsf import OCSF_VERSION, project, project_lines, why_not

SCHEMA = json.loads((Path(ocsf_pkg.__file__).parent / "schemas" / "v1_7_0.json").read_text())
DICTIONARY = SCHEMA["dictionary"]["attributes"]

# Profile attributes, from ocsf-schema profiles/*.json (the bundled export omits profiles).
PROFILE_ATTRIBUTES = {
    "security_control": {
        "action": None,
        "action_id": None,
        "disposition": None,
        "disposition_id": None,
        "is_alert": None,
        "policy": ocsf_objects.Policy,
        "authorizations": None,
        "attacks": None,
        "confidence_id": None,
        "risk_score": None,
        "risk_level_id": None,
        "firewall_rule": ocsf_objects.FirewallRule,
    },
    "host": {"actor": ocsf_objects.Actor, "device": ocsf_objects.Device},
    "container": {"container": ocsf_objects.Container, "namespace_pid": None},
}

MAPPED = {
    "finding.created",
    "finding.updated",
    "exposure_path.created",
    "skill.verdict",
    "deploy.decision",
    "runtime.policy_decision",
    "runtime.exec",
    "runtime.fs",
    "runtime.net",
    "runtime.syscall",
    "security.alert.created",
}


def _class_table() -> dict[int, str]:
    cats = {k: v["uid"] for k, v in SCHEMA["categories_meta"]["attributes"].items()}
    table = {}
    for name, spec in SCHEMA["events"].items():
        if "uid" in spec and spec.get("extends"):
            base = spec
            while base.get("extends") and "category" not in base:
                base = SCHEMA["events"][base["extends"]]
            cat = spec.get("category") or base.get("category")
            if cat in cats:
                table[cats[cat] * 1000 + spec["uid"]] = name
    return table


CLASS_BY_UID = _class_table()


def _flat(kind: str, name: str) -> dict[str, dict[str, Any]]:
    spec = SCHEMA[kind][name]
    attrs: dict[str, dict[str, Any]] = {}
    if spec.get("extends"):
        attrs.update(_flat(kind, spec["extends"]))
    for k, v in spec.get("attributes", {}).items():
        if isinstance(v, dict):
            attrs[k] = {**attrs.get(k, {}), **v}
    return attrs


def _constraints(kind: str, name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    spec = SCHEMA[kind][name]
    if spec.get("extends"):
        out.update(_constraints(kind, spec["extends"]))
    out.update(spec.get("constraints", {}))
    return out


def _enum(attrs: dict[str, dict[str, Any]], name: str) -> dict[str, Any] | None:
    spec = {**DICTIONARY.get(name, {}), **attrs.get(name, {})}
    enum = dict(DICTIONARY.get(name, {}).get("enum", {}))
    enum.update(attrs.get(name, {}).get("enum", {}))
    return enum or None if "enum" in spec or enum else None


def _check_object(
    kind: str,
    name: str,
    value: dict[str, Any],
    path: str,
    problems: list[str],
    attrs: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Required attributes, constraints, enums and sibling labels, recursively."""
    attrs = attrs if attrs is not None else _flat(kind, name)
    for attr, spec in attrs.items():
        if spec.get("requirement") == "required" and attr not in value:
            problems.append(f"{path}.{attr}: required by OCSF {name}")
    for rule, members in _constraints(kind, name).items():
        present = [m for m in members if "." not in m and m in value]
        if rule == "at_least_one" and not present:
            problems.append(f"{path}: {name} needs at least one of {members}")
        if rule == "just_one" and len(present) != 1:
            problems.append(f"{path}: {name} needs exactly one of {members}, got {present}")
    for attr, v in value.items():
        spec = {**DICTIONARY.get(attr, {}), **attrs.get(attr, {})}
        enum = _enum(attrs, attr)
        if attr.endswith("_id") and enum is not None and not isinstance(v, list):
            if str(v) not in enum:
                problems.append(f"{path}.{attr}: {v} is not in the OCSF enum {sorted(enum)}")
            sibling = DICTIONARY.get(attr, {}).get("sibling") or attr[: -len("_id")]
            label = value.get(sibling)
            known = label is not None and v != 99 and str(v) in enum
            if known and label.lower() != enum[str(v)]["caption"].lower():
                problems.append(f"{path}.{sibling}: {label!r} is not the caption of {attr}={v}")
        target = spec.get("object_type") or spec.get("type")
        if target in SCHEMA["objects"]:
            items = v if isinstance(v, list) else [v]
            for i, item in enumerate(items):
                where = f"{path}.{attr}" + (f"[{i}]" if isinstance(v, list) else "")
                if isinstance(item, dict):
                    _check_object("objects", target, item, where, problems)
                else:
                    problems.append(f"{where}: must be an object")


def _no_extras(model: BaseModel, path: str, problems: list[str], allowed: set[str]) -> None:
    for name in model.model_extra or {}:
        if name not in allowed:
            problems.append(f"{path}.{name}: not an attribute of OCSF {type(model).__name__}")
    for name in type(model).model_fields:
        value = getattr(model, name)
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            if isinstance(item, BaseModel):
                _no_extras(item, f"{path}.{name}[{i}]", problems, set())


def ocsf_problems(projection: dict[str, Any]) -> list[str]:
    """Everything wrong with ``projection`` as an OCSF 1.7.0 event of the class it claims."""
    problems: list[str] = []
    name = CLASS_BY_UID.get(projection.get("class_uid"))  # type: ignore[arg-type]
    if name is None:
        return [f"class_uid {projection.get('class_uid')} is not an OCSF 1.7.0 class"]
    model = getattr(ocsf_events, "".join(w.capitalize() for w in name.split("_")))
    # Strict JSON validation: no coercion of strings to numbers, enums by value.
    profiles = projection.get("metadata", {}).get("profiles", [])
    allowed: dict[str, Any] = {}
    for profile in profiles:
        allowed.update(PROFILE_ATTRIBUTES[profile])
    try:
        validated = model.model_validate_json(orjson.dumps(projection), strict=True)
        _no_extras(validated, "$", problems, set(allowed))
        for attr, obj_model in allowed.items():
            if attr in projection and obj_model is not None:
                obj_model.model_validate_json(orjson.dumps(projection[attr]), strict=True)
    except ValidationError as e:
        problems.extend(f"pydantic-ocsf: {err['loc']}: {err['msg']}" for err in e.errors())
    # Profile attributes are checked against the dictionary like class attributes.
    event_attrs = _flat("events", name)
    for attr in allowed:
        if attr in projection and attr not in event_attrs:
            event_attrs[attr] = {"type": DICTIONARY[attr]["type"]}
    if projection.get("action_id") is not None and projection["action_id"] not in (0, 1, 2):
        problems.append("$.action_id: not a security_control action")
    _check_object("events", name, projection, "$", problems, attrs=event_attrs)
    spec = SCHEMA["events"][name]
    if projection.get("class_name") != spec["caption"]:
        problems.append(
            f"$.class_name: {projection.get('class_name')!r} is not {spec['caption']!r}"
        )
    cat = next(
        v
        for v in SCHEMA["categories_meta"]["attributes"].values()
        if v["uid"] == projection["category_uid"]
    )
    if projection.get("category_name") != cat["caption"]:
        problems.append(
            f"$.category_name: {projection.get('category_name')!r} is not {cat['caption']!r}"
        )
    activities = {
        **_flat("events", name)["activity_id"].get("enum", {}),
        "99": {"caption": "Other"},
    }
    activity = activities.get(str(projection.get("activity_id")), {}).get("caption")
    if projection.get("type_name") != f"{spec['caption']}: {activity}":
        problems.append(f"$.type_name: {projection.get('type_name')!r} does not name the activity")
    if projection.get("metadata", {}).get("version") != "1.7.0":
        problems.append("$.metadata.version: must be the OCSF version 1.7.0")
    return problems


EXPECTED_CLASS = {
    "finding.created": 2002,  # the example has a CVE
    "finding.updated": 2003,  # the example is a compliance check
    "exposure_path.created": 2004,
    "skill.verdict": 2004,
    "deploy.decision": 2004,
    "security.alert.created": 2004,
    "runtime.policy_decision": 6003,
    "runtime.exec": 1007,
    "runtime.fs": 1001,
    "runtime.net": 4001,
    "runtime.syscall": 1003,
}


def _millis(created_at: str) -> int:
    """Reference: the stdlib's reading of an RFC 3339 time."""
    dt = datetime.fromisoformat(created_at.replace("z", "Z"))
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return delta // timedelta(milliseconds=1)


def _without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


@pytest.mark.parametrize(
    ("breakage", "mentions"),
    [
        (lambda p: {**p, "bogus": 1}, "bogus"),
        (lambda p: _without(p, "device"), "device"),
        (lambda p: {**p, "process": {"name": "x"}}, "pid"),
        (lambda p: {**p, "severity": "Low"}, "severity"),
        (lambda p: {**p, "time": "2026"}, "time"),
        (lambda p: {**p, "class_uid": 2004}, "category_uid"),
        (lambda p: {**p, "process": {**p["process"], "parent_process": {"pid": "1"}}}, "pid"),
        (lambda p: {**p, "device": {"type_id": 0, "mystery": True}}, "mystery"),
        (lambda p: _without(p, "activity_id"), "activity_id"),
        (lambda p: {**p, "type_name": "Process Activity: Terminate"}, "type_name"),
    ],
)
def test_the_ocsf_checker_rejects_broken_projections(breakage: Any, mentions: str) -> None:
    good = project(example_event("runtime.exec"))
    assert good is not None and ocsf_problems(good) == []
    assert mentions in "\n".join(ocsf_problems(breakage(good)))


@pytest.mark.parametrize("event_type", sorted(EXPECTED_CLASS))
def test_each_mapped_type_projects_to_a_valid_event_of_its_class(event_type: str) -> None:
    event = example_event(event_type)
    projection = project(PostureEvent.model_validate(event))
    assert projection is not None
    assert projection["class_uid"] == EXPECTED_CLASS[event_type]
    assert ocsf_problems(projection) == []
    assert projection == project(event), "a PostureEvent and its dict project alike"


@pytest.mark.parametrize(
    ("payload", "class_uid"),
    [
        ({"finding_id": "F", "title": "t", "cve": "CVE-2026-1234", "cwe": "CWE-79"}, 2002),
        ({"finding_id": "F", "title": "t", "compliance": {"control": "CIS 1.1"}}, 2003),
        ({"finding_id": "F", "title": "t", "cwe": "CWE-79", "package": "pkg:npm/x@1"}, 2004),
        ({"finding_id": "F", "title": "t", "package": "not-a-purl", "status": "closed"}, 2004),
        ({"finding_id": "F", "title": "t", "rule_id": "R-1", "remediation": "fix"}, 2004),
    ],
)
def test_findings_map_to_vulnerability_compliance_or_detection(
    payload: dict[str, Any], class_uid: int
) -> None:
    event = {**example_event("finding.updated"), "payload": payload, "risk_score": 55.5}
    projection = project(event)
    assert projection is not None and projection["class_uid"] == class_uid
    assert ocsf_problems(projection) == []


def test_finding_activity_follows_type_and_status() -> None:
    base = {"finding_id": "F", "title": "t"}
    created = project({**example_event("finding.created"), "payload": base})
    updated = project({**example_event("finding.updated"), "payload": base})
    closed = project(
        {**example_event("finding.updated"), "payload": {**base, "status": "resolved"}}
    )
    assert created and updated and closed
    assert (created["activity_id"], updated["activity_id"], closed["activity_id"]) == (1, 2, 3)


@pytest.mark.parametrize("decision", ["allow", "warn", "block"])
def test_decisions_map_to_security_control_action_and_disposition(decision: str) -> None:
    for event_type, key in (("skill.verdict", "verdict"), ("runtime.policy_decision", "decision")):
        event = example_event(event_type)
        event["payload"][key] = decision
        projection = project(event)
        assert projection is not None and ocsf_problems(projection) == []
        assert projection["action_id"] == (2 if decision == "block" else 1)
        assert projection["is_alert"] == (decision != "allow")
        assert "security_control" in projection["metadata"]["profiles"]


def test_projection_is_deterministic_from_the_event() -> None:
    assert OCSF_VERSION == "1.7.0"
    event = example_event("runtime.net")
    event["created_at"] = "2026-05-01T14:30:15.123456789+02:30"
    event["correlation_id"] = "run-1"
    first, second = project(event), project(json.loads(json.dumps(event)))
    assert first == second and first is not None
    assert first["time"] == _millis("2026-05-01T14:30:15.123456+02:30")
    assert first["timezone_offset"] == 150
    meta = first["metadata"]
    assert meta["uid"] == event["event_id"]
    assert meta["product"]["name"] == "agent-bom"
    assert meta["product"]["version"] == agent_bom.__version__
    assert meta["tenant_uid"] == "acme" and meta["correlation_uid"] == "run-1"
    assert meta["original_time"] == event["created_at"]


@pytest.mark.parametrize(
    "event_type",
    ["audit.integrity", "evidence.checkpoint", "delivery.dead_lettered", "delivery.recovered"],
)
def test_unmapped_registry_types_return_none_with_a_reason(event_type: str) -> None:
    assert project(example_event(event_type)) is None
    reason = why_not(event_type)
    assert reason and len(reason) > 40


def test_every_registry_type_either_maps_or_says_why_not() -> None:
    for t in REGISTRY_TYPES:
        maps = project(example_event(t)) is not None
        assert maps == (t in MAPPED)
        assert (why_not(t) is None) == maps, t
    custom = {**example_event("runtime.exec"), "event_type": "com.example.scan.done"}
    assert project(custom) is None
    assert "custom" in (why_not("com.example.scan.done") or "")
    assert "not a valid event type" in (why_not("bogus") or "")


# --- hypothesis: generated valid events never project to invalid OCSF -------------------

_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=24
).filter(lambda s: s.strip() != "")
_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,20}", fullmatch=True)
# `source` is a URI-reference: a scheme, then anything the ids hold
_sources = st.from_regex(
    r"[A-Za-z][A-Za-z0-9+.-]{0,8}:(?:[A-Za-z0-9._:-][A-Za-z0-9._:/-]{0,19})?", fullmatch=True
)
_count = st.integers(0, 2**31)
_ip = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
_decision = st.sampled_from(["allow", "warn", "block"])
_path = st.from_regex(r"/[a-z]{1,8}(/[a-z0-9._-]{1,8}){0,3}", fullmatch=True)
_proc = {"exe": _path, "user": _text, "container_id": _ids}


def _payload(
    required: dict[str, Any], optional: dict[str, Any]
) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(required, optional=optional)


PAYLOADS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "finding.created": _payload(
        {"finding_id": _ids, "title": _text},
        {
            "rule_id": _ids,
            "cve": st.from_regex(r"CVE-20[0-9]{2}-[0-9]{4,7}", fullmatch=True),
            "cwe": st.from_regex(r"CWE-[0-9]{1,4}", fullmatch=True),
            "package": st.one_of(
                _ids, st.from_regex(r"pkg:npm/[a-z]{1,8}@[0-9]\.[0-9]", fullmatch=True)
            ),
            "status": st.sampled_from(["open", "in_progress", "suppressed", "resolved", "closed"]),
            "remediation": _text,
            "description": _text,
            "references": st.lists(_ids, max_size=3),
            "compliance": _payload(
                {"control": _text},
                {
                    "standards": st.lists(_text, max_size=2),
                    "status": st.sampled_from(["pass", "warning", "fail"]),
                },
            ),
        },
    ),
    "exposure_path.created": _payload(
        {
            "path_id": _ids,
            "nodes": st.lists(
                _payload({"kind": _ids, "id": _ids}, {"name": _text}), min_size=1, max_size=4
            ),
            "edges": st.lists(
                _payload({"source": _ids, "target": _ids}, {"relation": _text}), max_size=4
            ),
        },
        {"risk": st.floats(0, 100), "title": _text, "description": _text},
    ),
    "skill.verdict": _payload(
        {"skill": _text, "verdict": _decision, "reasons": st.lists(_text, max_size=3)},
        {"skill_version": _ids, "publisher": _text, "digest": _ids, "policy_id": _ids},
    ),
    "deploy.decision": _payload(
        {"target": _text, "decision": _decision, "reasons": st.lists(_text, max_size=3)},
        {"environment": _text, "artifact": _ids, "commit": _ids, "policy_id": _ids},
    ),
    "runtime.policy_decision": _payload(
        {
            "policy_id": _ids,
            "action": _text,
            "decision": _decision,
            "actor": _text,
            "resource": _text,
        },
        {
            "reasons": st.lists(_text, max_size=3),
            "context": st.dictionaries(_ids, _ids, max_size=2),
        },
    ),
    "runtime.exec": _payload(
        {"pid": _count, "exe": _path, "host": _ids},
        {
            "ppid": _count,
            "argv": st.lists(st.text(max_size=8), max_size=4),
            "cwd": _path,
            "user": _text,
            "container_id": _ids,
        },
    ),
    "runtime.fs": _payload(
        {
            "pid": _count,
            "host": _ids,
            "path": st.one_of(_path, st.just("/")),
            "operation": st.sampled_from(
                [
                    "create",
                    "read",
                    "update",
                    "delete",
                    "rename",
                    "set_attributes",
                    "set_security",
                    "get_attributes",
                    "get_security",
                    "open",
                ]
            ),
        },
        {**_proc, "new_path": _path},
    ),
    "runtime.net": st.one_of(
        _payload(
            {
                "pid": _count,
                "operation": st.sampled_from(
                    ["open", "close", "reset", "fail", "refuse", "traffic", "listen"]
                ),
                "dst_ip": _ip,
            },
            {
                **_proc,
                "host": _ids,
                "dst_host": _ids,
                "dst_port": st.integers(0, 65535),
                "src_ip": _ip,
                "src_port": st.integers(0, 65535),
                "protocol": _ids,
                "direction": st.sampled_from(["inbound", "outbound", "lateral", "local"]),
            },
        ),
        _payload(
            {"pid": _count, "operation": st.just("open"), "dst_host": _ids},
            {"dst_port": st.integers(0, 65535)},
        ),
    ),
    "runtime.syscall": _payload(
        {"pid": _count, "syscall": _ids, "host": _ids},
        {
            **_proc,
            "args": st.lists(st.integers(-5, 5), max_size=3),
            "ret": st.integers(-(2**31), 2**31),
        },
    ),
    "security.alert.created": _payload(
        {"alert_id": _ids, "title": _text},
        {
            "description": _text,
            "rule_id": _ids,
            "status": st.sampled_from(["open", "resolved"]),
            "techniques": st.lists(
                st.from_regex(r"T[0-9]{4}(\.[0-9]{3})?", fullmatch=True), max_size=3
            ),
            "finding_ids": st.lists(_ids, max_size=2),
        },
    ),
}
PAYLOADS["finding.updated"] = PAYLOADS["finding.created"]

_offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
_times = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31), timezones=_offsets
).map(lambda d: d.isoformat())


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    event_type = draw(st.sampled_from(sorted(MAPPED)))
    event = draw(
        st.fixed_dictionaries(
            {
                "event_id": _ids,
                "tenant_id": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True),
                "created_at": _times,
                "source": _sources,
            },
            optional={
                "severity": st.sampled_from(["info", "low", "medium", "high", "critical"]),
                "risk_score": st.one_of(st.integers(0, 100), st.floats(0, 100)),
                "entity_refs": st.lists(_payload({"kind": _ids, "id": _ids}, {}), max_size=3),
                "correlation_id": _ids,
            },
        )
    )
    event["event_type"] = event_type
    event["payload"] = draw(PAYLOADS[event_type])
    return event


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_events())
def test_generated_valid_events_never_project_to_invalid_ocsf(event: dict[str, Any]) -> None:
    PostureEvent.model_validate(event)  # the generator only makes valid envelopes
    projection = project(event)
    assert projection is not None
    assert ocsf_problems(projection) == []
    assert projection["time"] == _millis(event["created_at"])


_junk = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**40), 2**40),
        st.floats(allow_nan=False),
        st.text(max_size=5),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(MAPPED)), st.data())
def test_projection_of_malformed_native_events_is_none_or_valid(
    event_type: str, data: st.DataObject
) -> None:
    event = example_event(event_type)
    for key in [*event["payload"], "severity", "entity_refs", "risk_score"]:
        if data.draw(st.booleans()):
            target = event if key in ("severity", "entity_refs", "risk_score") else event["payload"]
            target[key] = data.draw(_junk)
    projection = project(event)  # must not raise, whatever the payload holds
    if projection is not None:
        assert ocsf_problems(projection) == []


# --- project_lines: the batch step of `evidence stream --ocsf` ------------------------------


def test_project_lines_adds_ocsf_only_where_a_type_maps() -> None:
    mapped = example_event("runtime.exec")
    native_no_id = {k: v for k, v in example_event("runtime.fs").items() if k != "event_id"}
    lines = [
        orjson.dumps(mapped) + b"\n",
        orjson.dumps(
            example_event("evidence.checkpoint")
            | {"event_type": "audit.integrity", "payload": {"stream_id": "s", "verified": True}}
        )
        + b"\n",
        b"{not json\n",
        b"[1,2]\n",
        orjson.dumps({**mapped, "ocsf": {"class_uid": 1}}) + b"\r\n",
        orjson.dumps(native_no_id),
    ]
    out = project_lines(lines)
    assert len(out) == len(lines)
    assert out[1:5] == lines[1:5]
    first = orjson.loads(out[0])
    assert out[0].startswith(lines[0][: -len(b"}\n")]), "the producer's bytes are kept"
    assert out[0].endswith(b"}\n")
    assert first["ocsf"] == project(mapped) and ocsf_problems(first["ocsf"]) == []
    last = orjson.loads(out[5])
    assert "uid" not in last["ocsf"]["metadata"], "no event_id: the derived id is the core's"
    assert ocsf_problems(last["ocsf"]) == []


def test_project_lines_never_pushes_a_line_over_the_stream_limit() -> None:
    line = orjson.dumps(example_event("runtime.exec")) + b"\n"
    (kept,) = project_lines([line], max_line_bytes=len(line) + 50)
    assert kept == line
    (grown,) = project_lines([line], max_line_bytes=len(line) + 5000)
    assert b'"ocsf":' in grown


def test_project_lines_moves_unknown_top_level_members_into_the_payload() -> None:
    native = {
        "tenant_id": "acme",
        "event_type": "runtime.exec",
        "created_at": "2026-05-01T12:00:00Z",
        "source": "urn:x",
        "pid": 7,
        "exe": "/bin/sh",
        "host": "h1",
    }
    (line,) = project_lines([orjson.dumps(native)])
    assert orjson.loads(line)["ocsf"]["process"]["pid"] == 7
    (defaults,) = project_lines(
        [orjson.dumps({k: v for k, v in native.items() if k != "tenant_id"})], tenant_id="globex"
    )
    assert orjson.loads(defaults)["ocsf"]["metadata"]["tenant_uid"] == "globex"


def test_projected_lines_stream_through_the_core_with_ocsf_in_the_envelope() -> None:
    events = [example_event(t) for t in sorted(MAPPED)]
    lines = project_lines([orjson.dumps(e) + b"\n" for e in events])
    out = io.BytesIO()
    rejects: list[ev.Reject] = []
    ev.stream(
        io.BytesIO(b"".join(lines)),
        out,
        stream_id="s-ocsf",
        checkpoint_every=0,
        threads=1,
        on_reject=rejects.append,
    )
    assert rejects == []
    records = [orjson.loads(x) for x in out.getvalue().splitlines()]
    for event, record in zip(events, records, strict=False):
        assert record["data"]["ocsf"] == project(event)
