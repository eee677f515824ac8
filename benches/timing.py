"""What every benchmark here shares: best-of-N timing and a sink that discards."""

from __future__ import annotations

import time
from collections.abc import Callable


class Discard:
    """A binary sink that drops what it is given (measures the producer, not the disk)."""

    def write(self, b: bytes) -> int:
        return len(b)


def best(fn: Callable[[], object], repeat: int = 3) -> float:
    """The fastest of `repeat` runs of `fn`, in seconds."""
    fastest = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        fastest = min(fastest, time.perf_counter() - t)
    return fastest
