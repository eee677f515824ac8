"""EventStore.append from many threads: batches that wait share one transaction
(group commit), yet each is chained, deduplicated, replay-checked and failed on its own."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import orjson
import pytest
from server_support import finding

from agent_bom import evidence as ev
from agent_bom.errors import Replayed
from agent_bom.outbox import OutboxStore
from agent_bom.redaction import load_redactor
from agent_bom.server import store as event_store
from agent_bom.server.store import EventStore, Replay


def _events(ids: range, tenant: str = "acme") -> list[bytes]:
    return [orjson.dumps({**finding(i), "event_id": f"{tenant}-{i}"}) for i in ids]


def _verifies(es: EventStore, tenant: str) -> list[Any]:
    es.seal(tenant)
    stored = es.events(tenant, limit=1000)
    report = ev.verify(io.BytesIO(b"".join(e.body + b"\n" for e in stored)))
    assert report.ok, report.to_dict()
    assert [e.seq for e in stored] == list(range(len(stored)))  # gapless
    return [e for e in stored if e.event_type == "finding.created"]


class _Gate:
    """Holds the first group transaction until ``queued`` more batches wait behind it,
    so they commit together next; records each group's size."""

    def __init__(self, es: EventStore, queued: int, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        commit = EventStore._commit

        def gated(store: EventStore, jobs: list[Any]) -> None:
            self.sizes.append(len(jobs))
            if len(self.sizes) == 1:
                deadline = time.monotonic() + 30
                while len(store._waiting) < queued and time.monotonic() < deadline:
                    time.sleep(0.005)
            commit(store, jobs)

        monkeypatch.setattr(EventStore, "_commit", gated)


def _run(calls: list[Any]) -> list[Any]:
    """Each call in its own thread, the first one started alone; results or exceptions."""
    out: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            out[i] = calls[i]()
        except Exception as e:
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    threads[0].start()
    time.sleep(0.05)
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return out


# 4: the duplicate checks of a group's ids run in chunks instead of in the one lookup
@pytest.mark.parametrize("inline_ids", [10_000, 4])
def test_waiting_batches_share_a_transaction_and_each_gets_its_own_verdicts(
    store: OutboxStore, monkeypatch: pytest.MonkeyPatch, inline_ids: int
) -> None:
    monkeypatch.setattr(event_store, "_INLINE_IDS", inline_ids)
    es = EventStore(store, checkpoint_every=7)
    es.add_tenant("acme")
    es.add_tenant("globex")
    redactor = load_redactor()
    gate = _Gate(es, queued=7, monkeypatch=monkeypatch)
    now = time.time()
    assert es.claim("seen-before", now=now, keep_for=600)  # an earlier request's

    def append(events: list[bytes], tenant: str = "acme", replay: str | None = None) -> Any:
        guard = None if replay is None else Replay(replay, now, 600)
        return es.append(tenant, events, redactor=redactor, replay=guard)[0]

    results = _run(
        [
            lambda: append(_events(range(100, 103))),  # holds the first transaction
            lambda: append(_events(range(0, 10))),
            lambda: append(_events(range(5, 15))),  # 5-9 also in the batch before
            lambda: append(_events(range(0, 5), "globex"), "globex"),
            lambda: append(_events(range(20, 23)), replay="same-request"),
            lambda: append(_events(range(30, 33)), replay="same-request"),
            lambda: append([*_events(range(5, 15)), b"{"]),  # all stored by now, one bad
            lambda: append(_events(range(40, 43)), replay="seen-before"),
        ]
    )
    assert gate.sizes == [1, 7]  # the seven that waited went in one transaction
    assert isinstance(results[7], Replayed)  # claimed by an earlier transaction
    assert not any(isinstance(r, Exception) and not isinstance(r, Replayed) for r in results)
    replayed = [i for i in (4, 5, 7) if isinstance(results[i], Replayed)]
    assert len(replayed) == 2  # one of the two with the same webhook-id, and the 8th
    kept = 5 if 4 in replayed else 4

    status: dict[str, list[str]] = {}
    for i, r in enumerate(results):
        if i in replayed:
            continue
        for kind, a, seq in r:
            status.setdefault(str(a), []).append(kind)
            if kind == "accepted":
                assert isinstance(seq, int)
    # Every id accepted exactly once, wherever it came; later copies are duplicates.
    for event_id, kinds in status.items():
        if event_id == "MALFORMED_JSON":
            continue
        assert kinds.count("accepted") == 1, (event_id, kinds)
    assert status["MALFORMED_JSON"] == ["rejected"]

    acme = _verifies(es, "acme")
    lost = {20, 21, 22} if kept == 5 else {30, 31, 32}
    expected = {f"acme-{i}" for i in [*range(100, 103), *range(0, 15), 20, 21, 22, 30, 31, 32]}
    assert sorted(e.event_id for e in acme) == sorted(expected - {f"acme-{i}" for i in lost})
    # Seqs reported are the ones stored, in the order the batches were chained.
    reported = {
        a: seq for r in results if isinstance(r, list) for _, a, seq in r if seq is not None
    }
    assert {e.event_id: e.seq for e in acme} == {
        k: v for k, v in reported.items() if k.startswith("acme-")
    }
    globex = _verifies(es, "globex")
    assert sorted(e.event_id for e in globex) == [f"globex-{i}" for i in range(5)]


def test_a_group_whose_transaction_fails_fails_every_batch_in_it_and_stores_none(
    store: OutboxStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    es = EventStore(store, checkpoint_every=4)
    es.add_tenant("acme")
    redactor = load_redactor()
    gate = _Gate(es, queued=3, monkeypatch=monkeypatch)
    insert_many = type(store).insert_many
    calls = []

    def failing(self: Any, cur: Any, table: str, columns: Any, rows: Any) -> None:
        calls.append(len(rows))
        if len(calls) == 2:
            raise RuntimeError("disk full")
        insert_many(self, cur, table, columns, rows)

    monkeypatch.setattr(type(store), "insert_many", failing)
    results = _run(
        [lambda k=k: es.append("acme", _events(range(k * 10, k * 10 + 3)), redactor=redactor)[0]
         for k in range(4)]
    )  # fmt: skip
    assert gate.sizes == [1, 3]
    assert isinstance(results[0], list)
    assert all(isinstance(r, RuntimeError) and "disk full" in str(r) for r in results[1:])
    # Nothing of the failed group is stored, and the chain goes on from the first batch.
    results = es.append("acme", _events(range(50, 52)), redactor=redactor)[0]
    assert [k for k, _, _ in results] == ["accepted", "accepted"]
    acme = _verifies(es, "acme")
    assert [e.event_id for e in acme] == [f"acme-{i}" for i in (0, 1, 2, 50, 51)]
