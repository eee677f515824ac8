"""``agent-bom ingest kafka``: CloudEvents from Kafka into the tenant store.

The same path as HTTP ingest (contract validation, collector scope, redaction,
idempotency by event id, the tenant chain, outbox fan-out), with the consumer's
offsets committed only after the store transaction commits: at-least-once in,
exactly once in the store. Several consumers in one group share the partitions.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from agent_bom.errors import ConfigError
from agent_bom.server.ingest import IngestResult, ingest
from agent_bom.server.store import Collector, EventStore

try:
    from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ConfigError("Kafka needs the kafka extra: pip install 'agent-bom[kafka]'") from e

__all__ = ["SourceStats", "consume", "native_event"]


@dataclass
class SourceStats:
    messages: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0


def native_event(msg: Any) -> bytes | None:
    """The envelope carried by a CloudEvents Kafka message (binary or structured)."""
    headers = {k.lower(): v for k, v in (msg.headers() or [])}
    value = msg.value()
    if value is None:
        return None
    content_type = (headers.get("content-type") or b"").decode(errors="replace")
    try:
        if content_type.startswith("application/cloudevents"):
            ce = orjson.loads(value)
            data = ce.get("data") if isinstance(ce, dict) else None
        elif "ce_specversion" in headers or "ce_id" in headers:
            data = orjson.loads(value)
        else:
            data = orjson.loads(value)  # a bare envelope
    except orjson.JSONDecodeError:
        return None
    return orjson.dumps(data) if isinstance(data, dict) else None


def consume(
    events: EventStore,
    collector: Collector,
    *,
    bootstrap: str,
    topics: list[str],
    group: str,
    redactor: Any,
    batch: int = 500,
    idle_exit: float | None = None,
    stop: threading.Event | None = None,
    on_batch: Callable[[IngestResult, int], None] | None = None,
) -> SourceStats:
    """Consume until ``stop`` (or, with ``idle_exit``, until no message came for that long)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    stop = stop or threading.Event()
    stats = SourceStats()
    try:
        consumer.subscribe(topics)
        last = time.monotonic()
        while not stop.is_set():
            messages = consumer.consume(batch, timeout=0.5)
            good: list[Message] = [m for m in messages if m.error() is None]
            for m in messages:
                err = m.error()
                if err is not None and err.fatal():
                    raise ConfigError(f"Kafka consumer: {err.str()}")
            if not good:
                if idle_exit is not None and time.monotonic() - last > idle_exit:
                    break
                continue
            last = time.monotonic()
            raw = [native_event(m) for m in good]
            result = ingest(events, collector, raw, redactor=redactor)
            # The store committed: now the offsets (the next offset of each partition).
            offsets: dict[tuple[str, int], int] = {}
            for m in good:
                key = (str(m.topic()), int(m.partition() or 0))
                offsets[key] = max(offsets.get(key, 0), int(m.offset() or 0) + 1)
            consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                asynchronous=False,
            )
            stats.messages += len(good)
            stats.batches += 1
            stats.accepted += result.count("accepted")
            stats.duplicates += result.count("duplicate")
            stats.rejected += result.count("rejected")
            if on_batch is not None:
                on_batch(result, len(good))
    except KafkaException as e:
        raise ConfigError(f"Kafka consumer ({bootstrap}): {e.args[0].str()}") from None
    finally:
        consumer.close()
    return stats


def stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop
