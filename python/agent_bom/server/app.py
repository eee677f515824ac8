"""The FastAPI app: signed ingest for collectors, token-scoped reads for people.

The tenant always comes from the credential: a collector's key or an API
token. No route takes a tenant from the path, the query or the body.
"""

import asyncio
import io
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import (
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
)
from fastapi.responses import JSONResponse, StreamingResponse

from agent_bom import __version__
from agent_bom import evidence as ev
from agent_bom.envelope import core_contract, epoch_millis
from agent_bom.errors import AgentBomError, Replayed, SignatureInvalid
from agent_bom.outbox import OutboxStore
from agent_bom.redaction import load_redactor
from agent_bom.server.ingest import BadBody, ingest, split_body
from agent_bom.server.keys import ServerKey
from agent_bom.server.metrics import CONTENT_TYPE_LATEST, Metrics
from agent_bom.server.scans import check_scan_signature, scan_finding
from agent_bom.server.store import Collector, EventStore, Replay, StoredEvent
from agent_bom.signing import DEFAULT_TOLERANCE, verify

__all__ = ["ServerConfig", "create_app"]

MAX_ID = 2**62  # ids and cursors fit a signed 64-bit column
_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class ServerConfig:
    max_body_bytes: int = 8 << 20
    max_events: int = 10_000
    tolerance: int = DEFAULT_TOLERANCE
    checkpoint_every: int = 1000
    redact_rules: str | None = None


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    role: str
    token_id: str


def _problem(status: int, detail: str) -> HTTPException:
    return HTTPException(status_code=status, detail=detail)


def create_app(
    store: OutboxStore,
    *,
    config: ServerConfig | None = None,
    server_key: ServerKey | None = None,
) -> FastAPI:
    cfg = config or ServerConfig()
    redactor = load_redactor("mask", None, cfg.redact_rules)
    core_contract()  # built now: a contract the core cannot take stops startup, not requests
    events = EventStore(store, checkpoint_every=cfg.checkpoint_every, redactor=redactor)
    metrics = Metrics(store)
    collectors = _CollectorCache(events)
    app = _App(
        title="agent-bom",
        version=__version__,
        description="Authenticated, tenant-isolated, chained security evidence ingestion.",
    )
    app.state.events = events

    def principal(
        authorization: Annotated[str | None, Header()] = None,
    ) -> Principal:
        if not authorization or not authorization.startswith("Bearer "):
            raise _problem(401, "send an API token as 'Authorization: Bearer abt_…'")
        found = events.token(authorization.removeprefix("Bearer ").strip())
        if found is None:
            raise _problem(401, "unknown API token")
        token_id, tenant, role = found
        return Principal(tenant, role, token_id)

    Auth = Annotated[Principal, Depends(principal)]

    @app.get("/healthz", include_in_schema=True)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        try:
            events.tenants()
        except Exception as e:  # the database is the only dependency
            raise _problem(503, f"database not ready: {type(e).__name__}") from None
        return {"status": "ready"}

    async def ingest_request(
        headers: dict[str, str], chunks: AsyncIterator[bytes]
    ) -> tuple[int, dict[str, Any]]:
        """POST /v1/events from its headers (lower-case names) and body chunks: the
        status and the JSON answer (``{"detail"}`` for an error)."""
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cfg.max_body_bytes:
            return 413, {"detail": f"body over the {cfg.max_body_bytes} byte limit"}
        body = bytearray()
        async for chunk in chunks:
            body += chunk
            if len(body) > cfg.max_body_bytes:
                return 413, {"detail": f"body over the {cfg.max_body_bytes} byte limit"}
        collector_id = headers.get("x-agent-bom-collector")
        if not collector_id:
            return 401, {"detail": "missing x-agent-bom-collector header (the collector id)"}
        content_type = headers.get("content-type", "application/json")
        data, at = bytes(body), _now()

        def accept(collector: Collector, replay: Replay) -> tuple[int, dict[str, Any]]:
            # Authenticated from here on: every outcome is audited in the tenant's chain.
            summary = {"events": 0, "bytes": len(data)}
            try:
                raw = split_body(data, content_type)
                summary["events"] = len(raw)
                if len(raw) > cfg.max_events:
                    raise BadBody(f"{len(raw)} events in one batch; the limit is {cfg.max_events}")
            except BadBody as e:
                status = 413 if "the limit is" in str(e) else 400
                events.append_audit(
                    collector.tenant_id,
                    actor=collector.id,
                    action="events.ingest",
                    outcome=status,
                    summary=summary,
                    at=at,
                    replay=replay,
                )
                return status, {"detail": str(e)}
            result = ingest(
                events,
                collector,
                raw,
                redactor=redactor,
                audit=(collector.id, "events.ingest", summary, at),
                replay=replay,
            )
            metrics.observe(result)
            return result.status, result.to_dict()

        def work() -> tuple[int, dict[str, Any]]:
            # One thread hop for the whole request: lookup, signature, split, ingest.
            collector = collectors.get(collector_id)
            if collector is None or not collector.enabled:
                return 401, {"detail": "unknown or disabled collector"}
            if collector.key_type == "ed25519":
                keys = [collector.public_key or ""]
            elif server_key is None or collector.secret_enc is None:
                return 500, {"detail": "server key not configured for HMAC collectors"}
            else:
                keys = [server_key.open(collector.id, collector.secret_enc)]
            try:
                msg_id = verify(headers, data, keys, cfg.tolerance)
            except SignatureInvalid as e:
                return 401, {"detail": str(e)}
            # The replay guard is claimed in the transaction that stores the batch (or
            # its audit record): one commit per request, and a replay stores nothing.
            replay = Replay(f"{collector.id}:{msg_id}", time.time(), 2 * cfg.tolerance)
            try:
                return accept(collector, replay)
            except Replayed as e:
                return 401, {"detail": str(e)}

        try:
            return await asyncio.to_thread(work)
        except AgentBomError as e:
            metrics.store_failures.inc()
            return 400, {"detail": str(e)}
        except Exception:
            metrics.store_failures.inc()
            raise

    @app.post("/v1/events")
    async def post_events(
        request: Request,
        x_agent_bom_collector: Annotated[str | None, Header()] = None,
        content_type: Annotated[str, Header()] = "application/json",
    ) -> Response:
        """Ingest a batch (JSON array or NDJSON) signed per Standard Webhooks by a collector."""
        # Served by _App's fast path: this route documents it (the headers declared
        # above are read from request.headers, as there), and serves it only when the
        # app is called through FastAPI itself.
        status, payload = await ingest_request(dict(request.headers), request.stream())
        if status >= 400 and "detail" in payload:
            raise _problem(status, payload["detail"])
        return Response(orjson.dumps(payload), status_code=status, media_type="application/json")

    @app.get("/v1/events")
    def list_events(
        who: Auth,
        type: Annotated[list[str] | None, Query()] = None,
        severity: Annotated[str | None, Query(pattern="^(info|low|medium|high|critical)$")] = None,
        since: Annotated[str | None, Query(max_length=64)] = None,
        cursor: Annotated[int, Query(ge=-1, le=MAX_ID)] = -1,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """The tenant's events in chain order; pass `next_cursor` back as `cursor`."""
        if type is not None and (len(type) > 50 or not all(_TYPE.match(t) for t in type)):
            raise _problem(400, "type: up to 50 event types such as finding.created")
        if since is not None and epoch_millis(since) is None:
            raise _problem(400, "since must be an RFC 3339 time, e.g. 2026-05-01T00:00:00Z")
        found = events.events(
            who.tenant_id,
            after_seq=cursor,
            limit=limit,
            event_types=type or (),
            min_severity=severity,
            since=since,
        )
        return {
            "events": [orjson.loads(e.body) for e in found],
            "next_cursor": found[-1].seq if len(found) == limit else None,
        }

    @app.get("/v1/events/{event_id}")
    def get_event(
        who: Auth, event_id: Annotated[str, Path(max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]
    ) -> Response:
        found = events.event(who.tenant_id, event_id)
        if found is None:
            raise _problem(404, f"no event {event_id!r}")
        return Response(found.body, media_type="application/cloudevents+json")

    @app.get("/v1/findings")
    def findings(
        who: Auth,
        cursor: Annotated[int, Query(ge=-1, le=MAX_ID)] = -1,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        found = events.events(
            who.tenant_id,
            after_seq=cursor,
            limit=limit,
            event_types=("finding.created", "finding.updated"),
        )
        return {
            "findings": [orjson.loads(e.body)["data"] for e in found],
            "next_cursor": found[-1].seq if len(found) == limit else None,
        }

    def _export(tenant: str) -> Iterator[bytes]:
        after = -1
        while True:
            page = events.events(tenant, after_seq=after, limit=1000)
            if not page:
                return
            yield b"".join(e.body + b"\n" for e in page)
            after = page[-1].seq

    @app.get("/v1/audit/export")
    def audit_export(who: Auth, seal: bool = True) -> StreamingResponse:
        """The tenant's chain as NDJSON that `agent-bom evidence verify` checks offline."""
        if seal:
            events.seal(who.tenant_id)
        return StreamingResponse(_export(who.tenant_id), media_type="application/x-ndjson")

    @app.get("/v1/audit/verify")
    def audit_verify(who: Auth) -> dict[str, Any]:
        """The core verifier over the tenant's chain as stored."""
        data = b"".join(_export(who.tenant_id))
        report = ev.verify(io.BytesIO(data))
        return report.to_dict()

    @app.get("/v1/posture/stream")
    async def posture_stream(
        who: Auth,
        request: Request,
        channels: str | None = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> StreamingResponse:
        """Server-sent events of the tenant's records; `Last-Event-ID` resumes after a seq."""
        wanted = {c.strip() for c in channels.split(",")} if channels else set()
        try:
            after = int(last_event_id) if last_event_id else -1
        except ValueError:
            raise _problem(
                400, "Last-Event-ID must be the seq of the last event received"
            ) from None

        async def gen() -> AsyncIterator[bytes]:
            nonlocal after
            last_beat = time.monotonic()
            while not await request.is_disconnected():
                page: list[StoredEvent] = await asyncio.to_thread(
                    events.events, who.tenant_id, after_seq=after, limit=500
                )
                for e in page:
                    after = e.seq
                    channel = e.event_type.split(".", 1)[0]
                    if wanted and channel not in wanted and e.event_type not in wanted:
                        continue
                    yield b"id: %d\nevent: %s\ndata: %s\n\n" % (
                        e.seq,
                        e.event_type.encode(),
                        e.body,
                    )
                if not page:
                    if time.monotonic() - last_beat > 15:
                        last_beat = time.monotonic()
                        yield b": heartbeat\n\n"
                    await asyncio.sleep(0.25)

        return StreamingResponse(gen(), media_type="text/event-stream")

    def admin(who: Principal) -> Principal:
        if who.role != "admin":
            raise _problem(403, "this action needs an admin token")
        return who

    @app.get("/v1/posture/webhooks/outbox")
    def outbox_rows(
        who: Auth,
        status: Annotated[
            str | None, Query(pattern="^(pending|delivering|delivered|dead_letter)$")
        ] = None,
        cursor: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """The tenant's outbox rows (no bodies), oldest first."""
        rows = store.list_rows(status=status, tenant_id=who.tenant_id, limit=limit, after_id=cursor)
        return {
            "rows": [r.to_dict() for r in rows],
            "next_cursor": rows[-1].id if len(rows) == limit else None,
        }

    @app.get("/v1/posture/webhooks/outbox/stats")
    def outbox_stats(who: Auth) -> dict[str, Any]:
        return store.stats(who.tenant_id)

    @app.get("/v1/posture/webhooks/outbox/dead-letters")
    def outbox_dead_letters(
        who: Auth, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> dict[str, Any]:
        rows = store.list_rows(status="dead_letter", tenant_id=who.tenant_id, limit=limit)
        return {
            "rows": [
                {**r.to_dict(), "attempts_log": [a.to_dict() for a in store.attempts(r.id)]}
                for r in rows
            ]
        }

    @app.post("/v1/posture/webhooks/outbox/{row_id}/retry")
    def outbox_retry(who: Auth, row_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> dict[str, Any]:
        """Make a row due now (attempts reset, next attempt manual). Admin; audited."""
        outcome = 500
        try:
            admin(who)
            rows = store.list_rows(tenant_id=who.tenant_id, after_id=row_id - 1, limit=1)
            if not rows or rows[0].id != row_id:
                raise _problem(404, f"no outbox row {row_id}")
            row = store.retry(row_id, actor=who.token_id).to_dict()
            outcome = 200
            return row
        except HTTPException as e:
            outcome = e.status_code
            raise
        finally:
            # Chained before the response leaves; if this fails the client sees a 500.
            events.append_audit(
                who.tenant_id,
                actor=who.token_id,
                action="outbox.retry",
                outcome=outcome,
                summary={"row_id": row_id},
                at=_now(),
            )

    @app.post("/v1/webhooks/scan-results")
    async def scan_results(
        request: Request,
        x_agent_bom_collector: Annotated[str | None, Header()] = None,
        x_webhook_signature: Annotated[str | None, Header()] = None,
        x_webhook_timestamp: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        """External scanners: `X-Webhook-Signature` = hex HMAC-SHA256 with the collector's
        secret over `v2:{timestamp}:{scan_id}:{tool_name}:{sha256(raw body)}`."""
        body = await request.body()
        if len(body) > cfg.max_body_bytes:
            raise _problem(413, f"body over the {cfg.max_body_bytes} byte limit")
        collector = await asyncio.to_thread(events.collector, x_agent_bom_collector or "")
        if collector is None or collector.key_type != "hmac" or collector.secret_enc is None:
            raise _problem(401, "unknown collector, or not an HMAC collector")
        if server_key is None:
            raise _problem(500, "server key not configured for HMAC collectors")
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise _problem(400, f"body is not valid JSON: {e}") from None
        if not isinstance(doc, dict) or not all(
            isinstance(doc.get(k), str) and doc[k] for k in ("scan_id", "tool_name")
        ):
            raise _problem(400, "body must be an object with string scan_id and tool_name")
        secret = server_key.open(collector.id, collector.secret_enc)
        try:
            stamp = check_scan_signature(
                secret,
                body,
                doc["scan_id"],
                doc["tool_name"],
                x_webhook_signature,
                x_webhook_timestamp,
                tolerance=cfg.tolerance,
            )
        except SignatureInvalid as e:
            raise _problem(401, str(e)) from None
        first = await asyncio.to_thread(
            events.claim,
            f"{collector.id}:scan:{doc['scan_id']}:{stamp}",
            now=time.time(),
            keep_for=2 * cfg.tolerance,
        )
        if not first:
            raise _problem(401, "this signed scan result was already accepted: replay")
        findings = doc.get("findings") or []
        if not isinstance(findings, list):
            await asyncio.to_thread(
                events.append_audit,
                collector.tenant_id,
                actor=collector.id,
                action="scan_results.ingest",
                outcome=400,
                summary={"scan_id": doc["scan_id"], "tool_name": doc["tool_name"]},
                at=_now(),
            )
            raise _problem(400, "findings must be a list")
        raw = [
            orjson.dumps(scan_finding(doc, f, i)) if isinstance(f, dict) else None
            for i, f in enumerate(findings)
        ]
        summary = {"scan_id": doc["scan_id"], "tool_name": doc["tool_name"], "findings": len(raw)}
        result = await asyncio.to_thread(
            ingest,
            events,
            collector,
            raw,
            redactor=redactor,
            audit=(collector.id, "scan_results.ingest", summary, _now()),
        )
        metrics.observe(result)
        status = 200 if not result.count("rejected") else 207
        return JSONResponse(result.to_dict(), status_code=status)

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(AgentBomError)
    async def agent_bom_error(_: Request, exc: AgentBomError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    app.ingest_request = ingest_request
    return app


class _App(FastAPI):
    """The FastAPI app, with ``POST /v1/events`` (collectors' hot path, documented by its
    route) answered straight from ASGI: no middleware, routing, ``Request`` or
    ``Response`` objects (~200 µs of CPU a request). Any other request goes through FastAPI."""

    ingest_request: Callable[
        [dict[str, str], AsyncIterator[bytes]], Coroutine[Any, Any, tuple[int, dict[str, Any]]]
    ]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/events" or scope["method"] != "POST":
            await super().__call__(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:  # the first of repeated headers, as Starlette
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _ClientGone
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        try:
            status, payload = await self.ingest_request(headers, chunks())
        except _ClientGone:
            return
        body = orjson.dumps(payload)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _ClientGone(Exception):
    """The client disconnected before its request body was read."""


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _CollectorCache:
    """Collectors read at most every few seconds per process: a disabled collector
    stops being accepted within ``ttl`` seconds."""

    def __init__(self, events: EventStore, ttl: float = 5.0) -> None:
        self._events, self._ttl = events, ttl
        self._cache: dict[str, tuple[float, Collector | None]] = {}

    def get(self, collector_id: str) -> Collector | None:
        now = time.monotonic()
        hit = self._cache.get(collector_id)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        found = self._events.collector(collector_id)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[collector_id] = (now, found)
        return found
