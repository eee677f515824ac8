"""The envelope contract compiled into the core (rust/contract.rs) against pydantic.

The server passes an event on the core's word alone, so the core must never pass an
event the pydantic contract refuses. These tests generate events of every registry
type, mutated member by member with values chosen to sit on every rule's edges, and
compare the core's verdict with pydantic's; then whole batches through ``ingest``
both ways, down to the stored bytes."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_support import ed25519_collector

from agent_bom import _core
from agent_bom.envelope import (
    REGISTRY,
    PostureEvent,
    _core_node,
    check_envelope,
    core_contract,
    example_event,
)
from agent_bom.outbox import open_store
from agent_bom.server.ingest import BadBody, ingest, split_body
from agent_bom.server.store import EventStore

TENANT = "acme"
MAX = 1 << 18


def _names() -> list[str]:
    models: list[Any] = [PostureEvent, *REGISTRY.values()]
    seen: set[str] = set()
    while models:
        m = models.pop()
        for name, f in m.model_fields.items():
            seen.add(name)
            for arg in getattr(f.annotation, "__args__", ()) or ():
                if hasattr(arg, "model_fields"):
                    models.append(arg)
    return sorted(seen | {"zz_extra", "repository", "connector", "environment"})


NAMES = _names()
STRINGS = [
    "",
    "x",
    "acme",
    "other",
    "open",
    "pass",
    "fail",
    "allow",
    "block",
    "read",
    "open",
    "tcp",
    "outbound",
    "lateral",
    "info",
    "critical",
    "repo",
    "finding.created",
    "1",
    "runtime.exec",
    "com.example.thing.happened",
    "com.example.x-y_z",
    "io.agentbom.thing.happened",
    "Com.example.thing",
    "com.example",
    "com..example.x",
    "a" * 63 + ".b.c",
    "a" * 64 + ".b.c",
    "CVE-2026-12345",
    "CVE-26-1",
    "CWE-918",
    "CWE-1234567",
    "T1059",
    "T1059.004",
    "T10",
    "sha256:" + "a" * 64,
    "blake3:" + "0" * 64,
    "sha256:" + "A" * 64,
    "sha256:" + "a" * 63,
    "2026-05-01T12:00:00Z",
    "2026-05-01 12:00:00.123456789+02:00",
    "2026-02-29T12:00:00Z",
    "2028-02-29T12:00:00z",
    "2026-02-30T12:00:00Z",
    "2026-05-01T24:00:00Z",
    "2026-05-01T12:00:60Z",
    "2026-05-01T12:00:00",
    "1.2.3.4",
    "01.2.3.4",
    "256.0.0.1",
    "::1",
    "::ffff:1.2.3.4",
    "fe80::1%eth0",
    "fe80::1%a/b",
    "2001:DB8::1",
    "1.2.3",
    "1:2:3:4:5:6:7:8:9",
    "scanner://trivy",
    "urn:agent-bom:x",
    "a b",
    "http://[::1]/x",
    "%zz",
    "https://u:p@h/",
    "x" * 256,
    "x" * 257,
    "é" * 256,
    "é" * 257,
    "😀" * 64,
    "😀" * 65,
    "x" * 1024,
    "x" * 1025,
    "A" * 86 + "==",
    "\x00",
    "line\nbreak",
    "x" * 65536,
    "x" * 65537,
]
NUMBERS: list[Any] = [
    0,
    1,
    -1,
    1.0,
    0.0,
    -0.0,
    0.5,
    -0.5,
    99,
    100,
    100.0,
    100.5,
    101,
    599,
    600,
    65535,
    65536,
    2**31 - 1,
    2**31,
    2**53 - 1,
    2**53,
    2**63,
    2**64 - 1,
    -(2**63),
    1e300,
]
OTHERS: list[Any] = [
    None,
    True,
    False,
    [],
    {},
    [1],
    ["x"],
    [""],
    ["T1059", "T1041"],
    {"a": 1},
    {"kind": "repo", "id": "r1"},
    [{"kind": "repo", "id": "r1"}],
    [{"kind": "", "id": "r"}],
    [{"kind": "mcp", "id": "m", "name": None}],
    [{"source": "a", "target": "b"}],
    [{"code": "SEQ_GAP", "line": 1.0}],
    {"control": "CIS 1.4"},
    {"control": "CIS 1.4", "status": "maybe"},
    {"stream_id": "s", "seq": 1, "chainhash": "sha256:" + "b" * 64},
]
POOL = STRINGS + NUMBERS + OTHERS


def _containers(node: Any, out: list[Any]) -> list[Any]:
    if isinstance(node, dict):
        out.append(node)
        for v in node.values():
            _containers(v, out)
    elif isinstance(node, list):
        out.append(node)
        for v in node:
            _containers(v, out)
    return out


Pick = Callable[[Sequence[Any]], Any]


def mutate(event: dict[str, Any], pick: Pick) -> None:
    """One change somewhere in ``event``: a member set (to an edge value) or removed,
    or an array item replaced or added."""
    node = pick(_containers(event, []))
    value = orjson.loads(orjson.dumps(pick(POOL)))  # a fresh copy, never shared
    if isinstance(node, dict):
        # half the time a member it has, else any member name of the contract
        key = pick(sorted(node)) if node and pick([True, False]) else pick(NAMES)
        if pick(["set", "set", "set", "del"]) == "del":
            node.pop(key, None)
        else:
            node[key] = value
    elif node and pick([True, False]):
        node[pick(range(len(node)))] = value
    else:
        node.append(value)


CUSTOM = "com.example.scanner.result"


def example(event_type: str) -> dict[str, Any]:
    """A valid event of a registry type or of the custom type ``CUSTOM``."""
    if event_type != CUSTOM:
        return example_event(event_type)
    event = example_event("finding.created")
    event["event_type"] = CUSTOM
    event["payload"] = {"tool": "scanner", "results": [{"id": 1, "ok": True}], "score": 0.5}
    return event


def generated(pick: Pick, changes: int) -> dict[str, Any]:
    event = example(pick([*sorted(REGISTRY), CUSTOM]))
    for member in ("tenant_id", "event_id"):
        if pick([True, False]):
            del event[member]
    for _ in range(changes):
        mutate(event, pick)
    return event


def pydantic_passes(event: Any, tenant: str = TENANT) -> bool:
    """The server's slow path: tenant from the credential, the id rule, the contract."""
    if not isinstance(event, dict) or event.get("tenant_id", tenant) != tenant:
        return False
    event = {**event, "tenant_id": tenant}
    event_id = event.setdefault("event_id", "x")
    if isinstance(event_id, str) and (
        len(event_id) > 256 or any(c < " " or c == "\x7f" for c in event_id)
    ):
        return False
    return check_envelope(event) == []


def core_passes(text: bytes, tenant: str = TENANT) -> bool:
    indices, _, _, _ = core_contract().check([text], tenant, scoped=False, max_bytes=MAX)
    return indices == [0]


def test_every_registry_type_and_custom_types_are_compiled_into_the_core() -> None:
    for t in [*REGISTRY, CUSTOM]:
        assert core_passes(orjson.dumps(example(t))), t
    reserved = {**example(CUSTOM), "event_type": "io.agentbom.scanner.result"}
    assert not pydantic_passes(reserved) and not core_passes(orjson.dumps(reserved))


@settings(
    max_examples=3000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data(), st.integers(0, 4))
def test_the_core_passes_exactly_what_pydantic_passes(data: st.DataObject, changes: int) -> None:
    def pick(seq: Sequence[Any]) -> Any:
        return data.draw(st.sampled_from(seq))

    event = generated(pick, changes)
    assert core_passes(orjson.dumps(event)) == pydantic_passes(event), event


def test_a_network_event_needs_a_destination() -> None:
    event = example_event("runtime.net")
    for member in ("dst_ip", "dst_host"):
        alone = {**event, "payload": {**event["payload"]}}
        del alone["payload"][member]
        assert core_passes(orjson.dumps(alone)) and pydantic_passes(alone)
    del event["payload"]["dst_ip"], event["payload"]["dst_host"]
    assert not pydantic_passes(event)
    assert not core_passes(orjson.dumps(event))


@pytest.mark.parametrize("event_type", [*sorted(REGISTRY), CUSTOM])
def test_every_member_at_every_edge(event_type: str) -> None:
    """Each envelope and payload member of the type's contract (and one unknown
    name), set to each edge value in turn: the core and pydantic agree on all."""
    base = example(event_type)
    payload = REGISTRY[event_type].model_fields if event_type in REGISTRY else ["tool"]
    members = [((), m) for m in [*PostureEvent.model_fields, "zz_extra"]]
    members += [(("payload",), m) for m in [*payload, "zz_extra"]]
    checked = 0
    for where, member in members:
        for value in POOL:
            event = orjson.loads(orjson.dumps(base))
            node = event
            for step in where:
                node = node[step]
            node[member] = orjson.loads(orjson.dumps(value))
            assert core_passes(orjson.dumps(event)) == pydantic_passes(event), (
                where,
                member,
                value,
            )
            checked += 1
    assert checked > 2000


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (b'"pid": 4242.0', "a float where strict pydantic wants an int"),
        (b'"pid": 4242, "pid": 4243', "a duplicated member: orjson keeps the last"),
        (b'"pid": 1e400', "a number out of range: orjson refuses the text"),
        (b'"pid": 18446744073709551616', "an integer past 64 bits: orjson makes it a float"),
    ],
)
def test_texts_orjson_reads_differently_are_left_to_python(text: bytes, why: str) -> None:
    base = orjson.dumps(example_event("runtime.exec"))
    bad = base.replace(b'"pid":4242', text)
    assert bad != base
    assert not core_passes(bad), why


def test_texts_are_read_as_orjson_reads_them() -> None:
    event = example_event("finding.created")
    event["risk_score"] = 50
    text = orjson.dumps(event, option=orjson.OPT_INDENT_2)  # pretty: newlines inside
    assert core_passes(text)
    assert core_passes(text.replace(b"50", b"5E1"))  # a float: risk_score takes floats
    assert core_passes(text.replace(b"50", b"100.0"))
    assert not core_passes(text.replace(b"50", b"1.0000000000000002E2"))  # just over 100
    escaped = text.replace(b'"F-1042"', b'"\\u00e9F"')  # an escape the text must decode
    assert escaped != text
    assert core_passes(escaped) and pydantic_passes(orjson.loads(escaped))
    # 256 characters of two bytes each: an id at the limit, counted as Python does
    at_limit = orjson.dumps({**event, "event_id": "é" * 256})
    assert core_passes(at_limit) and pydantic_passes(orjson.loads(at_limit))
    assert not core_passes(orjson.dumps({**event, "event_id": "é" * 257}))


@pytest.mark.parametrize(
    "address",
    [
        "1.2.3.4",
        "0.0.0.0",
        "255.255.255.255",
        "01.2.3.4",
        "1.2.3.04",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        " 1.2.3.4",
        "1.2.3.4 ",
        "0x1.2.3.4",
        "::",
        "::1",
        "::ffff:1.2.3.4",
        "::ffff:01.2.3.4",
        "::1.2.3.4",
        "64:ff9b::192.0.2.33",
        "2001:db8::1",
        "2001:DB8::1",
        "2001:0db8:0000:0000:0000:0000:0000:0001",
        "2001:db8:0:0:0:0:0:1:2",
        "2001:db8::1::2",
        "fe80::1%eth0",
        "fe80::1%1",
        "fe80::1%",
        "fe80::1%a%b",
        "fe80::1% x",
        "fe80::1%a/b",
        "fe80::1%/",
        "fe80::1%eth0/",
        "1.2.3.4/32",
        "::1/128",
        "1.2.3.4%eth0",
        "::ffff:1.2.3.4%0",
        "[::1]",
        "12345::1",
        "1:2:3:4:5:6:7::",
        "::2:3:4:5:6:7:8",
        "1:2:3:4:5:6:1.2.3.4",
        "1:2:3:4:5:6:7:1.2.3.4",
        "",
    ],
)
def test_ip_addresses_agree_with_pythons_ipaddress(address: str) -> None:
    event = example_event("runtime.net")
    event["payload"]["dst_ip"] = address
    python_ok = True
    try:
        ipaddress.ip_address(address)
    except ValueError:
        python_ok = False
    assert pydantic_passes(event) == python_ok
    assert core_passes(orjson.dumps(event)) == python_ok


@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.ip_addresses(), st.sampled_from(["compressed", "exploded", "upper"]))
def test_generated_ip_addresses_pass_where_python_passes_them(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, form: str
) -> None:
    text = address.exploded if form == "exploded" else address.compressed
    text = text.upper() if form == "upper" else text
    event = example_event("runtime.net")
    event["payload"]["dst_ip"] = text
    assert core_passes(orjson.dumps(event)) == pydantic_passes(event), text


def test_the_tenant_comes_from_the_credential() -> None:
    event = example_event("finding.created")
    del event["tenant_id"]
    (index,), (text,), _, _ = core_contract().check(
        [orjson.dumps(event)], TENANT, scoped=False, max_bytes=MAX
    )
    assert index == 0
    assert orjson.loads(text) == {**event, "tenant_id": TENANT}
    assert not core_passes(orjson.dumps({**event, "tenant_id": "other"}))
    assert not core_passes(orjson.dumps({**event, "tenant_id": None}))
    given_text = orjson.dumps({**event, "tenant_id": TENANT})
    _, (same,), _, _ = core_contract().check([given_text], TENANT, scoped=False, max_bytes=MAX)
    assert same is given_text  # passed on as given: no copy


def test_texts_over_the_limit_are_left_to_python() -> None:
    text = orjson.dumps(example_event("finding.created"))
    assert core_contract().check([text], TENANT, scoped=False, max_bytes=len(text))[0] == [0]
    assert core_contract().check([text], TENANT, scoped=False, max_bytes=len(text) - 1)[0] == []


def test_the_converter_refuses_what_it_cannot_say_exactly() -> None:
    with pytest.raises(TypeError, match="strip_whitespace"):
        _core_node({"type": "str", "strip_whitespace": True})
    with pytest.raises(TypeError, match="nullable"):
        _core_node({"type": "nullable", "schema": {"type": "str"}})
    with pytest.raises(TypeError, match="not in the core"):
        _core_node(
            {
                "type": "function-after",
                "function": {"type": "no-info", "function": str.strip},
                "schema": {"type": "str"},
            }
        )
    with pytest.raises(TypeError, match="string literals"):
        _core_node({"type": "literal", "expected": [1]})
    with pytest.raises(ValueError, match="unknown node type"):
        _core.Contract(b'{"t": {"t": "tuple"}}')


# --- whole batches, both ways ---------------------------------------------------------


def _ingest_both(
    tmp_path: Path, events: list[dict[str, Any]], scope: dict[str, list[str]] | None = None
) -> tuple[Any, Any, list[bytes], list[bytes]]:
    results, bodies = [], []
    for way in ("core", "python"):
        store = open_store(str(tmp_path / f"{way}.db"))
        try:
            es = EventStore(store)
            if scope is None:
                collector, _ = ed25519_collector(es, TENANT)
            else:
                es.add_tenant(TENANT)
                collector = es.add_collector(
                    TENANT, key_type="ed25519", public_key="whpk_x", secret_enc=None, scope=scope
                )
            texts = [orjson.dumps(e) for e in events]
            raw: list[Any] = texts if way == "core" else [orjson.loads(t) for t in texts]
            # the reasons name the collector: the same name both ways
            out = orjson.dumps(ingest(es, collector, raw).to_dict())
            results.append(orjson.loads(out.replace(collector.id.encode(), b"col_x")))
            bodies.append([e.body for e in es.events(TENANT, limit=10_000)])
        finally:
            store.close()
    return results[0], results[1], bodies[0], bodies[1]


@pytest.mark.parametrize("seed", range(4))
def test_a_batch_is_stored_byte_for_byte_as_the_python_way_stores_it(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    events = [generated(rng.choice, rng.choice([0, 0, 1, 2])) for _ in range(300)]
    for i, event in enumerate(events):
        if "event_id" in event and rng.random() < 0.8:
            event["event_id"] = f"e-{i}"  # mostly fresh ids; the rest duplicates
    core, python, core_bodies, python_bodies = _ingest_both(tmp_path, events)
    assert core == python
    assert core["accepted"] > 50 and core["rejected"] > 50  # both kinds are exercised
    assert core_bodies == python_bodies


def test_scoped_collectors_see_the_same_scope_values(tmp_path: Path) -> None:
    rng = random.Random(7)
    events = []
    for i in range(400):
        event = example_event(rng.choice(["finding.created", "deploy.decision", "runtime.exec"]))
        event["event_id"] = f"e-{i}"
        payload = event["payload"]
        for member, allowed in (
            ("connector", "gh"),
            ("repository", "acme/api"),
            ("environment", "prod"),
        ):
            value = rng.choice([allowed] * 12 + [None, "", "gh", "acme/api", 5, ["gh"], "absent"])
            if value == "absent":
                payload.pop(member, None)
            else:
                payload[member] = value
        refs = rng.choice([[], [{"kind": "repo", "id": "acme/api"}], [{"kind": "pkg", "id": "p"}]])
        if refs:
            event["entity_refs"] = refs
        events.append(event)
    scope = {
        "event_types": ["finding.created", "deploy.decision"],
        "connectors": ["gh"],
        "repos": ["acme/api"],
        "environments": ["prod"],
    }
    core, python, core_bodies, python_bodies = _ingest_both(tmp_path, events, scope)
    assert core == python
    assert core["accepted"] > 0 and core["rejected"] > 100
    assert core_bodies == python_bodies


# --- splitting array bodies -----------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(JSON, max_size=6), st.booleans())
def test_array_bodies_split_into_their_elements(items: list[Any], pretty: bool) -> None:
    body = orjson.dumps(items, option=orjson.OPT_INDENT_2 if pretty else 0)
    parts = split_body(body, "application/json")
    assert all(isinstance(p, bytes) for p in parts)
    assert [orjson.loads(p) for p in parts] == orjson.loads(body)


@pytest.mark.parametrize("body", [b"[1,]", b"[1", b'[{"a":1}] x', b"[\xff]"])
def test_bodies_that_do_not_parse_are_named_by_orjson(body: bytes) -> None:
    assert _core.split_json_array(body) is None
    with pytest.raises(BadBody, match="body is not valid JSON"):
        split_body(body, "application/json")


def test_an_array_element_orjson_cannot_read_rejects_only_itself(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "o.db"))
    try:
        es = EventStore(store)
        collector, _ = ed25519_collector(es, TENANT)
        good = orjson.dumps(example_event("finding.created"))
        body = b"[" + good + b', {"risk_score": 1e400}]'
        result = ingest(es, collector, split_body(body, "application/json"))
        assert result.status == 207
        accepted, bad = result.to_dict()["events"]
        assert accepted["status"] == "accepted"
        assert bad["code"] == "MALFORMED_JSON" and "infinity" in bad["reason"]
    finally:
        store.close()


def test_the_lag_is_measured_from_events_the_scope_lets_through(tmp_path: Path) -> None:
    import time
    from datetime import datetime

    store = open_store(str(tmp_path / "o.db"))
    try:
        es = EventStore(store)
        es.add_tenant(TENANT)
        scope = {"event_types": ["finding.created"]}
        collector = es.add_collector(
            TENANT, key_type="ed25519", public_key="whpk_x", secret_enc=None, scope=scope
        )
        allowed = {**example_event("finding.created"), "created_at": "2026-05-01T10:00:00Z"}
        denied = {**example_event("deploy.decision"), "created_at": "2026-05-01T11:00:00Z"}
        result = ingest(es, collector, [orjson.dumps(allowed), orjson.dumps(denied)])
        assert [e.status for e in result.events] == ["accepted", "rejected"]
        (lag,) = result.lags
        newest = datetime.fromisoformat("2026-05-01T10:00:00+00:00").timestamp()
        assert abs(lag - (time.time() - newest)) < 60
    finally:
        store.close()
