"""Apache Kafka for the test suite: the broker's bootstrap address, and stop/start helpers.

``make test`` starts a single-node KRaft broker with ``scripts/kafka.sh start`` and passes
its address in ``AGENT_BOM_TEST_KAFKA_BOOTSTRAP``. A bare ``pytest`` starts it the same way
(once per session). When no broker can be had, tests needing one fail under ``CI=true``
and are skipped elsewhere (with the reason).

``kafka_stop()`` / ``kafka_start()`` bounce the ``scripts/kafka.sh`` broker for tests that
exercise broker outages; topics and committed offsets survive the bounce.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

ENV_VAR = "AGENT_BOM_TEST_KAFKA_BOOTSTRAP"
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "kafka.sh"
_START_TIMEOUT = 600  # may include fetching the broker jars with Maven on a fresh machine
_STOP_TIMEOUT = 120

_cached: tuple[str | None, str] | None = None  # (bootstrap, error) of the first attempt


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _run(command: str, timeout: float) -> tuple[str | None, str]:
    """Run ``scripts/kafka.sh command``; (last stdout line, "") or (None, error)."""
    env = dict(os.environ)
    # The script's readiness probe uses confluent-kafka; this interpreter has it.
    env.setdefault("AGENT_BOM_KAFKA_PYTHON", sys.executable)
    try:
        p = subprocess.run(
            ["bash", str(SCRIPT), command],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{SCRIPT} {command}: {e}"
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0:
        tail = "\n".join(p.stderr.strip().splitlines()[-30:])
        return None, f"{SCRIPT} {command} exited with {p.returncode}:\n{tail}"
    return (lines[-1].strip() if lines else ""), ""


def _unavailable(msg: str) -> NoReturn:
    if _in_ci():
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def kafka_bootstrap() -> str:
    """Bootstrap address of the test broker: ``$AGENT_BOM_TEST_KAFKA_BOOTSTRAP``, else one we start.

    Fails the test under ``CI=true`` when no broker is available; skips it otherwise.
    """
    global _cached
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return env
    if _cached is None:
        _cached = _run("start", _START_TIMEOUT)
    bootstrap, error = _cached
    if bootstrap:
        return bootstrap
    _unavailable(f"no Kafka broker for the tests ({ENV_VAR} unset and {error})")


def kafka_start() -> str:
    """Start the ``scripts/kafka.sh`` broker (no-op when it runs); return its address.

    Waits until it answers. Fails the test when it cannot be started.
    """
    bootstrap, error = _run("start", _START_TIMEOUT)
    if not bootstrap:
        pytest.fail(f"could not start the Kafka broker: {error}", pytrace=False)
    return bootstrap


def kafka_stop() -> None:
    """Stop the ``scripts/kafka.sh`` broker cleanly (SIGKILL after 30 s); no-op when stopped."""
    out, error = _run("stop", _STOP_TIMEOUT)
    if out is None:
        pytest.fail(f"could not stop the Kafka broker: {error}", pytrace=False)
