"""The core against an independent pure-Python implementation of DESIGN §4
(benches/reference.py: rfc8785 + hashlib + uuid): same input, same bytes."""

from __future__ import annotations

import io
import random
import sys
from pathlib import Path

import orjson
import pytest

from agent_bom import evidence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benches"))
from gen_events import generate
from reference import reference_stream


def _varied_events(n: int, seed: int) -> list[bytes]:
    """Generated events plus the optional parts of the mapping: producer ids,
    trace context, extra top-level fields, offsets, missing tenant/source."""
    rng = random.Random(seed)
    out = []
    for i, line in enumerate(generate(n, seed)):
        e = orjson.loads(line)
        r = rng.random()
        if r < 0.2:
            e["event_id"] = f"evt-{i}"
        elif r < 0.3:
            e["traceparent"] = f"00-{rng.randrange(1 << 128):032x}-{rng.randrange(1 << 64):016x}-01"
            e["tracestate"] = "vendor=1"
        elif r < 0.4:
            e["extra_field"] = {"nested": [1, 2.5, "ü€😀"], "n": -0.0}
        elif r < 0.5:
            e["created_at"] = "2026-05-01T01:30:00.120+02:00"
        elif r < 0.6:
            del e["tenant_id"]
            del e["source"]
        out.append(orjson.dumps(e))
    return out


@pytest.mark.parametrize("threads", [1, 2])
def test_core_stream_is_byte_identical_to_pure_python_reference(threads: int) -> None:
    lines = _varied_events(2500, seed=11)
    options = {"tenant_id": "default-tenant", "source": "urn:default", "checkpoint_every": 400}
    expected = reference_stream(lines, "diff-1", **options)

    out = io.BytesIO()
    stats = evidence.stream(
        io.BytesIO(b"\n".join(lines) + b"\n"),
        out,
        stream_id="diff-1",
        threads=threads,
        redact=False,  # the reference implements DESIGN §4 only
        **options,
    )

    assert stats.rejected == 0
    assert stats.checkpoints == 7  # after every 400 records, then the tail of 100
    got = out.getvalue()
    for i, (a, b) in enumerate(zip(got.splitlines(), expected.splitlines(), strict=True)):
        assert a == b, f"first difference at output line {i + 1}"
    assert got == expected


def test_reference_and_core_agree_on_checkpoint_only_at_end() -> None:
    lines = _varied_events(37, seed=5)
    expected = reference_stream(lines, "tail", tenant_id="t", source="urn:s", checkpoint_every=0)
    out = io.BytesIO()
    evidence.stream(
        io.BytesIO(b"\n".join(lines)), out, stream_id="tail", tenant_id="t", source="urn:s",
        checkpoint_every=0, threads=1, redact=False,
    )  # fmt: skip
    assert out.getvalue() == expected
    assert out.getvalue().count(b'"type":"io.agentbom.evidence.checkpoint"') == 1
