"""The outbox's records: destinations, outbox rows, attempts and what a delivery decided."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, NamedTuple

import orjson

from agent_bom.errors import ConfigError, InvalidEvent

__all__ = [
    "KINDS",
    "ORDERED_KINDS",
    "SEVERITIES",
    "SIGNING_SCHEMES",
    "Attempt",
    "Claimed",
    "Completion",
    "Destination",
    "EnqueueResult",
    "OutboundEvent",
    "OutboxRow",
    "Status",
    "StreamRow",
]

SEVERITIES = ("info", "low", "medium", "high", "critical")
KINDS = ("webhook", "kafka")
# Destinations delivered as an ordered stream under a cursor (schema step 4).
ORDERED_KINDS = ("kafka",)
SIGNING_SCHEMES = ("v1", "v1a", "v1+v1a")
_CE_PREFIX = "io.agentbom."
_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/.+)$")


class Status(StrEnum):
    PENDING = "pending"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    DEAD_LETTER = "dead_letter"


def event_type_of(ce_type: str) -> str:
    """The envelope type of a CloudEvent type (registry types drop ``io.agentbom.``)."""
    return ce_type[len(_CE_PREFIX) :] if ce_type.startswith(_CE_PREFIX) else ce_type


def check_credential_ref(ref: str) -> str:
    if not _REF.match(ref):
        # Never echo it: a wrong value here is often the secret itself.
        shown = ref.split(":", 1)[0] + ":…" if ":" in ref else f"a {len(ref)}-character value"
        raise ConfigError(
            f"credential reference ({shown}) is not env:NAME or file:/absolute/path; "
            "store the secret in an environment variable or a file and pass its reference "
            "(if you passed the secret itself, it is now in your shell history: rotate it)"
        )
    return ref


@dataclass(frozen=True)
class Destination:
    """Where a tenant's events go. Holds a credential *reference*, never a secret."""

    id: str
    tenant_id: str
    kind: str
    url: str
    secret_ref: str | None
    signing: str = "v1"
    event_types: tuple[str, ...] = ()
    min_severity: str | None = None
    allow_private_network: bool = False
    allow_http: bool = False
    enabled: bool = True
    disabled_reason: str | None = None
    created_at: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)

    def matches(self, event_type: str, severity: str | None) -> bool:
        """Whether an event passes this destination's type and severity filters.

        An event without a severity passes a severity filter only when it has none."""
        if self.event_types and event_type not in self.event_types:
            return False
        if self.min_severity is not None:
            if severity not in SEVERITIES:
                return False
            return SEVERITIES.index(severity) >= SEVERITIES.index(self.min_severity)
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "kind": self.kind,
            "url": self.url,
            "secret_ref": self.secret_ref,
            "signing": self.signing,
            "event_types": list(self.event_types),
            "min_severity": self.min_severity,
            "allow_private_network": self.allow_private_network,
            "allow_http": self.allow_http,
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "created_at": self.created_at,
            "config": self.config,
        }


@dataclass(frozen=True)
class OutboundEvent:
    """One CloudEvent to deliver: its exact bytes and what fan-out filters on."""

    tenant_id: str
    event_id: str
    event_type: str
    severity: str | None
    body: bytes

    @classmethod
    def from_cloudevent(cls, line: bytes) -> OutboundEvent:
        """Read the routing fields of one line of ``evidence stream`` output.

        The body is kept byte for byte: it is what gets signed and sent."""
        body = line.rstrip(b"\r\n")
        try:
            ce = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise InvalidEvent(f"not JSON: {e}; expected one CloudEvent per line") from None
        if not isinstance(ce, dict):
            raise InvalidEvent("not a JSON object; expected one CloudEvent per line")
        missing = [k for k in ("id", "type", "tenantid") if not isinstance(ce.get(k), str)]
        if missing:
            raise InvalidEvent(
                f"CloudEvent attribute {', '.join(missing)} missing or not a string; "
                "enqueue the output of `agent-bom evidence stream`"
            )
        severity = ce.get("severity")
        return cls(
            tenant_id=ce["tenantid"],
            event_id=ce["id"],
            event_type=event_type_of(ce["type"]),
            severity=severity if isinstance(severity, str) else None,
            body=body,
        )


# Rows and completions are made by the thousand per claim: named tuples are immutable
# like a frozen dataclass and about ten times cheaper to build.
class OutboxRow(NamedTuple):
    id: int
    tenant_id: str
    destination_id: str
    event_id: str
    event_type: str
    body: bytes
    status: Status
    attempts: int
    next_attempt_at: float
    next_trigger: str
    lease_owner: str | None
    lease_expires_at: float | None
    last_status: int | None
    last_error: str | None
    created_at: float
    updated_at: float

    def to_dict(self, *, body: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "destination_id": self.destination_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "status": str(self.status),
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "next_trigger": self.next_trigger,
            "lease_owner": self.lease_owner,
            "lease_expires_at": self.lease_expires_at,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if body:
            d["body"] = self.body.decode("utf-8", "replace")
        return d


class StreamRow(NamedTuple):
    """A row of a stream as a send needs it. A row in a stream has never been attempted
    (one that fails leaves the stream), so the rest of it is known; made for every
    record sent, so it holds only atoms (the collector stops tracking it)."""

    id: int
    tenant_id: str
    event_id: str
    event_type: str
    body: bytes

    def row(self, destination_id: str) -> OutboxRow:
        """The whole row (for a failure's bookkeeping)."""
        return OutboxRow(self.id, self.tenant_id, destination_id, self.event_id,
                         self.event_type, self.body, Status.PENDING, 0, 0.0, "scheduled",
                         None, None, None, None, 0.0, 0.0)  # fmt: skip


@dataclass(frozen=True)
class Claimed:
    """A row leased to one worker, with the destination it goes to."""

    row: OutboxRow
    destination: Destination


@dataclass(frozen=True)
class Attempt:
    outbox_id: int
    attempt: int
    trigger: str
    status_code: int | None
    latency_ms: float | None
    error: str | None
    response_excerpt: str | None
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "outbox_id": self.outbox_id,
            "attempt": self.attempt,
            "trigger": self.trigger,
            "status_code": self.status_code,
            "latency_ms": self.latency_ms,
            "error": self.error,
            "response_excerpt": self.response_excerpt,
            "at": self.at,
        }


Transition = Literal["delivered", "retry", "dead_letter", "defer", "release"]


class Completion(NamedTuple):
    """What one send decided for a leased row.

    ``delivered``/``retry``/``dead_letter`` record an attempt; ``defer`` (circuit open)
    and ``release`` (shutdown) hand the row back without counting an attempt."""

    row_id: int
    lease_owner: str
    transition: Transition
    at: float
    next_attempt_at: float | None = None
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    response_excerpt: str | None = None
    disable_destination: str | None = None
    notices: tuple[OutboundEvent, ...] = ()


@dataclass(frozen=True)
class EnqueueResult:
    events: int = 0
    rows: int = 0
    duplicates: int = 0
    unmatched: int = 0

    def __add__(self, other: EnqueueResult) -> EnqueueResult:
        return EnqueueResult(
            self.events + other.events,
            self.rows + other.rows,
            self.duplicates + other.duplicates,
            self.unmatched + other.unmatched,
        )
