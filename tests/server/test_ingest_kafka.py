"""`agent-bom ingest kafka` against a real broker: killed and restarted, and two at once."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
from confluent_kafka import Producer
from server_support import ed25519_collector

from agent_bom import evidence as ev
from agent_bom.outbox import OutboxStore
from agent_bom.server.store import EventStore

AGENT_BOM = [sys.executable, "-c", "from agent_bom.cli import main; main()"]
N = 2000


def setup(store: OutboxStore) -> tuple[EventStore, str]:
    es = EventStore(store)
    c, _ = ed25519_collector(es)
    return es, c.id


def produce(bootstrap: str, topic: str, n: int, partitions: int = 0) -> set[str]:
    """``n`` CloudEvents in binary mode; spread over ``partitions`` when given (else keyed
    by tenant, as the sink does, so one partition)."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "outbox"))
    from outbox_support import cloudevents, python_binary_record

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    ids = set()
    for i, line in enumerate(cloudevents(n, "acme")):
        ce = orjson.loads(line)
        ids.add(ce["id"])
        where = {"partition": i % partitions} if partitions else {}
        value, headers = python_binary_record(line)
        p.produce(topic, key=b"acme", value=value, headers=headers, **where)
        p.poll(0)
    assert p.flush(30) == 0
    return ids


def ingest_cmd(
    store_url: str, bootstrap: str, topic: str, group: str, collector: str, *extra: str
) -> list[str]:
    return [
        *AGENT_BOM, "ingest", "kafka", "--topic", topic, "--group", group, "--collector",
        collector, "--bootstrap", bootstrap, "--database", store_url, "--batch", "100", *extra,
    ]  # fmt: skip


def stored_ids(es: EventStore) -> list[str]:
    return [e.event_id for e in es.events("acme", limit=10 * N, event_types=["finding.created"])]


def chain_verifies(es: EventStore) -> bool:
    es.seal("acme")
    data = b"".join(e.body + b"\n" for e in es.events("acme", limit=10 * N))
    return ev.verify(io.BytesIO(data)).ok


def test_sigkilled_consumer_restarts_and_stores_each_event_exactly_once(
    store: OutboxStore, store_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    es, collector = setup(store)
    topic, group = f"ingest-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    ids = produce(kafka_bootstrap, topic, N)
    cmd = ingest_cmd(store_url, kafka_bootstrap, topic, group, collector)
    killed = 0
    for delay in (1.5, 0.7):
        p = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ)
        )
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        killed += 1
    done = subprocess.run([*cmd, "--idle-exit", "5", "--json"], capture_output=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    got = stored_ids(es)
    assert len(got) == len(set(got)) == N and set(got) == ids
    assert chain_verifies(es) and killed == 2


def test_two_consumers_in_one_group_split_the_work(
    store: OutboxStore, store_url: str, kafka_bootstrap: str
) -> None:
    es, collector = setup(store)
    from confluent_kafka.admin import AdminClient, NewTopic

    topic, group = f"ingest2-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result(30)
    cmd = ingest_cmd(
        store_url, kafka_bootstrap, topic, group, collector, "--idle-exit", "10", "--json"
    )
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
        for _ in range(2)
    ]
    time.sleep(8)  # both join the group and get partitions before anything arrives
    ids = produce(kafka_bootstrap, topic, N, partitions=4)
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]
    messages = [orjson.loads(o[0])["messages"] for o in outs]
    assert all(m > 0 for m in messages), messages  # both consumers got partitions
    got = stored_ids(es)
    assert len(got) == N and set(got) == ids
    assert chain_verifies(es)
