"""``OutboxStore``: one interface, one SQL implementation, two dialects.

Everything both databases do the same way lives here; ``sqlite.py`` and
``postgres.py`` supply connections, transactions, the schema and the claim
statement (``BEGIN IMMEDIATE`` vs ``FOR UPDATE SKIP LOCKED``). SQL is written
with ``?`` placeholders; the PostgreSQL store rewrites them.
"""

from __future__ import annotations

import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import orjson

from agent_bom.errors import ConfigError
from agent_bom.outbox.model import (
    KINDS,
    SEVERITIES,
    SIGNING_SCHEMES,
    Attempt,
    Claimed,
    Completion,
    Destination,
    EnqueueResult,
    OutboundEvent,
    OutboxRow,
    Status,
    check_credential_ref,
    event_type_of,
)
from agent_bom.outbox.schema import CLAIM, LATEST, MIGRATIONS

__all__ = ["DEFAULT_RECOVER_CAP", "OutboxStore"]

DEFAULT_RECOVER_CAP = 10_000

_ROW_COLUMNS = (
    "id, tenant_id, destination_id, event_id, event_type, body, status, attempts, "
    "next_attempt_at, next_trigger, lease_owner, lease_expires_at, last_status, last_error, "
    "created_at, updated_at"
)
_DEST_COLUMNS = (
    "id, tenant_id, kind, url, secret_ref, signing, event_types, min_severity, "
    "allow_private_network, allow_http, enabled, disabled_reason, created_at, config"
)


class Cursor(Protocol):
    """What both drivers' cursors give us (sqlite3 and psycopg 3)."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...
    def executemany(self, sql: Any, params: Any, /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


# A batch of deliveries in two set-based statements; ``{done}`` is the dialect's table
# of (id, status_code, latency_ms, excerpt, at, owner, k) built from one parameter
# (SQLite: json_each over a JSON array; PostgreSQL: unnest over arrays).
_RECORD_DELIVERED = (
    "INSERT INTO delivery_attempts (outbox_id, attempt, trigger, status_code, latency_ms, "
    "error, response_excerpt, at) SELECT o.id, o.attempts + 1, o.next_trigger, j.status_code, "
    "j.latency_ms, NULL, j.excerpt, j.at FROM {done} JOIN outbox o ON o.id = j.id "
    "WHERE o.lease_owner = j.owner AND o.status = 'delivering' ORDER BY j.k"
)
_MARK_DELIVERED = (
    "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, lease_owner = NULL, "
    "lease_expires_at = NULL, next_trigger = 'scheduled', last_status = j.status_code, "
    "last_error = NULL, updated_at = j.at FROM {done} "
    "WHERE outbox.id = j.id AND outbox.lease_owner = j.owner AND outbox.status = 'delivering'"
)


_STATUS = {str(s): s for s in Status}


def _row(r: Sequence[Any]) -> OutboxRow:
    return OutboxRow(
        int(r[0]),
        r[1],
        r[2],
        r[3],
        r[4],
        bytes(r[5]),
        _STATUS[r[6]],
        int(r[7]),
        float(r[8]),
        r[9],
        r[10],
        None if r[11] is None else float(r[11]),
        r[12],
        r[13],
        float(r[14]),
        float(r[15]),
    )


def _destination(r: Sequence[Any]) -> Destination:
    return Destination(
        id=r[0],
        tenant_id=r[1],
        kind=r[2],
        url=r[3],
        secret_ref=r[4],
        signing=r[5],
        event_types=tuple(orjson.loads(r[6])),
        min_severity=r[7],
        allow_private_network=bool(r[8]),
        allow_http=bool(r[9]),
        enabled=bool(r[10]),
        disabled_reason=r[11],
        created_at=float(r[12]),
        config=orjson.loads(r[13]),
    )


def new_destination_id() -> str:
    return "dst_" + secrets.token_hex(8)


class OutboxStore(ABC):
    """Destinations, outbox rows, the attempt log and the delivery audit records."""

    dialect: str
    _for_update = ""
    _claim_lock = ""  # how the claim's row selection locks rows (PostgreSQL: SKIP LOCKED)
    _custom_plans: str | None = None  # statement making a transaction plan per parameters

    # -- plumbing each dialect provides -------------------------------------------------

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Cursor]:
        """A write transaction; commits on success, rolls back on error."""

    def reading(self) -> AbstractContextManager[Cursor]:
        """A read-only transaction (a consistent snapshot). PostgreSQL: an ordinary
        transaction, since reads take no locks there."""
        return self.transaction()

    def _claim_sql(self, status: str, column: str, exclude: int) -> str:
        """The statement that leases due rows of one ``status`` ordered by ``column``
        (``exclude``: how many destination placeholders)."""
        return CLAIM.format(
            status=status,
            column=column,
            exclude=f"AND o.destination_id NOT IN ({', '.join('?' * exclude)})" if exclude else "",
            lock=self._claim_lock,
            columns=_ROW_COLUMNS,
        )

    @abstractmethod
    def _delivered_table(self, delivered: Sequence[Completion]) -> tuple[str, list[Any]]:
        """SQL for a table ``j`` of the completions' (id, status_code, latency_ms, excerpt,
        at, owner, k) and its parameters, for the set-based statements in ``finish``."""

    @abstractmethod
    def close(self) -> None: ...

    def _apply_migrations(self, cur: Cursor, where: str) -> None:
        """Apply the migrations this database lacks (``schema_migrations`` exists)."""
        cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        (current,) = cur.fetchone()
        if current > LATEST:
            raise ConfigError(
                f"{where} has schema version {current}, newer than this agent-bom "
                f"({LATEST}); upgrade agent-bom"
            )
        for version, sqlite, postgres in MIGRATIONS:
            if version > current:
                for sql in sqlite if self.dialect == "sqlite" else postgres:
                    cur.execute(sql)
                cur.execute(
                    "INSERT INTO schema_migrations (version, applied_at) "
                    "VALUES (?, CURRENT_TIMESTAMP)",
                    (version,),
                )

    def __enter__(self) -> OutboxStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- destinations -------------------------------------------------------------------

    def add_destination(
        self,
        *,
        tenant_id: str,
        url: str,
        kind: str = "webhook",
        secret_ref: str | None = None,
        signing: str = "v1",
        event_types: Sequence[str] = (),
        min_severity: str | None = None,
        allow_private_network: bool = False,
        allow_http: bool = False,
        config: dict[str, Any] | None = None,
        destination_id: str | None = None,
        actor: str = "cli",
    ) -> Destination:
        """Record a destination. URL safety is the connector's business (checked before this)."""
        if kind not in KINDS:
            raise ConfigError(f"destination kind {kind!r} is not one of {', '.join(KINDS)}")
        if signing not in SIGNING_SCHEMES:
            raise ConfigError(
                f"signing scheme {signing!r} is not one of {', '.join(SIGNING_SCHEMES)}"
            )
        if min_severity is not None and min_severity not in SEVERITIES:
            raise ConfigError(
                f"min severity {min_severity!r} is not one of {', '.join(SEVERITIES)}"
            )
        if secret_ref is not None:
            check_credential_ref(secret_ref)
        elif kind == "webhook":
            raise ConfigError(
                "a webhook destination needs --secret-ref env:NAME or file:/path holding its "
                "whsec_ secret (or whsk_ Ed25519 key); deliveries are always signed"
            )
        dest = Destination(
            id=destination_id or new_destination_id(),
            tenant_id=tenant_id,
            kind=kind,
            url=url,
            secret_ref=secret_ref,
            signing=signing,
            event_types=tuple(sorted({event_type_of(t) for t in event_types})),
            min_severity=min_severity,
            allow_private_network=allow_private_network,
            allow_http=allow_http,
            created_at=time.time(),
            config=dict(config or {}),
        )
        with self.transaction() as cur:
            cur.execute(
                f"INSERT INTO destinations ({_DEST_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    dest.id,
                    dest.tenant_id,
                    dest.kind,
                    dest.url,
                    dest.secret_ref,
                    dest.signing,
                    orjson.dumps(list(dest.event_types)).decode(),
                    dest.min_severity,
                    dest.allow_private_network,
                    dest.allow_http,
                    True,
                    None,
                    dest.created_at,
                    orjson.dumps(dest.config).decode(),
                ),
            )
            self._audit(cur, dest.tenant_id, actor, "destination.added", dest.id, {"url": dest.url})
        return dest

    def get_destination(self, destination_id: str) -> Destination:
        with self.reading() as cur:
            cur.execute(f"SELECT {_DEST_COLUMNS} FROM destinations WHERE id = ?", (destination_id,))
            r = cur.fetchone()
        if r is None:
            raise ConfigError(
                f"no destination {destination_id!r}; `agent-bom destinations list` shows them"
            )
        return _destination(r)

    def list_destinations(self, tenant_id: str | None = None) -> list[Destination]:
        with self.reading() as cur:
            if tenant_id is None:
                cur.execute(f"SELECT {_DEST_COLUMNS} FROM destinations ORDER BY tenant_id, id")
            else:
                cur.execute(
                    f"SELECT {_DEST_COLUMNS} FROM destinations WHERE tenant_id = ? ORDER BY id",
                    (tenant_id,),
                )
            return [_destination(r) for r in cur.fetchall()]

    def set_enabled(
        self, destination_id: str, enabled: bool, reason: str | None = None, *, actor: str = "cli"
    ) -> Destination:
        dest = self.get_destination(destination_id)
        with self.transaction() as cur:
            self._set_enabled(cur, dest, enabled, reason, actor)
        return self.get_destination(destination_id)

    def _set_enabled(
        self, cur: Cursor, dest: Destination, enabled: bool, reason: str | None, actor: str
    ) -> None:
        cur.execute(
            "UPDATE destinations SET enabled = ?, disabled_reason = ? WHERE id = ?",
            (enabled, None if enabled else (reason or "disabled by operator"), dest.id),
        )
        action = "destination.enabled" if enabled else "destination.disabled"
        self._audit(cur, dest.tenant_id, actor, action, dest.id, {"reason": reason})

    # -- enqueue ------------------------------------------------------------------------

    def enqueue(
        self, events: Iterable[OutboundEvent], *, now: float | None = None
    ) -> EnqueueResult:
        """Persist one row per (event, matching enabled destination of its tenant).

        Idempotent: an event already queued for a destination is counted as a duplicate."""
        with self.transaction() as cur:
            return self.enqueue_in(cur, events, now=now)

    def enqueue_in(
        self,
        cur: Cursor,
        events: Iterable[OutboundEvent],
        *,
        now: float | None = None,
        exclude_destination: str | None = None,
        destinations: dict[str, list[Destination]] | None = None,
    ) -> EnqueueResult:
        """``enqueue`` inside the caller's transaction (e.g. the event store's insert).

        ``destinations``: tenants' enabled destinations the caller already read in this
        transaction (``enabled_destinations``)."""
        at = time.time() if now is None else now
        by_tenant: dict[str, list[Destination]] = dict(destinations or {})
        params: list[tuple[Any, ...]] = []
        count = unmatched = 0
        for ev in events:
            count += 1
            dests = by_tenant.get(ev.tenant_id)
            if dests is None:
                dests = by_tenant[ev.tenant_id] = self.enabled_destinations(cur, ev.tenant_id)
            matched = False
            for d in dests:
                if d.id != exclude_destination and d.matches(ev.event_type, ev.severity):
                    matched = True
                    params.append(
                        (
                            ev.tenant_id,
                            d.id,
                            ev.event_id,
                            ev.event_type,
                            ev.body,
                            "pending",
                            at,
                            at,
                            at,
                        )
                    )
            unmatched += not matched
        inserted = 0
        if params:
            sql = (
                "INSERT INTO outbox (tenant_id, destination_id, event_id, event_type, body, "
                "status, next_attempt_at, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (tenant_id, destination_id, event_id) DO NOTHING"
            )
            cur.executemany(sql, params)
            inserted = cur.rowcount  # both drivers sum it over the batch
        return EnqueueResult(count, inserted, len(params) - inserted, unmatched)

    def enabled_destinations(self, cur: Cursor, tenant_id: str) -> list[Destination]:
        """The tenant's enabled destinations, read in the caller's transaction."""
        cur.execute(
            f"SELECT {_DEST_COLUMNS} FROM destinations WHERE tenant_id = ? AND enabled = ?",
            (tenant_id, True),
        )
        return [_destination(r) for r in cur.fetchall()]

    # -- the worker's side --------------------------------------------------------------

    def insert_many(
        self, cur: Cursor, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert ``rows`` (values in ``columns`` order) in the caller's transaction."""
        cur.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            rows,
        )

    def claim_due(
        self,
        owner: str,
        *,
        limit: int,
        lease_seconds: float,
        now: float | None = None,
        exclude_destinations: Sequence[str] = (),
    ) -> list[Claimed]:
        """Lease up to ``limit`` due rows to ``owner``: pending rows whose time has come
        and rows whose lease expired (their worker died), on enabled destinations."""
        at = time.time() if now is None else now
        rows: list[OutboxRow] = []
        with self.transaction() as cur:
            for status, column in (
                ("delivering", "lease_expires_at"),
                ("pending", "next_attempt_at"),
            ):
                if len(rows) >= limit:
                    break
                cur.execute(
                    self._claim_sql(status, column, len(exclude_destinations)),
                    (
                        owner,
                        at + lease_seconds,
                        at,
                        at,
                        True,
                        *exclude_destinations,
                        limit - len(rows),
                    ),
                )
                rows += [_row(r) for r in cur.fetchall()]
            if not rows:
                return []
            ids = sorted({r.destination_id for r in rows})
            cur.execute(
                f"SELECT {_DEST_COLUMNS} FROM destinations WHERE id IN "
                f"({', '.join('?' * len(ids))})",
                ids,
            )
            dests = {d.id: d for d in map(_destination, cur.fetchall())}
        rows.sort(key=lambda r: (r.next_attempt_at, r.id))
        return [Claimed(r, dests[r.destination_id]) for r in rows]

    def finish(self, completions: Sequence[Completion]) -> int:
        """Apply what the sends decided, in one transaction. A completion whose lease was
        lost (expired and reclaimed by another worker) is ignored; returns how many applied."""
        delivered = [c for c in completions if c.transition == "delivered"]
        others = [c for c in completions if c.transition != "delivered"]
        applied = 0
        with self.transaction() as cur:
            if delivered:
                # The common case in two set-based statements, whatever the batch size; the
                # lease check is in the WHERE.
                done, params = self._delivered_table(delivered)
                cur.execute(_RECORD_DELIVERED.format(done=done), params)
                cur.execute(_MARK_DELIVERED.format(done=done), params)
                applied += cur.rowcount
            attempts: list[tuple[Any, ...]] = []
            for c in others:
                cur.execute(
                    "SELECT attempts, next_trigger, tenant_id, destination_id, event_id "
                    "FROM outbox WHERE id = ? AND lease_owner = ? AND status = ?"
                    + self._for_update,
                    (c.row_id, c.lease_owner, "delivering"),
                )
                r = cur.fetchone()
                if r is None:
                    continue
                applied += 1
                n, trigger, tenant, dest_id = int(r[0]) + 1, r[1], r[2], r[3]
                if c.transition in ("release", "defer"):
                    cur.execute(
                        "UPDATE outbox SET status = ?, lease_owner = NULL, "
                        "lease_expires_at = NULL, next_attempt_at = COALESCE(?, next_attempt_at), "
                        "updated_at = ? WHERE id = ?",
                        ("pending", c.next_attempt_at, c.at, c.row_id),
                    )
                    continue
                status = "pending" if c.transition == "retry" else "dead_letter"
                cur.execute(
                    "UPDATE outbox SET status = ?, attempts = ?, lease_owner = NULL, "
                    "lease_expires_at = NULL, next_attempt_at = COALESCE(?, next_attempt_at), "
                    "next_trigger = ?, last_status = ?, last_error = ?, updated_at = ? "
                    "WHERE id = ?",
                    (
                        status,
                        n,
                        c.next_attempt_at,
                        "scheduled",
                        c.status_code,
                        c.error,
                        c.at,
                        c.row_id,
                    ),
                )
                attempts.append(
                    (
                        c.row_id,
                        n,
                        trigger,
                        c.status_code,
                        c.latency_ms,
                        c.error,
                        c.response_excerpt,
                        c.at,
                    )
                )
                if c.transition == "dead_letter":
                    self._audit(
                        cur,
                        tenant,
                        "worker",
                        "delivery.dead_lettered",
                        str(c.row_id),
                        {
                            "destination_id": dest_id,
                            "event_id": r[4],
                            "attempts": n,
                            "reason": c.error,
                            "last_status": c.status_code,
                        },
                    )
                    if c.notices:
                        self.enqueue_in(cur, c.notices, now=c.at, exclude_destination=dest_id)
                if c.disable_destination is not None:
                    cur.execute(
                        f"SELECT {_DEST_COLUMNS} FROM destinations WHERE id = ?", (dest_id,)
                    )
                    d = cur.fetchone()
                    if d is not None:
                        self._set_enabled(
                            cur, _destination(d), False, c.disable_destination, "worker"
                        )
            if attempts:
                cur.executemany(
                    "INSERT INTO delivery_attempts (outbox_id, attempt, trigger, status_code, "
                    "latency_ms, error, response_excerpt, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    attempts,
                )
        return applied

    def release(self, owner: str, row_ids: Sequence[int] | None = None) -> int:
        """Hand leased rows back as pending, no attempt counted (graceful shutdown)."""
        with self.transaction() as cur:
            sql = (
                "UPDATE outbox SET status = ?, lease_owner = NULL, lease_expires_at = NULL, "
                "updated_at = ? WHERE lease_owner = ? AND status = ?"
            )
            params: list[Any] = ["pending", time.time(), owner, "delivering"]
            if row_ids is not None:
                if not row_ids:
                    return 0
                sql += f" AND id IN ({', '.join('?' * len(row_ids))})"
                params.extend(row_ids)
            cur.execute(sql, params)
            return cur.rowcount

    # -- admin --------------------------------------------------------------------------

    def get_row(self, row_id: int) -> OutboxRow:
        with self.reading() as cur:
            cur.execute(f"SELECT {_ROW_COLUMNS} FROM outbox WHERE id = ?", (row_id,))
            r = cur.fetchone()
        if r is None:
            raise ConfigError(f"no outbox row {row_id}; `agent-bom outbox list` shows them")
        return _row(r)

    def list_rows(
        self,
        *,
        status: str | None = None,
        destination_id: str | None = None,
        tenant_id: str | None = None,
        limit: int = 100,
        after_id: int = 0,
    ) -> list[OutboxRow]:
        where: list[str] = ["id > ?"]
        params: list[Any] = [after_id]
        if status is not None:
            where.append("status = ?")
            params.append(str(Status(status)))
        if destination_id is not None:
            where.append("destination_id = ?")
            params.append(destination_id)
        if tenant_id is not None:
            where.append("tenant_id = ?")
            params.append(tenant_id)
        with self.reading() as cur:
            cur.execute(
                f"SELECT {_ROW_COLUMNS} FROM outbox WHERE {' AND '.join(where)} "
                "ORDER BY id LIMIT ?",
                (*params, limit),
            )
            return [_row(r) for r in cur.fetchall()]

    def attempts(self, row_id: int) -> list[Attempt]:
        with self.reading() as cur:
            cur.execute(
                "SELECT outbox_id, attempt, trigger, status_code, latency_ms, error, "
                "response_excerpt, at FROM delivery_attempts WHERE outbox_id = ? ORDER BY id",
                (row_id,),
            )
            return [Attempt(*r) for r in cur.fetchall()]

    def retry(self, row_id: int, *, actor: str = "cli", now: float | None = None) -> OutboxRow:
        """Make a row due now with its attempts reset; the next attempt is ``manual``."""
        at = time.time() if now is None else now
        row = self.get_row(row_id)
        if row.status == Status.DELIVERING:
            raise ConfigError(
                f"outbox row {row_id} is being delivered right now (leased to "
                f"{row.lease_owner}); retry it after the attempt ends"
            )
        with self.transaction() as cur:
            cur.execute(
                "UPDATE outbox SET status = ?, attempts = 0, next_attempt_at = ?, "
                "next_trigger = ?, updated_at = ? WHERE id = ? AND status <> ?",
                ("pending", at, "manual", at, row_id, "delivering"),
            )
            self._audit(
                cur,
                row.tenant_id,
                actor,
                "delivery.retry",
                str(row_id),
                {"destination_id": row.destination_id, "event_id": row.event_id},
            )
        return self.get_row(row_id)

    def recover(
        self,
        destination_id: str,
        *,
        since: float,
        until: float | None = None,
        cap: int = DEFAULT_RECOVER_CAP,
        actor: str = "cli",
        now: float | None = None,
    ) -> int:
        """Requeue the destination's dead letters enqueued in ``[since, until)``.

        Refuses (and changes nothing) when more than ``cap`` rows match."""
        at = time.time() if now is None else now
        dest = self.get_destination(destination_id)
        end = float("inf") if until is None else until
        if end <= since:
            raise ConfigError("recover: --until must be after --since")
        window = "destination_id = ? AND status = ? AND created_at >= ? AND created_at < ?"
        params = (destination_id, "dead_letter", since, end if until is not None else 1e300)
        with self.transaction() as cur:
            cur.execute(f"SELECT COUNT(*) FROM outbox WHERE {window}", params)
            (count,) = cur.fetchone()
            if count > cap:
                raise ConfigError(
                    f"recover would requeue {count} dead letters, more than the cap of {cap}; "
                    "narrow --since/--until or raise --max"
                )
            cur.execute(
                "UPDATE outbox SET status = ?, attempts = 0, next_attempt_at = ?, "
                f"next_trigger = ?, updated_at = ? WHERE {window}",
                ("pending", at, "manual", at, *params),
            )
            self._audit(
                cur,
                dest.tenant_id,
                actor,
                "delivery.recover",
                destination_id,
                {"since": since, "until": until, "rows": count},
            )
        return int(count)

    def stats(self, tenant_id: str | None = None, *, now: float | None = None) -> dict[str, Any]:
        """Counts per status and per destination, and the age of the oldest due row."""
        at = time.time() if now is None else now
        where, params = ("WHERE o.tenant_id = ?", [tenant_id]) if tenant_id else ("", [])
        with self.reading() as cur:
            cur.execute(
                "SELECT o.destination_id, o.status, COUNT(*), MIN(o.next_attempt_at) "
                f"FROM outbox o {where} GROUP BY o.destination_id, o.status",
                params,
            )
            groups = cur.fetchall()
        dests = {d.id: d for d in self.list_destinations(tenant_id)}
        totals = {str(s): 0 for s in Status}
        per: dict[str, dict[str, Any]] = {
            d.id: {
                "tenant_id": d.tenant_id,
                "enabled": d.enabled,
                "disabled_reason": d.disabled_reason,
                **{str(s): 0 for s in Status},
                "oldest_due_seconds": None,
            }
            for d in dests.values()
        }
        for dest_id, status, count, oldest in groups:
            totals[status] += int(count)
            entry = per.setdefault(dest_id, {str(s): 0 for s in Status})
            entry[status] = int(count)
            if status == "pending" and oldest is not None and float(oldest) <= at:
                entry["oldest_due_seconds"] = round(at - float(oldest), 3)
        return {"totals": totals, "destinations": per}

    def audit_records(
        self, tenant_id: str | None = None, *, limit: int = 100
    ) -> list[dict[str, Any]]:
        where, params = ("WHERE tenant_id = ?", [tenant_id]) if tenant_id else ("", [])
        with self.reading() as cur:
            cur.execute(
                "SELECT id, tenant_id, actor, action, subject, detail, at FROM audit_log "
                f"{where} ORDER BY id DESC LIMIT ?",
                (*params, limit),
            )
            return [
                {
                    "id": int(r[0]),
                    "tenant_id": r[1],
                    "actor": r[2],
                    "action": r[3],
                    "subject": r[4],
                    "detail": orjson.loads(r[5]),
                    "at": float(r[6]),
                }
                for r in cur.fetchall()
            ]

    def _audit(
        self,
        cur: Cursor,
        tenant_id: str,
        actor: str,
        action: str,
        subject: str,
        detail: dict[str, Any],
    ) -> None:
        cur.execute(
            "INSERT INTO audit_log (tenant_id, actor, action, subject, detail, at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (tenant_id, actor, action, subject, orjson.dumps(detail).decode(), time.time()),
        )


def iter_outbound(lines: Iterable[bytes]) -> Iterator[OutboundEvent]:
    for line in lines:
        if line.strip():
            yield OutboundEvent.from_cloudevent(line)
