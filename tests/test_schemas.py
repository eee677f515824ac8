"""Published schemas: fresh, valid JSON Schema 2020-12 / AsyncAPI 3.0, and in agreement
with the pydantic models (jsonschema's Draft202012Validator is the oracle)."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag

import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from agent_bom import evidence as ev
from agent_bom import schemas
from agent_bom.envelope import REGISTRY_TYPES, check_cloudevent, check_envelope, example_event

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
POSTURE = json.loads((SCHEMAS / schemas.POSTURE_EVENT).read_text())
EVIDENCE = json.loads((SCHEMAS / schemas.EVIDENCE_EVENT).read_text())
REFS = Registry().with_resources(
    [
        (s["$id"], Resource.from_contents(s, default_specification=DRAFT202012))
        for s in (POSTURE, EVIDENCE)
    ]
)
FORMATS = Draft202012Validator.FORMAT_CHECKER
POSTURE_V = Draft202012Validator(POSTURE, registry=REFS, format_checker=FORMATS)
EVIDENCE_V = Draft202012Validator(EVIDENCE, registry=REFS, format_checker=FORMATS)


def test_checked_in_files_are_what_the_code_generates() -> None:
    for name, data in schemas.render().items():
        assert (SCHEMAS / name).read_bytes() == data, (
            f"schemas/{name} is stale: run agent-bom schema export"
        )


@pytest.mark.parametrize("schema", [POSTURE, EVIDENCE], ids=["posture-event", "evidence-event"])
def test_schemas_pass_the_2020_12_metaschema(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_registry_is_a_discriminated_union_on_event_type() -> None:
    consts = [b["properties"]["event_type"].get("const") for b in POSTURE["oneOf"]]
    assert consts[:-1] == list(REGISTRY_TYPES)
    assert POSTURE["oneOf"][-1]["properties"]["event_type"] == {
        "not": {"enum": list(REGISTRY_TYPES)}
    }


@pytest.mark.parametrize("event_type", list(REGISTRY_TYPES))
def test_example_of_each_type_is_valid_for_schema_and_model(event_type: str) -> None:
    event = example_event(event_type)
    assert list(POSTURE_V.iter_errors(event)) == []
    assert check_envelope(event) == []


def _mutate(event: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(event)
    target: Any = out
    for part in path[:-1]:
        target = target[part]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


_DELETE = object()
_INVALID: list[tuple[str, str, tuple[str | int, ...], Any]] = [
    ("missing tenant", "runtime.exec", ("tenant_id",), _DELETE),
    ("missing event_id", "runtime.exec", ("event_id",), _DELETE),
    ("bad tenant", "runtime.exec", ("tenant_id",), "a b"),
    ("bad type", "runtime.exec", ("event_type",), "exec"),
    ("reserved type", "runtime.exec", ("event_type",), "io.agentbom.runtime.exec"),
    ("bad time", "runtime.exec", ("created_at",), "2026-05-01 noon"),
    ("time without zone", "runtime.exec", ("created_at",), "2026-05-01T12:00:00"),
    ("time month 13", "runtime.exec", ("created_at",), "2026-13-01T12:00:00Z"),
    ("wrong payload field type", "runtime.exec", ("payload", "pid"), "4242"),
    ("wrong payload field type (bool)", "audit.integrity", ("payload", "verified"), "no"),
    ("payload field missing", "finding.created", ("payload", "finding_id"), _DELETE),
    ("payload missing", "finding.created", ("payload",), _DELETE),
    ("extra nesting: envelope in payload", "runtime.exec", ("payload",), {"payload": {"pid": 1}}),
    ("extra nesting: object for a string", "finding.created", ("payload", "title"), {"text": "t"}),
    ("extra nesting: list of lists", "skill.verdict", ("payload", "reasons"), [["a"]]),
    ("extra nesting: wrapped envelope", "runtime.exec", ("data",), {"tenant_id": "acme"}),
    ("unknown envelope member", "runtime.exec", ("received_at",), "2026-05-01T12:00:00Z"),
    ("null member", "runtime.exec", ("severity",), None),
    ("severity", "runtime.exec", ("severity",), "urgent"),
    ("risk above 100", "runtime.exec", ("risk_score",), 100.01),
    ("risk as string", "runtime.exec", ("risk_score",), "5"),
    ("refs not a list", "runtime.exec", ("entity_refs",), {"kind": "a", "id": "b"}),
    ("schema version", "runtime.exec", ("schema_version",), "2"),
    ("bad enum in payload", "skill.verdict", ("payload", "verdict"), "deny"),
    ("bad cve", "finding.created", ("payload", "cve"), "CVE-26-1"),
    ("bad ip", "runtime.net", ("payload", "dst_ip"), "not-an-ip"),
    ("no destination", "runtime.net", ("payload", "dst_ip"), _DELETE),
    ("negative pid", "runtime.fs", ("payload", "pid"), -1),
    ("port too big", "runtime.net", ("payload", "dst_port"), 65536),
    ("empty nodes", "exposure_path.created", ("payload", "nodes"), []),
    ("bad hash", "evidence.checkpoint", ("payload", "head"), "sha256:XYZ"),
    ("bad technique", "security.alert.created", ("payload", "techniques"), ["T1"]),
    ("attempts zero", "delivery.recovered", ("payload", "attempts"), 0),
]


@pytest.mark.parametrize(
    ("name", "event_type", "path", "value"), _INVALID, ids=[c[0] for c in _INVALID]
)
def test_schema_and_model_reject_the_same_invalid_events(
    name: str, event_type: str, path: tuple[str | int, ...], value: Any
) -> None:
    event = example_event(event_type)
    if name == "no destination":
        del event["payload"]["dst_host"]
    bad = _mutate(event, path, value)
    assert list(POSTURE_V.iter_errors(bad)) != [], "the schema accepts it"
    assert check_envelope(bad) != [], "the model accepts it"


_VALUES = st.sampled_from(
    [
        None,
        True,
        0,
        -1,
        7,
        1.5,
        101,
        "",
        "x",
        "open",
        "2026-05-01T12:00:00Z",
        "a b",
        [],
        ["x"],
        [1],
        {},
        {"kind": "k", "id": "i"},
    ]
)


def _paths(obj: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out: list[tuple[str | int, ...]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append((*prefix, k))
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.append((*prefix, i))
            out.extend(_paths(v, (*prefix, i)))
    return out


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([*REGISTRY_TYPES, "com.example.scan.done"]), st.data())
def test_schema_and_model_agree_on_mutated_events(event_type: str, data: st.DataObject) -> None:
    event = (
        example_event(event_type)
        if event_type in REGISTRY_TYPES
        else {
            **example_event("runtime.exec"),
            "event_type": event_type,
        }
    )
    for _ in range(data.draw(st.integers(1, 2))):
        path = data.draw(st.sampled_from(_paths(event)))
        value = data.draw(st.one_of(st.just(_DELETE), _VALUES))
        event = _mutate(event, path, value)
    schema_ok = not list(POSTURE_V.iter_errors(event))
    model_ok = not check_envelope(event)
    assert schema_ok == model_ok, (
        event,
        check_envelope(event),
        [e.message for e in POSTURE_V.iter_errors(event)],
    )


# --- the CloudEvent -------------------------------------------------------------------------


def _evidence_lines() -> list[dict[str, Any]]:
    native = [example_event(t) for t in REGISTRY_TYPES]
    native.append({**example_event("runtime.exec"), "event_type": "com.example.scan.done"})
    native.append(
        {
            **example_event("runtime.exec"),
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        }
    )
    out = io.BytesIO()
    data = b"".join(orjson.dumps(e) + b"\n" for e in native)
    ev.stream(io.BytesIO(data), out, stream_id="s-schema", checkpoint_every=4, threads=1)
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_core_output_validates_against_the_evidence_schema_and_model() -> None:
    records = _evidence_lines()
    assert any(r["type"] == "io.agentbom.evidence.checkpoint" for r in records)
    for record in records:
        assert [e.message for e in EVIDENCE_V.iter_errors(record)] == []
        assert check_cloudevent(record) == []


@pytest.mark.parametrize(
    ("change", "both"),
    [
        ({"type": "io.agentbom.runtime.fs"}, True),
        ({"seq": -1}, True),
        ({"seq": 2**31}, True),
        ({"contenthash": "md5:abc"}, True),
        ({"specversion": "0.3"}, True),
        ({"time": "2026-05-01T12:00:00+00:00"}, True),
        ({"datacontenttype": "text/plain"}, True),
        ({"Bad-Attribute": 1}, True),
        ({"tenantid": "x y"}, True),
        ({"id": "another-id"}, False),  # equality with data: only the model can check it
    ],
)
def test_tampered_cloudevents_are_rejected(change: dict[str, Any], both: bool) -> None:
    record = next(r for r in _evidence_lines() if r["type"] == "io.agentbom.runtime.exec")
    bad = {**record, **change}
    assert check_cloudevent(bad) != []
    assert (list(EVIDENCE_V.iter_errors(bad)) != []) == both


def test_cloudevent_with_invalid_envelope_is_rejected_by_both() -> None:
    record = next(r for r in _evidence_lines() if r["type"] == "io.agentbom.finding.created")
    record["data"]["payload"]["finding_id"] = 7
    assert list(EVIDENCE_V.iter_errors(record)) != []
    assert [p.path for p in check_cloudevent(record)] == ["$.data.payload.finding_id"]


# --- AsyncAPI -------------------------------------------------------------------------------


def _resolve(ref: str, base: Path, doc: Any) -> Any:
    target, fragment = urldefrag(ref)
    if target:
        path = (base.parent / target).resolve()
        assert path.is_file(), f"{ref}: no file {path}"
        doc = (
            json.loads(path.read_text())
            if path.suffix == ".json"
            else yaml.safe_load(path.read_text())
        )
    node = doc
    for token in filter(None, fragment.lstrip("/").split("/")):
        token = token.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and token in node, f"{ref}: no {token!r}"
        node = node[token]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_asyncapi_parses_and_every_ref_resolves() -> None:
    path = SCHEMAS / schemas.ASYNCAPI
    doc = yaml.safe_load(path.read_text())
    assert doc["asyncapi"] == "3.0.0"
    refs = _refs(doc)
    assert len(refs) > 15
    for ref in refs:
        _resolve(ref, path, doc)
    for ref in {r for r in refs if r.startswith("./")}:
        assert ref.lstrip("./") in (schemas.POSTURE_EVENT, schemas.EVIDENCE_EVENT)


def test_asyncapi_operations_use_their_channels_messages_and_cover_all_transports() -> None:
    doc = yaml.safe_load((SCHEMAS / schemas.ASYNCAPI).read_text())
    for name, op in doc["operations"].items():
        channel_ref = op["channel"]["$ref"]
        for message in op["messages"]:
            assert message["$ref"].startswith(channel_ref + "/messages/"), name
    protocols = {s["protocol"] for s in doc["servers"].values()}
    assert protocols == {"kafka", "https"}
    kafka = doc["channels"]["evidence"]
    assert kafka["address"] == schemas.KAFKA_TOPIC
    webhook = doc["components"]["messages"]["WebhookEvidence"]
    assert set(webhook["headers"]["required"]) == {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
    assert doc["channels"]["stream"]["address"] == schemas.SSE_PATH
    for message in doc["components"]["messages"].values():
        assert message["payload"]["schemaFormat"] == "application/schema+json;version=draft-2020-12"


_json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**53), 2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=12),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _json_values, max_size=5))
def test_the_yaml_writer_round_trips_through_pyyaml(doc: dict[str, Any]) -> None:
    assert yaml.safe_load(schemas.to_yaml(doc)) == doc
