"""Ordered destinations (Kafka) as streams: one lease and one cursor per destination.

The worker's stream logic against the store, with a connector that answers as told
(the real broker's side is in test_outbox_kafka.py). Each test on both stores."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest
from outbox_support import cloudevents, python_binary_record

from agent_bom import _core
from agent_bom.outbox import OutboundEvent, OutboxStore, open_store
from agent_bom.outbox.model import Destination, OutboxRow, Status
from agent_bom.outbox.policy import RetryPolicy, SendResult
from agent_bom.outbox.worker import OutboxWorker

OK = SendResult(status_code=200, latency_ms=1.0)


class Ordered:
    """A ``kafka`` connector that records what it was given and answers with ``answer``."""

    kind = "kafka"

    def __init__(self, answer: Callable[[OutboxRow], SendResult] = lambda _: OK) -> None:
        self.answer = answer
        self.batches: list[list[OutboxRow]] = []

    async def send(self, dest: Destination, row: OutboxRow) -> SendResult:
        return (await self.send_batch(dest, [row]))[0]

    async def send_batch(self, dest: Destination, rows: Sequence[OutboxRow]) -> list[SendResult]:
        self.batches.append(list(rows))
        await asyncio.sleep(0)
        return [self.answer(r) for r in rows]

    async def aclose(self) -> None:
        pass


def kafka_destination(store: OutboxStore) -> Destination:
    return store.add_destination(
        tenant_id="acme", url="127.0.0.1:9", kind="kafka", config={"topic": "t.{tenant_id}"}
    )


def drain(store: OutboxStore, connector: Ordered, **kw: object) -> None:
    policy = RetryPolicy(schedule=(0.05,) * 5, jitter=0)
    worker = OutboxWorker(store, {"kafka": connector}, policy=policy, **kw)  # type: ignore[arg-type]
    asyncio.run(worker.run(once=True))


def enqueue(store: OutboxStore, n: int, start: int = 0) -> list[OutboundEvent]:
    events = [OutboundEvent.from_cloudevent(x) for x in cloudevents(n, start=start)]
    assert store.enqueue(events).rows == n
    return events


def stored_status(store: OutboxStore) -> set[str]:
    with store.reading() as cur:
        cur.execute("SELECT DISTINCT status FROM outbox")
        return {r[0] for r in cur.fetchall()}


def test_a_stream_is_sent_in_order_and_reads_show_it_delivered(store: OutboxStore) -> None:
    dest = kafka_destination(store)
    events = enqueue(store, 50)
    connector = Ordered()
    drain(store, connector, stream_batch=20)

    sent = [r.event_id for batch in connector.batches for r in batch]
    assert sent == [e.event_id for e in events]  # each once, in enqueue order
    assert [len(b) for b in connector.batches] == [20, 20, 10]
    rows = store.list_rows(limit=100)
    assert {(r.status, r.attempts, r.last_status) for r in rows} == {(Status.DELIVERED, 1, 200)}
    assert store.list_rows(status="delivered", limit=100) == rows
    assert store.list_rows(status="pending", limit=100) == []
    assert store.get_row(rows[7].id).status is Status.DELIVERED
    totals = store.stats()["totals"]
    assert totals["delivered"] == 50 and totals["pending"] == 0
    assert store.stats()["destinations"][dest.id]["delivered"] == 50
    (attempt,) = store.attempts(rows[3].id)
    assert (attempt.attempt, attempt.status_code, attempt.trigger) == (1, 200, "scheduled")
    # The model: acknowledged rows were never rewritten; the cursor says they are done.
    assert stored_status(store) == {"pending"}

    more = enqueue(store, 5, start=50)  # the stream goes on from its cursor
    drain(store, connector)
    assert [r.event_id for r in connector.batches[-1]] == [e.event_id for e in more]
    assert store.stats()["totals"]["delivered"] == 55


def test_failed_records_leave_the_stream_and_are_retried_row_by_row(store: OutboxStore) -> None:
    kafka_destination(store)
    events = enqueue(store, 10)
    bad, flaky = events[3].event_id, events[5].event_id
    failures = {
        bad: SendResult(error="Kafka: MSG_SIZE_TOO_LARGE: too large", permanent=True),
        flaky: SendResult(error="Kafka: _TRANSPORT: broker down"),
    }
    connector = Ordered(lambda r: failures.get(r.event_id, OK))
    drain(store, connector)

    rows = {r.event_id: r for r in store.list_rows(limit=100)}
    assert rows[bad].status is Status.DEAD_LETTER and rows[bad].attempts == 1
    assert rows[bad].last_error is not None and "too large" in rows[bad].last_error
    assert rows[flaky].status is Status.PENDING and rows[flaky].attempts == 1
    assert rows[flaky].last_error is not None and "broker down" in rows[flaky].last_error
    assert rows[flaky].next_attempt_at > rows[flaky].created_at
    others = [r for e, r in rows.items() if e not in (bad, flaky)]
    assert {r.status for r in others} == {Status.DELIVERED}
    audit = store.audit_records("acme")
    assert [a["detail"]["event_id"] for a in audit if a["action"] == "delivery.dead_lettered"] == [
        bad
    ]

    failures.pop(flaky)  # the broker is back: the row-by-row retry delivers it
    time.sleep(0.06)
    drain(store, connector)
    assert [r.event_id for r in connector.batches[-1]] == [flaky]
    row = store.get_row(rows[flaky].id)
    assert (row.status, row.attempts) == (Status.DELIVERED, 2)
    assert [a.status_code for a in store.attempts(row.id)] == [None, 200]
    assert store.stats()["totals"] == {
        "pending": 0,
        "delivering": 0,
        "delivered": 9,
        "dead_letter": 1,
    }


def test_an_operators_retry_of_a_streamed_row_sends_that_row_again(store: OutboxStore) -> None:
    kafka_destination(store)
    enqueue(store, 5)
    connector = Ordered()
    drain(store, connector)
    target = store.list_rows(limit=10)[2]

    again = store.retry(target.id)
    assert (again.status, again.attempts, again.next_trigger) == (Status.PENDING, 0, "manual")
    drain(store, connector)
    assert [r.id for r in connector.batches[-1]] == [target.id]
    row = store.get_row(target.id)
    assert (row.status, row.attempts) == (Status.DELIVERED, 1)
    assert [a.trigger for a in store.attempts(target.id)] == ["scheduled", "manual"]
    assert store.stats()["totals"]["delivered"] == 5


def test_two_workers_at_once_send_each_streamed_row_once(store: OutboxStore) -> None:
    for tenant in ("acme", "globex"):
        store.add_destination(
            tenant_id=tenant, url="127.0.0.1:9", kind="kafka", config={"topic": "t.{tenant_id}"}
        )
        store.enqueue([OutboundEvent.from_cloudevent(x) for x in cloudevents(300, tenant)])
    a, b = Ordered(), Ordered()

    async def both() -> None:
        workers = [
            OutboxWorker(store, {"kafka": c}, streams=1, stream_batch=25, poll_interval=0.01)  # type: ignore[dict-item]
            for c in (a, b)
        ]
        await asyncio.gather(*(w.run(once=True) for w in workers))

    asyncio.run(both())
    sent = [r.event_id for c in (a, b) for batch in c.batches for r in batch]
    assert len(sent) == 600 and len(set(sent)) == 600
    assert a.batches and b.batches  # one stream each at a time: both took part
    for c in (a, b):  # each destination's rows in order, whoever sent them
        for tenant in ("acme", "globex"):
            mine = [r.id for batch in c.batches for r in batch if r.tenant_id == tenant]
            assert mine == sorted(mine)
    assert store.stats()["totals"]["delivered"] == 600


def test_disabling_a_destination_stops_its_running_stream(store: OutboxStore) -> None:
    dest = kafka_destination(store)
    enqueue(store, 60)

    def answer(row: OutboxRow) -> SendResult:
        if store.get_destination(dest.id).enabled:
            store.set_enabled(dest.id, False, "wrong topic")  # while the first batch is out
        return OK

    connector = Ordered(answer)
    drain(store, connector, stream_batch=5)
    sent = sum(len(b) for b in connector.batches)
    assert sent < 60  # batches already read (the window) go out; no more are read
    assert store.stats()["totals"]["delivered"] == sent
    assert store.stats()["totals"]["pending"] == 60 - sent


def test_a_stream_that_cannot_be_recorded_keeps_its_lease_until_it_expires(
    store: OutboxStore,
) -> None:
    dest = kafka_destination(store)
    enqueue(store, 10)

    class Broken(Ordered):
        async def send_batch(
            self, dest: Destination, rows: Sequence[OutboxRow]
        ) -> list[SendResult]:
            raise RuntimeError("connector bug")

    worker = OutboxWorker(store, {"kafka": Broken()}, lease_seconds=30)  # type: ignore[dict-item]
    stats = asyncio.run(worker.run(once=True))  # ends: the stream is left leased
    assert stats.stream_errors == 1 and "connector bug" in (stats.last_error or "")
    assert store.stats()["totals"]["pending"] == 10
    assert store.claim_streams("other", kinds=["kafka"], limit=1, lease_seconds=30) == []
    later = time.time() + 31  # not at once, not never: after the lease
    [(got, cursor)] = store.claim_streams(
        "other", kinds=["kafka"], limit=1, lease_seconds=30, now=later
    )
    assert (got.id, cursor) == (dest.id, 0)


def test_one_worker_holds_a_stream_and_a_lost_lease_changes_nothing(store: OutboxStore) -> None:
    dest = kafka_destination(store)
    enqueue(store, 4)
    now = time.time()
    [(got, cursor)] = store.claim_streams("a", kinds=["kafka"], limit=5, lease_seconds=10, now=now)
    assert got.id == dest.id and cursor == 0
    assert store.claim_streams("b", kinds=["kafka"], limit=5, lease_seconds=10, now=now) == []
    assert store.claim_streams("b", kinds=["webhook"], limit=5, lease_seconds=10) == []
    rows = store.stream_rows(dest.id, after=cursor, limit=3)
    assert len(rows) == 3

    # a's lease runs out; b takes the stream over from the same cursor
    later = now + 11
    [(_, cursor_b)] = store.claim_streams(
        "b", kinds=["kafka"], limit=5, lease_seconds=10, now=later
    )
    assert cursor_b == 0
    moved = store.advance_stream(dest.id, "a", cursor=0, through=rows[-1].id, lease_seconds=10)
    assert not moved
    assert {r.status for r in store.list_rows(limit=10)} == {Status.PENDING}
    assert store.advance_stream(dest.id, "b", cursor=0, through=rows[-1].id, lease_seconds=10)
    statuses = [r.status for r in store.list_rows(limit=10)]
    assert statuses == [Status.DELIVERED] * 3 + [Status.PENDING]
    # b stops: released, another worker may take it at once
    store.release_stream(dest.id, "b")
    assert [
        d.id for d, _ in store.claim_streams("c", kinds=["kafka"], limit=5, lease_seconds=10)
    ] == [dest.id]


@pytest.fixture
def pg_store(pg_database: str) -> Iterator[OutboxStore]:
    s = open_store(pg_database)
    yield s
    s.close()


def test_a_stream_read_waits_for_rows_enqueued_by_transactions_still_open(
    pg_store: OutboxStore,
) -> None:
    """PostgreSQL hands out ids at insert, not at commit: a row with a lower id may
    commit after a higher one was read. The read waits for such a transaction, so the
    cursor never passes a row that was not sent. (SQLite serializes writers: its ids
    commit in order.)"""
    store = pg_store
    dest = kafka_destination(store)
    first, second = (OutboundEvent.from_cloudevent(x) for x in cloudevents(2))
    inserted, release = threading.Event(), threading.Event()

    def slow_enqueue() -> None:
        with store.transaction() as cur:
            store.enqueue_in(cur, [first])
            inserted.set()
            release.wait(30)

    slow = threading.Thread(target=slow_enqueue)
    slow.start()
    assert inserted.wait(30)
    store.enqueue([second])  # a higher id, committed first
    result: list[list[OutboxRow]] = []
    reader = threading.Thread(
        target=lambda: result.append(store.stream_rows(dest.id, after=0, limit=10))
    )
    reader.start()
    reader.join(0.5)
    assert reader.is_alive(), "the read did not wait for the open enqueue"
    release.set()
    slow.join(30)
    reader.join(30)
    assert [r.event_id for r in result[0]] == [first.event_id, second.event_id]


def test_binary_records_from_the_core_match_a_plain_python_binding() -> None:
    """The core's CloudEvents Kafka binary mode against a plain-Python one (rfc8785 from
    PyPI for the RFC 8785 texts): same value, same headers, in RFC 8785 name order
    whatever the line's order."""
    lines = cloudevents(200) + cloudevents(50, "globex", tags=["a", "b"], score=1.5)
    lines.append(
        b'{"data":{"b":2,"a":1.0,"c":"\\u00e9"},"datacontenttype":"application/json",'
        b'"flag":true,"id":"x\\"y","none":null,"ratio":0.5,"type":"t"}'
    )  # other attribute types, an escape in a value
    lines.append(
        b'{"type":"t","n\\u0061me":"v","id":"2","content-type":"x","data":[1],'
        b'"datacontenttype":"text/plain","b":[true]}'
    )  # out of order; an escaped name; an attribute named like the content-type header
    for line, got in zip(lines, _core.kafka_binary(lines), strict=True):
        assert not isinstance(got, str)
        value, headers = got
        want_value, want_headers = python_binary_record(line)
        assert value == want_value
        assert headers == want_headers, line
    bad = _core.kafka_binary([b"[1]", b"{", b'{"a":1,"a":2}'])
    assert all(isinstance(x, str) for x in bad)
