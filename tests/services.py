"""What the tests' real services (PostgreSQL, Kafka) share: a missing service fails the
test under ``CI=true`` and skips it elsewhere, with the reason."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(msg: str) -> NoReturn:
    """Fail (under CI) or skip the current test because a service is missing."""
    if in_ci():
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)
