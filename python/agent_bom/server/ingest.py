"""From a collector's batch to stored, chained events: validate, authorize, redact, append.

Each event gets its own verdict; a bad event never stops the good ones."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from agent_bom import _core
from agent_bom.envelope import check_envelopes, core_contract, epoch_millis
from agent_bom.redaction import load_redactor
from agent_bom.server.store import Collector, EventStore, Replay, audit_record

__all__ = ["EventResult", "IngestResult", "ingest", "split_body"]


@dataclass(slots=True)  # one per event of every request: plain slots, cheap to make
class EventResult:
    index: int
    status: str  # accepted | duplicate | rejected
    event_id: str | None = None
    seq: int | None = None
    code: str | None = None  # for rejected: INVALID_EVENT, FORBIDDEN, MALFORMED_JSON, …
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.seq is not None and self.code is None and self.reason is None:
            # accepted: the common case, built in one go
            return {
                "index": self.index,
                "status": self.status,
                "event_id": self.event_id,
                "seq": self.seq,
            }
        d: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.event_id is not None:
            d["event_id"] = self.event_id
        if self.seq is not None:
            d["seq"] = self.seq
        if self.code is not None:
            d["code"] = self.code
        if self.reason is not None:
            d["reason"] = self.reason
        return d


@dataclass
class IngestResult:
    events: list[EventResult] = field(default_factory=list)
    redactions_by_rule: dict[str, int] = field(default_factory=dict)
    lags: list[float] = field(default_factory=list)  # seconds from event time to acceptance

    def count(self, status: str) -> int:
        return sum(e.status == status for e in self.events)

    @property
    def status(self) -> int:
        """200 all accepted or duplicate, 207 mixed, 403/400 all rejected."""
        codes = [e.code for e in self.events if e.status == "rejected"]
        return _status(codes, len(self.events))

    def to_dict(self) -> dict[str, Any]:
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        events = []
        for e in self.events:
            counts[e.status] += 1
            events.append(e.to_dict())
        return {
            "accepted": counts["accepted"],
            "duplicates": counts["duplicate"],
            "rejected": counts["rejected"],
            "events": events,
        }


def _status(rejected_codes: Sequence[str | None], total: int) -> int:
    """A batch's status from the codes of its rejected events."""
    if not rejected_codes:
        return 200
    if len(rejected_codes) < total:
        return 207
    return 403 if all(c == "FORBIDDEN" for c in rejected_codes) else 400


class BadBody(ValueError):
    """The request body is not a JSON array or NDJSON of objects."""


def split_body(body: bytes, content_type: str) -> list[Any]:
    """The events of a body, for ``ingest``: the texts of a JSON array's elements, or
    the lines of NDJSON (each parsed on its own, so a bad line only rejects itself).
    A JSON array that does not parse is a 400 naming where (orjson's words)."""
    stripped = body.lstrip()
    if stripped.startswith(b"[") and "ndjson" not in content_type:
        # Split by the core without the GIL; what it cannot split, orjson parses (and
        # names the error of).
        items = _core.split_json_array(body)
        if items is not None:
            return items
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise BadBody(f"body is not valid JSON: {e}") from None
        if not isinstance(parsed, list):
            raise BadBody("body must be a JSON array of events or NDJSON")
        return parsed
    return [line for line in body.split(b"\n") if line.strip()]


def _scope_values(event: dict[str, Any]) -> dict[str, str | None]:
    payload = event.get("payload") if isinstance(event.get("payload"), dict) else {}
    repo = payload.get("repository") if isinstance(payload, dict) else None
    for ref in event.get("entity_refs") or []:
        if isinstance(ref, dict) and ref.get("kind") == "repo":
            repo = repo or ref.get("id")
    return {
        "event_types": event.get("event_type"),
        "connectors": payload.get("connector") if isinstance(payload, dict) else None,
        "repos": repo if isinstance(repo, str) else None,
        "environments": payload.get("environment") if isinstance(payload, dict) else None,
    }


_CONTROL = re.compile("[\x00-\x1f\x7f]")
# Longer event texts go the Python way: the store's line limit (1 MiB) applies to
# the compact text Python writes, which may be longer than the given one ("1E2" ->
# "100.0"), so only texts far below it are passed on as given.
_FAST_MAX_BYTES = 1 << 18
_SCOPE_NAMES = {
    "event_types": "event type",
    "connectors": "connector",
    "repos": "repository",
    "environments": "environment",
}


def _denied(collector: Collector, values: dict[str, str | None]) -> str:
    """Why ``collector``'s scope refuses an event with these scope values ('' if not)."""
    return "; ".join(
        f"{_SCOPE_NAMES[k]} {v!r} is outside collector {collector.id}'s scope"
        for k, v in values.items()
        if not collector.allows(k, v)
    )


def ingest(
    store: EventStore,
    collector: Collector,
    raw_events: Sequence[Any],
    *,
    redactor: Any = None,
    audit: tuple[str, str, dict[str, Any], str] | None = None,
    replay: Replay | None = None,
) -> IngestResult:
    """Validate (contracts), authorize (collector scope, tenant), then redact, chain and
    store the rest in one transaction with their outbox rows.

    Each of ``raw_events`` is a JSON text (bytes) or an already parsed JSON value.
    ``audit`` = (actor, action, request summary, time): the request's audit record,
    chained in the same transaction with the outcome status. ``replay``: the request's
    replay-guard entry, claimed in that transaction too (``Replayed`` when taken)."""
    tenant = collector.tenant_id
    scoped = any(collector.scope.values())  # an unscoped collector may post any event
    verdicts: list[EventResult | None] = [None] * len(raw_events)  # None: passing
    passing: dict[int, bytes] = {}  # index -> the event's text for the store
    newest: int | None = None  # the newest passing event's created_at (epoch ms)
    slow: Iterable[int] = range(len(raw_events))
    if raw_events and all(type(r) is bytes for r in raw_events):
        # The core passes the events the contract passes, without the GIL; the rest
        # (each one's problems named by pydantic) go the Python way below.
        fast, texts, newest, scopes = core_contract().check(
            list(raw_events), tenant, scoped=scoped, max_bytes=_FAST_MAX_BYTES
        )
        if scopes is None:
            passing = dict(zip(fast, texts, strict=True))
        else:
            newest = None  # of the events the scope lets through
            for i, text, (*values, created) in zip(fast, texts, scopes, strict=True):
                denied = _denied(collector, dict(zip(_SCOPE_NAMES, values, strict=True)))
                if denied:
                    verdicts[i] = EventResult(i, "rejected", code="FORBIDDEN", reason=denied)
                else:
                    passing[i] = text
                    newest = created if newest is None else max(newest, created)
        if len(fast) < len(raw_events):
            done = set(fast)
            slow = [i for i in range(len(raw_events)) if i not in done]
        else:
            slow = ()
    candidates: list[tuple[int, dict[str, Any]]] = []
    for i in slow:
        raw = raw_events[i]
        if isinstance(raw, bytes):
            try:
                event = orjson.loads(raw)
            except orjson.JSONDecodeError as e:
                verdicts[i] = EventResult(i, "rejected", code="MALFORMED_JSON", reason=f"{e}")
                continue
        else:
            event = raw
        if not isinstance(event, dict):
            verdicts[i] = EventResult(
                i, "rejected", code="INVALID_EVENT", reason="an event is a JSON object"
            )
            continue
        claimed = event.get("tenant_id", tenant)
        if claimed != tenant:
            verdicts[i] = EventResult(
                i,
                "rejected",
                code="FORBIDDEN",
                reason=f"tenant_id {claimed!r} is not this collector's tenant; "
                "leave tenant_id out (it comes from the credential)",
            )
            continue
        event["tenant_id"] = tenant
        event_id = event.get("event_id")
        if isinstance(event_id, str) and (len(event_id) > 256 or _CONTROL.search(event_id)):
            verdicts[i] = EventResult(
                i,
                "rejected",
                code="INVALID_EVENT",
                reason="$.event_id: at most 256 characters, no control characters",
            )
            continue
        candidates.append((i, event))
    # The id is derived by the core when the producer gave none. A batch of valid
    # registry events is checked in one call.
    checked = check_envelopes(
        [event if "event_id" in event else {**event, "event_id": "x"} for _, event in candidates]
    )
    for (i, event), problems in zip(candidates, checked, strict=True):
        if problems:
            reason = "; ".join(map(str, problems[:5]))
            verdicts[i] = EventResult(i, "rejected", code="INVALID_EVENT", reason=reason)
            continue
        if scoped:
            denied = _denied(collector, _scope_values(event))
            if denied:
                verdicts[i] = EventResult(i, "rejected", code="FORBIDDEN", reason=denied)
                continue
        passing[i] = orjson.dumps(event)
        millis = epoch_millis(event["created_at"])
        if millis is not None and (newest is None or millis[0] > newest):
            newest = millis[0]
    result = IngestResult()

    def merged(stored: list[tuple[str, Any, Any]]) -> list[EventResult]:
        it = iter(stored)
        out: list[EventResult] = []
        for i, v in enumerate(verdicts):
            if v is not None:
                out.append(v)
                continue
            status, a, b = next(it)
            if status == "rejected":
                out.append(EventResult(i, "rejected", code=str(a), reason=str(b)))
            else:
                out.append(EventResult(i, status, a, b))  # the core's id: a str
        return out

    def audit_of(prepared: list[tuple[str, Any, Any]]) -> bytes:
        # prepared: the core's verdict per passing event (duplicates are no rejection)
        assert audit is not None
        actor, action, summary, at = audit
        codes = [v.code for v in verdicts if v is not None]
        codes += [str(a) for kind, a, _ in prepared if kind == "rejected"]
        outcome = _status(codes, len(verdicts))
        return audit_record(actor=actor, action=action, outcome=outcome, summary=summary, at=at)

    if passing:
        stored, result.redactions_by_rule = store.append(
            tenant,
            [passing[i] for i in sorted(passing)] if slow else list(passing.values()),
            redactor=redactor if redactor is not None else load_redactor(),
            audit=audit_of if audit is not None else None,
            replay=replay,
        )
        result.events = merged(stored)
        # One lag sample per request: the newest event's (by instant, not by text:
        # offsets differ between collectors).
        if newest is not None and result.count("accepted"):
            result.lags.append(time.time() - newest / 1000)
        return result
    result.events = [v for v in verdicts if v is not None]
    if audit is not None:
        actor, action, summary, at = audit
        store.append_audit(
            tenant,
            actor=actor,
            action=action,
            outcome=result.status,
            summary=summary,
            at=at,
            replay=replay,
        )
    elif replay is not None:
        store.claim(replay.key, now=replay.now, keep_for=replay.keep_for, strict=True)
    return result
