"""Transactional outbox: persist before the first attempt, deliver under a lease.

``open_store()`` picks the database: an explicit URL, else ``AGENT_BOM_DATABASE_URL``,
else the SQLite file at ``AGENT_BOM_DB``, else ``agent-bom.db`` in the user data dir.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent_bom.errors import ConfigError
from agent_bom.outbox.model import (
    Attempt,
    Claimed,
    Completion,
    Destination,
    EnqueueResult,
    OutboundEvent,
    OutboxRow,
    Status,
)
from agent_bom.outbox.store import OutboxStore

__all__ = [
    "Attempt",
    "Claimed",
    "Completion",
    "Destination",
    "EnqueueResult",
    "OutboundEvent",
    "OutboxRow",
    "OutboxStore",
    "Status",
    "default_sqlite_path",
    "open_store",
]


def default_sqlite_path() -> Path:
    if path := os.environ.get("AGENT_BOM_DB"):
        return Path(path)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "agent-bom" / "agent-bom.db"


def open_store(url: str | None = None) -> OutboxStore:
    """Open (and migrate) the store named by ``url`` or the environment."""
    url = url or os.environ.get("AGENT_BOM_DATABASE_URL") or None
    if url is None:
        from agent_bom.outbox.sqlite import SQLiteStore

        return SQLiteStore(default_sqlite_path())
    if url.startswith(("postgresql://", "postgres://")):
        from agent_bom.outbox.postgres import PostgresStore

        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        from agent_bom.outbox.sqlite import SQLiteStore

        return SQLiteStore(url[len("sqlite:///") :])  # sqlite:////abs/path keeps its slash
    if "://" in url:
        raise ConfigError(
            f"database URL scheme of {url.split('://')[0]!r} is not supported: use "
            "postgresql://USER@HOST:PORT/DB, sqlite:///path/to/file.db or a plain file path"
        )
    from agent_bom.outbox.sqlite import SQLiteStore

    return SQLiteStore(url)
