"""The test Kafka broker (scripts/kafka.sh): round trip, and a stop/start bounce."""

from __future__ import annotations

import re
import socket
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import pytest

from kafka_broker import SCRIPT, kafka_start, kafka_stop
from services import in_ci

if not in_ci():  # under CI=true a missing client is an error, never a skip
    pytest.importorskip("confluent_kafka", reason="confluent-kafka not installed (make develop)")
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def _fresh_topic(bootstrap: str, partitions: int = 3) -> str:
    name = f"agent-bom-test-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1)], operation_timeout=30
    )
    futures[name].result(timeout=30)
    return name


def _produce(bootstrap: str, topic: str, keys: Iterable[str]) -> None:
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            errors.append(err)

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for key in keys:
        producer.produce(topic, key=key, value=f"value-{key}", on_delivery=on_delivery)
        producer.poll(0)
    remaining = producer.flush(30)
    assert remaining == 0, f"{remaining} messages not delivered within 30 s"
    assert not errors, errors


def _consume(bootstrap: str, topic: str, count: int, timeout: float = 30) -> list[tuple[str, str]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"agent-bom-test-{uuid.uuid4().hex[:12]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    got: list[tuple[str, str]] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append((msg.key().decode(), msg.value().decode()))
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return got


def _port_open(bootstrap: str) -> bool:
    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def test_round_trip_100_messages(kafka_bootstrap: str) -> None:
    topic = _fresh_topic(kafka_bootstrap)
    keys = [f"k{i:03d}" for i in range(100)]
    _produce(kafka_bootstrap, topic, keys)
    got = _consume(kafka_bootstrap, topic, len(keys))
    assert sorted(got) == [(k, f"value-{k}") for k in keys]


def test_broker_stop_and_start(kafka_bootstrap: str) -> None:
    bootstrap = kafka_start()  # the scripts/kafka.sh broker (no-op: it runs)
    topic = _fresh_topic(bootstrap)
    before = [f"before-{i}" for i in range(10)]
    after = [f"after-{i}" for i in range(10)]
    _produce(bootstrap, topic, before)
    try:
        t0 = time.monotonic()
        kafka_stop()
        assert not _port_open(bootstrap), "port still open after scripts/kafka.sh stop"
        kafka_stop()  # idempotent
    finally:
        assert kafka_start() == bootstrap
    assert time.monotonic() - t0 < 60
    assert _port_open(bootstrap)
    _produce(bootstrap, topic, after)
    got = _consume(bootstrap, topic, len(before) + len(after))
    assert sorted(k for k, _ in got) == sorted(before + after)


def test_default_ports_lie_below_the_ephemeral_range() -> None:
    """A broker port inside net.ipv4.ip_local_port_range can be taken by a client's
    self-connection while the broker is down, and the restart then fails to bind."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    text = SCRIPT.read_text()
    for var in ("AGENT_BOM_KAFKA_PORT", "AGENT_BOM_KAFKA_CONTROLLER_PORT"):
        m = re.search(r"\$\{" + var + r":-(\d+)\}", text)
        assert m, var
        assert int(m.group(1)) < low, (var, m.group(1), low)
