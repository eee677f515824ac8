"""Fixtures for the outbox suites: both stores, a real HTTP receiver, a signing secret."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from outbox_support import Receiver

from agent_bom.signing import new_secret


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
