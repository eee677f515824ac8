"""Apache Kafka for the test suite: the broker's bootstrap address, and stop/start helpers.

``make test`` starts a single-node KRaft broker with ``scripts/kafka.sh start`` and passes
its address in ``AGENT_BOM_TEST_KAFKA_BOOTSTRAP``. A bare ``pytest`` starts it the same way
(once per session). When no broker can be had, tests needing one fail under ``CI=true``
and are skipped elsewhere (with the reason).

``kafka_stop()`` / ``kafka_start()`` bounce the ``scripts/kafka.sh`` broker for tests that
exercise broker outages; topics and committed offsets survive the bounce.
``second_broker(...)`` runs another broker with its own ports and settings (e.g. no topic
auto-creation) for the length of a ``with`` block.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from services import unavailable

ENV_VAR = "AGENT_BOM_TEST_KAFKA_BOOTSTRAP"
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "kafka.sh"
_START_TIMEOUT = 600  # may include fetching the broker jars with Maven on a fresh machine
_STOP_TIMEOUT = 120

_cached: tuple[str | None, str] | None = None  # (bootstrap, error) of the first attempt


def _run(
    command: str, timeout: float, extra_env: dict[str, str] | None = None
) -> tuple[str | None, str]:
    """Run ``scripts/kafka.sh command``; (last stdout line, "") or (None, error)."""
    env = dict(os.environ) | (extra_env or {})
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
    unavailable(f"no Kafka broker for the tests ({ENV_VAR} unset and {error})")


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


def _default_dir() -> Path:
    """The state dir ``scripts/kafka.sh`` uses when ``AGENT_BOM_KAFKA_DIR`` is unset."""
    if os.environ.get("AGENT_BOM_KAFKA_DIR"):
        return Path(os.environ["AGENT_BOM_KAFKA_DIR"])
    if os.geteuid() == 0:
        return Path("/var/lib/agent-bom/kafka")
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "agent-bom" / "kafka"


@contextmanager
def second_broker(state_dir: Path, *, port: int, auto_create: bool) -> Iterator[str]:
    """Another single-node broker on ``port`` (controller on ``port + 1``) with its state
    in ``state_dir``, sharing the main broker's jars; yields its bootstrap address and
    stops it afterwards. Fails (or skips outside CI) when it cannot start."""
    kafka_bootstrap()  # the main broker fetched the jars this one shares
    env = {
        "AGENT_BOM_KAFKA_DIR": str(state_dir),
        "AGENT_BOM_KAFKA_LIB": str(_default_dir() / "lib"),
        "AGENT_BOM_KAFKA_PORT": str(port),
        "AGENT_BOM_KAFKA_CONTROLLER_PORT": str(port + 1),
        "AGENT_BOM_KAFKA_AUTO_CREATE": "true" if auto_create else "false",
    }
    bootstrap, error = _run("start", _START_TIMEOUT, env)
    if not bootstrap:
        _run("stop", _STOP_TIMEOUT, env)
        unavailable(f"could not start a second Kafka broker: {error}")
    try:
        yield bootstrap
    finally:
        _run("stop", _STOP_TIMEOUT, env)
