"""OutboxStore semantics, identical on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from outbox_support import SECRET_REF, TENANT, cloudevents

from agent_bom.errors import ConfigError
from agent_bom.outbox import Completion, OutboundEvent, OutboxStore, Status, open_store


def events(n: int, tenant: str = TENANT) -> list[OutboundEvent]:
    return [OutboundEvent.from_cloudevent(line) for line in cloudevents(n, tenant)]


def add(store: OutboxStore, **kw: object) -> str:
    args: dict[str, object] = {
        "tenant_id": TENANT,
        "url": "https://hooks.example.com/in",
        "secret_ref": SECRET_REF,
    }
    args.update(kw)
    return store.add_destination(**args).id  # type: ignore[arg-type]


def test_migrations_are_versioned_and_applied_once(store_url: str) -> None:
    for _ in range(2):
        with open_store(store_url) as s, s.transaction() as cur:
            cur.execute("SELECT version FROM schema_migrations ORDER BY version")
            assert [r[0] for r in cur.fetchall()] == [1, 2, 3, 4]


def test_enqueue_fans_out_to_matching_destinations_of_the_tenant(store: OutboxStore) -> None:
    every = add(store)
    high = add(store, min_severity="high")
    other_type = add(store, event_types=["skill.verdict"])
    other_tenant = add(store, tenant_id="globex")
    evs = events(10)  # severities cycle info, low, medium, high, critical
    result = store.enqueue(evs)
    assert (result.events, result.rows, result.duplicates, result.unmatched) == (10, 14, 0, 0)
    per = {d: len(store.list_rows(destination_id=d)) for d in (every, high, other_type)}
    assert per == {every: 10, high: 4, other_type: 0}
    assert store.list_rows(destination_id=other_tenant) == []
    row = store.list_rows(destination_id=every, limit=1)[0]
    assert row.body == evs[0].body  # the exact bytes, not a re-serialization
    assert row.status == Status.PENDING and row.attempts == 0


def test_enqueue_is_idempotent_per_tenant_destination_event(store: OutboxStore) -> None:
    add(store)
    evs = events(5)
    store.enqueue(evs)
    again = store.enqueue(evs[:3] + events(7)[5:])
    assert (again.rows, again.duplicates) == (2, 3)
    assert len(store.list_rows()) == 7


def test_disabled_destinations_get_no_new_rows_and_are_not_claimed(store: OutboxStore) -> None:
    dest = add(store)
    store.enqueue(events(2))
    store.set_enabled(dest, False, "maintenance")
    assert store.enqueue(events(4)).unmatched == 4  # no enabled destination left
    assert store.claim_due("w1", limit=10, lease_seconds=30) == []
    assert store.get_destination(dest).disabled_reason == "maintenance"
    store.set_enabled(dest, True)
    assert len(store.claim_due("w1", limit=10, lease_seconds=30)) == 2


def test_a_lease_is_exclusive_until_it_expires(store: OutboxStore) -> None:
    add(store)
    store.enqueue(events(6))
    now = time.time()
    first = store.claim_due("w1", limit=4, lease_seconds=30, now=now)
    second = store.claim_due("w2", limit=10, lease_seconds=30, now=now)
    assert len(first) == 4 and len(second) == 2
    assert not {c.row.id for c in first} & {c.row.id for c in second}
    assert store.claim_due("w3", limit=10, lease_seconds=30, now=now + 29) == []
    # w1 died: after its lease expires, its rows go to whoever claims next.
    reclaimed = store.claim_due("w3", limit=10, lease_seconds=30, now=now + 31)
    assert {c.row.id for c in reclaimed} == {c.row.id for c in first} | {c.row.id for c in second}


def test_a_worker_that_lost_its_lease_cannot_overwrite_the_row(store: OutboxStore) -> None:
    add(store)
    store.enqueue(events(1))
    now = time.time()
    (old,) = store.claim_due("w1", limit=1, lease_seconds=1, now=now)
    (new,) = store.claim_due("w2", limit=1, lease_seconds=30, now=now + 2)
    late = Completion(old.row.id, "w1", "dead_letter", now + 3, error="late")
    assert store.finish([late]) == 0
    assert store.finish([Completion(new.row.id, "w2", "delivered", now + 3, status_code=200)]) == 1
    row = store.get_row(new.row.id)
    assert (row.status, row.attempts, row.lease_owner) == (Status.DELIVERED, 1, None)
    assert [a.status_code for a in store.attempts(row.id)] == [200]


def test_claim_skips_rows_not_yet_due_and_excluded_destinations(store: OutboxStore) -> None:
    a, b = add(store), add(store)
    store.enqueue(events(2))
    now = time.time()
    claimed = store.claim_due("w", limit=10, lease_seconds=30, now=now, exclude_destinations=[a])
    assert {c.destination.id for c in claimed} == {b}
    store.finish(
        [Completion(c.row.id, "w", "retry", now, next_attempt_at=now + 60) for c in claimed]
    )
    later = store.claim_due("w", limit=10, lease_seconds=30, now=now + 1)
    assert {c.destination.id for c in later} == {a}


def test_release_hands_rows_back_without_counting_an_attempt(store: OutboxStore) -> None:
    add(store)
    store.enqueue(events(3))
    store.claim_due("w", limit=3, lease_seconds=30)
    assert store.release("w") == 3
    rows = store.list_rows()
    assert {(r.status, r.attempts, r.lease_owner) for r in rows} == {(Status.PENDING, 0, None)}


def test_retry_resets_attempts_and_marks_the_next_attempt_manual(store: OutboxStore) -> None:
    add(store)
    store.enqueue(events(1))
    now = time.time()
    (c,) = store.claim_due("w", limit=1, lease_seconds=30, now=now)
    store.finish([Completion(c.row.id, "w", "dead_letter", now, status_code=400, error="HTTP 400")])
    row = store.retry(c.row.id)
    assert (row.status, row.attempts, row.next_trigger) == (Status.PENDING, 0, "manual")
    (again,) = store.claim_due("w", limit=1, lease_seconds=30)
    store.finish([Completion(again.row.id, "w", "delivered", time.time(), status_code=204)])
    assert [(a.attempt, a.trigger) for a in store.attempts(c.row.id)] == [
        (1, "scheduled"),
        (1, "manual"),
    ]
    actions = [r["action"] for r in store.audit_records(TENANT)]
    assert "delivery.retry" in actions and "delivery.dead_lettered" in actions


def test_retry_refuses_a_row_being_delivered(store: OutboxStore) -> None:
    add(store)
    store.enqueue(events(1))
    (c,) = store.claim_due("w", limit=1, lease_seconds=30)
    with pytest.raises(ConfigError, match="being delivered"):
        store.retry(c.row.id)


def test_retry_of_a_row_leased_after_it_was_read_changes_nothing(
    store: OutboxStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(store)
    store.enqueue(events(1))
    (row,) = store.list_rows()
    stale = store.get_row(row.id)  # pending, as retry's first read would see it
    store.claim_due("w", limit=1, lease_seconds=30)
    # retry reads the row before its transaction: there it sees no lease.
    monkeypatch.setattr(store, "get_row", lambda row_id: stale)
    with pytest.raises(ConfigError, match="leased for delivery just now"):
        store.retry(row.id)
    monkeypatch.undo()
    now = store.get_row(row.id)
    assert (now.status, now.lease_owner, now.attempts) == (Status.DELIVERING, "w", 0)
    assert "delivery.retry" not in [r["action"] for r in store.audit_records(TENANT)]


def test_recover_requeues_dead_letters_in_a_window_up_to_a_cap(store: OutboxStore) -> None:
    dest = add(store)
    store.enqueue(events(5), now=1000.0)
    store.enqueue(events(8)[5:], now=2000.0)
    claimed = store.claim_due("w", limit=10, lease_seconds=30, now=3000.0)
    store.finish([Completion(c.row.id, "w", "dead_letter", 3000.0, error="x") for c in claimed])
    with pytest.raises(ConfigError, match="more than the cap of 4"):
        store.recover(dest, since=0, cap=4)
    assert len(store.list_rows(status="dead_letter")) == 8  # nothing changed
    assert store.recover(dest, since=0, until=1500.0, cap=5) == 5
    pending = store.list_rows(status="pending")
    assert len(pending) == 5 and {r.next_trigger for r in pending} == {"manual"}
    assert store.recover(dest, since=1500.0) == 3


def test_stats_count_rows_per_status_and_destination(store: OutboxStore) -> None:
    dest = add(store)
    store.enqueue(events(4), now=time.time() - 100)
    (c, *_) = store.claim_due("w", limit=1, lease_seconds=30)
    store.finish([Completion(c.row.id, "w", "delivered", time.time(), status_code=200)])
    stats = store.stats(TENANT)
    assert stats["totals"] == {"pending": 3, "delivering": 0, "delivered": 1, "dead_letter": 0}
    assert stats["destinations"][dest]["oldest_due_seconds"] >= 99


def test_destination_validation_names_the_problem(store: OutboxStore) -> None:
    with pytest.raises(ConfigError, match="env:NAME or file:/absolute/path"):
        add(store, secret_ref="whsec_rawsecretinline")
    with pytest.raises(ConfigError, match="min severity 'urgent'"):
        add(store, min_severity="urgent")
    with pytest.raises(ConfigError, match="needs --secret-ref"):
        add(store, secret_ref=None)
    with pytest.raises(ConfigError, match="no destination 'dst_nope'"):
        store.get_destination("dst_nope")


def test_a_new_sqlite_file_gets_16_kib_pages_and_an_old_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    from agent_bom.outbox.sqlite import PAGE_SIZE

    store = open_store(str(tmp_path / "new.db"))
    store.close()
    assert sqlite3.connect(tmp_path / "new.db").execute("PRAGMA page_size").fetchone() == (
        PAGE_SIZE,
    )
    old = sqlite3.connect(tmp_path / "old.db")  # made by an earlier version: 4 KiB pages
    old.execute("PRAGMA page_size = 4096")
    old.execute("PRAGMA journal_mode = WAL")
    old.execute("CREATE TABLE keep (x)")
    old.close()
    store = open_store(str(tmp_path / "old.db"))
    store.enqueue([OutboundEvent(TENANT, "e-1", "finding.created", "high", b"{}")])
    store.close()
    assert sqlite3.connect(tmp_path / "old.db").execute("PRAGMA page_size").fetchone() == (4096,)


def test_unknown_database_scheme_is_refused() -> None:
    with pytest.raises(ConfigError, match="mysql"):
        open_store("mysql://db/x")


def test_sqlite_checkpoints_in_the_background_off_the_commit_path(tmp_path: Path) -> None:
    """With the background checkpointer no commit checkpoints (the WAL outgrows
    SQLite's 1,000-page trigger), yet the thread copies it all into the database."""
    from agent_bom.outbox.sqlite import SQLiteStore

    store = open_store(f"sqlite:///{tmp_path / 'o.db'}")
    assert isinstance(store, SQLiteStore)
    # Another connection stays open, so closing the store's does not checkpoint the WAL.
    keeper = sqlite3.connect(tmp_path / "o.db")
    keeper.execute("SELECT count(*) FROM outbox").fetchone()
    store.checkpoint_in_background(interval=3600)  # the thread stays idle during the writes
    store.add_destination(tenant_id=TENANT, url="https://example.com/hook", secret_ref=SECRET_REF)
    # ~24 MiB of bodies, beyond SQLite's 1,000 pages of WAL (16 MiB at 16 KiB pages)
    for i in range(24):
        store.enqueue([OutboundEvent(TENANT, f"e-{i}-{j}", "finding.created", "high",
                                     b"x" * 4096) for j in range(256)])  # fmt: skip
    wal = tmp_path / "o.db-wal"
    assert wal.stat().st_size > 20 * 1024 * 1024  # no commit checkpointed and reset it
    store.close()  # stops the thread

    store = open_store(f"sqlite:///{tmp_path / 'o.db'}")
    assert isinstance(store, SQLiteStore)
    store.checkpoint_in_background(interval=0.05, wal_limit=1024 * 1024)
    time.sleep(0.5)  # rounds of PASSIVE checkpoints
    # A commit can restart the WAL (and trim its file) only once every frame is in the
    # database: the thread did that.
    store.enqueue([OutboundEvent(TENANT, "after", "finding.created", "high", b"{}")])
    assert wal.stat().st_size <= 1024 * 1024
    assert store.stats()["totals"]["pending"] == 24 * 256 + 1
    store.close()
    keeper.close()


def test_insert_many_round_trips_awkward_values(store: OutboxStore) -> None:
    """PostgreSQL inserts batches with COPY: text and bytes that COPY's own format
    escapes (tabs, newlines, backslashes, \\N, NUL bytes) and NULLs come back as given."""
    from agent_bom.server.store import _EVENT_COLUMNS, EventStore

    EventStore(store).add_tenant("acme")
    awkward = ["tab\there", "new\nline\r\n", "back\\slash \\N", "\\N", "ünï \u2028 😀", ""]
    rows = [
        (
            "acme",
            i,
            f"e-{i}",
            text,
            None if i % 2 else "high",
            text,
            text.encode() + b"\x00\xff",
            1.5,
        )
        for i, text in enumerate(awkward)
    ]
    columns = _EVENT_COLUMNS  # tenant_id, seq, event_id, event_type, severity, time, body, …
    with store.transaction() as cur:
        store.insert_many(cur, "events", columns, rows)
    with store.transaction() as cur:
        cur.execute(f"SELECT {', '.join(columns)} FROM events ORDER BY seq")
        got = [
            tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in cur.fetchall()
        ]
    assert got == rows


def test_sqlite_reads_neither_wait_for_nor_hold_up_the_writer(tmp_path: Path) -> None:
    """Reads (list_rows, stats, the server's event pages, token lookups) run on each
    thread's own connection: a write transaction in progress does not hold them up,
    they see the last commit, and the next read sees the writer's commit."""
    import threading

    store = open_store(str(tmp_path / "o.db"))
    try:
        add(store)
        store.enqueue(events(3))
        entered, release = threading.Event(), threading.Event()

        def writer() -> None:
            with store.transaction() as cur:
                cur.execute("UPDATE outbox SET attempts = 7")
                entered.set()
                release.wait(10)

        t = threading.Thread(target=writer)
        t.start()
        assert entered.wait(5)
        started = time.monotonic()
        rows = store.list_rows()
        waited = time.monotonic() - started
        release.set()
        t.join()
        assert waited < 1 and [r.attempts for r in rows] == [0, 0, 0]
        assert [r.attempts for r in store.list_rows()] == [7, 7, 7]
    finally:
        store.close()
