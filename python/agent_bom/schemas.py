"""Published contracts, generated from the models in ``agent_bom.envelope``.

- ``posture-event.v1.schema.json``: JSON Schema 2020-12 of the envelope, the
  registry as a union discriminated by ``event_type``;
- ``evidence-event.v1.schema.json``: the CloudEvent (DESIGN §4) carrying it;
- ``asyncapi.yaml``: AsyncAPI 3.0 for the Kafka topic, webhook delivery and the
  SSE stream, with messages referencing those schemas.

``render()`` gives the exact bytes; ``export(dir)`` writes them. The checked-in
``schemas/`` directory must equal ``render()`` (a test keeps it fresh).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from agent_bom.envelope import (
    PAYLOAD_EXAMPLES,
    REGISTRY,
    REGISTRY_TYPES,
    TENANT_PATTERN,
    TYPE_PREFIX,
    EvidenceEvent,
    PostureEvent,
)
from agent_bom.errors import ConfigError

__all__ = [
    "ASYNCAPI",
    "EVIDENCE_EVENT",
    "EVIDENCE_EVENT_ID",
    "FILES",
    "JSON_SCHEMA_DIALECT",
    "POSTURE_EVENT",
    "POSTURE_EVENT_ID",
    "asyncapi",
    "evidence_event_schema",
    "export",
    "posture_event_schema",
    "render",
    "stale",
    "to_yaml",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
POSTURE_EVENT = "posture-event.v1.schema.json"
EVIDENCE_EVENT = "evidence-event.v1.schema.json"
# Location-independent ids: tools resolve one schema's reference to the other by $id.
POSTURE_EVENT_ID = "urn:agent-bom:schema:posture-event:v1"
EVIDENCE_EVENT_ID = "urn:agent-bom:schema:evidence-event:v1"
ASYNCAPI = "asyncapi.yaml"
FILES = (POSTURE_EVENT, EVIDENCE_EVENT, ASYNCAPI)

KAFKA_TOPIC = "agent-bom.evidence.v1"
SSE_PATH = "/v1/events/stream"


class _Generator(GenerateJsonSchema):
    """Optional members are absent-or-typed, never null (the core rejects null)."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        out = super().default_schema(schema)
        if out.get("default", 0) is None:
            del out["default"]
        return out

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def _model_schemas(models: list[type[BaseModel]]) -> dict[str, Any]:
    _, top = models_json_schema(
        [(m, "validation") for m in models],
        ref_template="#/$defs/{model}",
        schema_generator=_Generator,
    )
    defs: dict[str, Any] = top["$defs"]
    return defs


def posture_event_schema() -> dict[str, Any]:
    """JSON Schema 2020-12 of the envelope with each registry type's payload contract."""
    payload_models = list(dict.fromkeys(REGISTRY[t] for t in REGISTRY_TYPES))
    defs = _model_schemas([PostureEvent, *payload_models])
    root = defs.pop("PostureEvent")
    for t in REGISTRY_TYPES:
        examples = defs[REGISTRY[t].__name__].setdefault("examples", [])
        examples.append(dict(PAYLOAD_EXAMPLES[t]))
    branches: list[dict[str, Any]] = []
    for t in REGISTRY_TYPES:
        model = REGISTRY[t]
        branches.append(
            {
                "title": t,
                "properties": {
                    "event_type": {"const": t},
                    "payload": {"$ref": f"#/$defs/{model.__name__}"},
                },
                "required": ["event_type", "payload"],
            }
        )
    branches.append(
        {
            "title": "custom reverse-DNS type (open payload)",
            "properties": {"event_type": {"not": {"enum": list(REGISTRY_TYPES)}}},
            "required": ["event_type"],
        }
    )
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": POSTURE_EVENT_ID,
        "title": "agent-bom posture event envelope (schema_version 1)",
        "description": (
            "The canonical envelope of a security evidence event (agent-bom DESIGN §3). "
            "Exactly one branch of oneOf applies: the registry type named by event_type, "
            "whose payload must satisfy that type's contract, or a custom reverse-DNS type "
            "with an open payload. Version 1 grows additively only."
        ),
        **{k: v for k, v in root.items() if k not in ("title", "$comment", "description")},
        "oneOf": branches,
        "$defs": dict(sorted(defs.items())),
    }


def evidence_event_schema() -> dict[str, Any]:
    """JSON Schema 2020-12 of an evidence record: the CloudEvent carrying the envelope."""
    defs = _model_schemas([EvidenceEvent])
    root = defs.pop("EvidenceEvent")
    root["properties"]["data"] = {
        "$ref": POSTURE_EVENT_ID,
        "description": f"The posture event envelope ({POSTURE_EVENT}).",
    }
    # Only what the CloudEvent itself references stays (the envelope's defs live there).
    text = json.dumps(root)
    used = {name for name in defs if f'"#/$defs/{name}"' in text}
    pairs = [
        {
            "if": {"properties": {"type": {"const": TYPE_PREFIX + t}}, "required": ["type"]},
            "then": {"properties": {"data": {"properties": {"event_type": {"const": t}}}}},
        }
        for t in REGISTRY_TYPES
    ]
    out: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": EVIDENCE_EVENT_ID,
        "title": "agent-bom evidence record (CloudEvents 1.0, structured JSON)",
        "description": (
            "One line of an agent-bom evidence stream (DESIGN §4): a CloudEvent whose data is "
            "the posture event envelope, with the chain extensions. Registry types are "
            "io.agentbom.<event_type>. Equalities the schema cannot express (id = data.event_id, "
            "source = data.source, tenantid = data.tenant_id, time = data.created_at in UTC, "
            "subject = data.entity_refs[0].id) are checked by 'agent-bom schema validate'; "
            "hashes and the chain by 'agent-bom evidence verify'."
        ),
        **{k: v for k, v in root.items() if k not in ("title", "description")},
        "propertyNames": {"pattern": "^[a-z0-9]{1,20}$"},
        "allOf": pairs,
    }
    if used:
        out["$defs"] = {k: defs[k] for k in sorted(used)}
    return out


def _headers(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required}


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document (as a dict)."""
    multi = "application/schema+json;version=draft-2020-12"
    envelope_ref = {"schemaFormat": multi, "schema": {"$ref": f"./{POSTURE_EVENT}"}}
    record_ref = {"schemaFormat": multi, "schema": {"$ref": f"./{EVIDENCE_EVENT}"}}
    hexhash = {"type": "string", "pattern": "^(sha256|blake3):[0-9a-f]{64}$"}
    ce_headers = {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "description": "event_id"},
        "ce_source": {"type": "string"},
        "ce_type": {"type": "string", "description": "io.agentbom.<event_type> or a custom type"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string"},
        "ce_tenantid": {"type": "string", "pattern": TENANT_PATTERN},
        "ce_severity": {"type": "string", "enum": ["info", "low", "medium", "high", "critical"]},
        "ce_redactions": {"type": "string", "pattern": "^[0-9]+$"},
        "ce_streamid": {"type": "string"},
        "ce_seq": {"type": "string", "pattern": "^[0-9]+$"},
        "ce_contenthash": hexhash,
        "ce_chainhash": hexhash,
        "ce_traceparent": {"type": "string"},
        "ce_tracestate": {"type": "string"},
        "content-type": {"type": "string", "const": "application/json"},
    }
    webhook_headers = {
        "webhook-id": {"type": "string", "description": "The event_id (idempotency key)."},
        "webhook-timestamp": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "Unix seconds when the attempt was signed.",
        },
        "webhook-signature": {
            "type": "string",
            "description": (
                "Space-separated signatures over '<webhook-id>.<webhook-timestamp>.<body>': "
                "'v1,<base64 HMAC-SHA256>' and/or 'v1a,<base64 Ed25519>'; several during "
                "key rotation (Standard Webhooks)."
            ),
            "pattern": "^(v1a?,[A-Za-z0-9+/=]+)( v1a?,[A-Za-z0-9+/=]+)*$",
        },
        "content-type": {"type": "string", "const": "application/cloudevents+json"},
    }
    return {
        "asyncapi": "3.0.0",
        "id": "urn:agent-bom:evidence-events",
        "info": {
            "title": "agent-bom evidence events",
            "version": "1",
            "description": (
                "Sealed security evidence from agent-bom: one CloudEvent per event whose "
                "data is the posture event envelope (schema_version 1). Generated by "
                "'agent-bom schema export'."
            ),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "kafka": {
                "host": "kafka.example.com:9092",
                "protocol": "kafka",
                "description": "Kafka cluster used as the distribution log.",
            },
            "webhook": {
                "host": "hooks.example.com",
                "protocol": "https",
                "description": "A subscriber's webhook endpoint (any URL the destination names).",
            },
            "server": {
                "host": "agent-bom.example.com",
                "protocol": "https",
                "description": "The agent-bom ingestion server ('agent-bom serve').",
            },
        },
        "channels": {
            "evidence": {
                "address": KAFKA_TOPIC,
                "title": "Kafka evidence topic",
                "description": (
                    "Keyed by tenant id; idempotent producer (acks=all). CloudEvents binary "
                    "mode by default (attributes in ce_ headers, the envelope as the value); "
                    "structured mode optional."
                ),
                "servers": [{"$ref": "#/servers/kafka"}],
                "messages": {
                    "binary": {"$ref": "#/components/messages/KafkaBinaryEvidence"},
                    "structured": {"$ref": "#/components/messages/KafkaStructuredEvidence"},
                },
            },
            "webhook": {
                "address": "/",
                "title": "Webhook delivery",
                "description": (
                    "POST of one evidence record, body = the CloudEvent's exact bytes, signed "
                    "with Standard Webhooks headers. Retried with backoff; dead-lettered after "
                    "the last attempt. Receivers deduplicate on webhook-id."
                ),
                "servers": [{"$ref": "#/servers/webhook"}],
                "messages": {"evidence": {"$ref": "#/components/messages/WebhookEvidence"}},
            },
            "stream": {
                "address": SSE_PATH,
                "title": "Server-Sent Events stream",
                "description": (
                    "text/event-stream of evidence records for the caller's tenant: each SSE "
                    "event has 'id: <streamid>:<seq>', 'event: <CloudEvent type>' and "
                    "'data: <the CloudEvent JSON>'. Reconnect with Last-Event-ID to resume."
                ),
                "servers": [{"$ref": "#/servers/server"}],
                "messages": {"evidence": {"$ref": "#/components/messages/SseEvidence"}},
            },
        },
        "operations": {
            "publishEvidence": {
                "action": "send",
                "title": "Publish evidence to Kafka",
                "channel": {"$ref": "#/channels/evidence"},
                "messages": [
                    {"$ref": "#/channels/evidence/messages/binary"},
                    {"$ref": "#/channels/evidence/messages/structured"},
                ],
            },
            "deliverWebhook": {
                "action": "send",
                "title": "Deliver evidence to a webhook",
                "channel": {"$ref": "#/channels/webhook"},
                "messages": [{"$ref": "#/channels/webhook/messages/evidence"}],
                "bindings": {"http": {"method": "POST", "bindingVersion": "0.3.0"}},
            },
            "streamEvidence": {
                "action": "send",
                "title": "Stream evidence over SSE",
                "channel": {"$ref": "#/channels/stream"},
                "messages": [{"$ref": "#/channels/stream/messages/evidence"}],
            },
        },
        "components": {
            "messages": {
                "KafkaBinaryEvidence": {
                    "name": "KafkaBinaryEvidence",
                    "title": "Evidence record, CloudEvents Kafka binary mode",
                    "contentType": "application/json",
                    "headers": _headers(
                        ce_headers,
                        [
                            "ce_specversion",
                            "ce_id",
                            "ce_source",
                            "ce_type",
                            "ce_time",
                            "ce_tenantid",
                            "ce_streamid",
                            "ce_seq",
                            "ce_contenthash",
                            "ce_chainhash",
                        ],
                    ),
                    "payload": envelope_ref,
                    "bindings": {
                        "kafka": {
                            "key": {"type": "string", "description": "tenant_id"},
                            "bindingVersion": "0.5.0",
                        }
                    },
                },
                "KafkaStructuredEvidence": {
                    "name": "KafkaStructuredEvidence",
                    "title": "Evidence record, CloudEvents structured mode",
                    "contentType": "application/cloudevents+json",
                    "payload": record_ref,
                    "bindings": {
                        "kafka": {
                            "key": {"type": "string", "description": "tenant_id"},
                            "bindingVersion": "0.5.0",
                        }
                    },
                },
                "WebhookEvidence": {
                    "name": "WebhookEvidence",
                    "title": "Evidence record delivered to a webhook",
                    "contentType": "application/cloudevents+json",
                    "headers": _headers(
                        webhook_headers, ["webhook-id", "webhook-timestamp", "webhook-signature"]
                    ),
                    "payload": record_ref,
                },
                "SseEvidence": {
                    "name": "SseEvidence",
                    "title": "Evidence record as one Server-Sent Event",
                    "contentType": "application/cloudevents+json",
                    "payload": record_ref,
                },
            }
        },
    }


# --- serialization -----------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$.-]*")


_YAML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
# Keys YAML 1.1 would read as booleans or null.
_YAML_RESERVED = frozenset(["y", "n", "yes", "no", "true", "false", "on", "off", "null"])


def _yaml_char(c: str) -> str:
    if c in _YAML_ESCAPES:
        return _YAML_ESCAPES[c]
    o = ord(c)
    printable = (
        0x20 <= o <= 0x7E
        or (0xA0 <= o <= 0xD7FF and c not in "\u2028\u2029")
        or (0xE000 <= o <= 0xFFFD and o != 0xFEFF)
        or o >= 0x10000
    )
    if printable:
        return c
    return f"\\x{o:02x}" if o <= 0xFF else f"\\u{o:04x}"


def _yaml_string(s: str) -> str:
    """A YAML double-quoted scalar: printable characters as they are, the rest escaped."""
    return '"' + "".join(_yaml_char(c) for c in s) + '"'


def _yaml_scalar(v: Any) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        # YAML 1.1 floats need a '.' in the mantissa (1e-05 would read as a string).
        mantissa, e, exponent = repr(v).partition("e")
        return (mantissa if "." in mantissa else mantissa + ".0") + e + exponent
    return _yaml_string(str(v))


def _yaml_lines(v: Any, indent: int) -> list[str]:
    pad = "  " * indent
    if isinstance(v, dict):
        if not v:
            return [pad + "{}"]
        out = []
        for k, item in v.items():
            plain = _PLAIN_KEY.fullmatch(k) and k.lower() not in _YAML_RESERVED
            key = k if plain else _yaml_string(k)
            if isinstance(item, dict | list) and item:
                out.append(f"{pad}{key}:")
                out.extend(_yaml_lines(item, indent + 1))
            else:
                out.append(f"{pad}{key}: {_inline(item)}")
        return out
    if isinstance(v, list):
        if not v:
            return [pad + "[]"]
        out = []
        for item in v:
            if isinstance(item, dict | list) and item:
                inner = _yaml_lines(item, indent + 1)
                out.append(f"{pad}- {inner[0].lstrip()}")
                out.extend(inner[1:])
            else:
                out.append(f"{pad}- {_inline(item)}")
        return out
    return [pad + _yaml_scalar(v)]


def _inline(v: Any) -> str:
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return _yaml_scalar(v)


def to_yaml(doc: dict[str, Any]) -> str:
    """Block-style YAML for JSON-like data (every string double-quoted, so nothing is
    reinterpreted as a number, bool or date)."""
    return "\n".join(_yaml_lines(doc, 0)) + "\n"


def _json(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


def render() -> dict[str, bytes]:
    """File name → exact bytes of every published contract."""
    header = "# Generated by 'agent-bom schema export' from agent_bom.envelope; do not edit.\n"
    return {
        POSTURE_EVENT: _json(posture_event_schema()),
        EVIDENCE_EVENT: _json(evidence_event_schema()),
        ASYNCAPI: (header + to_yaml(asyncapi())).encode(),
    }


def export(out_dir: str | Path) -> list[Path]:
    """Write the published contracts into ``out_dir`` (created if needed); returns the paths."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, data in render().items():
            path = out / name
            path.write_bytes(data)
            written.append(path)
    except OSError as e:
        raise ConfigError(f"cannot write schemas into {str(out)!r}: {e.strerror or e}") from None
    return written


def stale(out_dir: str | Path) -> list[str]:
    """Names of the published files in ``out_dir`` that are missing or differ from ``render()``."""
    out = Path(out_dir)
    changed = []
    for name, data in render().items():
        path = out / name
        try:
            current = path.read_bytes()
        except OSError:
            current = None
        if current != data:
            changed.append(name)
    return changed
