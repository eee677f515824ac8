"""`evidence stream` throughput against its references, all in one run.

    python benches/bench_stream.py [--events N] [--repeat R]

Measures, on the same seeded ~1 KiB posture events held in memory:
  core (1 and 2 threads)  agent_bom._core.stream, in-memory source, discarding sink
  reference               benches/reference.py: byte-identical pure Python (rfc8785 + hashlib)
  fast orjson             orjson sorted keys + hashlib: same work, not canonical
  sha256 ceiling          one SHA-256 pass over the input bytes
and prints events/s and the ratios the issue sets targets for.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agent_bom import _core
from gen_events import generate
from reference import fast_pipeline, reference_stream, sha256_ceiling
from timing import Discard, best


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--reference-events", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", type=Path, help="also write the figures here")
    a = p.parse_args()

    lines = list(generate(a.events, seed=1))
    blob = b"\n".join(lines) + b"\n"
    ref_lines = lines[: a.reference_events]
    print(
        f"{a.events:,} events, {len(blob) / a.events:.0f} bytes each on average, "
        f"{os.cpu_count()} cores",
        flush=True,
    )

    def core(threads: int) -> Callable[[], None]:
        return lambda: _core.stream(io.BytesIO(blob), Discard(), stream_id="bench", threads=threads)

    rates: dict[str, float] = {}
    rates["core, 1 thread"] = a.events / best(core(1), a.repeat)
    rates["core, 2 threads"] = a.events / best(core(2), a.repeat)
    rates["reference (byte-identical Python)"] = len(ref_lines) / best(
        lambda: reference_stream(ref_lines, "bench"), 1
    )
    rates["fast orjson + hashlib (not canonical)"] = len(ref_lines) / best(
        lambda: fast_pipeline(ref_lines, "bench"), a.repeat
    )
    rates["sha256 alone over the input"] = a.events / best(lambda: sha256_ceiling(blob), a.repeat)

    one, two = rates["core, 1 thread"], rates["core, 2 threads"]
    ratios = {
        "core 1 thread / reference": one / rates["reference (byte-identical Python)"],
        "core 1 thread / fast orjson": one / rates["fast orjson + hashlib (not canonical)"],
        "core 2 threads / core 1 thread": two / one,
        "core 1 thread / sha256 ceiling": one / rates["sha256 alone over the input"],
    }
    width = max(map(len, rates))
    for name, r in rates.items():
        print(f"  {name:<{width}}  {r:>12,.0f} events/s")
    for name, r in ratios.items():
        print(f"  {name:<{width}}  {r:>12.2f}x")
    if a.json:
        a.json.write_text(json.dumps({"events_per_s": rates, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
