"""Outbox delivery throughput against raw httpx posting the same bodies, all in one run.

    python benches/bench_outbox.py [--events N] [--concurrency C] [--repeat R]

Every run sends the same N sealed CloudEvent lines (tests/outbox/outbox_support.py) to
one local receiver (benches/http_sink.py, its own process, answers 204) and measures
deliveries/s:
  raw httpx            httpx.AsyncClient, C tasks, the connector's limits and headers
                       (Standard Webhooks v1 signature computed per request)
  in-process, 1        OutboxWorker + WebhookConnector in this process (no start-up cost)
  1 / 2 processes      `agent-bom outbox run --once --concurrency C` worker processes,
                       timed from spawn until every one has exited
on SQLite (a fresh file) and PostgreSQL (a fresh database on $AGENT_BOM_TEST_DATABASE_URL,
else the server `scripts/postgres.sh start` gives; skipped when there is none). Each
outbox run starts from a fresh store with the N rows enqueued (enqueue timed on its own)
and is checked afterwards: the receiver got N requests and the store counts N delivered.
The issue's target: outbox / raw httpx >= 0.6.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# benches/ (http_sink), tests/ (pg: the test server, fresh databases), tests/outbox/
# (outbox_support: real CloudEvent lines)
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "outbox"))

import httpx
from outbox_support import TENANT, cloudevents

import pg
from agent_bom import __version__
from agent_bom.connectors.webhook import CONTENT_TYPE, DEFAULT_TIMEOUT, WebhookConnector
from agent_bom.outbox import OutboundEvent, OutboxStore, open_store
from agent_bom.outbox.worker import OutboxWorker
from agent_bom.signing import new_secret, signature_headers
from http_sink import Sink

SECRET_ENV = "AGENT_BOM_BENCH_WEBHOOK_SECRET"
WORKER = [sys.executable, "-c", "from agent_bom.cli import main; main()", "outbox", "run"]
MAX_CONNECTIONS = 256  # WebhookConnector's default pool size


@dataclass
class Row:
    store: str
    workers: str
    seconds: float
    events: int

    @property
    def rate(self) -> float:
        return self.events / self.seconds


# -- the reference ----------------------------------------------------------------------


async def post_all(
    url: str, events: list[OutboundEvent], concurrency: int, secret: str, host: str
) -> None:
    """What the connector does per row, minus the outbox: sign, POST the exact bytes."""
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(DEFAULT_TIMEOUT),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(
            max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
        ),
    )
    todo = iter(events)

    async def poster() -> None:
        for ev in todo:
            headers = signature_headers(ev.event_id, int(time.time()), ev.body, secrets=(secret,))
            headers["host"] = host
            headers["content-type"] = CONTENT_TYPE
            headers["user-agent"] = f"agent-bom/{__version__}"
            resp = await client.post(url, content=ev.body, headers=headers)
            if resp.status_code != 204:
                raise RuntimeError(f"the sink answered {resp.status_code}")

    async with client:
        await asyncio.gather(*(poster() for _ in range(concurrency)))


def _post_part(
    url: str, events: list[OutboundEvent], concurrency: int, secret: str, host: str
) -> None:
    asyncio.run(post_all(url, events, concurrency, secret, host))


# -- the outbox -------------------------------------------------------------------------


def drain_in_process(store: OutboxStore, concurrency: int) -> None:
    async def main() -> None:
        connector = WebhookConnector(allow_private_networks=True)
        try:
            worker = OutboxWorker(store, {"webhook": connector}, concurrency=concurrency)
            await worker.run(once=True)
        finally:
            await connector.aclose()

    asyncio.run(main())


def drain_with_processes(url: str, workers: int, concurrency: int) -> None:
    cmd = [
        *WORKER,
        "--once",
        "--concurrency",
        str(concurrency),
        "--allow-private-networks",
        "--database",
        url,
    ]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(workers)
    ]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"outbox run exited with {p.returncode}: {err.decode()[-2000:]}")


class Stores:
    """Fresh, empty stores of one kind, each removed when its run is over."""

    def __init__(self, kind: str, tmp: Path, server_dsn: str | None) -> None:
        self.kind, self.tmp, self.server_dsn = kind, tmp, server_dsn

    @contextmanager
    def fresh(self) -> Iterator[str]:
        if self.kind == "sqlite":
            with tempfile.TemporaryDirectory(dir=self.tmp) as d:
                yield str(Path(d) / "outbox.db")
            return
        assert self.server_dsn is not None
        url = pg.fresh_database(self.server_dsn)
        try:
            yield url
        finally:
            pg.drop_database(url)


def outbox_run(
    stores: Stores,
    sink: Sink,
    events: list[OutboundEvent],
    drain: Callable[[OutboxStore, str], None],
    enqueue_rates: list[float],
) -> float:
    """Seconds ``drain`` takes to deliver ``events`` from a fresh store, checked after."""
    with stores.fresh() as url:
        store = open_store(url)
        try:
            store.add_destination(
                tenant_id=TENANT,
                url=sink.url,
                secret_ref=f"env:{SECRET_ENV}",
                allow_http=True,
                allow_private_network=True,
            )
            t = time.perf_counter()
            queued = store.enqueue(events).rows
            enqueue_rates.append(len(events) / (time.perf_counter() - t))
            if queued != len(events):
                raise RuntimeError(f"{queued} rows queued for {len(events)} events")
            before = sink.count()
            t = time.perf_counter()
            drain(store, url)
            seconds = time.perf_counter() - t
            received = sink.count() - before
            delivered = store.stats()["totals"]["delivered"]
        finally:
            store.close()
    if received != len(events) or delivered != len(events):
        raise RuntimeError(
            f"{len(events)} events: the sink got {received} requests, the store counts "
            f"{delivered} delivered"
        )
    return seconds


def databases(no_postgres: bool) -> tuple[list[str], str | None, str, str | None]:
    """The stores a bench runs on: SQLite, plus PostgreSQL unless ``no_postgres`` or no
    server is at hand. Returns (kinds, server DSN, versions text, why PostgreSQL is
    skipped or None)."""
    server_dsn, detail = (None, "--no-postgres") if no_postgres else postgres_server()
    kinds, versions = ["sqlite"], f"SQLite {sqlite3.sqlite_version}"
    if server_dsn:
        kinds.append("postgresql")
        versions += f", PostgreSQL {detail}"
        return kinds, server_dsn, versions, None
    return kinds, None, versions, f"PostgreSQL rows skipped: no server ({detail.strip()})"


def postgres_server() -> tuple[str | None, str]:
    """The tests' server (``$AGENT_BOM_TEST_DATABASE_URL``, else the one
    ``scripts/postgres.sh start`` gives) and its version, or None and why not."""
    dsn = os.environ.get(pg.ENV_VAR, "").strip()
    if not dsn:
        started, error = pg._start_server()
        if not started:
            return None, error
        dsn = started
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=10) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except (ImportError, psycopg.Error) as e:
        return None, " ".join(str(e).split())  # one line; psycopg never shows the password
    return dsn, str(row[0]).split()[0] if row else "?"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--events", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--repeat", type=int, default=1, help="best of R runs for every row")
    p.add_argument("--no-postgres", action="store_true", help="SQLite rows only")
    p.add_argument("--json", type=Path, help="also write the figures here")
    a = p.parse_args()

    secret = os.environ.setdefault(SECRET_ENV, new_secret())  # the workers inherit it
    events = [OutboundEvent.from_cloudevent(line) for line in cloudevents(a.events)]
    size = sum(len(e.body) for e in events) / len(events)

    kinds, server_dsn, versions, skipped = databases(a.no_postgres)
    print(
        f"{a.events:,} events, {size:.0f} bytes each, concurrency {a.concurrency}, "
        f"best of {a.repeat}; {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}, httpx {httpx.__version__}, {versions}",
        flush=True,
    )
    if importlib.util.find_spec("sniffio") is None:
        # httpcore retries `import sniffio` on every lock it sets up (encode/httpcore#1103):
        # a filesystem search per lock, so every row below pays roughly 0.7 ms per request.
        print("note: sniffio is not installed; httpx pays a failed import per lock", flush=True)
    if skipped:
        print(skipped, flush=True)

    rows: list[Row] = []
    enqueue: dict[str, float] = {}
    with Sink() as sink, tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        host = f"127.0.0.1:{sink.port}"

        def reference() -> float:
            before = sink.count()
            t = time.perf_counter()
            asyncio.run(post_all(sink.url, events, a.concurrency, secret, host))
            seconds = time.perf_counter() - t
            if sink.count() - before != len(events):
                raise RuntimeError("the sink did not get every reference request")
            return seconds

        def reference_2() -> float:
            # Two forked processes, each posting half the events at the same concurrency:
            # the reference for two worker processes (which also pay Python start-up).
            ctx = multiprocessing.get_context("fork")
            before = sink.count()
            t = time.perf_counter()
            procs = [
                ctx.Process(
                    target=_post_part, args=(sink.url, events[i::2], a.concurrency, secret, host)
                )
                for i in range(2)
            ]
            for proc in procs:
                proc.start()
            for proc in procs:
                proc.join()
            seconds = time.perf_counter() - t
            if sink.count() - before != len(events) or any(p.exitcode for p in procs):
                raise RuntimeError("the sink did not get every reference request")
            return seconds

        rows.append(Row("-", "raw httpx", min(reference() for _ in range(a.repeat)), a.events))
        print(f"  raw httpx: {rows[-1].rate:,.0f} deliveries/s", flush=True)
        rows.append(
            Row("-", "raw httpx, 2 pr", min(reference_2() for _ in range(a.repeat)), a.events)
        )
        print(f"  raw httpx, 2 processes: {rows[-1].rate:,.0f} deliveries/s", flush=True)

        variants: list[tuple[str, Callable[[OutboxStore, str], None]]] = [
            ("in-process, 1", lambda store, url: drain_in_process(store, a.concurrency)),
            ("1 process", lambda store, url: drain_with_processes(url, 1, a.concurrency)),
            ("2 processes", lambda store, url: drain_with_processes(url, 2, a.concurrency)),
        ]
        for kind in kinds:
            stores = Stores(kind, Path(tmp), server_dsn)
            rates: list[float] = []
            for name, drain in variants:
                best = min(outbox_run(stores, sink, events, drain, rates) for _ in range(a.repeat))
                rows.append(Row(kind, name, best, a.events))
                print(f"  {kind}, {name}: {rows[-1].rate:,.0f} deliveries/s", flush=True)
            enqueue[kind] = max(rates)

        with Stores("sqlite", Path(tmp), None).fresh() as url:
            open_store(url).close()
            t = time.perf_counter()
            drain_with_processes(url, 1, a.concurrency)
            startup = time.perf_counter() - t

    raw, raw2 = rows[0].rate, rows[1].rate

    def ratio(r: Row) -> float:
        # Each row against raw httpx with as many processes at the same concurrency.
        return r.rate / (raw2 if r.workers.startswith("2") else raw)

    print()
    head = ("store", "workers", "seconds", "deliveries/s", "/ raw httpx")
    print("  {:<11} {:<15} {:>8} {:>13} {:>12}".format(*head))
    for r in rows:
        print(
            f"  {r.store:<11} {r.workers:<15} {r.seconds:>8.2f} {r.rate:>13,.0f} {ratio(r):>11.2f}x"
        )
    print("  target: outbox / raw httpx (same number of processes) >= 0.60")
    for kind, rate in enqueue.items():
        print(f"  enqueue into {kind}: {rate:,.0f} events/s (one transaction)")
    print(f"  one worker process on an empty queue (start-up + one poll): {startup:.2f}s")
    if a.json:
        a.json.write_text(
            json.dumps(
                {
                    "deliveries_per_s": {f"{r.store}, {r.workers}": r.rate for r in rows},
                    "ratios": {f"{r.store}, {r.workers}": ratio(r) for r in rows[2:]},
                    "enqueue_per_s": enqueue,
                    "worker_startup_s": startup,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
