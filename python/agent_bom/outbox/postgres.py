"""The store for scale: PostgreSQL through psycopg 3 and a connection pool.

Any number of workers and servers share one database; ``FOR UPDATE SKIP LOCKED``
lets them claim disjoint rows without waiting on each other."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from agent_bom.errors import ConfigError
from agent_bom.outbox.store import Cursor, OutboxStore

try:
    import psycopg
    from psycopg import sql
    from psycopg_pool import ConnectionPool
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ConfigError(
        "PostgreSQL support needs the postgres extra: pip install 'agent-bom[postgres]'"
    ) from e

__all__ = ["PostgresStore"]

_PLACEHOLDER = re.compile(r"\?")


@functools.lru_cache(maxsize=256)
def _pg_sql(sql: str) -> str:
    return _PLACEHOLDER.sub("%s", sql)


_MIGRATION_LOCK = 0x61676E74  # pg_advisory_xact_lock key: one migrator at a time


class _PgCursor:
    """Adapts ``?`` placeholders to psycopg's ``%s``."""

    def __init__(self, cur: psycopg.Cursor[Any]) -> None:
        self._cur = cur

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def execute(self, sql: str, params: Any = None, /, *, binary: bool = False) -> Any:
        return self._cur.execute(_pg_sql(sql), params, binary=binary)

    def executemany(self, sql: str, params: Any, /) -> Any:
        return self._cur.executemany(_pg_sql(sql), params)

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()


class PostgresStore(OutboxStore):
    dialect = "postgresql"
    _for_update = " FOR UPDATE"
    _claim_lock = " FOR UPDATE OF o SKIP LOCKED"
    _stream_claim_lock = " FOR UPDATE OF c SKIP LOCKED"
    # Advisory locks, not row locks: the lock manager queues a shared request behind a
    # waiting exclusive one, where later KEY SHARE row lockers would overtake a waiting
    # FOR UPDATE (a stream under steady ingest could wait forever).
    _stream_fence = "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))"
    # psycopg prepares a statement after five runs, and PostgreSQL may then keep a
    # generic plan made while a table was new and empty: the ingest duplicate check on
    # a growing events table became a sequential scan (25 ms per batch at 20,000 rows).
    # Transactions that run such lookups plan them for their parameters instead.
    _custom_plans = "SET LOCAL plan_cache_mode = force_custom_plan"

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8) -> None:
        self.url = url
        self._types: dict[str, dict[str, str]] = {}
        try:
            self._pool = ConnectionPool(
                url,
                min_size=min_size,
                max_size=max_size,
                open=True,
                timeout=30,
            )
            self._pool.wait(timeout=30)
        except Exception as e:
            raise ConfigError(
                f"cannot connect to PostgreSQL at {_redacted(url)}: {e}; "
                "check AGENT_BOM_DATABASE_URL / --database"
            ) from None
        self._migrate()

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield _PgCursor(cur)

    def _table(
        self, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]
    ) -> tuple[str, list[Any]]:
        """One typed array parameter per column, read by ``unnest``."""
        arrays = ", ".join(f"?::{kind}[]" for _, kind in columns)
        names = ", ".join(name for name, _ in columns)
        params = [[r[i] for r in rows] for i in range(len(columns))]
        return f"unnest({arrays}) WITH ORDINALITY AS j ({names}, k)", params

    def _fence_enqueue(self, cur: Cursor, ordered: list[str]) -> None:
        if ordered:
            cur.execute(
                "SELECT pg_advisory_xact_lock_shared(hashtextextended(d, 0)) "
                "FROM unnest(?::text[]) AS d",
                (sorted(ordered),),
            )

    def _fetch_binary(self, cur: Cursor, sql: str, params: Sequence[Any]) -> list[Any]:
        pg = cast("_PgCursor", cur)  # this store's transactions hand out _PgCursor
        pg.execute(sql, params, binary=True)
        return pg.fetchall()

    def _migrate(self) -> None:
        with self.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            self._apply_migrations(cur, "the database")

    def lock_ledger(
        self, cur: Cursor, tenant_id: str, ids: Sequence[str]
    ) -> tuple[tuple[int, bytes | None] | None, set[str]]:
        """Locks the tenant's ledger row (FOR UPDATE) and reads it, then which of
        ``ids`` the tenant's store holds, in one round trip (a pipeline): under READ
        COMMITTED the second statement's snapshot is taken after the lock is granted,
        so it sees every append committed before ours could begin."""
        assert isinstance(cur, _PgCursor)
        conn = cur._cur.connection
        with conn.pipeline(), conn.cursor() as found:
            cur._cur.execute(
                "SELECT seq, state FROM ledgers WHERE tenant_id = %s FOR UPDATE", (tenant_id,)
            )
            found.execute(
                "SELECT event_id FROM events WHERE tenant_id = %s AND event_id = ANY(%s)",
                (tenant_id, list(ids)),
            )
            row = cur._cur.fetchone()
            existing = {r[0] for r in found.fetchall()}
        if row is None:
            return None, existing
        return (int(row[0]), None if row[1] is None else bytes(row[1])), existing

    def insert_many(
        self, cur: Cursor, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Binary COPY: one stream instead of one INSERT per row. Binary because the text
        format escapes every bytea as hex in Python: 8-11 µs a row against 2-3 µs."""
        assert isinstance(cur, _PgCursor)
        types = self._column_types(cur, table)
        names = sql.SQL(", ").join(map(sql.Identifier, columns))
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.Identifier(table), names
        )
        with cur._cur.copy(statement) as copy:
            copy.set_types([types[c] for c in columns])
            for row in rows:
                copy.write_row(row)

    def _column_types(self, cur: _PgCursor, table: str) -> dict[str, str]:
        """The table's column types as binary COPY needs them (read once per table)."""
        known = self._types.get(table)
        if known is None:
            cur.execute(
                "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute "
                "WHERE attrelid = to_regclass(?) AND attnum > 0 AND NOT attisdropped",
                (table,),
            )
            known = self._types[table] = {name: t for name, t in cur.fetchall()}
        return known

    def close(self) -> None:
        self._pool.close()


def _redacted(url: str) -> str:
    """The URL without its password, for error messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
