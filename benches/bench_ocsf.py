"""Cost of `evidence stream --ocsf`: the Python OCSF projection against the core stream.

    python benches/bench_ocsf.py [--events N] [--batch B] [--repeat R]

On the same seeded ~1 KiB native events (benches/gen_events.py) held in memory:
  core stream            agent_bom._core.stream, 1 thread, discarding sink
  project_lines          agent_bom.ocsf.project_lines in batches of B (parse, project, re-serialize)
  --ocsf pipeline        project_lines, then the core stream over the projected lines
and prints events/s, µs per event, and the ratios: what --ocsf costs relative to the
core's own work, and how much slower the whole pipeline gets.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agent_bom import _core
from agent_bom.ocsf import project_lines
from gen_events import generate
from timing import Discard, best


def _project_all(lines: list[bytes], batch: int) -> list[bytes]:
    out: list[bytes] = []
    for i in range(0, len(lines), batch):
        out.extend(project_lines(lines[i : i + batch]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()

    lines = [line + b"\n" for line in generate(a.events, seed=1)]
    blob = b"".join(lines)
    projected = _project_all(lines, a.batch)
    with_ocsf = sum(1 for line in projected if b'"ocsf":' in line)
    projected_blob = b"".join(projected)
    print(
        f"{a.events:,} events, {len(blob) / a.events:.0f} bytes each on average; "
        f"{with_ocsf:,} ({with_ocsf / a.events:.0%}) get an OCSF projection, "
        f"{len(projected_blob) / len(blob):.2f}x the bytes with it",
        flush=True,
    )

    def stream(data: bytes) -> Callable[[], object]:
        return lambda: _core.stream(io.BytesIO(data), Discard(), stream_id="bench", threads=1)

    core = best(stream(blob), a.repeat)
    project = best(lambda: _project_all(lines, a.batch), a.repeat)
    core_projected = best(stream(projected_blob), a.repeat)
    pipeline = project + core_projected

    rows = {
        "core stream (1 thread)": core,
        f"project_lines (batches of {a.batch})": project,
        "core stream of the projected lines": core_projected,
        "--ocsf pipeline (project + stream)": pipeline,
    }
    width = max(map(len, rows))
    for name, secs in rows.items():
        rate = a.events / secs
        print(f"  {name:<{width}}  {rate:>12,.0f} events/s  {secs / a.events * 1e6:8.2f} µs/event")
    print("ratios:")
    print(f"  projection time / core stream time        {project / core:6.2f}")
    print(f"  --ocsf pipeline / plain core stream       {pipeline / core:6.2f}")
    print(f"  projection µs per projected event         {project / max(with_ocsf, 1) * 1e6:6.2f}")


if __name__ == "__main__":
    main()
