"""Outbox → a real Kafka broker: acknowledged, exactly once, CloudEvents binary mode."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer
from outbox_support import cloudevents

from agent_bom.connectors.kafka import KafkaConnector
from agent_bom.outbox import OutboundEvent, OutboxStore, Status
from agent_bom.outbox.worker import OutboxWorker

N_PER_TENANT = 5000
TENANTS = ("acme", "globex")


def consume_all(bootstrap: str, topics: list[str], expected: int) -> list[object]:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe(topics)
    got: list[object] = []
    idle = 0
    while len(got) < expected and idle < 40:
        batch = c.consume(1000, timeout=0.5)
        idle = 0 if batch else idle + 1
        got.extend(m for m in batch if m.error() is None)
    # A little longer: anything beyond `expected` would be a duplicate.
    got.extend(m for m in c.consume(1000, timeout=1.0) if m.error() is None)
    c.close()
    return got


def test_10000_events_reach_kafka_exactly_once_in_tenant_order(
    store: OutboxStore, kafka_bootstrap: str
) -> None:
    from cloudevents.v1.kafka import KafkaMessage, from_binary

    run = uuid.uuid4().hex[:8]
    template = f"agent-bom.test-{run}.{{tenant_id}}.posture"
    bodies: dict[str, bytes] = {}
    for tenant in TENANTS:
        store.add_destination(
            tenant_id=tenant,
            url=kafka_bootstrap,
            kind="kafka",
            config={"topic": template, "mode": "binary"},
        )
        events = [OutboundEvent.from_cloudevent(x) for x in cloudevents(N_PER_TENANT, tenant)]
        assert store.enqueue(events).rows == N_PER_TENANT
        bodies.update({e.event_id: e.body for e in events})

    async def main() -> None:
        connector = KafkaConnector()
        try:
            worker = OutboxWorker(store, {"kafka": connector}, batch=2000)
            await worker.run(once=True)
        finally:
            await connector.aclose()

    asyncio.run(main())
    assert {r.status for r in store.list_rows(limit=3 * N_PER_TENANT)} == {Status.DELIVERED}

    topics = [template.format(tenant_id=t) for t in TENANTS]
    messages = consume_all(kafka_bootstrap, topics, len(bodies))
    ids = [dict(m.headers())["ce_id"].decode() for m in messages]  # type: ignore[attr-defined]
    assert len(ids) == len(bodies) and set(ids) == set(bodies)  # each exactly once

    seqs: dict[tuple[str, int], list[int]] = defaultdict(list)
    for m in messages:
        headers = dict(m.headers())  # type: ignore[attr-defined]
        event = from_binary(KafkaMessage(headers, m.key(), m.value()))  # type: ignore[attr-defined]
        original = orjson.loads(bodies[event["id"]])
        assert event["type"] == original["type"] and event["tenantid"] == original["tenantid"]
        assert orjson.loads(m.value()) == original["data"]  # type: ignore[attr-defined]
        assert m.key() == original["tenantid"].encode()  # type: ignore[attr-defined]
        seqs[(original["tenantid"], m.partition())].append(int(event["seq"]))  # type: ignore[attr-defined]
    for (tenant, _), order in seqs.items():
        assert order == sorted(order), f"{tenant}: out of order within a partition"


def test_structured_mode_sends_the_exact_line(store: OutboxStore, kafka_bootstrap: str) -> None:
    from cloudevents.v1.kafka import KafkaMessage, from_structured

    topic = f"agent-bom.structured-{uuid.uuid4().hex[:8]}"
    store.add_destination(
        tenant_id="acme",
        url=kafka_bootstrap,
        kind="kafka",
        config={"topic": topic, "mode": "structured"},
    )
    events = [OutboundEvent.from_cloudevent(x) for x in cloudevents(20)]
    store.enqueue(events)

    async def main() -> None:
        connector = KafkaConnector()
        try:
            await OutboxWorker(store, {"kafka": connector}).run(once=True)
        finally:
            await connector.aclose()

    asyncio.run(main())
    assert store.stats()["totals"]["delivered"] == 20
    messages = consume_all(kafka_bootstrap, [topic], 20)
    assert [m.value() for m in messages] == [e.body for e in events]  # type: ignore[attr-defined]
    for m, e in zip(messages, events, strict=True):
        headers = dict(m.headers())  # type: ignore[attr-defined]
        assert headers == {"content-type": b"application/cloudevents+json"}
        parsed = from_structured(KafkaMessage(headers, m.key(), m.value()))  # type: ignore[attr-defined]
        assert parsed["id"] == e.event_id and m.key() == b"acme"  # type: ignore[attr-defined]


def test_destinations_add_kafka_checks_the_broker_and_names_bad_settings(
    cli: Any, tmp_path: Path, kafka_bootstrap: str
) -> None:
    db = ["--database", tmp_path / "k.db"]
    base = ["destinations", "add", "--tenant", "acme", "--kind", "kafka"]
    ok = cli(*base, "--bootstrap", kafka_bootstrap, "--topic", "agent-bom.{tenant_id}.posture",
             "--json", *db)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    dest = orjson.loads(ok.stdout)
    assert dest["kind"] == "kafka" and dest["config"]["topic"] == "agent-bom.{tenant_id}.posture"
    cases = [
        (["--bootstrap", "127.0.0.1:1", "--topic", "t"], "--bootstrap 127.0.0.1:1"),
        (["--bootstrap", kafka_bootstrap, "--topic", "x.{tenant}"], "{tenant_id}"),
        (["--bootstrap", kafka_bootstrap, "--topic", "t", "--secret-ref", "env:AGENT_BOM_NOPE"],
         "AGENT_BOM_NOPE is not set"),
        (["--bootstrap", kafka_bootstrap, "--topic", "t", "--mode", "columnar"], "--mode"),
        (["--topic", "t"], "--bootstrap"),
    ]  # fmt: skip
    for args, message in cases:
        r = cli(*base, *args, *db)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_broker_down_rows_wait_pending_and_all_arrive_after_restart(
    store: OutboxStore, kafka_bootstrap: str
) -> None:
    from agent_bom.outbox.policy import CircuitBreaker, RetryPolicy
    from kafka_broker import kafka_start, kafka_stop

    topic = f"agent-bom.bounce-{uuid.uuid4().hex[:8]}"
    store.add_destination(
        tenant_id="acme",
        url=kafka_bootstrap,
        kind="kafka",
        config={"topic": topic, "message_timeout_ms": 2000},
    )
    events = [OutboundEvent.from_cloudevent(x) for x in cloudevents(500)]
    store.enqueue(events)
    policy = RetryPolicy(schedule=(0.2,) * 100, jitter=0)

    def drain() -> None:
        async def main() -> None:
            connector = KafkaConnector(timeout=3)
            try:
                worker = OutboxWorker(
                    store,
                    {"kafka": connector},
                    batch=1000,
                    policy=policy,
                    breaker=CircuitBreaker(threshold=10**9),
                )
                await worker.run(once=True)
            finally:
                await connector.aclose()

        asyncio.run(main())

    kafka_stop()
    try:
        drain()
        rows = store.list_rows(limit=1000)
        assert {r.status for r in rows} == {Status.PENDING}
        # At least one attempt each, failed and recorded (a 0.2 s schedule may fit a
        # second one into the drain), every row out of the stream, retried row by row.
        assert all(r.attempts >= 1 and "_MSG_TIMED_OUT" in (r.last_error or "") for r in rows), {
            (r.attempts, r.last_error) for r in rows
        }
    finally:
        kafka_start()
    deadline = time.monotonic() + 120  # a restarted broker may take a while to lead again
    while store.stats()["totals"]["delivered"] < 500 and time.monotonic() < deadline:
        drain()
        time.sleep(0.2)  # the retry schedule's step
    assert store.stats()["totals"]["delivered"] == 500
    ids = [
        dict(m.headers())["ce_id"].decode()  # type: ignore[attr-defined]
        for m in consume_all(kafka_bootstrap, [topic], 500)
    ]
    assert sorted(ids) == sorted(e.event_id for e in events)  # nothing lost, nothing twice


def test_missing_topic_with_auto_create_off_names_the_topic(
    cli: Any, tmp_path: Path, store: OutboxStore
) -> None:
    """A broker that does not create topics: `destinations add` refuses a missing topic
    (naming --topic and the broker setting) and accepts it once created; a row for a
    missing topic waits with an error naming the topic."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from kafka_broker import second_broker

    with second_broker(tmp_path / "strict-kafka", port=19192, auto_create=False) as bootstrap:
        db = ["--database", tmp_path / "k.db"]
        topic = ["--topic", "agent-bom.{tenant_id}.posture"]
        add = ["destinations", "add", "--tenant", "acme", "--kind", "kafka",
               "--bootstrap", bootstrap, *topic, *db]  # fmt: skip
        r = cli(*add)
        assert r.returncode == 2, r.stderr
        assert "--topic 'agent-bom.acme.posture' does not exist" in r.stderr, r.stderr
        assert "auto.create.topics.enable=false" in r.stderr and "Traceback" not in r.stderr

        admin = AdminClient({"bootstrap.servers": bootstrap})
        created = admin.create_topics([NewTopic("agent-bom.acme.posture", 1, 1)])
        created["agent-bom.acme.posture"].result(timeout=30)
        ok = cli(*add)
        assert ok.returncode == 0, ok.stderr

        missing = f"agent-bom.missing-{uuid.uuid4().hex[:8]}"
        store.add_destination(
            tenant_id="acme",
            url=bootstrap,
            kind="kafka",
            config={"topic": missing, "message_timeout_ms": 3000},
        )
        store.enqueue([OutboundEvent.from_cloudevent(x) for x in cloudevents(3)])

        async def once() -> None:
            connector = KafkaConnector(timeout=5)
            try:
                await OutboxWorker(store, {"kafka": connector}).run(once=True)
            finally:
                await connector.aclose()

        asyncio.run(once())
        rows = store.list_rows(limit=10)
        assert len(rows) == 3
        for row in rows:
            assert row.status is Status.PENDING and row.attempts == 1
            assert row.last_error is not None and missing in row.last_error, row.last_error
        assert missing not in admin.list_topics(timeout=10).topics  # nothing created it
