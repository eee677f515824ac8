"""The scanner-ingest contract: HMAC over ``v2:{timestamp}:{scan_id}:{tool_name}:{sha256(body)}``.

No unsigned or body-less variant exists: the body's digest is always signed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from agent_bom.errors import SignatureInvalid

__all__ = ["check_scan_signature", "scan_finding", "sign_scan"]

_SEVERITIES = {"info", "low", "medium", "high", "critical"}


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign_scan(secret: str, body: bytes, scan_id: str, tool_name: str, timestamp: int) -> str:
    """The ``X-Webhook-Signature`` value (``v2=`` + hex HMAC-SHA256)."""
    message = f"v2:{timestamp}:{scan_id}:{tool_name}:{hashlib.sha256(body).hexdigest()}"
    return "v2=" + hmac.new(_key(secret), message.encode(), hashlib.sha256).hexdigest()


def check_scan_signature(
    secret: str,
    body: bytes,
    scan_id: str,
    tool_name: str,
    signature: str | None,
    timestamp: str | None,
    *,
    tolerance: int,
    now: float | None = None,
) -> int:
    """The verified timestamp, or ``SignatureInvalid`` saying what is wrong."""
    if not signature or not timestamp:
        raise SignatureInvalid("missing X-Webhook-Signature or X-Webhook-Timestamp")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureInvalid("X-Webhook-Timestamp must be Unix seconds")
    stamp = int(timestamp)
    if abs((time.time() if now is None else now) - stamp) > tolerance:
        raise SignatureInvalid(f"X-Webhook-Timestamp is more than {tolerance}s from now")
    expected = sign_scan(secret, body, scan_id, tool_name, stamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise SignatureInvalid("X-Webhook-Signature does not verify over this body")
    return stamp


def scan_finding(doc: dict[str, Any], finding: dict[str, Any], index: int) -> dict[str, Any]:
    """A scanner's finding as a ``finding.created`` envelope (tenant from the collector)."""
    severity = str(finding.get("severity", "")).lower()
    payload = {k: v for k, v in finding.items() if k not in ("severity", "created_at")}
    payload.setdefault("finding_id", f"{doc['scan_id']}-{index}")
    payload.setdefault("title", str(finding.get("title") or finding.get("rule_id") or "finding"))
    event: dict[str, Any] = {
        "event_id": f"{doc['tool_name']}:{doc['scan_id']}:{payload['finding_id']}",
        "event_type": "finding.created",
        "created_at": finding.get("created_at") or doc.get("completed_at") or doc.get("created_at"),
        "source": f"urn:agent-bom:scanner:{doc['tool_name']}",
        "payload": payload,
    }
    if severity in _SEVERITIES:
        event["severity"] = severity
    return event
