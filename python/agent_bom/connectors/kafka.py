"""Kafka sink: outbox rows to a topic, acknowledged by the broker before they count.

An idempotent producer (``enable.idempotence``, ``acks=all``) keyed by tenant id
with the murmur2 partitioner, so every client language puts a tenant on the same
partition. CloudEvents binary mode by default (``ce_*`` headers, value = the
``data`` bytes), structured mode optional (value = the exact CloudEvent line).
Needs the kafka extra: ``pip install 'agent-bom[kafka]'``.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Sequence
from typing import Any

import orjson

from agent_bom import _core
from agent_bom.errors import ConfigError
from agent_bom.outbox.credentials import resolve
from agent_bom.outbox.model import Destination, OutboxRow, StreamRow
from agent_bom.outbox.policy import SendResult

try:
    from confluent_kafka import KafkaError, KafkaException, Producer
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ConfigError("Kafka needs the kafka extra: pip install 'agent-bom[kafka]'") from e

__all__ = ["MODES", "PRESETS", "KafkaConnector", "producer_config", "topic_for"]

MODES = ("binary", "structured")
PRESETS = ("azure-event-hubs", "confluent-cloud")
# CloudEvent attributes that travel as ce_ headers in binary mode (data is the value).
_SKIP = {"data", "datacontenttype"}


def topic_for(template: str, tenant_id: str) -> str:
    try:
        return template.format(tenant_id=tenant_id)
    except (KeyError, IndexError, ValueError):
        raise ConfigError(
            f"--topic {template!r}: the only placeholder is {{tenant_id}}, "
            "e.g. agent-bom.{tenant_id}.posture"
        ) from None


def producer_config(dest: Destination) -> dict[str, Any]:
    """librdkafka settings for a destination, secrets resolved from its reference now."""
    cfg = dest.config
    conf: dict[str, Any] = {
        "bootstrap.servers": dest.url,
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": "murmur2_random",  # the Java client's default for keyed records
        "linger.ms": int(cfg.get("linger_ms", 5)),
        "message.timeout.ms": int(cfg.get("message_timeout_ms", 30_000)),
        "client.id": f"agent-bom-{dest.id}",
    }
    preset = cfg.get("preset")
    if preset is not None or dest.secret_ref is not None:
        if dest.secret_ref is None:
            raise ConfigError(f"--preset {preset} needs --secret-ref with the credentials")
        secret = resolve(dest.secret_ref)
        conf["security.protocol"] = cfg.get("security_protocol", "SASL_SSL")
        conf["sasl.mechanism"] = cfg.get("sasl_mechanism", "PLAIN")
        if preset == "azure-event-hubs":
            # Event Hubs' Kafka endpoint: the namespace connection string is the password.
            conf["sasl.username"] = "$ConnectionString"
            conf["sasl.password"] = secret
        else:  # confluent-cloud (API key:secret) or generic user:password
            user, sep, password = secret.partition(":")
            if not sep:
                raise ConfigError(
                    f"credential reference {dest.secret_ref} must hold USER:PASSWORD "
                    "(Confluent Cloud: API_KEY:API_SECRET)"
                )
            conf["sasl.username"], conf["sasl.password"] = user, password
    return conf


_STRUCTURED: list[tuple[str, str | bytes | None]] = [
    ("content-type", b"application/cloudevents+json")
]


def records(bodies: Sequence[bytes], mode: str) -> list[tuple[bytes | None, Any] | str]:
    """Per CloudEvent line, the Kafka record's (value, headers), or why it cannot be one.

    Binary mode (the core, ``agent_bom._core.kafka_binary``): value = the RFC 8785 form
    of ``data``; ``content-type`` = ``datacontenttype``; every other attribute a
    ``ce_<name>`` header (strings as their text, other values as RFC 8785 text), in
    RFC 8785 member order. Structured mode: value = the exact line."""
    if mode == "structured":
        return [(body, _STRUCTURED) for body in bodies]
    return _core.kafka_binary(list(bodies))


class _Producer:
    """One confluent-kafka producer. Its delivery reports are served by the coroutines
    waiting for them (``poll(0)`` on the event loop), not by a thread of their own: a
    second thread would need the GIL for every report while the loop is producing, and
    each such handoff can wait out the interpreter's switch interval."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.producer = Producer(conf)

    def close(self, timeout: float) -> int:
        return int(self.producer.flush(timeout))


class KafkaConnector:
    """Delivers ``kafka`` destinations; a row counts as delivered on the broker's ack."""

    kind = "kafka"
    # Many records in flight per destination: the producer batches them.
    concurrency = 10_000

    def __init__(self, *, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._producers: dict[str, tuple[str, _Producer]] = {}

    def _producer(self, dest: Destination) -> _Producer:
        conf = producer_config(dest)
        fingerprint = orjson.dumps(conf, option=orjson.OPT_SORT_KEYS).decode()
        known = self._producers.get(dest.id)
        if known is not None and known[0] == fingerprint:
            return known[1]
        if known is not None:
            known[1].close(self.timeout)
        try:
            p = _Producer(conf)
        except KafkaException as e:
            raise ConfigError(f"Kafka producer for {dest.id}: {e}") from None
        self._producers[dest.id] = (fingerprint, p)
        return p

    async def send(self, dest: Destination, row: OutboxRow) -> SendResult:
        return (await self.send_batch(dest, [row]))[0]

    async def send_batch(
        self, dest: Destination, rows: Sequence[OutboxRow | StreamRow]
    ) -> list[SendResult]:
        started = time.perf_counter()
        try:
            producer = self._producer(dest)
            topic = topic_for(str(dest.config.get("topic", "")), dest.tenant_id)
        except ConfigError as e:
            return [SendResult(error=str(e)) for _ in rows]
        mode = str(dest.config.get("mode", "binary"))
        acks = _Acks(asyncio.get_running_loop(), len(rows), topic, started)
        built = records([r.body for r in rows], mode)
        for i, (row, record) in enumerate(zip(rows, built, strict=True)):
            if isinstance(record, str):  # a body that is not a CloudEvent: never sendable
                acks.refuse(i, f"not a CloudEvent ({record}); cannot map it to a Kafka record")
                continue
            value, headers = record
            while True:
                try:
                    producer.producer.produce(
                        topic,
                        key=row.tenant_id.encode(),
                        value=value,
                        headers=headers,
                        on_delivery=functools.partial(acks.delivered, i),
                    )
                    if not i & 255:
                        producer.producer.poll(0)  # serve acks here too, between produces
                    break
                except BufferError:
                    # The local queue is full: serve delivery reports (a record holds its
                    # slot until its report is served), then let librdkafka drain it.
                    producer.producer.poll(0)
                    await asyncio.sleep(0.01)
                except KafkaException as e:
                    acks.delivered(i, e.args[0], None)
                    break
        built.clear()  # produced (librdkafka copied them): not kept through the wait
        deadline = time.monotonic() + self.timeout + 5
        wait = _ACK_POLL
        while not acks.all_in.done() and time.monotonic() < deadline:
            producer.producer.poll(0)  # serves the reports here, on the loop
            if not acks.all_in.done():
                await asyncio.wait([acks.all_in], timeout=wait)
                wait = min(wait * 2, _ACK_POLL_MAX)  # a silent broker: wake less often
        results = acks.outcome(self.timeout)
        if any(r.error is not None and "_MSG_TIMED_OUT" in r.error for r in results):
            why = await asyncio.to_thread(_missing_topic, producer.producer, topic)
            if why is not None:
                results = [
                    SendResult(error=why, latency_ms=r.latency_ms)
                    if r.error is not None and "_MSG_TIMED_OUT" in r.error
                    else r
                    for r in results
                ]
        return results

    async def aclose(self) -> None:
        for _, p in self._producers.values():
            await asyncio.to_thread(p.close, self.timeout)
        self._producers.clear()


class _Acks:
    """The broker's answers for one batch, recorded by the producer's poll thread; the
    waiting coroutine is woken once, by the last of them (not once per record)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, n: int, topic: str, started: float) -> None:
        self.results: list[SendResult | None] = [None] * n
        self.all_in: asyncio.Future[None] = loop.create_future()
        self._loop, self._topic, self._started = loop, topic, started
        self._pending = n
        self._lock = threading.Lock()
        if n == 0:
            self.all_in.set_result(None)

    def delivered(self, i: int, err: KafkaError | None, _msg: Any) -> None:
        # Called once per record, with the GIL: an acknowledgement only marks its slot;
        # the batch's one result for them is made when the last one is in.
        if err is None:
            self._settle(i, _ACKED)
        else:
            ms = round((time.perf_counter() - self._started) * 1000, 3)
            self._settle(i, _result(err, self._topic, ms))

    def refuse(self, i: int, why: str) -> None:
        self._settle(i, SendResult(error=why, permanent=True))

    def _settle(self, i: int, result: SendResult) -> None:
        self.results[i] = result
        with self._lock:
            self._pending -= 1
            last = self._pending == 0
        if last:
            self.finished = time.perf_counter()
            self._loop.call_soon_threadsafe(_settle, self.all_in)

    def outcome(self, timeout: float) -> list[SendResult]:
        """Every record's result: acknowledged ones share one (latency: the batch's)."""
        end = getattr(self, "finished", None)
        ok = SendResult(
            status_code=200,
            latency_ms=None if end is None else round((end - self._started) * 1000, 3),
        )
        no_ack = SendResult(error=f"no broker ack within {timeout}s")
        return [ok if r is _ACKED else no_ack if r is None else r for r in self.results]


_ACKED = SendResult(status_code=200)
# Seconds between polls for delivery reports while a batch waits: from 1 ms, doubling
# to 20 ms (a broker that does not answer costs 50 wakeups a second per batch).
_ACK_POLL, _ACK_POLL_MAX = 0.001, 0.02


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _missing_topic(producer: Producer, topic: str) -> str | None:
    """Why records timed out, when it is a topic the broker does not have (librdkafka
    only says "message timed out"); None when the topic exists or the broker is silent."""
    try:
        metadata = producer.list_topics(topic, timeout=5)
    except KafkaException:
        return None
    found = metadata.topics.get(topic)
    if found is None or found.error is None:
        return None
    if found.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
        return None
    return (
        f"topic {topic!r} does not exist and the broker does not create it "
        "(auto.create.topics.enable=false): create the topic or change the destination's --topic"
    )


def _result(err: KafkaError | None, topic: str, ms: float) -> SendResult:
    if err is None:
        return SendResult(status_code=200, latency_ms=ms)
    if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
        why = f"topic {topic!r} does not exist and the broker does not create it: create it"
        return SendResult(error=why, latency_ms=ms)
    retriable = err.retriable() or err.code() in (KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT)
    return SendResult(
        error=f"Kafka: {err.name()}: {err.str()}",
        latency_ms=ms,
        permanent=not retriable and err.fatal(),
    )


def check_destination(dest: Destination, *, timeout: float = 10.0) -> list[str]:
    """Check a Kafka destination before it is stored; raises ConfigError naming the
    setting at fault, returns notes (e.g. a topic the broker will create)."""
    from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

    topic = topic_for(str(dest.config.get("topic", "")), dest.tenant_id)
    mode = dest.config.get("mode", "binary")
    if mode not in MODES:
        raise ConfigError(f"--mode {mode!r}: use binary or structured")
    conf = producer_config(dest)  # resolves --secret-ref now: a bad reference fails here
    admin_conf = {
        k: v
        for k, v in conf.items()
        if k.startswith(("bootstrap.", "security.", "sasl.", "ssl.", "client."))
    }
    admin = AdminClient(admin_conf)
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as e:
        raise ConfigError(
            f"--bootstrap {dest.url}: no broker answered within {timeout:g}s ({e.args[0].str()}); "
            "check the address, the port and the security settings"
        ) from None
    if topic in metadata.topics and metadata.topics[topic].error is None:
        return []
    broker = next(iter(metadata.brokers))
    resource = ConfigResource(ConfigResource.Type.BROKER, str(broker))
    try:
        configs = admin.describe_configs([resource])[resource].result(timeout=timeout)
        auto_create = configs["auto.create.topics.enable"].value == "true"
    except Exception:
        auto_create = True  # cannot tell: the first send will say if the topic is missing
    if not auto_create:
        raise ConfigError(
            f"--topic {topic!r} does not exist and the broker does not auto-create topics "
            "(auto.create.topics.enable=false): create the topic first"
        )
    return [f"topic {topic!r} does not exist yet; the broker creates it on the first event"]
