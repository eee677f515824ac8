"""Outbox → Kafka against a raw confluent-kafka producer, and `ingest kafka`, in one run.

    python benches/bench_kafka.py [--events N] [--repeat R] [--no-postgres]

N sealed CloudEvent lines (tests/outbox/outbox_support.py) split over two tenants, sent
to one local broker ($AGENT_BOM_TEST_KAFKA_BOOTSTRAP, else 127.0.0.1:19092, else the one
`scripts/kafka.sh start` gives), events/s:
  raw producer      confluent_kafka.Producer with the sink's producer_config(), producing
                    the same keys, values and ce_ headers as binary mode, built per event
                    in the timed region in plain Python (value: agent_bom.canonical_json of
                    data; headers: one loop over the attributes; lines parsed beforehand)
  raw, prebuilt     (for information) the same producer with every record built before
                    the timed region: the client library's own ceiling here
  outbox → kafka    OutboxWorker(batch=5000) + KafkaConnector in this process, from a fresh
                    store with the N rows enqueued (not timed); checked: N delivered
  ingest kafka      agent_bom.sources.kafka.consume() into a fresh EventStore (tenant +
                    ed25519 collector), the N events produced to a fresh topic beforehand;
                    timed until the store holds N (group join included; "steady" from the
                    first batch on)
on SQLite (a fresh file) and PostgreSQL (a fresh database on $AGENT_BOM_TEST_DATABASE_URL,
else the server `scripts/postgres.sh start` gives; skipped when there is none). Every run
uses fresh topic names, created before the timed region; every row is the best of R runs
(default 3). Target: outbox / raw >= 0.7. N defaults to 100,000: a run of 20,000 lasts a
quarter of a second, of which the outbox's start (its producer's first connection and
metadata, the stream's lease) is a fifth, while the raw producer is made before its clock
starts.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "outbox"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "server"))

import confluent_kafka
import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from outbox_support import cloudevents
from server_support import ed25519_collector

from agent_bom import canonical_json
from agent_bom.connectors.kafka import KafkaConnector, producer_config
from agent_bom.outbox import OutboundEvent, OutboxStore, open_store
from agent_bom.outbox.worker import OutboxWorker
from agent_bom.redaction import load_redactor
from agent_bom.server.store import EventStore
from agent_bom.sources.kafka import consume
from bench_outbox import Stores, databases

TENANTS = ("acme", "globex")
DEFAULT_BOOTSTRAP = "127.0.0.1:19092"
KAFKA_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "kafka.sh"


@dataclass
class Row:
    store: str
    what: str
    seconds: float
    events: int
    note: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def kafka_bootstrap() -> str:
    env = os.environ.get("AGENT_BOM_TEST_KAFKA_BOOTSTRAP", "").strip()
    if env:
        return env
    try:
        socket.create_connection(("127.0.0.1", 19092), timeout=2).close()
        return DEFAULT_BOOTSTRAP
    except OSError:
        pass
    p = subprocess.run(["bash", str(KAFKA_SCRIPT), "start"], capture_output=True, text=True)
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        raise SystemExit(f"no Kafka broker: {KAFKA_SCRIPT} start: {p.stderr[-2000:]}")
    return lines[-1].strip()


def create_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [NewTopic(t, num_partitions=1, replication_factor=1) for t in topics]
    for f in admin.create_topics(new).values():
        f.result(30)


def fresh_template() -> str:
    return f"bench-{uuid.uuid4().hex[:8]}.{{tenant_id}}.posture"


# -- the reference ----------------------------------------------------------------------


def python_headers(ce: dict[str, Any]) -> list[tuple[str, bytes]]:
    """Binary mode's headers for a parsed CloudEvent, as a raw-client user would write it."""
    headers = [("content-type", str(ce.get("datacontenttype", "application/json")).encode())]
    for name, value in ce.items():
        if name not in ("data", "datacontenttype"):
            text = value.encode() if isinstance(value, str) else orjson.dumps(value)
            headers.append(("ce_" + name, text))
    return headers


def raw_producer(
    conf: dict[str, Any],
    parsed: list[tuple[str, dict[str, Any]]],
    template: str,
    *,
    prebuilt: bool = False,
) -> float:
    """What the connector does per row, minus the outbox: value + headers, produce, ack."""
    producer = Producer(conf)
    acked = [0]
    failed: list[Any] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is None:
            acked[0] += 1
        else:
            failed.append(err)

    topics = {t: template.format(tenant_id=t) for t in TENANTS}
    built = (
        [(t, canonical_json(ce["data"]), python_headers(ce)) for t, ce in parsed]
        if prebuilt
        else []
    )
    t0 = time.perf_counter()
    if prebuilt:
        for tenant, value, headers in built:
            while True:
                try:
                    producer.produce(
                        topics[tenant],
                        key=tenant.encode(),
                        value=value,
                        headers=headers,
                        on_delivery=delivered,
                    )
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
    for tenant, ce in parsed if not prebuilt else ():
        while True:
            try:
                producer.produce(
                    topics[tenant],
                    key=tenant.encode(),
                    value=canonical_json(ce["data"]),
                    headers=python_headers(ce),
                    on_delivery=delivered,
                )
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    remaining = producer.flush(60)
    seconds = time.perf_counter() - t0
    if remaining or failed or acked[0] != len(parsed):
        raise RuntimeError(f"raw producer: {acked[0]} acked, {len(failed)} failed: {failed[:3]}")
    return seconds


# -- stores -----------------------------------------------------------------------------


# -- outbox → Kafka ---------------------------------------------------------------------


def outbox_run(
    stores: Stores, bootstrap: str, events: dict[str, list[OutboundEvent]], profile: Path | None
) -> float:
    n = sum(len(v) for v in events.values())
    template = fresh_template()
    create_topics(bootstrap, [template.format(tenant_id=t) for t in TENANTS])
    with stores.fresh() as url:
        store: OutboxStore = open_store(url)
        try:
            for tenant in TENANTS:
                store.add_destination(
                    tenant_id=tenant,
                    url=bootstrap,
                    kind="kafka",
                    config={"topic": template, "mode": "binary"},
                )
                if store.enqueue(events[tenant]).rows != len(events[tenant]):
                    raise RuntimeError("not every event was queued")

            async def drain() -> None:
                connector = KafkaConnector()
                try:
                    await OutboxWorker(store, {"kafka": connector}, batch=5000).run(once=True)
                finally:
                    await connector.aclose()

            prof = None
            if profile is not None:
                import cProfile

                prof = cProfile.Profile()
                prof.enable()
            t0 = time.perf_counter()
            asyncio.run(drain())
            seconds = time.perf_counter() - t0
            if prof is not None:
                prof.disable()
                prof.dump_stats(profile)
            delivered = store.stats()["totals"]["delivered"]
        finally:
            store.close()
    if delivered != n:
        raise RuntimeError(f"outbox: {delivered} of {n} rows delivered")
    return seconds


# -- ingest kafka -----------------------------------------------------------------------


def produce_topic(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for line in lines:
        ce = orjson.loads(line)
        while True:
            try:
                p.produce(
                    topic,
                    key=b"acme",
                    value=canonical_json(ce["data"]),
                    headers=python_headers(ce),
                )
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    if p.flush(60):
        raise RuntimeError("could not produce the ingest topic")


def ingest_run(stores: Stores, bootstrap: str, topic: str, n: int) -> tuple[float, float]:
    """Seconds until the store holds ``n`` events, and events/s after the first batch."""
    with stores.fresh() as url:
        store = open_store(url)
        try:
            es = EventStore(store)
            c, _ = ed25519_collector(es)
            collector = es.collector(c.id)
            assert collector is not None
            redactor = load_redactor()
            stop = threading.Event()
            seen = [0]
            first: list[float] = []

            def on_batch(_result: object, count: int) -> None:
                if not first:
                    first.append(time.perf_counter())
                    first.append(count)
                seen[0] += count
                if seen[0] >= n:
                    stop.set()

            t0 = time.perf_counter()
            stats = consume(
                es,
                collector,
                bootstrap=bootstrap,
                topics=[topic],
                group=f"bench-{uuid.uuid4().hex[:8]}",
                redactor=redactor,
                stop=stop,
                idle_exit=30,
                on_batch=on_batch,
            )
            end = time.perf_counter()
        finally:
            store.close()
    if stats.accepted != n:
        raise RuntimeError(f"ingest: {stats.accepted} of {n} accepted ({stats})")
    # steady: events/s after the first batch (group join and first fetch excluded)
    steady_events = n - int(first[1])
    return end - t0, steady_events / (end - first[0]) if steady_events else n / (end - t0)


def _rates(runs: list[float], events: int) -> str:
    return ", ".join(f"{events / seconds:,.0f}" for seconds in runs)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=3, help="best of R runs for every row")
    p.add_argument("--no-postgres", action="store_true", help="SQLite rows only")
    p.add_argument("--profile", type=Path, help="cProfile the SQLite outbox run into this file")
    a = p.parse_args()

    bootstrap = kafka_bootstrap()
    share, extra = divmod(a.events, len(TENANTS))
    per = {t: share + (i < extra) for i, t in enumerate(TENANTS)}
    lines = {t: cloudevents(per[t], t) for t in TENANTS}
    events = {t: [OutboundEvent.from_cloudevent(x) for x in lines[t]] for t in TENANTS}
    parsed = [(t, orjson.loads(x)) for t in TENANTS for x in lines[t]]
    size = sum(len(x) for x in lines["acme"]) / max(1, len(lines["acme"]))

    # The inputs (N parsed events, N outbound events) live through every timed region:
    # out of the collector's sight, so neither side pays for walking the harness's own
    # objects in its full collections (a worker process holds no such pile).
    gc.collect()
    gc.freeze()

    kinds, server_dsn, versions, skipped = databases(a.no_postgres)
    print(
        f"{a.events:,} events ({', '.join(f'{t} {per[t]:,}' for t in TENANTS)}), {size:.0f} "
        f"bytes each; broker {bootstrap}; {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}, confluent-kafka {confluent_kafka.version()[0]}, "
        f"librdkafka {confluent_kafka.libversion()[0]}, {versions}",
        flush=True,
    )
    if skipped:
        print(skipped, flush=True)

    # The raw producer gets exactly the sink's settings (client.id names a destination).
    with tempfile.TemporaryDirectory() as d:
        s = open_store(str(Path(d) / "conf.db"))
        dest = s.add_destination(
            tenant_id="acme", url=bootstrap, kind="kafka", config={"topic": "x", "mode": "binary"}
        )
        conf = producer_config(dest)
        s.close()

    rows: list[Row] = []

    def raw_once(prebuilt: bool = False) -> float:
        template = fresh_template()
        create_topics(bootstrap, [template.format(tenant_id=t) for t in TENANTS])
        return raw_producer(conf, parsed, template, prebuilt=prebuilt)

    runs = [raw_once() for _ in range(a.repeat)]
    rows.append(Row("-", "raw producer", min(runs), a.events))
    print(f"  raw producer: {_rates(runs, a.events)} events/s", flush=True)
    runs = [raw_once(prebuilt=True) for _ in range(a.repeat)]
    rows.append(Row("-", "raw, prebuilt", min(runs), a.events, "for information"))
    print(f"  raw producer, records prebuilt: {_rates(runs, a.events)} events/s", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp:
        for kind in kinds:
            stores = Stores(kind, Path(tmp), server_dsn)
            prof = a.profile if kind == "sqlite" else None
            runs = [outbox_run(stores, bootstrap, events, prof) for _ in range(a.repeat)]
            rows.append(Row(kind, "outbox → kafka", min(runs), a.events))
            print(f"  {kind}, outbox → kafka: {_rates(runs, a.events)} events/s", flush=True)

        topic = f"bench-ingest-{uuid.uuid4().hex[:8]}"
        create_topics(bootstrap, [topic])
        ingest_lines = cloudevents(a.events, "acme")
        produce_topic(bootstrap, topic, ingest_lines)
        for kind in kinds:
            results = [
                ingest_run(Stores(kind, Path(tmp), server_dsn), bootstrap, topic, a.events)
                for _ in range(a.repeat)
            ]  # every run reads the topic with a fresh consumer group
            total, steady = min(results)
            rows.append(Row(kind, "ingest kafka", total, a.events, f"steady {steady:,.0f}/s"))
            runs = [r[0] for r in results]
            print(f"  {kind}, ingest kafka: {_rates(runs, a.events)} events/s", flush=True)

    raw = rows[0].rate  # the reference: the raw producer building records as it goes
    print()
    head = ("store", "what", "seconds", "events/s", "/ raw", "")
    print("  {:<11} {:<15} {:>8} {:>10} {:>7}  {}".format(*head))
    for r in rows:
        ratio = f"{r.rate / raw:>6.2f}x" if r.what != "ingest kafka" else " " * 7
        print(f"  {r.store:<11} {r.what:<15} {r.seconds:>8.2f} {r.rate:>10,.0f} {ratio}  {r.note}")
    print("  target: outbox → kafka / raw producer >= 0.70")


if __name__ == "__main__":
    main()
