"""PostgreSQL for the test suite: the server DSN and throwaway databases.

``make test`` starts a private server with ``scripts/postgres.sh start`` and passes its
DSN in ``AGENT_BOM_TEST_DATABASE_URL``. A bare ``pytest`` starts it the same way. When
no server can be had, tests needing one fail under ``CI=true`` and are skipped
elsewhere (with the reason).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from services import unavailable

ENV_VAR = "AGENT_BOM_TEST_DATABASE_URL"
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "postgres.sh"
_START_TIMEOUT = 600  # may include apt-get install on a fresh machine

_cached: tuple[str | None, str] | None = None  # (dsn, error) of the first attempt


def _start_server() -> tuple[str | None, str]:
    try:
        p = subprocess.run(
            ["bash", str(SCRIPT), "start"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{SCRIPT} start: {e}"
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        tail = "\n".join(p.stderr.strip().splitlines()[-15:])
        return None, f"{SCRIPT} start exited with {p.returncode}:\n{tail}"
    return lines[-1].strip(), ""


def postgres_dsn() -> str:
    """DSN of the test server: ``$AGENT_BOM_TEST_DATABASE_URL``, else one we start.

    Fails the test under ``CI=true`` when no server is available; skips it otherwise.
    """
    global _cached
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return env
    if _cached is None:
        _cached = _start_server()
    dsn, error = _cached
    if dsn:
        return dsn
    unavailable(f"no PostgreSQL server for the tests ({ENV_VAR} unset and {error})")


def _with_dbname(dsn: str, dbname: str) -> str:
    """``dsn`` pointing at database ``dbname`` (URL form kept when given a URL)."""
    parts = urlsplit(dsn)
    if parts.scheme in {"postgresql", "postgres"}:
        return urlunsplit(parts._replace(path="/" + dbname))
    from psycopg.conninfo import make_conninfo

    return make_conninfo(dsn, dbname=dbname)


def _dbname(dsn: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    name = conninfo_to_dict(dsn).get("dbname")
    if not name:
        raise ValueError(f"no database name in {dsn!r}")
    return str(name)


def fresh_database(dsn: str) -> str:
    """Create a new, empty, uniquely named database on ``dsn``'s server; return its DSN."""
    import psycopg
    from psycopg import sql

    name = f"agent_bom_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _with_dbname(dsn, name)


def drop_database(dsn: str) -> None:
    """Drop the database ``dsn`` names, terminating any sessions still connected to it."""
    import psycopg
    from psycopg import sql

    name = _dbname(dsn)
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    # An autovacuum worker can be inside the database at the moment we drop it; FORCE
    # may then be refused (it cannot signal a process without a role). It ends within
    # moments, so try again.
    for attempt in range(50):
        try:
            with psycopg.connect(_with_dbname(dsn, "postgres"), autocommit=True) as conn:
                conn.execute(drop)
            return
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectInUse):
            if attempt == 49:
                raise
            time.sleep(0.1)
