"""Fixtures for the outbox suites: both stores, a real HTTP receiver, a signing secret."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from outbox_support import Receiver

from agent_bom.outbox import OutboxStore, open_store
from agent_bom.signing import new_secret


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every outbox test runs on the embedded SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "outbox.db")
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
def store(store_url: str) -> Iterator[OutboxStore]:
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    value = new_secret()
    monkeypatch.setenv("AGENT_BOM_TEST_WEBHOOK_SECRET", value)
    return value


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
