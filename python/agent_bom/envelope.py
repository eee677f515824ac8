"""The posture event envelope (DESIGN §3) and the event-type registry.

``PostureEvent`` is the transport envelope: what travels as a CloudEvent's
``data`` and what downstream systems receive. Each registry type has a payload
model; custom reverse-DNS types (``com.example.thing.happened``) carry an open
payload. Validation reports every problem at once, each with its JSON path::

    from agent_bom.envelope import check_envelope
    for p in check_envelope({"event_type": "finding.created"}):
        print(p.path, p.message)        # $.event_id is required, $.tenant_id ...

The rules agree with the core's (``rust/cloudevent.rs``); the registry list is
the core's ``REGISTRY_TYPES``. ``EvidenceEvent`` is the CloudEvent of DESIGN §4
that carries the envelope.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError, SchemaValidator, core_schema

from agent_bom import _core
from agent_bom.errors import InvalidEvent

__all__ = [
    "PAYLOAD_EXAMPLES",
    "REGISTRY",
    "REGISTRY_TYPES",
    "SCHEMA_VERSION",
    "EvidenceEvent",
    "PostureEvent",
    "Problem",
    "check_cloudevent",
    "check_envelope",
    "check_envelopes",
    "epoch_millis",
    "example_event",
    "is_custom_type",
    "parse_event",
]

SCHEMA_VERSION = "1"
REGISTRY_TYPES: tuple[str, ...] = tuple(_core.REGISTRY_TYPES)
TYPE_PREFIX = "io.agentbom."
SEVERITIES = ("info", "low", "medium", "high", "critical")

TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
# Reverse-DNS custom types: at least three lowercase labels (rust/cloudevent.rs is_reverse_dns).
REVERSE_DNS_PATTERN = r"^[a-z][a-z0-9_-]{0,62}(\.[a-z0-9_-]{1,63}){2,}$"
# RFC 3339 date-time with a time zone, as the core accepts it (T, t or space; Z, z or ±hh:mm).
RFC3339_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt ]"
    r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
HASH_PATTERN = r"^(sha256|blake3):[0-9a-f]{64}$"
CVE_PATTERN = r"^CVE-[0-9]{4}-[0-9]{4,}$"
CWE_PATTERN = r"^CWE-[0-9]{1,6}$"
TECHNIQUE_PATTERN = r"^T[0-9]{4}(\.[0-9]{3})?$"
CE_TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]*[1-9])?Z$"
TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
# Members the store adds to a persisted event; they never travel in an envelope.
PERSISTENCE_FIELDS = frozenset({"received_at", "seq", "stored_seq", "stream_seq", "ingested_at"})

_REVERSE_DNS = re.compile(REVERSE_DNS_PATTERN)

T = TypeVar("T")


def _not_null(v: Any) -> Any:
    if v is None:
        raise PydanticCustomError("null", "must not be null; leave the member out instead")
    return v


# An optional member: may be absent, never null (the core rejects null for every member).
Opt = Annotated[T | None, BeforeValidator(_not_null)]


Id = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=65536)]
Text = Annotated[str, StringConstraints(min_length=1)]
# An RFC 3986 URI-reference, as CloudEvents requires of `source`: the core's pattern,
# so the contract and the core accept the same strings.
SourceRef = Annotated[
    str, StringConstraints(min_length=1, max_length=2048, pattern=_core.URI_REFERENCE)
]
Hash = Annotated[str, StringConstraints(min_length=1, max_length=71, pattern=HASH_PATTERN)]
Cve = Annotated[str, StringConstraints(max_length=32, pattern=CVE_PATTERN)]
Cwe = Annotated[str, StringConstraints(max_length=16, pattern=CWE_PATTERN)]
Technique = Annotated[str, StringConstraints(pattern=TECHNIQUE_PATTERN)]
Signature = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{86}==$")]
TenantId = Annotated[str, StringConstraints(max_length=128, pattern=TENANT_PATTERN)]
Severity = Literal["info", "low", "medium", "high", "critical"]
Decision = Literal["allow", "warn", "block"]
Count = Annotated[int, Field(ge=0, le=2**53 - 1)]
Port = Annotated[int, Field(ge=0, le=65535)]
Score = Annotated[float, Field(ge=0, le=100)]


def epoch_millis(value: str) -> tuple[int, int] | None:
    """``(milliseconds since the Unix epoch, UTC offset in minutes)`` of an RFC 3339
    date-time the core accepts, or None when it is not one.

    Deterministic (never reads the clock); sub-millisecond digits are truncated. The
    core's own parser (rust/time.rs), so the contract and the core never disagree.
    """
    return _core.epoch_millis(value)


def _check_time(v: str) -> str:
    if _core.epoch_millis(v) is None:
        raise PydanticCustomError(
            "rfc3339",
            "{value} is not an RFC 3339 date-time with a time zone "
            "(a real calendar date, no leap second, within years 0000-9999 in UTC; "
            "e.g. 2026-05-01T12:00:00Z)",
            {"value": repr(v)},
        )
    return v


Rfc3339 = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(_check_time),
    # No "format": "date-time": validators that assert it differ on the space separator
    # RFC 3339 allows and the core accepts; the pattern says exactly what is accepted.
    WithJsonSchema({"type": "string", "maxLength": 64, "pattern": RFC3339_PATTERN}),
]


def is_custom_type(event_type: str) -> bool:
    """True for a valid custom type: reverse-DNS, at least three labels, not ``io.agentbom.*``."""
    return (
        event_type not in REGISTRY_TYPES
        and len(event_type) <= 255
        and not event_type.startswith(TYPE_PREFIX)
        and _REVERSE_DNS.fullmatch(event_type) is not None
    )


def _check_event_type(v: str) -> str:
    if v in REGISTRY_TYPES or is_custom_type(v):
        return v
    raise PydanticCustomError(
        "event_type",
        "{value} is neither a registry type (finding.created, runtime.exec, …) nor a "
        "reverse-DNS custom type of at least three lowercase labels like "
        "com.example.thing.happened (io.agentbom.* is reserved)",
        {"value": repr(v)},
    )


EventType = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255),
    AfterValidator(_check_event_type),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "anyOf": [
                {"enum": list(REGISTRY_TYPES)},
                {
                    "pattern": REVERSE_DNS_PATTERN,
                    "not": {"pattern": r"^io\.agentbom\."},
                },
            ],
        }
    ),
]


CloudEventType = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255),
    WithJsonSchema(
        {
            "type": "string",
            "anyOf": [
                {"enum": [TYPE_PREFIX + t for t in REGISTRY_TYPES]},
                {"pattern": REVERSE_DNS_PATTERN, "not": {"pattern": r"^io\.agentbom\."}},
            ],
        }
    ),
]


class _Contract(BaseModel):
    """Strict JSON types: no string-to-number coercion, no bools as numbers."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class EntityRef(_Contract):
    """A reference to an entity the event is about."""

    kind: Name = Field(description="package, source, agent, cloud, iam, mcp, skill, graph, repo…")
    id: Text = Field(description="The entity's identifier (a purl for packages).")


class AuditRef(_Contract):
    """Pointer into the audit chain."""

    stream_id: Opt[Id] = None
    seq: Opt[Count] = None
    chainhash: Opt[Hash] = None


# --- payload contracts -------------------------------------------------------------------


class ComplianceCheck(_Contract):
    """The compliance control a finding reports on (makes it an OCSF Compliance Finding)."""

    control: Name = Field(description="The control checked, e.g. 'CIS 1.4'.")
    standards: Opt[list[Name]] = Field(default=None, description="e.g. ['CIS AWS 1.4', 'SOC 2']")
    status: Opt[Literal["pass", "warning", "fail"]] = None


FindingStatus = Literal["open", "in_progress", "suppressed", "resolved", "closed"]


class FindingPayload(_Contract):
    """`finding.created` / `finding.updated`: a finding from a scanner or rule."""

    finding_id: Id = Field(description="Stable id of the finding across updates.")
    title: LongText
    rule_id: Opt[Id] = None
    cve: Opt[Cve] = Field(default=None, description="e.g. CVE-2026-12345")
    cwe: Opt[Cwe] = Field(default=None, description="e.g. CWE-918")
    package: Opt[Name] = Field(default=None, description="Affected package, as a purl.")
    status: Opt[FindingStatus] = None
    remediation: Opt[LongText] = None
    description: Opt[LongText] = None
    references: Opt[list[Name]] = None
    compliance: Opt[ComplianceCheck] = None


class PathNode(_Contract):
    kind: Name
    id: Text
    name: Opt[Name] = None


class PathEdge(_Contract):
    source: Text = Field(description="A node id.")
    target: Text = Field(description="A node id.")
    relation: Opt[Name] = None


class ExposurePathPayload(_Contract):
    """`exposure_path.created`: a path through the graph from exposure to impact."""

    path_id: Id
    nodes: Annotated[list[PathNode], Field(min_length=1)]
    edges: list[PathEdge]
    risk: Opt[Score] = Field(default=None, description="Risk of the path, 0-100.")
    title: Opt[LongText] = None
    description: Opt[LongText] = None


class SkillVerdictPayload(_Contract):
    """`skill.verdict`: whether an agent skill may be used."""

    skill: Name = Field(description="The skill's name or id.")
    verdict: Decision
    reasons: list[LongText]
    skill_version: Opt[Name] = None
    publisher: Opt[Name] = None
    digest: Opt[Name] = None
    policy_id: Opt[Id] = None


class DeployDecisionPayload(_Contract):
    """`deploy.decision`: whether a deployment may proceed."""

    target: Name = Field(description="What is being deployed (service, image, artifact).")
    decision: Decision
    reasons: list[LongText]
    environment: Opt[Name] = None
    artifact: Opt[Name] = Field(default=None, description="Image digest or purl.")
    commit: Opt[Name] = None
    policy_id: Opt[Id] = None


class RuntimePolicyDecisionPayload(_Contract):
    """`runtime.policy_decision`: a gateway or proxy decided on an agent's request."""

    policy_id: Id
    action: Name = Field(description="The operation requested, e.g. tools/call.")
    decision: Decision
    actor: Name = Field(description="Who asked: the agent or user.")
    resource: Text
    reasons: Opt[list[LongText]] = None
    context: Opt[dict[str, Any]] = None


class IntegrityProblem(_Contract):
    code: Name
    line: Opt[Count] = None
    seq: Opt[Count] = None
    detail: Opt[LongText] = None


class AuditIntegrityPayload(_Contract):
    """`audit.integrity`: the outcome of checking an audit chain."""

    stream_id: Id
    verified: bool
    records: Opt[Count] = None
    head: Opt[Hash] = None
    merkle_root: Opt[Hash] = None
    problems: Opt[list[IntegrityProblem]] = None


class _Process(_Contract):
    pid: Count
    exe: Opt[Text] = None
    user: Opt[Name] = None
    container_id: Opt[Name] = None
    host: Opt[Name] = None


class RuntimeExecPayload(_Process):
    """`runtime.exec`: a process started a program."""

    exe: Text = Field(description="Program path.")
    ppid: Opt[Count] = None
    argv: Opt[list[str]] = None
    cwd: Opt[Text] = None


FsOperation = Literal[
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


class RuntimeFsPayload(_Process):
    """`runtime.fs`: a process touched a file."""

    path: Text
    operation: FsOperation
    new_path: Opt[Text] = Field(default=None, description="The new path, for rename.")


def _check_ip(v: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_address(v)
    except ValueError:
        raise PydanticCustomError(
            "ip", "{value} is not an IPv4 or IPv6 address", {"value": repr(v)}
        ) from None
    return v


Ip = Annotated[
    str,
    AfterValidator(_check_ip),
    WithJsonSchema({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}),
]
NetOperation = Literal["open", "close", "reset", "fail", "refuse", "traffic", "listen"]


class RuntimeNetPayload(_Process):
    """`runtime.net`: a process used the network. Give `dst_ip` or `dst_host`."""

    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["dst_ip"]}, {"required": ["dst_host"]}]}
    )

    operation: NetOperation
    dst_ip: Opt[Ip] = None
    dst_host: Opt[Name] = None
    dst_port: Opt[Port] = None
    src_ip: Opt[Ip] = None
    src_port: Opt[Port] = None
    protocol: Opt[Name] = Field(default=None, description="e.g. tcp, udp.")
    direction: Opt[Literal["inbound", "outbound", "lateral", "local"]] = None

    @model_validator(mode="after")
    def _destination(self) -> RuntimeNetPayload:
        if self.dst_ip is None and self.dst_host is None:
            raise PydanticCustomError("destination", "give dst_ip or dst_host (or both)")
        return self


class RuntimeSyscallPayload(_Process):
    """`runtime.syscall`: a process made a system call."""

    syscall: Name = Field(description="e.g. ptrace, mount, bpf.")
    args: Opt[list[Any]] = None
    ret: Opt[int] = None


class SecurityAlertPayload(_Contract):
    """`security.alert.created`: an alert raised for a SIEM."""

    alert_id: Id
    title: LongText
    description: Opt[LongText] = None
    rule_id: Opt[Id] = None
    status: Opt[FindingStatus] = None
    techniques: Opt[list[Technique]] = Field(
        default=None, description="MITRE ATT&CK technique ids, e.g. T1059 or T1059.004."
    )
    finding_ids: Opt[list[Id]] = None


class CheckpointPayload(_Contract):
    """`evidence.checkpoint`: seals the records before it (docs/contracts.md)."""

    stream_id: Text
    first_seq: Count
    count: Count
    last_seq: Count
    head: Hash
    merkle_root: Hash
    key_id: Opt[Name] = None
    signature: Opt[Signature] = Field(default=None, description="Ed25519, standard base64.")


class DeadLetteredPayload(_Contract):
    """`delivery.dead_lettered`: an event could not be delivered and was set aside."""

    destination_id: Id
    event_id: Id = Field(description="The event that was not delivered.")
    attempts: Annotated[int, Field(ge=1, le=2**31 - 1)]
    reason: LongText
    last_status: Opt[Annotated[int, Field(ge=100, le=599)]] = Field(
        default=None, description="Last HTTP status, when there was one."
    )


class RecoveredPayload(_Contract):
    """`delivery.recovered`: a dead-lettered event was delivered after all."""

    destination_id: Id
    event_id: Id
    attempts: Annotated[int, Field(ge=1, le=2**31 - 1)]


REGISTRY: Mapping[str, type[_Contract]] = {
    "finding.created": FindingPayload,
    "finding.updated": FindingPayload,
    "exposure_path.created": ExposurePathPayload,
    "skill.verdict": SkillVerdictPayload,
    "deploy.decision": DeployDecisionPayload,
    "runtime.policy_decision": RuntimePolicyDecisionPayload,
    "audit.integrity": AuditIntegrityPayload,
    "runtime.exec": RuntimeExecPayload,
    "runtime.fs": RuntimeFsPayload,
    "runtime.net": RuntimeNetPayload,
    "runtime.syscall": RuntimeSyscallPayload,
    "security.alert.created": SecurityAlertPayload,
    "evidence.checkpoint": CheckpointPayload,
    "delivery.dead_lettered": DeadLetteredPayload,
    "delivery.recovered": RecoveredPayload,
}
"""Payload model of each registry type (the registry list itself is the core's)."""

_HEX = "9f2c" * 16
PAYLOAD_EXAMPLES: Mapping[str, Mapping[str, Any]] = {
    "finding.created": {
        "finding_id": "F-1042",
        "title": "Server-side request forgery in requests",
        "rule_id": "ABOM-352",
        "cve": "CVE-2026-51347",
        "cwe": "CWE-918",
        "package": "pkg:pypi/requests@2.31.0",
        "status": "open",
        "remediation": "Upgrade requests to 2.32.0.",
    },
    "finding.updated": {
        "finding_id": "F-1043",
        "title": "Storage bucket allows public read",
        "status": "resolved",
        "compliance": {"control": "CIS AWS 2.1.5", "standards": ["CIS AWS 3.0"], "status": "fail"},
        "remediation": "Block public access on the bucket.",
    },
    "exposure_path.created": {
        "path_id": "EP-7",
        "title": "Prompt injection to cloud credentials",
        "nodes": [
            {"kind": "mcp", "id": "mcp://filesystem"},
            {"kind": "agent", "id": "claude-code"},
            {"kind": "iam", "id": "arn:aws:iam::123456789012:role/ci"},
        ],
        "edges": [
            {"source": "mcp://filesystem", "target": "claude-code", "relation": "feeds"},
            {
                "source": "claude-code",
                "target": "arn:aws:iam::123456789012:role/ci",
                "relation": "assumes",
            },
        ],
        "risk": 88,
    },
    "skill.verdict": {
        "skill": "pdf-extractor",
        "skill_version": "1.4.2",
        "verdict": "block",
        "reasons": ["sends documents to an unverified host"],
    },
    "deploy.decision": {
        "target": "payments-api",
        "environment": "production",
        "decision": "warn",
        "reasons": ["2 high findings without a fix"],
        "policy_id": "deploy-gate",
    },
    "runtime.policy_decision": {
        "policy_id": "pol-12",
        "action": "tools/call",
        "decision": "block",
        "actor": "claude-code",
        "resource": "mcp://github/repos/acme/api",
        "reasons": ["write access outside the task's scope"],
    },
    "audit.integrity": {
        "stream_id": "ci-2026-05",
        "verified": False,
        "records": 1200,
        "problems": [{"code": "SEQ_GAP", "line": 412, "seq": 411}],
    },
    "runtime.exec": {
        "pid": 4242,
        "ppid": 4200,
        "exe": "/usr/bin/curl",
        "argv": ["curl", "-fsSL", "https://example.com/install.sh"],
        "cwd": "/workspace/api",
        "user": "runner",
        "host": "ci-runner-7",
    },
    "runtime.fs": {
        "pid": 4242,
        "exe": "/usr/bin/python3",
        "path": "/home/runner/.aws/credentials",
        "operation": "read",
        "user": "runner",
        "host": "ci-runner-7",
    },
    "runtime.net": {
        "pid": 4242,
        "exe": "/usr/bin/curl",
        "operation": "open",
        "dst_host": "exfil.example.net",
        "dst_ip": "203.0.113.7",
        "dst_port": 443,
        "protocol": "tcp",
        "direction": "outbound",
        "host": "ci-runner-7",
    },
    "runtime.syscall": {
        "pid": 4242,
        "exe": "/usr/bin/gdb",
        "syscall": "ptrace",
        "ret": 0,
        "host": "ci-runner-7",
    },
    "security.alert.created": {
        "alert_id": "AL-88",
        "title": "Agent read cloud credentials, then connected to an unknown host",
        "rule_id": "ABOM-R-7",
        "techniques": ["T1552.001", "T1041"],
        "finding_ids": ["F-1042"],
        "status": "open",
    },
    "evidence.checkpoint": {
        "stream_id": "ci-2026-05",
        "first_seq": 0,
        "count": 2,
        "last_seq": 1,
        "head": "sha256:" + _HEX,
        "merkle_root": "sha256:" + _HEX[::-1],
    },
    "delivery.dead_lettered": {
        "destination_id": "siem-webhook",
        "event_id": "76e06e58-22e5-50b8-ac93-f5e5174d8cf2",
        "attempts": 8,
        "reason": "HTTP 503 on every attempt",
        "last_status": 503,
    },
    "delivery.recovered": {
        "destination_id": "siem-webhook",
        "event_id": "76e06e58-22e5-50b8-ac93-f5e5174d8cf2",
        "attempts": 9,
    },
}
"""A valid payload of each registry type (published as the schema's examples)."""


def example_event(event_type: str) -> dict[str, Any]:
    """A complete, valid envelope of ``event_type`` (a registry type) for docs and tests."""
    return {
        "event_id": f"example-{event_type}",
        "tenant_id": "acme",
        "event_type": event_type,
        "created_at": "2026-05-01T12:00:00Z",
        "source": "urn:agent-bom:example",
        "severity": "high",
        "payload": copy.deepcopy(dict(PAYLOAD_EXAMPLES[event_type])),
    }


# --- the envelope ------------------------------------------------------------------------


def _errors_of(e: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[InitErrorDetails]:
    return [
        InitErrorDetails(
            type=PydanticCustomError(err["type"], err["msg"]),
            loc=prefix + tuple(err["loc"]),
            input=err["input"],
        )
        for err in e.errors(include_url=False)
    ]


class PostureEvent(BaseModel):
    """The posture event envelope, schema version 1 (DESIGN §3).

    Validation checks the envelope and, for registry types, the payload against
    the type's contract, and reports every problem in one ``ValidationError``.
    """

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        title="PostureEvent",
        json_schema_extra={"$comment": "agent-bom posture event envelope, schema_version 1"},
    )

    event_id: Id = Field(description="Stable id for idempotency: given by the producer or derived.")
    tenant_id: TenantId = Field(description="The tenant the event belongs to.")
    event_type: EventType = Field(description="A registry type or a reverse-DNS custom type.")
    created_at: Rfc3339 = Field(description="When it happened at the source (never 'now').")
    source: SourceRef = Field(
        description="Scan, API route, MCP tool, proxy, gateway, importer… (a URI-reference)."
    )
    severity: Opt[Severity] = None
    risk_score: Opt[Score] = Field(default=None, description="0-100.")
    entity_refs: Opt[list[EntityRef]] = Field(
        default=None, description="The entities the event is about; the first is the subject."
    )
    exposure_path_id: Opt[Id] = Field(default=None, description="Linked exposure path.")
    payload: dict[str, Any] = Field(
        default_factory=dict, description="The event's data (the contract of its type)."
    )
    ocsf: Opt[dict[str, Any]] = Field(default=None, description="OCSF projection, when mapped.")
    audit_ref: Opt[AuditRef] = None
    schema_version: Literal["1"] = Field(default="1", description='Always "1" in v1.')
    correlation_id: Opt[Id] = None
    causation_id: Opt[Id] = None

    @model_validator(mode="wrap")
    @classmethod
    def _payload_contract(cls, data: Any, handler: ModelWrapValidatorHandler[PostureEvent]) -> Any:
        errors: list[InitErrorDetails] = []
        result = None
        try:
            result = handler(data)
        except ValidationError as e:
            errors.extend(_errors_of(e))
        if isinstance(data, Mapping):
            event_type = data.get("event_type")
            model = REGISTRY.get(event_type) if isinstance(event_type, str) else None
            payload = data.get("payload", {})
            if model is not None and isinstance(payload, Mapping):
                try:
                    model.model_validate(payload)
                except ValidationError as e:
                    errors.extend(_errors_of(e, ("payload",)))
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return result

    def typed_payload(self) -> BaseModel | None:
        """The payload as its registry model, or None for a custom type."""
        model = REGISTRY.get(self.event_type)
        return None if model is None else model.model_validate(self.payload)

    def to_json_dict(self) -> dict[str, Any]:
        """The envelope as JSON members: absent optionals left out, payload as given."""
        out = self.model_dump(mode="json", exclude_unset=True)
        out.setdefault("payload", {})
        out["schema_version"] = SCHEMA_VERSION
        return out


# --- the CloudEvent carrying it (DESIGN §4) -------------------------------------------------


class EvidenceEvent(BaseModel):
    """An evidence record: a CloudEvent 1.0 (structured JSON) whose ``data`` is the envelope."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True, title="EvidenceEvent")

    specversion: Literal["1.0"]
    id: Id
    source: SourceRef
    type: CloudEventType
    time: Annotated[str, StringConstraints(pattern=CE_TIME_PATTERN)] = Field(
        description="created_at normalized to UTC."
    )
    subject: Opt[Text] = None
    datacontenttype: Literal["application/json"]
    data: PostureEvent
    tenantid: TenantId
    severity: Opt[Severity] = None
    redactions: Count
    streamid: Text
    seq: Annotated[int, Field(ge=0, le=2**31 - 1)]
    contenthash: Hash
    chainhash: Hash
    traceparent: Opt[Annotated[str, StringConstraints(pattern=TRACEPARENT_PATTERN)]] = None
    tracestate: Opt[Annotated[str, StringConstraints(min_length=1, max_length=512)]] = None

    @model_validator(mode="after")
    def _agrees_with_data(self) -> EvidenceEvent:
        d = self.data
        expected = TYPE_PREFIX + d.event_type if d.event_type in REGISTRY_TYPES else d.event_type
        mismatches: list[tuple[str, Any, Any]] = [
            ("type", self.type, expected),
            ("id", self.id, d.event_id),
            ("source", self.source, d.source),
            ("tenantid", self.tenantid, d.tenant_id),
        ]
        if self.severity != d.severity:
            mismatches.append(("severity", self.severity, d.severity))
        subject = d.entity_refs[0].id if d.entity_refs else None
        if self.subject != subject:
            mismatches.append(("subject", self.subject, subject))
        t, c = epoch_millis(self.time), epoch_millis(d.created_at)
        if t is None or c is None or t[0] != c[0]:
            mismatches.append(("time", self.time, d.created_at))
        for name, found, want in mismatches:
            if found != want:
                raise PydanticCustomError(
                    "cloudevent_mismatch",
                    "{name} is {found} but data says it must be {want}",
                    {"name": name, "found": repr(found), "want": repr(want)},
                )
        for name in self.model_extra or {}:
            if not re.fullmatch(r"[a-z0-9]{1,20}", name):
                raise PydanticCustomError(
                    "cloudevent_attribute",
                    "{name} is not a CloudEvents attribute name (lowercase a-z, 0-9, at most 20)",
                    {"name": repr(name)},
                )
        return self


# --- reporting ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an event: where (a JSON path like ``$.payload.title``) and what."""

    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


_HINTS = {
    "tenant_id": f"must match {TENANT_PATTERN} (letters, digits, '.', '_', '-'; e.g. acme)",
    "tenantid": f"must match {TENANT_PATTERN}",
    "cve": "must look like CVE-2026-12345",
    "cwe": "must look like CWE-918",
    "techniques": "must be MITRE ATT&CK ids like T1059 or T1059.004",
    "head": "must be <sha256|blake3>:<64 lowercase hex>",
    "merkle_root": "must be <sha256|blake3>:<64 lowercase hex>",
    "chainhash": "must be <sha256|blake3>:<64 lowercase hex>",
    "contenthash": "must be <sha256|blake3>:<64 lowercase hex>",
    "time": "must be UTC, e.g. 2026-05-01T12:00:00Z (the core normalizes created_at)",
    "traceparent": "must be a W3C traceparent, e.g. 00-<32 hex>-<16 hex>-01",
}


def _path(loc: tuple[str | int, ...]) -> str:
    out = "$"
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}"
        else:
            out += f"[{part!r}]"
    return out


def _message(err: Mapping[str, Any], top_level: bool) -> str:
    kind, loc = err["type"], err["loc"]
    field = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden" and top_level and field in PERSISTENCE_FIELDS:
        return (
            "is persistence metadata added by the store; it never travels in an envelope "
            "(remove it)"
        )
    if kind == "extra_forbidden":
        return "is not an envelope member (put producer data inside payload)"
    if kind == "string_pattern_mismatch" and field == "source":
        # The core's own words, without the value: a source may carry credentials.
        return _core.uri_reference_problem(err["input"]) or "is not a URI-reference"
    if kind == "string_pattern_mismatch" and field in _HINTS:
        return f"{err['input']!r} {_HINTS[field]}"
    if kind == "string_too_short" and err["input"] == "":
        return "must not be empty"
    if kind == "model_type" or kind == "dict_type":
        return f"must be a JSON object, got {_json_type(err['input'])}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind in (
        "string_type",
        "int_type",
        "float_type",
        "bool_type",
        "list_type",
        "int_from_float",
    ):
        return f"must be {msg.removeprefix('Input should be ')}, got {_json_type(err['input'])}"
    if kind in ("literal_error", "enum"):
        return f"must be {msg.removeprefix('Input should be ')}, got {err['input']!r}"
    if msg.startswith("Input should be "):
        return "must be " + msg.removeprefix("Input should be ")
    if msg.startswith("String should have "):
        return "must have " + msg.removeprefix("String should have ")
    if msg.startswith("List should have "):
        return "must have " + msg.removeprefix("List should have ")
    return msg


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _problems(e: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[Problem]:
    out = []
    for err in e.errors(include_url=False):
        loc = prefix + tuple(err["loc"])
        out.append(Problem(_path(loc), _message(err, top_level=len(loc) == len(prefix) + 1)))
    return out


def _plain(node: Any, *, keep_model: bool = False) -> Any:
    """A copy of a pydantic core schema that validates the same input without
    building anything: models become their field schemas (dicts, no instances) unless
    a model validator needs the instance, and ``Opt`` members lose their Python
    not-null hook (absent keeps the default; null now fails the inner type)."""
    if isinstance(node, list):
        return [_plain(x) for x in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind == "function-before" and node["function"].get("function") is _not_null:
        inner = node["schema"]
        if inner.get("type") != "nullable":
            raise TypeError(f"unexpected schema under Opt: {inner.get('type')}")
        return _plain(inner["schema"])
    if kind == "model" and not keep_model:
        fields = dict(_plain(node["schema"]))
        config = node.get("config", {})
        # The model's config carries what the field schema must keep enforcing: its
        # extra members rule here, strict JSON types by the validator's config.
        if not config.get("strict"):
            raise TypeError(f"{node.get('cls')} is not strict: _plain validates strictly")
        fields["extra_behavior"] = config.get("extra_fields_behavior", "ignore")
        return fields
    if kind in ("function-after", "function-wrap", "function-before", "function-plain"):
        # A validator around a model receives the instance: that model stays one.
        return {
            k: (_plain(v, keep_model=True) if k == "schema" else _plain(v)) for k, v in node.items()
        }
    return {k: _plain(v) for k, v in node.items()}


_STRICT = core_schema.CoreConfig(strict=True)  # every contract model is strict


def _typed_schema(event_type: str) -> dict[str, Any]:
    """The envelope with ``payload`` typed as the registry contract of ``event_type``
    and ``event_type`` fixed to it, as a plain core schema (``_plain``)."""
    fields: dict[str, Any] = {
        name: (f.annotation, f) for name, f in PostureEvent.model_fields.items()
    }
    fields["payload"] = (REGISTRY[event_type], ...)
    model = create_model(
        f"PostureEvent[{event_type}]", __config__=PostureEvent.model_config, **fields
    )
    schema: dict[str, Any] = _plain(model.__pydantic_core_schema__)
    if schema.get("type") != "model-fields" or "event_type" not in schema["fields"]:
        raise TypeError("unexpected core schema for the envelope")
    schema["fields"]["event_type"]["schema"] = {"type": "literal", "expected": [event_type]}
    return schema


@functools.cache
def _typed_envelope(event_type: str) -> SchemaValidator:
    """One pass in pydantic-core over an event of ``event_type``, no Python in between
    but the time check: it accepts exactly what ``PostureEvent`` accepts for that
    type; ``PostureEvent`` stays the one that names every problem of an invalid event."""
    return SchemaValidator(_typed_schema(event_type), _STRICT)


@functools.cache
def _batch_validator() -> SchemaValidator:
    """A list of registry events, each validated by its type's ``_typed_envelope``
    schema (chosen by ``event_type``): a whole batch in one call."""
    union = core_schema.tagged_union_schema(
        {t: _typed_schema(t) for t in REGISTRY}, discriminator="event_type"
    )
    return SchemaValidator(core_schema.list_schema(union), _STRICT)


def check_envelope(obj: Any) -> list[Problem]:
    """Every problem that keeps ``obj`` (parsed JSON) from being a valid envelope; [] if none."""
    event_type = obj.get("event_type") if isinstance(obj, dict) else None
    if isinstance(event_type, str) and event_type in REGISTRY:
        try:
            _typed_envelope(event_type).validate_python(obj)
            return []
        except ValidationError:
            pass  # PostureEvent below names every problem
    try:
        PostureEvent.model_validate(obj)
    except ValidationError as e:
        return _problems(e)
    return []


def check_envelopes(objs: list[Any]) -> list[list[Problem]]:
    """``check_envelope`` of each of ``objs``: a batch of valid registry events is
    checked in one call; any other batch event by event."""
    try:
        _batch_validator().validate_python(objs)
        return [[] for _ in objs]
    except ValidationError:
        return [check_envelope(obj) for obj in objs]


def check_cloudevent(obj: Any) -> list[Problem]:
    """Every problem that keeps ``obj`` (parsed JSON) from being a valid evidence CloudEvent."""
    try:
        EvidenceEvent.model_validate(obj)
    except ValidationError as e:
        return _problems(e)
    return []


def parse_event(obj: Any) -> PostureEvent:
    """Validate ``obj`` as an envelope, raising InvalidEvent that lists every problem."""
    try:
        return PostureEvent.model_validate(obj)
    except ValidationError as e:
        problems = _problems(e)
        raise InvalidEvent(
            "invalid posture event: " + "; ".join(str(p) for p in problems)
        ) from None


# --- the contract compiled into the core ----------------------------------------------------

# The Python hooks a registry schema runs, and what the core checks in their place.
_CORE_CHECKS: dict[Any, str] = {_check_time: "rfc3339", _check_ip: "ip"}
# Model validators: the members one of which must be present.
_CORE_REQUIRE_ANY: dict[Any, list[str]] = {
    RuntimeNetPayload.__pydantic_decorators__.model_validators["_destination"].func: [
        "dst_ip",
        "dst_host",
    ],
}


def _core_node(node: dict[str, Any], extra: str | None = None) -> dict[str, Any]:
    """The core's description (rust/contract.rs) of a plain registry schema node.
    Anything it cannot say exactly is refused (TypeError): the core must never
    pass what pydantic refuses."""

    def only(*keys: str) -> None:
        unknown = set(node) - {"type", "metadata", *keys}
        if unknown:
            raise TypeError(f"{node['type']} schema with {sorted(unknown)}: not in the core")

    kind = node.get("type")
    if kind == "any":
        only()
        return {"t": "any"}
    if kind == "bool":
        only()
        return {"t": "bool"}
    if kind == "str":
        only("min_length", "max_length", "pattern")
        return {
            "t": "str",
            "min": node.get("min_length", 0),
            "max": node.get("max_length"),
            "pattern": node.get("pattern"),
        }
    if kind == "literal":
        only("expected")
        if not all(isinstance(v, str) for v in node["expected"]):
            raise TypeError("only string literals are in the core")
        return {"t": "literal", "values": list(node["expected"])}
    if kind in ("int", "float"):
        only("ge", "le")
        return {"t": kind, "ge": node.get("ge"), "le": node.get("le")}
    if kind == "list":
        only("items_schema", "min_length", "max_length")
        return {
            "t": "list",
            "items": _core_node(node.get("items_schema", {"type": "any"})),
            "min": node.get("min_length", 0),
            "max": node.get("max_length"),
        }
    if kind == "dict":
        only("keys_schema", "values_schema")
        keys = node.get("keys_schema", {"type": "any"})
        if keys.get("type") not in ("any", "str") or set(keys) - {"type"}:
            raise TypeError("a dict's keys must be plain strings in the core")
        return {"t": "dict", "values": _core_node(node.get("values_schema", {"type": "any"}))}
    if kind == "model-fields":
        only("fields", "model_name", "computed_fields", "extra_behavior")
        if node.get("computed_fields"):
            raise TypeError("computed fields are not in the core")
        fields = []
        for name, f in node["fields"].items():
            if set(f) - {"type", "schema", "metadata"}:
                raise TypeError(f"field {name} with {sorted(set(f))}: not in the core")
            schema = f["schema"]
            required = schema.get("type") != "default"
            if not required:
                if schema.get("default_factory_takes_data") or set(schema) - {
                    "type",
                    "schema",
                    "default",
                    "default_factory",
                    "default_factory_takes_data",
                }:
                    raise TypeError(f"default of {name} with {sorted(set(schema))}")
                schema = schema["schema"]
            fields.append({"name": name, "required": required, "schema": _core_node(schema)})
        return {"t": "fields", "fields": fields, "extra": extra or node.get("extra_behavior")}
    if kind == "model":
        config = node.get("config", {})
        if not config.get("strict") or node.get("custom_init") or node.get("root_model"):
            raise TypeError(f"model {node.get('cls')}: not a strict plain model")
        return _core_node(node["schema"], config.get("extra_fields_behavior", "ignore"))
    if kind == "function-after":
        func = node["function"].get("function")
        if node["function"].get("type") != "no-info":
            raise TypeError("only plain after-validators are in the core")
        if func is _check_event_type:
            return {
                "t": "after",
                "check": "event_type",
                "pattern": REVERSE_DNS_PATTERN,
                "reserved": TYPE_PREFIX,
                "schema": _core_node(node["schema"]),
            }
        if func in _CORE_CHECKS:
            return {"t": "after", "check": _CORE_CHECKS[func], "schema": _core_node(node["schema"])}
        if func in _CORE_REQUIRE_ANY:
            inner = _core_node(node["schema"])
            if inner["t"] != "fields":
                raise TypeError("a model validator wraps a model")
            return {**inner, "require_any": _CORE_REQUIRE_ANY[func]}
        raise TypeError(f"validator {func!r} is not in the core")
    raise TypeError(f"{kind} schema: not in the core")


def _custom_schema() -> dict[str, Any]:
    """The envelope as ``PostureEvent`` checks a custom type's (open payload), as a
    plain core schema: its fields without the registry payload hook."""
    fields: dict[str, Any] = {
        name: (f.annotation, f) for name, f in PostureEvent.model_fields.items()
    }
    model = create_model("PostureEvent[custom]", __config__=PostureEvent.model_config, **fields)
    schema: dict[str, Any] = _plain(model.__pydantic_core_schema__)
    if schema.get("type") != "model-fields":
        raise TypeError("unexpected core schema for the envelope")
    return schema


def core_contract_spec() -> dict[str, Any]:
    """The core's description of every registry type's envelope (``_typed_schema``), and
    under ``"*"`` of the envelope of any other type (``_custom_schema``)."""
    out = {}
    schemas = {t: _typed_schema(t) for t in REGISTRY} | {"*": _custom_schema()}
    for t, schema in schemas.items():
        if not schema.get("extra_behavior"):
            schema = {**schema, "extra_behavior": PostureEvent.model_config.get("extra")}
        out[t] = _core_node(schema)
    return out


@functools.cache
def core_contract() -> _core.Contract:
    """The envelope contract (registry and custom types) compiled into the core:
    passes an event text only if ``check_envelope`` would, without the GIL (the
    server's fast path)."""
    return _core.Contract(orjson.dumps(core_contract_spec()))
