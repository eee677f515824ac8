"""Signed ingest into `agent-bom serve` against a bare FastAPI endpoint, all in one run.

    python benches/bench_server.py [--events N] [--batch B] [--concurrency C] [--repeat R]

Every target gets the same N posture events (finding.created, each 1,024 bytes as
JSON, unique event ids) in JSON-array batches of B, Ed25519-signed per Standard
Webhooks for a collector before the clock starts (tests/server/server_support.py), and
a fresh store. One client process (httpx.AsyncClient, C requests in flight, batches
alternating between the target's ports) posts them all and counts events/s accepted:
every answer must be a 200, and the `accepted` counts must add up to N.
  serve    `agent-bom serve --database URL --port P` processes: signature, replay guard,
           envelope validation, scopes, redaction, chain, outbox rows, audit record
  bare     benches/bare_ingest.py under uvicorn: parse the array, insert (event_id,
           bytes) in one transaction per batch; no auth, no validation, no chain
on SQLite (a fresh file, one process) and PostgreSQL (a fresh database on
$AGENT_BOM_TEST_DATABASE_URL, else the server `scripts/postgres.sh start` gives; two
processes; skipped when there is none). Each process takes one warm-up batch first
(not timed). Afterwards the store must hold every event. Every row is the best of R
runs (default 3), each from a fresh store and freshly started servers. Also shown: the
CPU the server processes spent per event (PostgreSQL's own not included) and the
client's CPU, since all of them share the machine's cores.

Also shown: what the serve handler does per batch called in this process, without
HTTP (collector lookup, signature and replay guard, ingest, audit record);
`--profile FILE` writes its cProfile stats.

The issue's targets: serve on SQLite >= 20,000 events/s, and >= 0.5 of bare.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import json
import multiprocessing
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

# benches/ (bare_ingest, bench_outbox's Stores and databases), tests/ (pg: fresh databases),
# tests/server/ (server_support: the signing collector client, finding())
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "server"))

import httpx
import orjson
from server_support import CollectorClient, ed25519_collector, finding, free_port

import bare_ingest
from agent_bom.outbox import open_store
from agent_bom.outbox.sqlite import SQLiteStore
from agent_bom.redaction import load_redactor
from agent_bom.server.app import _now
from agent_bom.server.ingest import ingest, split_body
from agent_bom.server.store import EventStore, Replay
from agent_bom.signing import verify
from bench_outbox import Stores, databases

TENANT = "bench"
EVENT_BYTES = 1024
SERVE = [sys.executable, "-c", "from agent_bom.cli import main; main()", "serve"]
BARE = [sys.executable, str(Path(__file__).resolve().with_name("bare_ingest.py"))]
TARGET_RATE = 20_000
TARGET_RATIO = 0.5
_FILLER = "lodash prototype pollution via a transitive dependency of the build image; "


def events_json(start: int, count: int) -> list[bytes]:
    """``count`` finding.created events of exactly EVENT_BYTES bytes each."""
    out = []
    for i in range(start, start + count):
        bare = len(orjson.dumps(finding(i, description="")))
        text = (_FILLER * (EVENT_BYTES // len(_FILLER) + 1))[: EVENT_BYTES - bare]
        out.append(orjson.dumps(finding(i, description=text)))
        assert len(out[-1]) == EVENT_BYTES, len(out[-1])
    return out


def batch_bodies(events: list[bytes], size: int) -> list[bytes]:
    return [b"[" + b",".join(events[i : i + size]) + b"]" for i in range(0, len(events), size)]


@dataclass(frozen=True)
class Request:
    body: bytes
    headers: dict[str, str]


@dataclass
class Row:
    store: str
    target: str
    processes: int
    seconds: float
    events: int
    server_cpu: float | None  # CPU seconds of every server process while timed
    client_cpu: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


# -- the client (its own process) -------------------------------------------------------


async def post_all(
    urls: list[str],
    warmup: list[Request],
    timed: list[Request],
    concurrency: int,
    warm: Callable[[], None] = lambda: None,
) -> tuple[float, float, int]:
    """Post ``warmup`` (one per url, in turn), call ``warm``, then post ``timed`` with
    ``concurrency`` in flight; (seconds, client CPU seconds, events accepted) of the
    timed part."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, trust_env=False, limits=limits) as client:

        async def post(url: str, req: Request) -> int:
            resp = await client.post(url, content=req.body, headers=req.headers)
            if resp.status_code != 200:
                raise RuntimeError(f"{url} answered {resp.status_code}: {resp.text[:500]}")
            return int(orjson.loads(resp.content)["accepted"])

        for url, req in zip(urls, warmup, strict=True):
            await post(url, req)
        warm()
        todo = iter(enumerate(timed))
        accepted = 0

        async def poster() -> None:
            nonlocal accepted
            for i, req in todo:
                n = await post(urls[i % len(urls)], req)
                accepted += n  # not `accepted += await …`: that reads `accepted` first

        cpu, t = time.process_time(), time.perf_counter()
        await asyncio.gather(*(poster() for _ in range(concurrency)))
        return time.perf_counter() - t, time.process_time() - cpu, accepted


def _client(
    conn: Connection, urls: list[str], warmup: list[Request], timed: list[Request], c: int
) -> None:
    def warm() -> None:
        conn.send("warm")
        conn.recv()  # the parent has read the servers' CPU counters

    try:
        conn.send(asyncio.run(post_all(urls, warmup, timed, c, warm)))
    except Exception as e:
        conn.send(f"{type(e).__name__}: {e}")


def run_client(
    urls: list[str], warmup: list[Request], timed: list[Request], concurrency: int, pids: list[int]
) -> tuple[float, float, float | None, int]:
    """(seconds, client CPU, servers' CPU, accepted) of one forked client posting ``timed``."""
    ctx = multiprocessing.get_context("fork")  # the batches are inherited, not pickled
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_client, args=(there, urls, warmup, timed, concurrency))
    proc.start()
    before = after = None
    got = here.recv()
    if got == "warm":
        before = _cpu_seconds(pids)
        here.send("go")
        got = here.recv()
        after = _cpu_seconds(pids)
    proc.join()
    if isinstance(got, str):
        raise RuntimeError(f"the client failed: {got}")
    seconds, client_cpu, accepted = got
    server_cpu = None if before is None or after is None else after - before
    return seconds, client_cpu, server_cpu, accepted


def _cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU seconds of ``pids`` (all their threads), None off Linux."""
    total = 0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    except (OSError, IndexError, ValueError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


# -- the servers ------------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path


@contextmanager
def servers(argv: list[str], url: str, count: int, logs: Path) -> Iterator[list[Server]]:
    """``count`` processes of ``argv --database url --port P``, each on its own port,
    ready (``/healthz`` answers) before yielding; stopped on exit."""
    started: list[Server] = []
    try:
        for _ in range(count):
            port = free_port()
            log = logs / f"server-{port}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [*argv, "--database", url, "--port", str(port)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            started.append(Server(proc, port, log))
        for s in started:
            _wait_ready(s)
        yield started
    finally:
        for s in started:
            s.proc.terminate()
        for s in started:
            try:
                s.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.wait()


def _wait_ready(s: Server) -> None:
    url = f"http://127.0.0.1:{s.port}/healthz"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and s.proc.poll() is None:
        try:
            if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    tail = s.log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"server on port {s.port} did not start (exit {s.proc.poll()}):\n{tail}")


def add_collector(url: str) -> tuple[str, str]:
    """A tenant and an Ed25519 collector in the store at ``url``: (collector id, whsk_ key)."""
    store = open_store(url)
    try:
        c, private = ed25519_collector(EventStore(store), TENANT)
    finally:
        store.close()
    return c.id, private


def signed(bodies: list[bytes], collector_id: str, private_key: str) -> list[Request]:
    client = CollectorClient("", collector_id, private_key=private_key)
    return [Request(body, client.headers(body)) for body in bodies]


def stored_findings(url: str) -> int:
    store = open_store(url)
    try:
        with store.transaction() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM events WHERE tenant_id = ? AND event_type = ?",
                (TENANT, "finding.created"),
            )
            return int(cur.fetchone()[0])
    finally:
        store.close()


def http_run(
    stores: Stores,
    target: str,
    processes: int,
    warmup: list[bytes],
    timed: list[bytes],
    events: int,
    concurrency: int,
    logs: Path,
) -> Row:
    """One target from a fresh store: servers up, warm-up, timed client, checked after."""
    expected = events + sum(body.count(b'"event_id"') for body in warmup[:processes])
    with stores.fresh() as url:
        if target == "serve":
            collector_id, key = add_collector(url)
            argv, count = SERVE, stored_findings
            reqs = signed(warmup[:processes] + timed, collector_id, key)
        else:
            bare_ingest.create_table(url)
            argv, count = BARE, bare_ingest.count_rows
            headers = {"content-type": "application/json"}
            reqs = [Request(b, headers) for b in warmup[:processes] + timed]
        with servers(argv, url, processes, logs) as up:
            urls = [f"http://127.0.0.1:{s.port}/v1/events" for s in up]
            seconds, client_cpu, server_cpu, accepted = run_client(
                urls, reqs[:processes], reqs[processes:], concurrency, [s.proc.pid for s in up]
            )
        stored = count(url)
    if accepted != events or stored != expected:
        raise RuntimeError(
            f"{stores.kind} {target}: {events} events posted, {accepted} accepted, "
            f"{stored} stored (expected {expected} with the warm-up)"
        )
    return Row(stores.kind, target, processes, seconds, events, server_cpu, client_cpu)


# -- the serve handler without HTTP -----------------------------------------------------


def handler_in_process(
    stores: Stores, timed: list[bytes], events: int, profiler: cProfile.Profile | None = None
) -> float:
    """Events/s of what the serve handler does per batch, called in this process on a
    fresh store: collector lookup, signature, split, ingest with the replay guard and the
    audit record in its transaction, as the app does."""
    with stores.fresh() as url:
        collector_id, key = add_collector(url)
        reqs = signed(timed, collector_id, key)
        store = open_store(url)
        if isinstance(store, SQLiteStore):
            store.checkpoint_in_background()  # as `agent-bom serve` does
        try:
            redactor = load_redactor("mask", None, None)
            event_store = EventStore(store, checkpoint_every=1000, redactor=redactor)
            accepted = 0
            t = time.perf_counter()
            if profiler:
                profiler.enable()
            for req in reqs:
                collector = event_store.collector(collector_id)
                assert collector is not None and collector.public_key
                msg_id = verify(req.headers, req.body, [collector.public_key])
                raw = split_body(req.body, "application/json")
                result = ingest(
                    event_store,
                    collector,
                    raw,
                    redactor=redactor,
                    audit=(collector.id, "events.ingest", {"events": len(raw)}, _now()),
                    replay=Replay(f"{collector.id}:{msg_id}", time.time(), 600),
                )
                accepted += result.count("accepted")
            if profiler:
                profiler.disable()
            seconds = time.perf_counter() - t
        finally:
            store.close()
    if accepted != events:
        raise RuntimeError(f"in-process handler: {accepted} of {events} events accepted")
    return events / seconds


# -- the run ----------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--events", type=int, default=30_000)
    p.add_argument("--batch", type=int, default=100, help="events per request")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    p.add_argument("--repeat", type=int, default=3, help="best of R runs for every row")
    p.add_argument("--no-postgres", action="store_true", help="SQLite rows only")
    p.add_argument("--profile", type=Path, help="cProfile stats of the in-process handler")
    p.add_argument("--json", type=Path, help="also write the figures here")
    a = p.parse_args()

    timed = batch_bodies(events_json(0, a.events), a.batch)
    warmup = batch_bodies(events_json(a.events, 2 * a.batch), a.batch)  # one per process
    _, server_dsn, versions, skipped = databases(a.no_postgres)
    fast = [m for m in ("uvloop", "httptools") if importlib.util.find_spec(m) is not None]
    print(
        f"{a.events:,} events of {EVENT_BYTES} bytes in {len(timed)} signed batches of "
        f"{a.batch}, concurrency {a.concurrency}, best of {a.repeat}; {os.cpu_count()} cores, "
        f"{platform.machine()}, Python {platform.python_version()}, httpx {httpx.__version__}, "
        f"{versions}; uvicorn extras: {', '.join(fast) or 'none (asyncio loop, h11)'}",
        flush=True,
    )
    if skipped:
        print(skipped, flush=True)

    plan = [("sqlite", "bare", 1), ("sqlite", "serve", 1)]
    if server_dsn:
        plan += [("postgresql", "bare", 2), ("postgresql", "serve", 2)]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        for kind, target, processes in plan:
            stores = Stores(kind, Path(tmp), server_dsn)
            runs = [
                http_run(
                    stores, target, processes, warmup, timed, a.events, a.concurrency, Path(tmp)
                )
                for _ in range(a.repeat)
            ]
            rows.append(min(runs, key=lambda r: r.seconds))
            each = ", ".join(f"{r.rate:,.0f}" for r in runs)
            print(f"  {kind}, {target}, {processes} pr: {each} events/s", flush=True)
        sqlite = Stores("sqlite", Path(tmp), None)
        in_process = max(handler_in_process(sqlite, timed, a.events) for _ in range(a.repeat))
        if a.profile:
            profiler = cProfile.Profile()
            handler_in_process(sqlite, timed, a.events, profiler)
            profiler.dump_stats(a.profile)
            print(f"\ncProfile of the in-process handler (in {a.profile}), by own time:")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)

    bare = {r.store: r.rate for r in rows if r.target == "bare"}
    print()
    head = ("store", "target", "procs", "seconds", "events/s", "/ bare", "srv µs/ev", "client CPU")
    print("  {:<11} {:<6} {:>5} {:>8} {:>9} {:>7} {:>9} {:>10}".format(*head))
    for r in rows:
        us = f"{r.server_cpu / r.events * 1e6:.0f}" if r.server_cpu is not None else "?"
        print(
            f"  {r.store:<11} {r.target:<6} {r.processes:>5} {r.seconds:>8.2f} {r.rate:>9,.0f} "
            f"{r.rate / bare[r.store]:>6.2f}x {us:>9} {r.client_cpu / r.seconds:>9.0%}"
        )
    serve = {r.store: r.rate for r in rows if r.target == "serve"}
    print(
        f"  targets: serve on SQLite >= {TARGET_RATE:,} events/s "
        f"({'met' if serve['sqlite'] >= TARGET_RATE else 'NOT met'}), serve / bare >= "
        f"{TARGET_RATIO} ("
        + ", ".join(
            f"{k}: {'met' if v / bare[k] >= TARGET_RATIO else 'NOT met'}" for k, v in serve.items()
        )
        + ")"
    )
    print(
        f"  serve handler in-process on SQLite (no HTTP; verify, ingest, audit): "
        f"{in_process:,.0f} events/s"
    )
    print(
        "  srv µs/ev: CPU of all server processes per event (not PostgreSQL's); "
        "client CPU: share of one core"
    )
    if a.json:
        a.json.write_text(
            json.dumps(
                {
                    "events_per_s": {f"{r.store}, {r.target}": r.rate for r in rows},
                    "ratios": {
                        f"{r.store}, {r.target}": r.rate / bare[r.store]
                        for r in rows
                        if r.target == "serve"
                    },
                    "in_process_events_per_s": in_process,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
