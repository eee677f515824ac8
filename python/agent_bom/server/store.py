"""The tenant-isolated event store: tenants, credentials, and each tenant's chain.

It shares the outbox's database and transactions, so an accepted event, its
chain state and its outbox rows commit together or not at all. Every query
takes the tenant explicitly; nothing here reads a tenant from a request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import orjson

from agent_bom._core import Ledger
from agent_bom.errors import ConfigError, Replayed
from agent_bom.outbox import OutboxStore
from agent_bom.outbox.model import SEVERITIES, OutboundEvent
from agent_bom.outbox.store import Cursor

if TYPE_CHECKING:  # the postgres extra may be missing
    from agent_bom.outbox.postgres import PostgresStore

__all__ = [
    "ROLES",
    "Collector",
    "EventStore",
    "Replay",
    "StoredEvent",
    "Tenant",
    "stream_id_of",
]

ROLES = ("viewer", "admin")
AUDIT_TYPE = "dev.agent-bom.audit.action"  # custom type: the registry has no API-audit type
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SCOPE_KEYS = ("event_types", "connectors", "repos", "environments")


def stream_id_of(tenant_id: str) -> str:
    """The chain a tenant's events live in (one per tenant)."""
    return f"agent-bom.tenant.{tenant_id}"


def audit_record(
    *, actor: str, action: str, outcome: int, summary: dict[str, Any], at: str
) -> bytes:
    """The native event of one audited API action."""
    return orjson.dumps(
        {
            # Two identical requests in the same millisecond are still two actions.
            "event_id": f"audit:{uuid.uuid4()}",
            "event_type": AUDIT_TYPE,
            "created_at": at,
            "source": "urn:agent-bom:api",
            "payload": {"actor": actor, "action": action, "outcome": outcome, "request": summary},
        }
    )


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Tenant:
    id: str
    created_at: float


@dataclass(frozen=True)
class Collector:
    id: str
    tenant_id: str
    key_type: str  # "hmac" | "ed25519"
    public_key: str | None
    secret_enc: bytes | None
    scope: dict[str, list[str]] = field(default_factory=dict)
    enabled: bool = True

    def allows(self, kind: str, value: str | None) -> bool:
        allowed = self.scope.get(kind) or []
        return not allowed or (value is not None and value in allowed)


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    event_id: str
    event_type: str
    severity: str | None
    time: str
    body: bytes


_EVENT_COLUMNS = (
    "tenant_id",
    "seq",
    "event_id",
    "event_type",
    "severity",
    "time",
    "body",
    "received_at",
)


@dataclass(frozen=True)
class Replay:
    """A request's replay-guard entry: its key, the time, how long it guards."""

    key: str
    now: float
    keep_for: float


def _first_claims(jobs: list[_Append], taken: set[str]) -> list[Replay]:
    """The replay-guard entries ``jobs`` claim afresh, in order: a job whose key is in
    ``taken`` or came earlier in ``jobs`` is replayed instead (``taken`` grows)."""
    fresh: list[Replay] = []
    for job in jobs:
        if job.replay is None:
            continue
        if job.replay.key in taken:
            job.error = _replayed()
        else:
            taken.add(job.replay.key)
            fresh.append(job.replay)
    return fresh


def _claims_sql(replays: list[Replay]) -> tuple[str, list[Any]]:
    """The statement inserting ``replays`` into the replay guard, and its parameters."""
    return (
        "INSERT INTO replay_guard (key, expires_at) VALUES " + ", ".join(["(?, ?)"] * len(replays)),
        [x for r in replays for x in (r.key, r.now + r.keep_for)],
    )


def _replayed() -> Replayed:
    return Replayed(
        "this signed request was already accepted (its webhook-id was seen within "
        "the replay window): a replay"
    )


# Duplicate checks of up to this many ids go in the one lookup statement of a tenant's
# chain (SQLite allows 32,766 parameters); more are looked up in chunks.
_INLINE_IDS = 10_000


@dataclass(slots=True)
class _Chain:
    """A tenant's chain in a group transaction: its ledger as read, what it stores."""

    seq: int
    ledger: Ledger
    existing: set[str]  # of the group's event ids, those the tenant's store holds
    destinations: list[Any]


@dataclass(slots=True)
class _Append:
    """One caller's prepared batch, waiting for (or in) a group transaction."""

    tenant_id: str
    prepared: Any  # _core.PreparedBatch
    results: list[tuple[str, Any, Any]]
    audited: Any  # the audit record's PreparedBatch, or None
    replay: Replay | None
    done: bool = False
    outcome: list[tuple[str, Any, Any]] | None = None  # final once the group commits
    error: BaseException | None = None


class EventStore:
    """Wraps an ``OutboxStore`` (same database, same transactions)."""

    def __init__(
        self, store: OutboxStore, *, checkpoint_every: int = 1000, redactor: Any = None
    ) -> None:
        self.db = store
        self.checkpoint_every = checkpoint_every
        self.redactor = redactor
        self._replay_gc_at = 0.0  # when expired replay-guard entries are next dropped
        # Group commit (append): batches waiting, and whether a transaction is running.
        self._group = threading.Condition()
        self._waiting: list[_Append] = []
        self._committing = False

    # -- tenants and credentials ---------------------------------------------------------

    def add_tenant(self, tenant_id: str) -> Tenant:
        if not _TENANT.match(tenant_id):
            raise ConfigError(
                f"tenant id {tenant_id!r} must match {_TENANT.pattern} (letters, digits, . _ -)"
            )
        now = time.time()
        with self.db.transaction() as cur:
            cur.execute("SELECT id FROM tenants WHERE id = ?", (tenant_id,))
            if cur.fetchone() is not None:
                raise ConfigError(f"tenant {tenant_id!r} already exists")
            cur.execute("INSERT INTO tenants (id, created_at) VALUES (?, ?)", (tenant_id, now))
            cur.execute(
                "INSERT INTO ledgers (tenant_id, seq, state) VALUES (?, ?, ?)",
                (tenant_id, 0, None),
            )
            self.db._audit(cur, tenant_id, "cli", "tenant.added", tenant_id, {})
        return Tenant(tenant_id, now)

    def tenants(self) -> list[Tenant]:
        with self.db.reading() as cur:
            cur.execute("SELECT id, created_at FROM tenants ORDER BY id")
            return [Tenant(r[0], float(r[1])) for r in cur.fetchall()]

    def require_tenant(self, cur: Cursor, tenant_id: str) -> None:
        cur.execute("SELECT id FROM tenants WHERE id = ?", (tenant_id,))
        if cur.fetchone() is None:
            raise ConfigError(
                f"no tenant {tenant_id!r}; add it first with `agent-bom tenants add {tenant_id}`"
            )

    def add_collector(
        self,
        tenant_id: str,
        *,
        key_type: str,
        public_key: str | None,
        secret_enc: bytes | None,
        scope: dict[str, list[str]],
    ) -> Collector:
        collector = Collector(
            id="col_" + secrets.token_hex(8),
            tenant_id=tenant_id,
            key_type=key_type,
            public_key=public_key,
            secret_enc=secret_enc,
            scope={k: sorted(set(v)) for k, v in scope.items() if v},
        )
        with self.db.transaction() as cur:
            self.require_tenant(cur, tenant_id)
            cur.execute(
                "INSERT INTO collectors (id, tenant_id, key_type, public_key, secret_enc, scope, "
                "enabled, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    collector.id,
                    tenant_id,
                    key_type,
                    public_key,
                    secret_enc,
                    orjson.dumps(collector.scope).decode(),
                    1,
                    time.time(),
                ),
            )
            self.db._audit(
                cur, tenant_id, "cli", "collector.added", collector.id, {"scope": collector.scope}
            )
        return collector

    def collector(self, collector_id: str) -> Collector | None:
        with self.db.reading() as cur:
            cur.execute(
                "SELECT id, tenant_id, key_type, public_key, secret_enc, scope, enabled "
                "FROM collectors WHERE id = ?",
                (collector_id,),
            )
            r = cur.fetchone()
        if r is None:
            return None
        return Collector(
            r[0],
            r[1],
            r[2],
            r[3],
            None if r[4] is None else bytes(r[4]),
            orjson.loads(r[5]),
            bool(r[6]),
        )

    def add_token(self, tenant_id: str, role: str) -> tuple[str, str]:
        """A new API token (returned once; only its hash is stored) and its id."""
        if role not in ROLES:
            raise ConfigError(f"role {role!r} is not one of {', '.join(ROLES)}")
        token = "abt_" + secrets.token_urlsafe(32)
        token_id = "tok_" + secrets.token_hex(6)
        with self.db.transaction() as cur:
            self.require_tenant(cur, tenant_id)
            cur.execute(
                "INSERT INTO api_tokens (id, tenant_id, role, token_hash, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (token_id, tenant_id, role, token_hash(token), time.time()),
            )
            self.db._audit(cur, tenant_id, "cli", "token.added", token_id, {"role": role})
        return token, token_id

    def token(self, token: str) -> tuple[str, str, str] | None:
        """(token id, tenant, role) of a presented token, or None."""
        with self.db.reading() as cur:
            cur.execute(
                "SELECT id, tenant_id, role, token_hash FROM api_tokens WHERE token_hash = ?",
                (token_hash(token),),
            )
            r = cur.fetchone()
        if r is None or not secrets.compare_digest(r[3], token_hash(token)):
            return None
        return r[0], r[1], r[2]

    # -- the replay guard every process shares --------------------------------------------

    def claim(self, msg_id: str, *, now: float, keep_for: float, strict: bool = False) -> bool:
        """``ReplayStore`` over the database: True the first time an id is seen
        (``strict``: raise ``Replayed`` instead of returning False)."""
        self._forget_expired(now)
        with self.db.transaction() as cur:
            return self._claim(cur, Replay(msg_id, now, keep_for), strict=strict)

    def _claim(self, cur: Cursor, replay: Replay, *, strict: bool = True) -> bool:
        cur.execute(
            "INSERT INTO replay_guard (key, expires_at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (replay.key, replay.now + replay.keep_for),
        )
        if cur.rowcount == 1:
            return True
        if strict:
            raise _replayed()
        return False

    def _forget_expired(self, now: float) -> None:
        """Drops expired replay-guard entries, at most once a minute per process (an
        expired entry only guards what the timestamp check refuses anyway)."""
        if now < self._replay_gc_at:
            return
        self._replay_gc_at = now + 60
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM replay_guard WHERE expires_at < ?", (now,))

    # -- the chain ------------------------------------------------------------------------

    def append(
        self,
        tenant_id: str,
        events: Sequence[bytes],
        *,
        redactor: Any,
        audit: Callable[[list[tuple[str, Any, Any]]], bytes] | None = None,
        replay: Replay | None = None,
    ) -> tuple[list[tuple[str, Any, Any]], dict[str, int]]:
        """Prepare (core), drop duplicates, chain and insert ``events`` for ``tenant_id``
        in one transaction with their outbox rows.

        Returns one result per input, ``("accepted", event_id, seq)``,
        ``("duplicate", event_id, None)`` or ``("rejected", code, reason)``, and the
        redactions per rule. ``audit``, given the core's verdicts (``("event", id, n)``
        or ``("rejected", code, reason)`` per input; duplicates are not known yet and
        change no outcome), returns an audit record to chain after the events in the
        same transaction. ``replay`` is claimed in that transaction first;
        ``Replayed`` (nothing stored) when it is taken.

        Calls from several threads share transactions (group commit): whichever finds
        no transaction running commits every batch waiting, each chained in its turn,
        while the others wait. A batch is only ever reported stored once committed."""
        if replay is not None:
            self._forget_expired(replay.now)
        # Parsing, redaction, mapping and hashing need no chain state: done before the
        # transaction, they run in parallel with other requests' transactions.
        unchained = self._ledger(tenant_id, None, redactor)
        prepared = unchained.prepare(list(events))
        results = prepared.results()
        # The audit record's outcome depends only on what was rejected, known now:
        # it is prepared here too, and chained after the events under the lock.
        audited = None
        if audit is not None:
            audited = unchained.prepare([audit(results)])
            if audited.results()[0][0] != "event":
                raise ConfigError(f"audit record rejected: {audited.results()[0][2]}")
        job = _Append(tenant_id, prepared, results, audited, replay)
        with self._group:
            self._waiting.append(job)
            while not job.done and self._committing:
                self._group.wait()
            jobs: list[_Append] = []
            if not job.done:
                self._committing = True
                jobs, self._waiting = self._waiting, []
        if jobs:
            try:
                self._commit(jobs)
            finally:
                with self._group:
                    for j in jobs:
                        j.done = True
                    self._committing = False
                    self._group.notify_all()
        if job.error is not None:
            raise job.error
        assert job.outcome is not None
        return job.outcome, prepared.redactions_by_rule()

    def _commit(self, jobs: list[_Append]) -> None:
        """One transaction for ``jobs``: each job's replay claim, then per tenant (in id
        order, so that processes lock ledgers alike) its jobs chained in arrival order,
        inserted with their outbox rows. A job that cannot be stored (replayed, unknown
        tenant) gets its error and stores nothing; an error of the transaction is every
        job's, and nothing is stored."""
        try:
            with self.db.transaction() as cur:
                if self.db._custom_plans:
                    cur.execute(self.db._custom_plans)  # the duplicate checks below
                sqlite = self.db.dialect == "sqlite"
                if not sqlite:
                    self._claim_all(cur, jobs)
                tenants: dict[str, list[_Append]] = {}
                for job in jobs:
                    if job.error is None:
                        tenants.setdefault(job.tenant_id, []).append(job)
                now = time.time()
                rows: list[tuple[Any, ...]] = []
                outbound: list[OutboundEvent] = []
                routes: dict[str, list[Any]] = {}
                claimed: list[Replay] = []
                for tenant_id in sorted(tenants):
                    group = tenants[tenant_id]
                    chain = (
                        self._chain_sqlite(cur, tenant_id, group, claimed)
                        if sqlite
                        else self._chain_postgres(cur, tenant_id, group)
                    )
                    self._link(cur, tenant_id, group, chain, now, rows, outbound, routes)
                if claimed:  # the write lock held since BEGIN: no one else claims
                    cur.execute(*_claims_sql(claimed))
                # Only what needs the write lock happens under it: other requests wait.
                if rows:
                    self.db.insert_many(cur, "events", _EVENT_COLUMNS, rows)
                if outbound:
                    self.db.enqueue_in(cur, outbound, now=now, destinations=routes)
        except BaseException as e:
            for job in jobs:
                if job.error is None:
                    job.error = e  # the caller raises it, never reading the outcome

    def _claim_all(self, cur: Cursor, jobs: list[_Append]) -> None:
        """Claims every job's replay-guard entry in one statement (PostgreSQL: another
        process may claim the same key meanwhile, and ``ON CONFLICT`` settles who got
        it); a job whose key is taken, or came earlier in the group, is replayed."""
        fresh = _first_claims(jobs, set())
        if not fresh:
            return
        sql, params = _claims_sql(fresh)
        cur.execute(sql + " ON CONFLICT (key) DO NOTHING RETURNING key", params)
        claimed = {row[0] for row in cur.fetchall()}
        for job in jobs:
            if job.error is None and job.replay is not None and job.replay.key not in claimed:
                job.error = _replayed()

    def _chain_postgres(self, cur: Cursor, tenant_id: str, jobs: list[_Append]) -> _Chain | None:
        """The tenant's chain state, locked for this transaction (PostgreSQL): the
        ledger row lock (FOR UPDATE) serializes every process's appends to the tenant,
        and the duplicate check runs under it, in the same round trip."""
        db = cast("PostgresStore", self.db)
        ids = [a for job in jobs for kind, a, _ in job.results if kind == "event"]
        destinations = db.enabled_destinations(cur, tenant_id)  # before the lock
        ledger, existing = db.lock_ledger(cur, tenant_id, ids)
        if ledger is None:
            return None
        seq, state = ledger
        return _Chain(seq, self._ledger(tenant_id, state), existing, destinations)

    def _chain_sqlite(
        self, cur: Cursor, tenant_id: str, jobs: list[_Append], claimed: list[Replay]
    ) -> _Chain | None:
        """The tenant's chain state, its stored duplicates, whether it has destinations
        and which of its jobs' replay-guard keys are taken, in one statement: the
        transaction holds SQLite's write lock, and every statement under it lets go of
        the GIL and must win it back. Fresh keys go to ``claimed`` (inserted once for
        the group); a job whose key is taken, or claimed earlier, is replayed."""
        ids = [a for job in jobs for kind, a, _ in job.results if kind == "event"]
        keys = [job.replay.key for job in jobs if job.replay is not None]
        inline = len(ids) <= _INLINE_IDS  # else looked up in chunks (parameter limit)
        cur.execute(
            "SELECT seq, state, "
            + (
                "(SELECT json_group_array(event_id) FROM events WHERE tenant_id = ? AND "
                f"event_id IN ({', '.join('?' * len(ids))})), "
                if inline and ids
                else "NULL, "
            )
            + "EXISTS (SELECT 1 FROM destinations WHERE tenant_id = ? AND enabled = ?), "
            + (
                f"(SELECT json_group_array(key) FROM replay_guard WHERE key IN "
                f"({', '.join('?' * len(keys))}))"
                if keys
                else "NULL"
            )
            + " FROM ledgers WHERE tenant_id = ?",
            (
                *((tenant_id, *ids) if inline and ids else ()),
                tenant_id,
                True,
                *keys,
                tenant_id,
            ),
        )
        r = cur.fetchone()
        if r is None:
            return None
        seq, state, found, has_destinations, taken_keys = r
        existing = set(orjson.loads(found)) if found else set()
        if not inline:
            existing = self._existing(cur, tenant_id, ids)
        taken = set(orjson.loads(taken_keys)) if taken_keys else set()
        claimed.extend(_first_claims(jobs, taken | {c.key for c in claimed}))
        destinations = self.db.enabled_destinations(cur, tenant_id) if has_destinations else []
        state = None if state is None else bytes(state)
        return _Chain(int(seq), self._ledger(tenant_id, state), existing, destinations)

    def _link(
        self,
        cur: Cursor,
        tenant_id: str,
        jobs: list[_Append],
        chain: _Chain | None,
        now: float,
        rows: list[tuple[Any, ...]],
        outbound: list[OutboundEvent],
        routes: dict[str, list[Any]],
    ) -> None:
        """Chains ``jobs`` (one tenant's, not replayed) in turn, dropping events the
        store holds or an earlier job brought; their rows go to ``rows`` and
        ``outbound``, and the tenant's ledger row moves on."""
        if chain is None:
            for job in jobs:
                if job.error is None:
                    job.error = ConfigError(f"no tenant {tenant_id!r}")
            return
        ledger, existing, destinations = chain.ledger, chain.existing, chain.destinations
        seen: set[str] = set()
        for job in jobs:
            if job.error is not None:  # replayed: stores nothing
                continue
            keep: list[bool] = []
            out: list[tuple[str, Any, Any]] = []
            for kind, a, b in job.results:
                if kind != "event":
                    keep.append(False)
                    out.append(("rejected", a, b))
                elif a in existing or a in seen:
                    keep.append(False)
                    out.append(("duplicate", a, None))
                else:
                    seen.add(a)
                    keep.append(True)
                    out.append(("accepted", a, None))
            records = ledger.append_records(job.prepared, keep, job.audited)
            seq_of = {rec[1]: rec[0] for rec in records}
            job.outcome = [
                (k, a, seq_of.get(a)) if k == "accepted" else (k, a, b) for k, a, b in out
            ]
            rows.extend([(tenant_id, *rec, now) for rec in records])
            if destinations:
                outbound.extend(
                    OutboundEvent(tenant_id, event_id, event_type, severity, line)
                    for _, event_id, event_type, severity, _, line in records
                )
        if destinations:
            routes[tenant_id] = destinations
        if ledger.seq != chain.seq:  # something was chained
            cur.execute(
                "UPDATE ledgers SET seq = ?, state = ? WHERE tenant_id = ?",
                (ledger.seq, ledger.state(), tenant_id),
            )

    def _existing(self, cur: Cursor, tenant_id: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` the tenant's store already holds (SQLite, in chunks)."""
        existing: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            cur.execute(
                "SELECT event_id FROM events WHERE tenant_id = ? AND event_id IN "
                f"({', '.join('?' * len(chunk))})",
                (tenant_id, *chunk),
            )
            existing.update(row[0] for row in cur.fetchall())
        return existing

    def _ledger(self, tenant_id: str, state: bytes | None, redactor: Any = None) -> Ledger:
        return Ledger(
            stream_id_of(tenant_id),
            tenant_id=tenant_id,
            source="urn:agent-bom:ingest",
            checkpoint_every=self.checkpoint_every,
            state=state,
            redactor=redactor,
        )

    def append_audit(
        self,
        tenant_id: str,
        *,
        actor: str,
        action: str,
        outcome: int,
        summary: dict[str, Any],
        at: str,
        replay: Replay | None = None,
    ) -> None:
        """An audit record of one API action, chained into the tenant's stream
        (``replay``: claimed in the same transaction)."""
        record = audit_record(actor=actor, action=action, outcome=outcome, summary=summary, at=at)
        results, _ = self.append(tenant_id, [record], redactor=self.redactor, replay=replay)
        if results[0][0] == "rejected":
            raise ConfigError(f"audit record rejected: {results[0][2]}")

    def seal(self, tenant_id: str) -> int:
        """Checkpoint the records since the last checkpoint; returns the records written."""
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT state FROM ledgers WHERE tenant_id = ?" + self.db._for_update, (tenant_id,)
            )
            r = cur.fetchone()
            if r is None or r[0] is None:
                return 0
            ledger = self._ledger(tenant_id, bytes(r[0]))
            records = ledger.seal()
            if not records:
                return 0
            ce = orjson.loads(records)
            cur.execute(
                "INSERT INTO events (tenant_id, seq, event_id, event_type, severity, time, body, "
                "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    tenant_id,
                    ce["seq"],
                    ce["id"],
                    ce["data"]["event_type"],
                    None,
                    ce["time"],
                    records.rstrip(b"\n"),
                    time.time(),
                ),
            )
            cur.execute(
                "UPDATE ledgers SET seq = ?, state = ? WHERE tenant_id = ?",
                (ledger.seq, ledger.state(), tenant_id),
            )
            return 1

    # -- reads (always by tenant) -----------------------------------------------------------

    def events(
        self,
        tenant_id: str,
        *,
        after_seq: int = -1,
        limit: int = 100,
        event_types: Sequence[str] = (),
        min_severity: str | None = None,
        since: str | None = None,
        include_checkpoints: bool = True,
    ) -> list[StoredEvent]:
        where, params = ["tenant_id = ?", "seq > ?"], [tenant_id, after_seq]
        if event_types:
            where.append(f"event_type IN ({', '.join('?' * len(event_types))})")
            params.extend(event_types)
        elif not include_checkpoints:
            where.append("event_type <> ?")
            params.append("evidence.checkpoint")
        if min_severity is not None:
            allowed = SEVERITIES[SEVERITIES.index(min_severity) :]
            where.append(f"severity IN ({', '.join('?' * len(allowed))})")
            params.extend(allowed)
        if since is not None:
            where.append("time >= ?")
            params.append(since)
        with self.db.reading() as cur:
            cur.execute(
                "SELECT seq, event_id, event_type, severity, time, body FROM events "
                f"WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
                (*params, limit),
            )
            return [
                StoredEvent(int(r[0]), r[1], r[2], r[3], r[4], bytes(r[5])) for r in cur.fetchall()
            ]

    def event(self, tenant_id: str, event_id: str) -> StoredEvent | None:
        with self.db.reading() as cur:
            cur.execute(
                "SELECT seq, event_id, event_type, severity, time, body FROM events "
                "WHERE tenant_id = ? AND event_id = ?",
                (tenant_id, event_id),
            )
            r = cur.fetchone()
        return None if r is None else StoredEvent(int(r[0]), r[1], r[2], r[3], r[4], bytes(r[5]))
