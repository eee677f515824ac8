"""What a send's outcome means for the row: delivered, retried when, or dead-lettered why.

Pure functions of the outcome, the attempt count and the policy, so the whole
decision table is tested without a network."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from agent_bom.errors import ConfigError
from agent_bom.outbox.model import Transition

__all__ = [
    "DEFAULT_SCHEDULE",
    "RETRYABLE_STATUS",
    "CircuitBreaker",
    "Decision",
    "RetryPolicy",
    "SendResult",
    "decide",
    "parse_duration",
]

# 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: eight attempts over about 28 hours.
DEFAULT_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(text: str) -> float:
    """``"5s"``, ``"30m"``, ``"2h"``, ``"1.5"`` (seconds) → seconds."""
    m = _DURATION.match(text)
    if not m:
        raise ConfigError(f"duration {text!r} is not a number with an optional unit ms|s|m|h|d")
    return float(m[1]) * _UNITS[m[2] or "s"]


@dataclass(frozen=True)
class RetryPolicy:
    """Delays after each failed attempt, with ±``jitter`` spread; ``Retry-After`` is
    honoured but clamped to ``[retry_after_min, retry_after_max]``."""

    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    jitter: float = 0.2
    retry_after_min: float = 1.0
    retry_after_max: float = 36000.0

    def __post_init__(self) -> None:
        if any(d < 0 for d in self.schedule):
            raise ConfigError("retry schedule delays must be zero or positive")
        if not 0 <= self.jitter < 1:
            raise ConfigError("retry jitter must be in [0, 1), e.g. 0.2 for ±20%")

    @classmethod
    def parse(cls, spec: str, *, jitter: float = 0.2) -> RetryPolicy:
        """From ``"5s,5m,30m,2h"``; an empty spec means no retries."""
        steps = tuple(parse_duration(p) for p in spec.split(",") if p.strip())
        return cls(schedule=steps, jitter=jitter)

    @property
    def max_attempts(self) -> int:
        return len(self.schedule) + 1

    def delay(self, attempts: int, rng: random.Random) -> float | None:
        """Seconds to wait after the ``attempts``-th failure, or None when exhausted."""
        if attempts > len(self.schedule):
            return None
        base = self.schedule[attempts - 1]
        return base * (1 + rng.uniform(-self.jitter, self.jitter)) if self.jitter else base


@dataclass(frozen=True)
class SendResult:
    """What a connector observed. ``permanent`` errors never succeed on retry."""

    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    response_excerpt: str | None = None
    retry_after: float | None = None
    location: str | None = None
    permanent: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Decision:
    transition: Transition
    reason: str | None = None
    next_attempt_at: float | None = None
    disable_destination: str | None = None
    destination_failure: bool = False  # counts toward the circuit breaker


def decide(
    result: SendResult,
    attempts_before: int,
    policy: RetryPolicy,
    now: float,
    rng: random.Random,
) -> Decision:
    """The row's next state after this attempt (attempt number ``attempts_before + 1``)."""
    n = attempts_before + 1
    code = result.status_code
    if result.ok:
        return Decision("delivered")
    if result.permanent:
        return Decision("dead_letter", result.error)
    if code == 410:
        why = "HTTP 410 Gone: the receiver retired this endpoint; destination disabled"
        return Decision("dead_letter", why, disable_destination=why)
    if code is not None and 300 <= code < 400:
        where = f" to {result.location}" if result.location else ""
        reason = (
            f"HTTP {code} redirect{where} not followed (redirects are never followed; "
            "point the destination at the final URL)"
        )
    elif code is not None and code not in RETRYABLE_STATUS:
        return Decision("dead_letter", f"HTTP {code} is not retryable")
    else:
        reason = result.error or f"HTTP {code}"
    destination_failure = code is None or code in RETRYABLE_STATUS
    if result.retry_after is not None and n <= len(policy.schedule):
        wait: float | None = min(
            max(result.retry_after, policy.retry_after_min), policy.retry_after_max
        )
    else:
        wait = policy.delay(n, rng)
    if wait is None:
        return Decision(
            "dead_letter",
            f"retry schedule exhausted after {n} attempts; last: {reason}",
            destination_failure=destination_failure,
        )
    return Decision(
        "retry", reason, next_attempt_at=now + wait, destination_failure=destination_failure
    )


@dataclass
class _Circuit:
    failures: int = 0
    open_until: float = 0.0
    cooldown: float = 0.0


@dataclass
class CircuitBreaker:
    """Per destination: after ``threshold`` consecutive failures stop sending for a
    cooldown (doubling up to ``max_cooldown``); then let traffic probe again."""

    threshold: int = 5
    cooldown: float = 30.0
    max_cooldown: float = 600.0
    _circuits: dict[str, _Circuit] = field(default_factory=dict)

    def is_open(self, destination_id: str, now: float) -> bool:
        c = self._circuits.get(destination_id)
        return c is not None and c.open_until > now

    def open_until(self, destination_id: str) -> float:
        c = self._circuits.get(destination_id)
        return c.open_until if c else 0.0

    def open_destinations(self, now: float) -> list[str]:
        return sorted(d for d, c in self._circuits.items() if c.open_until > now)

    def record(self, destination_id: str, *, failed: bool, now: float) -> bool:
        """Counts one send's outcome; True when this failure opened the circuit."""
        c = self._circuits.setdefault(destination_id, _Circuit())
        if not failed:
            self._circuits.pop(destination_id, None)
            return False
        c.failures += 1
        if c.failures >= self.threshold and c.open_until <= now:
            c.cooldown = min(c.cooldown * 2, self.max_cooldown) if c.cooldown else self.cooldown
            c.open_until = now + c.cooldown
            return True
        return False
