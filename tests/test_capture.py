"""Bounded capture (`EvidenceStream`): backpressure, memory, threads, bad input."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from agent_bom import evidence as ev
from gen_events import generate

EVENTS = list(generate(2000, seed=21))


def _verify(lines: list[bytes]) -> ev.VerifyReport:
    return ev.verify(io.BytesIO(b"".join(line + b"\n" for line in lines)))


def test_four_threads_recording_at_once_give_one_contiguous_verifying_stream() -> None:
    got: list[bytes] = []
    with ev.EvidenceStream(got.extend, stream_id="threads", checkpoint_every=500, capacity=64) as s:

        def produce(part: list[bytes]) -> None:
            for e in part:
                s.record(e)

        threads = [threading.Thread(target=produce, args=(EVENTS[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    stats = s.finish()
    report = _verify(got)
    assert report.ok and report.sealed, report.errors[:3]
    assert report.events == stats.written == stats.recorded == len(EVENTS)
    seqs = [json.loads(line)["seq"] for line in got]
    assert seqs == list(range(len(got)))


def test_record_accepts_dicts_bytes_and_str_and_notes_keep_the_last_time() -> None:
    got: list[bytes] = []
    first = json.loads(EVENTS[0])
    with ev.EvidenceStream(got.extend, stream_id="kinds", redact=False) as s:
        assert s.record(first)
        assert s.record(EVENTS[1])
        assert s.record(EVENTS[2].decode())
        s.note("collector restarted")
    assert _verify(got).ok
    note = json.loads(got[3])
    assert note["type"] == "io.agentbom.audit.integrity"
    assert note["data"]["payload"] == {"note": "collector restarted"}
    assert note["time"] == json.loads(got[2])["time"]


def test_malformed_events_are_rejected_and_counted_and_the_stream_continues() -> None:
    got: list[bytes] = []
    rejects: list[ev.Reject] = []
    with ev.EvidenceStream(got.extend, stream_id="bad", on_reject=rejects.append) as s:
        s.record(EVENTS[0])
        s.record(b"{not json")
        s.record({"event_type": "finding.created", "tenant_id": "acme", "source": "urn:x"})
        s.record(EVENTS[1])
    stats = s.finish()
    assert (stats.recorded, stats.written, stats.rejected) == (4, 2, 2)
    assert [(r.line, r.code) for r in rejects] == [(2, "MALFORMED_JSON"), (3, "INVALID_EVENT")]
    assert "created_at" in rejects[1].reason
    assert _verify(got).ok


def test_block_keeps_the_queue_within_capacity_and_makes_the_producer_wait() -> None:
    capacity = 50
    seen: list[bytes] = []
    lags: list[int] = []
    holder: dict[str, ev.EvidenceStream] = {}

    def slow_sink(batch: list[bytes]) -> None:
        lags.append(holder["s"].recorded - len(seen))
        time.sleep(0.002)
        seen.extend(batch)

    s = ev.EvidenceStream(slow_sink, stream_id="block", capacity=capacity, redact=False)
    holder["s"] = s
    started = time.perf_counter()
    for e in EVENTS:
        s.record(e)
    waited = time.perf_counter() - started
    stats = s.finish()
    assert stats.dropped == 0 and stats.written == len(EVENTS)
    # Recorded-but-unwritten never exceeds the queue plus the batch in the consumer's hands.
    assert max(lags) <= 2 * capacity
    # At most `capacity` events per sink call, each sleeping 2 ms: the producer had to wait.
    assert waited >= (len(EVENTS) / (2 * capacity)) * 0.002 * 0.8


def test_drop_newest_drops_exactly_what_it_reports() -> None:
    got: list[bytes] = []

    def slow_sink(batch: list[bytes]) -> None:
        time.sleep(0.005)
        got.extend(batch)

    s = ev.EvidenceStream(
        slow_sink, stream_id="drop", capacity=20, when_full="drop_newest", checkpoint_every=100
    )
    accepted = sum(s.record(e) for e in EVENTS)
    stats = s.finish()
    assert stats.dropped > 0
    assert stats.recorded == accepted
    assert stats.dropped == len(EVENTS) - accepted
    report = _verify(got)
    assert report.ok and report.events == accepted
    recorded_drops = sum(
        json.loads(line)["data"]["payload"]["dropped"]
        for line in got
        if b'"type":"io.agentbom.evidence.checkpoint"' in line
    )
    assert recorded_drops == stats.dropped


def test_error_mode_raises_backpressure_error_and_keeps_what_was_queued() -> None:
    got: list[bytes] = []

    def stuck_sink(batch: list[bytes]) -> None:
        time.sleep(0.05)
        got.extend(batch)

    s = ev.EvidenceStream(stuck_sink, stream_id="err", capacity=5, when_full="error")
    queued = 0
    with pytest.raises(ev.BackpressureError, match="queue is full"):
        for e in EVENTS:
            s.record(e)
            queued += 1
    stats = s.finish()
    assert stats.written == stats.recorded == queued
    assert _verify(got).ok


def _captured(threads: int | None, batch: int) -> tuple[list[bytes], list[ev.Reject]]:
    """A mixed sequence (events, notes, malformed lines, a secret) recorded in runs of
    ``batch``, through a capture with ``threads``."""
    got: list[bytes] = []
    rejects: list[ev.Reject] = []
    with ev.EvidenceStream(
        got.extend,
        stream_id="parallel",
        checkpoint_every=97,
        capacity=300,
        threads=threads,
        on_reject=rejects.append,
    ) as s:
        for i in range(0, len(EVENTS), batch):
            s.record_many(EVENTS[i : i + batch])
            if i % (batch * 3) == 0:
                s.note(f"after {i}")
                s.record(b'{"not json')
                s.record(
                    {**json.loads(EVENTS[i]), "event_id": f"k-{i}", "token": "ghp_" + "a" * 36}
                )
    return got, rejects


@pytest.mark.parametrize("threads", [2, 3])
def test_more_threads_write_the_same_bytes_in_the_same_order(threads: int) -> None:
    """The stages that need no order run on several threads; the writer keeps record
    order: notes, rejects, redactions and checkpoints land exactly where one thread
    puts them."""
    one, one_rejects = _captured(None, 50)
    many, many_rejects = _captured(threads, 50)
    assert many == one  # byte for byte
    assert [(r.line, r.code) for r in many_rejects] == [(r.line, r.code) for r in one_rejects]
    report = _verify(many)
    assert report.ok and report.sealed, report.errors[:3]
    assert not any(b"ghp_aaaa" in line for line in many)
    assert len(one_rejects) >= 10 and sum(b'"after ' in line for line in many) >= 10


def test_threads_must_be_at_least_one() -> None:
    from agent_bom.errors import ConfigError

    with pytest.raises(ConfigError, match="threads=0"):
        ev.EvidenceStream(lambda _: None, stream_id="s", threads=0)


@pytest.mark.parametrize("threads", [None, 2])
def test_a_failing_sink_surfaces_its_error_to_the_producer(threads: int | None) -> None:
    def broken(batch: list[bytes]) -> None:
        raise OSError("disk full")

    s = ev.EvidenceStream(broken, stream_id="broken", capacity=4, threads=threads)
    with pytest.raises(OSError, match="disk full"):
        for e in EVENTS:
            s.record(e)
        s.finish()


def test_aggregating_sink_writes_a_bundle_that_verifies(tmp_path: Path) -> None:
    bundle = tmp_path / "capture.tar.gz"
    with ev.EvidenceStream(bundle, stream_id="agg", checkpoint_every=300) as s:
        s.record_many(EVENTS[:1000])
    report = ev.verify(bundle)
    assert report.ok and report.sealed and report.events == 1000


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, time
    sys.path.insert(0, sys.argv[1])
    from gen_events import generate
    from agent_bom import evidence as ev
    total, max_bytes = int(sys.argv[2]), int(sys.argv[3])
    events = list(generate(1000, seed=5))
    written = 0
    def sink(batch):
        global written
        written += len(batch)
        time.sleep(0.0002)
    s = ev.EvidenceStream(
        sink, stream_id="mem", capacity=8192, max_bytes=max_bytes, checkpoint_every=10000
    )
    chunk = 1000
    for i in range(total // chunk):
        s.record_many(events)
    stats = s.finish()
    print(json.dumps({"rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "written": stats.written, "dropped": stats.dropped}))
    """
)


def _run_memory(total: int, max_bytes: int) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(Path(__file__).parent.parent / "benches"),
         str(total), str(max_bytes)],
        check=True, capture_output=True, text=True, timeout=600, env={**os.environ},
    )  # fmt: skip
    result: dict[str, int] = json.loads(out.stdout)
    return result


def test_two_million_events_into_a_slow_sink_keep_memory_bounded() -> None:
    max_bytes = 8 << 20
    baseline = _run_memory(0, max_bytes)
    result = _run_memory(2_000_000, max_bytes)
    assert result["written"] == 2_000_000 and result["dropped"] == 0
    # Bound: the queue holds at most max_bytes (8 MiB) of events; the consumer
    # holds one batch (≤ 256 KiB in, ~2x that mapped) and the sink's list of
    # finished lines (≤ 1 MiB); record_many holds one call's 1,000 events
    # (~1 MiB) as Python objects and again as queued copies. 16 MiB of slack
    # covers allocator fragmentation. 2 GB of events pass through; none of it
    # may accumulate.
    bound_kib = baseline["rss_kib"] + (max_bytes + (4 << 20) + (16 << 20)) // 1024
    assert result["rss_kib"] <= bound_kib, (result, baseline, bound_kib)


def test_a_capture_dropped_without_finish_still_delivers_and_exits() -> None:
    script = textwrap.dedent(
        """
        import gc, sys, time
        sys.path.insert(0, sys.argv[1])
        from gen_events import generate
        from agent_bom import evidence as ev
        got = []
        s = ev.EvidenceStream(got.extend, stream_id="d")
        s.record_many(list(generate(100, 1)))
        del s
        gc.collect()
        for _ in range(100):
            if len(got) == 101:
                break
            time.sleep(0.05)
        print(len(got))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(Path(__file__).parent.parent / "benches")],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.stdout.strip() == "101"  # 100 events and the sealing checkpoint
