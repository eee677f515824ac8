"""The outbox's own events (``delivery.dead_lettered``), made by the core like any other."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import orjson

from agent_bom.outbox.model import OutboundEvent, OutboxRow

__all__ = ["dead_lettered"]

SOURCE = "agent-bom://outbox"


def dead_lettered(
    row: OutboxRow, *, attempts: int, reason: str, last_status: int | None, at: float
) -> OutboundEvent:
    """A ``delivery.dead_lettered`` CloudEvent for ``row``: a sealed one-record stream
    named ``agent-bom.delivery.<tenant>``, so it verifies on its own."""
    from agent_bom.evidence import stream

    payload: dict[str, object] = {
        "destination_id": row.destination_id,
        "event_id": row.event_id,
        "attempts": attempts,
        "reason": reason[:4000],
    }
    if last_status is not None and 100 <= last_status <= 599:
        payload["last_status"] = last_status
    native = {
        "event_type": "delivery.dead_lettered",
        "tenant_id": row.tenant_id,
        "created_at": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
        "source": SOURCE,
        "severity": "medium",
        "payload": payload,
    }
    out = io.BytesIO()
    stream(
        io.BytesIO(orjson.dumps(native) + b"\n"),
        out,
        stream_id=f"agent-bom.delivery.{row.tenant_id}",
        checkpoint_every=0,
        threads=1,
    )
    return OutboundEvent.from_cloudevent(out.getvalue().split(b"\n", 1)[0])
