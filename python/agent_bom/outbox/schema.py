"""Versioned schema migrations, applied on start. Append; never edit a shipped step."""

from __future__ import annotations


def _outbox_tables(identity: str, ref: str, blob: str, real: str, flag: str) -> list[str]:
    """Migration 1 in one dialect: its column types differ, nothing else."""
    return [
        f"""CREATE TABLE destinations (
                id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                url TEXT NOT NULL,
                secret_ref TEXT,
                signing TEXT NOT NULL,
                event_types TEXT NOT NULL,
                min_severity TEXT,
                allow_private_network {flag} NOT NULL,
                allow_http {flag} NOT NULL,
                enabled {flag} NOT NULL,
                disabled_reason TEXT,
                created_at {real} NOT NULL,
                config TEXT NOT NULL
            )""",
        "CREATE INDEX destinations_tenant ON destinations (tenant_id)",
        f"""CREATE TABLE outbox (
                id {identity},
                tenant_id TEXT NOT NULL,
                destination_id TEXT NOT NULL REFERENCES destinations (id),
                event_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                body {blob} NOT NULL,
                status TEXT NOT NULL CHECK (status IN
                    ('pending', 'delivering', 'delivered', 'dead_letter')),
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at {real} NOT NULL,
                next_trigger TEXT NOT NULL DEFAULT 'scheduled',
                lease_owner TEXT,
                lease_expires_at {real},
                last_status INTEGER,
                last_error TEXT,
                created_at {real} NOT NULL,
                updated_at {real} NOT NULL,
                UNIQUE (tenant_id, destination_id, event_id)
            )""",
        "CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE status = 'pending'",
        "CREATE INDEX outbox_leased ON outbox (lease_expires_at) WHERE status = 'delivering'",
        "CREATE INDEX outbox_destination ON outbox (destination_id, status, created_at)",
        f"""CREATE TABLE delivery_attempts (
                id {identity},
                outbox_id {ref} NOT NULL REFERENCES outbox (id),
                attempt INTEGER NOT NULL,
                trigger TEXT NOT NULL,
                status_code INTEGER,
                latency_ms {real},
                error TEXT,
                response_excerpt TEXT,
                at {real} NOT NULL
            )""",
        "CREATE INDEX delivery_attempts_row ON delivery_attempts (outbox_id)",
        f"""CREATE TABLE audit_log (
                id {identity},
                tenant_id TEXT NOT NULL,
                actor TEXT NOT NULL,
                action TEXT NOT NULL,
                subject TEXT NOT NULL,
                detail TEXT NOT NULL,
                at {real} NOT NULL
            )""",
    ]


# Each step: (version, SQLite statements, PostgreSQL statements).
MIGRATIONS: list[tuple[int, list[str], list[str]]] = [
    (
        1,
        _outbox_tables("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER", "BLOB", "REAL", "INTEGER"),
        _outbox_tables(
            "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
            "BIGINT",
            "BYTEA",
            "DOUBLE PRECISION",
            "BOOLEAN",
        ),
    ),
]

# 2: claim indexes carry the tie-breaking id, so a claim reads `LIMIT` rows in order
# instead of sorting every due row (rows enqueued together share a next_attempt_at).
_CLAIM_INDEXES = [
    "DROP INDEX outbox_pending",
    "DROP INDEX outbox_leased",
    "CREATE INDEX outbox_pending ON outbox (next_attempt_at, id) WHERE status = 'pending'",
    "CREATE INDEX outbox_leased ON outbox (lease_expires_at, id) WHERE status = 'delivering'",
]
MIGRATIONS.append((2, _CLAIM_INDEXES, _CLAIM_INDEXES))


# 3: the ingest server: tenants, collectors, API tokens, each tenant's chained
# event store with its ledger state, and the replay guard shared by every process.
def _server_tables(blob: str, real: str, bigint: str) -> list[str]:
    return [
        f"""CREATE TABLE tenants (
            id TEXT PRIMARY KEY,
            created_at {real} NOT NULL
        )""",
        f"""CREATE TABLE ledgers (
            tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
            seq {bigint} NOT NULL,
            state {blob}
        )""",
        f"""CREATE TABLE collectors (
            id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL REFERENCES tenants (id),
            key_type TEXT NOT NULL,
            public_key TEXT,
            secret_enc {blob},
            scope TEXT NOT NULL,
            enabled INTEGER NOT NULL,
            created_at {real} NOT NULL
        )""",
        f"""CREATE TABLE api_tokens (
            id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL REFERENCES tenants (id),
            role TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            created_at {real} NOT NULL
        )""",
        f"""CREATE TABLE events (
            tenant_id TEXT NOT NULL REFERENCES tenants (id),
            seq {bigint} NOT NULL,
            event_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            severity TEXT,
            time TEXT NOT NULL,
            body {blob} NOT NULL,
            received_at {real} NOT NULL,
            PRIMARY KEY (tenant_id, seq),
            UNIQUE (tenant_id, event_id)
        )""",
        "CREATE INDEX events_type ON events (tenant_id, event_type, seq)",
        f"""CREATE TABLE replay_guard (
            key TEXT PRIMARY KEY,
            expires_at {real} NOT NULL
        )""",
        "CREATE INDEX replay_guard_expiry ON replay_guard (expires_at)",
    ]


MIGRATIONS.append(
    (
        3,
        _server_tables("BLOB", "REAL", "INTEGER"),
        _server_tables("BYTEA", "DOUBLE PRECISION", "BIGINT"),
    )
)


# 4: ordered destinations (Kafka) are delivered as a stream. Their rows are enqueued
# with ``ordered = 1`` and delivered in id order under one lease per destination; the
# broker's acknowledgement moves the destination's cursor, so a delivered row is never
# rewritten: a pending ordered row at or below its destination's cursor *is* delivered
# (the store's reads say so), and its attempt is its batch's row in stream_acks. A row
# that fails, or that an operator retries, leaves the stream (``ordered = 0``) and is
# retried row by row like a webhook's. Rows queued before this step stay row-by-row.
def _stream_tables(real: str, bigint: str) -> list[str]:
    return [
        "ALTER TABLE outbox ADD COLUMN ordered INTEGER NOT NULL DEFAULT 0",
        f"""CREATE TABLE stream_cursors (
            destination_id TEXT PRIMARY KEY REFERENCES destinations (id),
            delivered_through {bigint} NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_expires_at {real},
            updated_at {real} NOT NULL
        )""",
        # One row per acknowledged batch: the attempt of every row it delivered.
        f"""CREATE TABLE stream_acks (
            destination_id TEXT NOT NULL REFERENCES destinations (id),
            after_id {bigint} NOT NULL,
            through_id {bigint} NOT NULL,
            latency_ms {real},
            at {real} NOT NULL,
            PRIMARY KEY (destination_id, through_id)
        )""",
        "INSERT INTO stream_cursors (destination_id, delivered_through, updated_at) "
        "SELECT id, 0, created_at FROM destinations WHERE kind = 'kafka'",
        "DROP INDEX outbox_pending",
        "CREATE INDEX outbox_pending ON outbox (next_attempt_at, id) "
        "WHERE status = 'pending' AND ordered = 0",
        "CREATE INDEX outbox_stream ON outbox (destination_id, id) "
        "WHERE status = 'pending' AND ordered = 1",
    ]


MIGRATIONS.append(
    (4, _stream_tables("REAL", "INTEGER"), _stream_tables("DOUBLE PRECISION", "BIGINT"))
)

LATEST = MIGRATIONS[-1][0]

# One statement per kind of due row: expired leases first (their worker died), then
# pending rows whose time has come. Each reads its partial index in order.
CLAIM = """UPDATE outbox SET status = 'delivering', lease_owner = ?, lease_expires_at = ?,
    updated_at = ?
WHERE id IN (
    SELECT o.id FROM outbox o{hint}
    WHERE o.status = '{status}' AND o.ordered = 0 AND o.{column} <= ?
      AND o.destination_id IN (SELECT d.id FROM destinations d WHERE d.enabled = ?)
      {exclude}
    ORDER BY o.{column}, o.id
    LIMIT ?{lock}
)
RETURNING {columns}"""
