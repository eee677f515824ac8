"""The reference for benches/bench_server.py: a bare FastAPI endpoint that parses and inserts.

``POST /v1/events`` parses the JSON array with orjson and inserts every event
(``event_id``, its bytes) in one transaction per batch; it answers ``{"accepted": n}``.
No authentication, no validation, no chain, no audit record: the floor a FastAPI app
with the same store pays per batch. The store is SQLite (WAL, synchronous=NORMAL, one
connection behind a lock, as in ``agent-bom serve``) or PostgreSQL (a psycopg pool).
The insert runs in a worker thread (``asyncio.to_thread``), as the server's does.

    python benches/bare_ingest.py --database URL --port P    # serves until killed

The caller creates the table first with ``create_table(url)``, so that several
processes can share one database.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

INSERT = "INSERT INTO bare_events (event_id, body) VALUES ({0}, {0})"


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def create_table(url: str) -> None:
    if is_postgres(url):
        import psycopg

        with psycopg.connect(url, autocommit=True) as pg_conn:
            pg_conn.execute(
                "CREATE TABLE IF NOT EXISTS bare_events (event_id TEXT PRIMARY KEY, body BYTEA)"
            )
        return
    conn = sqlite3.connect(url)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bare_events (event_id TEXT PRIMARY KEY, body BLOB)"
        )
        conn.commit()
    finally:
        conn.close()


def count_rows(url: str) -> int:
    if is_postgres(url):
        import psycopg

        with psycopg.connect(url) as pg_conn:
            row = pg_conn.execute("SELECT COUNT(*) FROM bare_events").fetchone()
    else:
        conn = sqlite3.connect(url)
        try:
            row = conn.execute("SELECT COUNT(*) FROM bare_events").fetchone()
        finally:
            conn.close()
    return int(row[0]) if row else 0


def _sqlite_inserter(path: str) -> Callable[[list[tuple[str, bytes]]], None]:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    lock = threading.Lock()
    sql = INSERT.format("?")

    def insert(rows: list[tuple[str, bytes]]) -> None:
        with lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(sql, rows)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    return insert


def _postgres_inserter(url: str) -> Callable[[list[tuple[str, bytes]]], None]:
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(url, min_size=1, max_size=8, open=True, timeout=30)
    pool.wait(timeout=30)
    sql = INSERT.format("%s")

    def insert(rows: list[tuple[str, bytes]]) -> None:
        with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(sql, rows)

    return insert


def create_app(url: str) -> FastAPI:
    insert = _postgres_inserter(url) if is_postgres(url) else _sqlite_inserter(url)
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/events")
    async def post_events(request: Request) -> JSONResponse:
        items: list[dict[str, Any]] = orjson.loads(await request.body())
        rows = [(item["event_id"], orjson.dumps(item)) for item in items]
        await asyncio.to_thread(insert, rows)
        return JSONResponse({"accepted": len(rows)})

    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--database", required=True, help="a SQLite path or postgresql://…")
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args()
    uvicorn.run(create_app(a.database), host="127.0.0.1", port=a.port, log_level="warning")


if __name__ == "__main__":
    main()
