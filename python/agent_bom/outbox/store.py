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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Protocol

import orjson

from agent_bom.errors import ConfigError
from agent_bom.outbox.model import (
    KINDS,
    ORDERED_KINDS,
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
    StreamRow,
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
# Reads see a stream's delivered rows as delivered: a pending ordered row at or below
# its destination's cursor was acknowledged (schema step 4), one attempt, the ack's 200.
_FROM = "outbox o LEFT JOIN stream_cursors c ON c.destination_id = o.destination_id"
_STREAMED = "(o.ordered = 1 AND o.status = 'pending' AND o.id <= c.delivered_through)"
_STATUS_EXPR = f"CASE WHEN {_STREAMED} THEN 'delivered' ELSE o.status END"
_READ_COLUMNS = (
    "o.id, o.tenant_id, o.destination_id, o.event_id, o.event_type, o.body, "
    f"{_STATUS_EXPR}, CASE WHEN {_STREAMED} THEN o.attempts + 1 ELSE o.attempts END, "
    "o.next_attempt_at, o.next_trigger, o.lease_owner, o.lease_expires_at, "
    f"CASE WHEN {_STREAMED} THEN 200 ELSE o.last_status END, o.last_error, o.created_at, "
    "o.updated_at"
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


# The attempt of a row a stream delivered: its batch's acknowledgement.
_STREAMED_ATTEMPT = (
    "SELECT o.id, 1, 'scheduled', 200, a.latency_ms, NULL, NULL, a.at FROM " + _FROM + " "
    "JOIN stream_acks a ON a.destination_id = o.destination_id AND a.through_id = ("
    "SELECT MIN(b.through_id) FROM stream_acks b WHERE b.destination_id = o.destination_id "
    f"AND b.through_id >= o.id) WHERE o.id = ? AND {_STREAMED}"
)
_STREAM_DUE = (
    "SELECT c.destination_id FROM stream_cursors c JOIN destinations d "
    "ON d.id = c.destination_id WHERE d.enabled = ? AND d.kind IN ({kinds}) "
    "AND (c.lease_owner IS NULL OR c.lease_expires_at <= ?){exclude} AND EXISTS ("
    "SELECT 1 FROM outbox o WHERE o.destination_id = c.destination_id "
    "AND o.status = 'pending' AND o.ordered = 1 AND o.id > c.delivered_through) "
    "ORDER BY c.updated_at, c.destination_id LIMIT ?{lock}"
)

_DELIVERED_COLUMNS = (
    ("id", "bigint"),
    ("status_code", "integer"),
    ("latency_ms", "double precision"),
    ("excerpt", "text"),
    ("at", "double precision"),
    ("owner", "text"),
)
# A stream's failed rows that will be retried, set-based too (a broker outage fails
# whole batches): they leave the stream with their attempt recorded.
_RETRIED_COLUMNS = (
    ("id", "bigint"),
    ("next_attempt_at", "double precision"),
    ("status_code", "integer"),
    ("latency_ms", "double precision"),
    ("error", "text"),
    ("excerpt", "text"),
    ("at", "double precision"),
)
_RECORD_RETRIED = (
    "INSERT INTO delivery_attempts (outbox_id, attempt, trigger, status_code, latency_ms, "
    "error, response_excerpt, at) SELECT o.id, o.attempts + 1, o.next_trigger, j.status_code, "
    "j.latency_ms, j.error, j.excerpt, j.at FROM {rows} JOIN outbox o ON o.id = j.id "
    "WHERE o.destination_id = ? AND o.status = 'pending' AND o.ordered = 1 ORDER BY j.k"
)
_MARK_RETRIED = (
    "UPDATE outbox SET ordered = 0, attempts = attempts + 1, next_attempt_at = j.next_attempt_at, "
    "next_trigger = 'scheduled', last_status = j.status_code, last_error = j.error, "
    "updated_at = j.at FROM {rows} WHERE outbox.id = j.id AND outbox.destination_id = ? "
    "AND outbox.status = 'pending' AND outbox.ordered = 1"
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
    _stream_claim_lock = ""  # the same for a stream's cursor row
    # Whether a stream's read may run on the worker's event loop: it never waits for a
    # lock and costs ~2 µs a row (SQLite in WAL mode); else it runs on a thread.
    inline_stream_reads = False
    # Per status: the claim's index (SQLite: INDEXED BY).
    _claim_hint: ClassVar[Mapping[str, str]] = {}
    # PostgreSQL hands out ids when rows are inserted, not when they commit: a stream's
    # reader first waits for the transactions enqueueing to its destination (they hold a
    # shared lock on it from before their first id, ``_fence_enqueue``), so no row below
    # an id it read can commit later, behind the cursor, unsent.
    _stream_fence: str | None = None
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
            hint=self._claim_hint.get(status, ""),
        )

    @abstractmethod
    def _table(
        self, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]
    ) -> tuple[str, list[Any]]:
        """SQL for a table ``j`` of ``rows`` (``columns``: name and PostgreSQL type, in
        order) plus their order ``k``, from few parameters whatever the row count; and
        those parameters. For the set-based statements of ``finish`` and streams."""

    def _delivered_table(self, delivered: Sequence[Completion]) -> tuple[str, list[Any]]:
        rows = [
            (c.row_id, c.status_code, c.latency_ms, c.response_excerpt, c.at, c.lease_owner)
            for c in delivered
        ]
        return self._table(_DELIVERED_COLUMNS, rows)

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
            if dest.kind in ORDERED_KINDS:
                cur.execute(
                    "INSERT INTO stream_cursors (destination_id, delivered_through, updated_at) "
                    "VALUES (?, 0, ?)",
                    (dest.id, dest.created_at),
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
                            1 if d.kind in ORDERED_KINDS else 0,
                        )
                    )
            unmatched += not matched
        inserted = 0
        if params:
            sql = (
                "INSERT INTO outbox (tenant_id, destination_id, event_id, event_type, body, "
                "status, next_attempt_at, created_at, updated_at, ordered) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
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
        dests = [_destination(r) for r in cur.fetchall()]
        self._fence_enqueue(cur, [d.id for d in dests if d.kind in ORDERED_KINDS])
        return dests

    def _fence_enqueue(self, cur: Cursor, ordered: list[str]) -> None:
        """Before rows for these ordered destinations get ids (``_stream_fence``); SQLite
        needs nothing: its writers are serialized, so ids commit in order."""
        return None

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
                if r is not None:
                    applied += 1
                    self._settle(cur, c, r, attempts)
            self._record_attempts(cur, attempts)
        return applied

    def _settle(
        self, cur: Cursor, c: Completion, r: Sequence[Any], attempts: list[tuple[Any, ...]]
    ) -> None:
        """Apply a completion other than ``delivered`` to its row, read as ``r`` (attempts,
        next_trigger, tenant_id, destination_id, event_id); its attempt goes to
        ``attempts``. The row is a row-by-row row from now on (``ordered = 0``)."""
        n, trigger, tenant, dest_id = int(r[0]) + 1, r[1], r[2], r[3]
        if c.transition in ("release", "defer"):
            cur.execute(
                "UPDATE outbox SET status = ?, ordered = 0, lease_owner = NULL, "
                "lease_expires_at = NULL, next_attempt_at = COALESCE(?, next_attempt_at), "
                "updated_at = ? WHERE id = ?",
                ("pending", c.next_attempt_at, c.at, c.row_id),
            )
            return
        status = "pending" if c.transition == "retry" else "dead_letter"
        cur.execute(
            "UPDATE outbox SET status = ?, ordered = 0, attempts = ?, lease_owner = NULL, "
            "lease_expires_at = NULL, next_attempt_at = COALESCE(?, next_attempt_at), "
            "next_trigger = ?, last_status = ?, last_error = ?, updated_at = ? "
            "WHERE id = ?",
            (status, n, c.next_attempt_at, "scheduled", c.status_code, c.error, c.at, c.row_id),
        )
        attempts.append(
            (c.row_id, n, trigger, c.status_code, c.latency_ms, c.error, c.response_excerpt, c.at)
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
            cur.execute(f"SELECT {_DEST_COLUMNS} FROM destinations WHERE id = ?", (dest_id,))
            d = cur.fetchone()
            if d is not None:
                self._set_enabled(cur, _destination(d), False, c.disable_destination, "worker")

    def _record_attempts(self, cur: Cursor, attempts: list[tuple[Any, ...]]) -> None:
        if attempts:
            cur.executemany(
                "INSERT INTO delivery_attempts (outbox_id, attempt, trigger, status_code, "
                "latency_ms, error, response_excerpt, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                attempts,
            )

    # -- ordered destinations: one lease and one cursor per destination -------------------

    def claim_streams(
        self,
        owner: str,
        *,
        kinds: Sequence[str],
        limit: int,
        lease_seconds: float,
        now: float | None = None,
        exclude_destinations: Sequence[str] = (),
    ) -> list[tuple[Destination, int]]:
        """Lease up to ``limit`` ordered destinations of ``kinds`` with rows past their
        cursor (free ones, or ones whose lease expired: their worker died). Returns each
        with its cursor: the worker delivers the rows after it, in id order."""
        at = time.time() if now is None else now
        if not kinds or limit < 1:
            return []
        exclude = (
            f" AND c.destination_id NOT IN ({', '.join('?' * len(exclude_destinations))})"
            if exclude_destinations
            else ""
        )
        with self.transaction() as cur:
            cur.execute(
                _STREAM_DUE.format(
                    kinds=", ".join("?" * len(kinds)), exclude=exclude, lock=self._stream_claim_lock
                ),
                (True, *kinds, at, *exclude_destinations, limit),
            )
            ids = [r[0] for r in cur.fetchall()]
            if not ids:
                return []
            marks = ", ".join("?" * len(ids))
            cur.execute(
                "UPDATE stream_cursors SET lease_owner = ?, lease_expires_at = ? "
                f"WHERE destination_id IN ({marks}) RETURNING destination_id, delivered_through",
                (owner, at + lease_seconds, *ids),
            )
            cursors = {r[0]: int(r[1]) for r in cur.fetchall()}
            cur.execute(f"SELECT {_DEST_COLUMNS} FROM destinations WHERE id IN ({marks})", ids)
            dests = {d.id: d for d in map(_destination, cur.fetchall())}
        return [(dests[i], cursors[i]) for i in ids]

    def stream_rows(self, destination_id: str, *, after: int, limit: int) -> list[StreamRow]:
        """The destination's next ``limit`` undelivered ordered rows after id ``after``;
        none once it is disabled (a running stream stops)."""
        fence = self._stream_fence
        with self.transaction() if fence else self.reading() as cur:
            if fence:
                cur.execute(fence, (destination_id,))
            cur.execute("SELECT enabled FROM destinations WHERE id = ?", (destination_id,))
            found = cur.fetchone()
            if found is None or not found[0]:
                return []
            fetched = self._fetch_binary(
                cur,
                "SELECT id, tenant_id, event_id, event_type, body FROM outbox "
                "WHERE destination_id = ? AND status = 'pending' AND ordered = 1 AND id > ? "
                "ORDER BY id LIMIT ?",
                (destination_id, after, limit),
            )
        return list(map(StreamRow._make, fetched))  # both drivers give bytes for the body

    def _fetch_binary(self, cur: Cursor, sql: str, params: Sequence[Any]) -> list[Any]:
        """``fetchall`` of ``sql``; PostgreSQL asks for binary results (bodies as they
        are, not hex)."""
        cur.execute(sql, params)
        return cur.fetchall()

    def advance_stream(
        self,
        destination_id: str,
        owner: str,
        *,
        cursor: int,
        through: int,
        failures: Sequence[Completion] = (),
        latency_ms: float | None = None,
        lease_seconds: float,
        now: float | None = None,
    ) -> bool:
        """Record a sent batch of the stream: rows in ``(cursor, through]`` were sent;
        ``failures`` (retry or dead letter) leave the stream, every other row was
        acknowledged (one ``stream_acks`` row holds their attempt) and the cursor moves
        to ``through`` (lease renewed). Applies
        nothing and returns False when ``owner`` no longer holds the stream at
        ``cursor`` (its lease expired and another worker took over)."""
        at = time.time() if now is None else now
        with self.transaction() as cur:
            cur.execute(
                "SELECT delivered_through, lease_owner FROM stream_cursors "
                "WHERE destination_id = ?" + self._for_update,
                (destination_id,),
            )
            r = cur.fetchone()
            if r is None or r[1] != owner or int(r[0]) != cursor:
                return False
            # Plain retries (a broker outage fails whole batches) in two set-based
            # statements; dead letters and the rest one by one, as ``finish`` does.
            plain = [c.transition == "retry" and c.disable_destination is None for c in failures]
            retried = [c for c, p in zip(failures, plain, strict=True) if p]
            if retried:
                table, params = self._table(
                    _RETRIED_COLUMNS,
                    [
                        (c.row_id, c.next_attempt_at, c.status_code, c.latency_ms, c.error,
                         c.response_excerpt, c.at)
                        for c in retried
                    ],
                )  # fmt: skip
                cur.execute(_RECORD_RETRIED.format(rows=table), (*params, destination_id))
                cur.execute(_MARK_RETRIED.format(rows=table), (*params, destination_id))
            attempts: list[tuple[Any, ...]] = []
            for c in (c for c, p in zip(failures, plain, strict=True) if not p):
                cur.execute(
                    "SELECT attempts, next_trigger, tenant_id, destination_id, event_id "
                    "FROM outbox WHERE id = ? AND destination_id = ? AND status = ? "
                    "AND ordered = 1" + self._for_update,
                    (c.row_id, destination_id, "pending"),
                )
                row = cur.fetchone()
                if row is not None:
                    self._settle(cur, c, row, attempts)
            self._record_attempts(cur, attempts)
            cur.execute(
                "INSERT INTO stream_acks (destination_id, after_id, through_id, latency_ms, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (destination_id, cursor, through, latency_ms, at),
            )
            cur.execute(
                "UPDATE stream_cursors SET delivered_through = ?, lease_expires_at = ?, "
                "updated_at = ? WHERE destination_id = ?",
                (through, at + lease_seconds, at, destination_id),
            )
        return True

    def release_stream(self, destination_id: str, owner: str) -> None:
        with self.transaction() as cur:
            cur.execute(
                "UPDATE stream_cursors SET lease_owner = NULL, lease_expires_at = NULL "
                "WHERE destination_id = ? AND lease_owner = ?",
                (destination_id, owner),
            )

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
            return cur.rowcount  # stream leases: each stream hands its own back

    # -- admin --------------------------------------------------------------------------

    def get_row(self, row_id: int) -> OutboxRow:
        with self.reading() as cur:
            cur.execute(f"SELECT {_READ_COLUMNS} FROM {_FROM} WHERE o.id = ?", (row_id,))
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
        where: list[str] = ["o.id > ?"]
        params: list[Any] = [after_id]
        if status is not None:
            where.append(f"{_STATUS_EXPR} = ?")
            params.append(str(Status(status)))
        if destination_id is not None:
            where.append("o.destination_id = ?")
            params.append(destination_id)
        if tenant_id is not None:
            where.append("o.tenant_id = ?")
            params.append(tenant_id)
        with self.reading() as cur:
            cur.execute(
                f"SELECT {_READ_COLUMNS} FROM {_FROM} WHERE {' AND '.join(where)} "
                "ORDER BY o.id LIMIT ?",
                (*params, limit),
            )
            return [_row(r) for r in cur.fetchall()]

    def attempts(self, row_id: int) -> list[Attempt]:
        with self.reading() as cur:
            streamed = self._streamed_attempt(cur, row_id)
            cur.execute(
                "SELECT outbox_id, attempt, trigger, status_code, latency_ms, error, "
                "response_excerpt, at FROM delivery_attempts WHERE outbox_id = ? ORDER BY id",
                (row_id,),
            )
            return [Attempt(*r) for r in [*streamed, *cur.fetchall()]]

    def _streamed_attempt(self, cur: Cursor, row_id: int) -> list[tuple[Any, ...]]:
        """The attempt of a row its stream delivered (none for any other row)."""
        cur.execute(_STREAMED_ATTEMPT, (row_id,))
        return [tuple(r) for r in cur.fetchall()]

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
            # Out of its stream, if it was in one: an operator's retry goes row by row,
            # and the stream's attempt is written down first (the row leaves its cursor).
            self._record_attempts(cur, self._streamed_attempt(cur, row_id))
            cur.execute(
                "UPDATE outbox SET status = ?, ordered = 0, attempts = 0, next_attempt_at = ?, "
                "next_trigger = ?, updated_at = ? WHERE id = ? AND status <> ?",
                ("pending", at, "manual", at, row_id, "delivering"),
            )
            if cur.rowcount == 0:
                # Leased since it was read above: the transaction is undone, audit included.
                raise ConfigError(
                    f"outbox row {row_id} was leased for delivery just now; "
                    "retry it after the attempt ends"
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
                f"SELECT o.destination_id, {_STATUS_EXPR}, COUNT(*), MIN(o.next_attempt_at) "
                f"FROM {_FROM} {where} GROUP BY o.destination_id, 2",
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
