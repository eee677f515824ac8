"""``OutboxWorker``: claim due rows under a lease, send them, record what happened.

asyncio for the network, the store's (blocking) calls on a thread. Completions are
committed in small batches: a crash between a send and its commit only means the
row is sent again with the same ``webhook-id``, which receivers deduplicate.

Ordered destinations (Kafka) are streams: the worker leases the destination, sends
its rows in id order a batch at a time (the next batch goes out while the previous
one's acknowledgements come in) and moves the destination's cursor once per batch;
a row that fails leaves the stream and is retried row by row."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agent_bom.outbox.model import (
    ORDERED_KINDS,
    Claimed,
    Completion,
    Destination,
    OutboundEvent,
    OutboxRow,
    StreamRow,
)
from agent_bom.outbox.notices import dead_lettered
from agent_bom.outbox.policy import CircuitBreaker, RetryPolicy, SendResult, decide
from agent_bom.outbox.store import OutboxStore

__all__ = ["Connector", "OutboxWorker", "WorkerStats"]

# What an operator watches a running worker by: its start and stop, dead letters,
# circuits opening, destinations disabled, lost leases and stream errors (WARNING
# and up), each retry at DEBUG. Row ids, event ids, destination ids and the
# decision's reason only: never a payload, a response body or a credential.
log = logging.getLogger("agent_bom.outbox")


class Connector(Protocol):
    kind: str

    async def send(self, dest: Destination, row: OutboxRow) -> SendResult: ...
    async def aclose(self) -> None: ...


@dataclass
class WorkerStats:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead_lettered: int = 0
    deferred: int = 0
    released: int = 0
    lost_leases: int = 0
    stream_errors: int = 0
    last_error: str | None = None


def _owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


_Sent = tuple[list[StreamRow], "asyncio.Task[list[SendResult]]"]


@dataclass
class _StreamState:
    cursor: int
    lost: bool = False  # stop reading: the lease is gone, or recording a batch failed
    error: Exception | None = None


class OutboxWorker:
    """``concurrency`` bounds in-flight sends per destination; ``batch`` bounds the
    rows leased at once. ``lease_seconds`` must outlast a send (the timeout).

    Streams (ordered destinations): at most ``streams`` at once, ``stream_batch`` rows
    per batch, ``stream_window`` batches in flight per destination."""

    def __init__(
        self,
        store: OutboxStore,
        connectors: Mapping[str, Connector],
        *,
        policy: RetryPolicy | None = None,
        concurrency: int = 8,
        batch: int = 128,
        lease_seconds: float = 60.0,
        poll_interval: float = 0.5,
        breaker: CircuitBreaker | None = None,
        owner: str | None = None,
        rng: random.Random | None = None,
        streams: int = 16,
        stream_batch: int = 2000,
        stream_window: int = 2,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if streams < 1 or stream_batch < 1 or stream_window < 1:
            raise ValueError("streams, stream_batch and stream_window must be at least 1")
        self.store = store
        self.connectors = dict(connectors)
        self.policy = policy or RetryPolicy()
        self.concurrency = concurrency
        self.batch = batch
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.breaker = breaker or CircuitBreaker()
        self.owner = owner or _owner_id()
        self.rng = rng or random.Random()
        self.stats = WorkerStats()
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._inflight_rows = 0
        self._done: list[Completion] = []
        self._stopping = False
        self._wake = asyncio.Event()
        self.streams = streams
        self.stream_batch = stream_batch
        self.stream_window = stream_window
        self._ordered_kinds = [k for k in ORDERED_KINDS if k in self.connectors]
        self._streams: set[str] = set()  # destinations this worker is streaming now
        self._stream_poll_at = 0.0  # monotonic time of the next look for due streams

    async def run(self, *, once: bool = False, stop: asyncio.Event | None = None) -> WorkerStats:
        """Deliver until ``stop`` is set (or, with ``once``, until nothing is due).

        On stop: no new claims, sends in flight finish and are recorded, rows not yet
        started go back to pending."""
        stop = stop or asyncio.Event()
        inflight: set[asyncio.Task[None]] = set()
        wake = self._wake = asyncio.Event()
        stop_watch = asyncio.create_task(self._wake_on(stop))
        # Claim when a quarter of the batch is free (or nothing is in flight), so one
        # claim serves many completions instead of one each.
        refill = max(1, self.batch // 4)
        log.info(
            "worker %s started (batch %d, concurrency %d, lease %gs%s)",
            self.owner,
            self.batch,
            self.concurrency,
            self.lease_seconds,
            ", until nothing is due" if once else "",
        )
        try:
            while not stop.is_set():
                wake.clear()  # anything finishing from here on wakes the wait below
                if self._done and (len(self._done) >= refill or len(inflight) < refill):
                    await self._flush()  # before claiming: a dead letter's notice may be due
                free = self.batch - self._inflight_rows
                claimed: list[Claimed] = []
                if free >= refill or not inflight:
                    claimed = await asyncio.to_thread(
                        self.store.claim_due,
                        self.owner,
                        limit=free,
                        lease_seconds=self.lease_seconds,
                        exclude_destinations=self.breaker.open_destinations(time.time()),
                    )
                    self.stats.claimed += len(claimed)
                jobs = self._jobs(claimed)
                streams = await self._claim_streams(poll=not once)
                jobs += [self._stream(dest, cursor) for dest, cursor in streams]
                for job in jobs:
                    task = asyncio.create_task(job)
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
                    task.add_done_callback(lambda _: wake.set())
                if once and not claimed and not streams and not inflight and not self._done:
                    break
                if claimed and len(claimed) == free:
                    continue  # more may be due right now
                if inflight or not self._done:
                    # Idle: poll. Busy: wake on a completion, flushing at least every 50 ms.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            wake.wait(), 0.05 if inflight else self.poll_interval
                        )
        finally:
            self._stopping = True
            stop_watch.cancel()
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)
            await self._flush()
            self.stats.released += await asyncio.to_thread(self.store.release, self.owner)
            st = self.stats
            log.info(
                "worker %s stopped: delivered %d, retried %d, dead-lettered %d, deferred %d, "
                "released %d",
                self.owner,
                st.delivered,
                st.retried,
                st.dead_lettered,
                st.deferred,
                st.released,
            )
        return self.stats

    async def _claim_streams(self, *, poll: bool) -> list[tuple[Destination, int]]:
        """Lease due streams; ``poll``: when the last look found none, look again only
        after ``poll_interval`` (a look is a write transaction)."""
        free = self.streams - len(self._streams)
        if not self._ordered_kinds or free < 1:
            return []
        if poll and time.monotonic() < self._stream_poll_at:
            return []
        now = time.time()
        streams = await asyncio.to_thread(
            self.store.claim_streams,
            self.owner,
            kinds=self._ordered_kinds,
            limit=free,
            lease_seconds=self.lease_seconds,
            now=now,
            exclude_destinations=sorted({*self.breaker.open_destinations(now), *self._streams}),
        )
        self._streams.update(dest.id for dest, _ in streams)
        if not streams:
            self._stream_poll_at = time.monotonic() + self.poll_interval
        return streams

    async def _stream(self, dest: Destination, cursor: int) -> None:
        """Deliver one leased ordered destination until it has nothing past its cursor,
        its circuit opens, the worker stops or the lease is lost; then hand it back.

        This coroutine reads and sends batches; ``_commit_stream`` takes them in order,
        waits for their acknowledgements and moves the cursor, so reading and sending
        go on while a batch is being recorded (up to ``stream_window`` batches ahead)."""
        connector = self.connectors[dest.kind]
        sent: asyncio.Queue[_Sent | None] = asyncio.Queue(maxsize=self.stream_window)
        state = _StreamState(cursor)
        committer = asyncio.create_task(self._commit_stream(dest, sent, state))
        after = cursor
        try:
            while not (state.lost or self._stopping or self.breaker.is_open(dest.id, time.time())):
                if self.store.inline_stream_reads:
                    rows = self.store.stream_rows(dest.id, after=after, limit=self.stream_batch)
                else:
                    rows = await asyncio.to_thread(
                        self.store.stream_rows, dest.id, after=after, limit=self.stream_batch
                    )
                if not rows:
                    break
                after = rows[-1].id
                self.stats.claimed += len(rows)
                send = connector.send_batch(dest, rows)  # type: ignore[attr-defined]
                await sent.put((rows, asyncio.create_task(send)))
        finally:
            await sent.put(None)  # the committer is always taking: room comes
            with contextlib.suppress(Exception):
                await committer
            if state.error is None:
                await asyncio.to_thread(self.store.release_stream, dest.id, self.owner)
                self._stream_poll_at = 0.0  # rows may have come meanwhile: look again now
            else:
                # Recording a batch failed (the store?): the lease is left to expire, so
                # the stream is tried again after ``lease_seconds``, not at once.
                self.stats.stream_errors += 1
                self.stats.last_error = f"stream {dest.id}: {state.error!r}"
                log.error(
                    "stream %s stopped on an error, tried again when its lease expires (%gs): %r",
                    dest.id,
                    self.lease_seconds,
                    state.error,
                )
            self._streams.discard(dest.id)  # after the release: never re-claimed meanwhile

    async def _commit_stream(
        self, dest: Destination, sent: asyncio.Queue[_Sent | None], state: _StreamState
    ) -> None:
        """Record the stream's sent batches in order; after a lost lease only wait for
        what is in flight (another worker has the stream and sends from its cursor)."""
        while (item := await sent.get()) is not None:
            rows, task = item
            try:
                results = await task
                if state.lost:
                    self.stats.lost_leases += len(rows)
                elif await self._advance(dest, state.cursor, rows, results):
                    state.cursor = rows[-1].id
                else:
                    state.lost = True
                    self.stats.lost_leases += len(rows)
            except Exception as e:  # keep taking batches, so the reader never blocks
                state.lost = True
                state.error = state.error or e
        if state.error is not None:
            raise state.error

    async def _advance(
        self, dest: Destination, cursor: int, rows: list[StreamRow], results: list[SendResult]
    ) -> bool:
        now = time.time()
        failures = [
            self._completion(row.row(dest.id), dest, result, now)
            for row, result in zip(rows, results, strict=True)
            if not result.ok
        ]
        delivered = len(rows) - len(failures)
        if delivered and not failures:
            self.breaker.record(dest.id, failed=False, now=now)
        latency = max((r.latency_ms or 0.0 for r in results), default=0.0)
        moved = await asyncio.to_thread(
            self.store.advance_stream,
            dest.id,
            self.owner,
            cursor=cursor,
            through=rows[-1].id,
            failures=failures,
            latency_ms=latency,
            lease_seconds=self.lease_seconds,
            now=now,
        )
        if moved:
            self.stats.delivered += delivered
        return moved

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _flush(self) -> None:
        batch, self._done = self._done, []
        if batch:
            applied = await asyncio.to_thread(self.store.finish, batch)
            self.stats.lost_leases += len(batch) - applied
            if applied < len(batch):
                log.warning(
                    "%d of %d outcomes not recorded: the rows' leases had expired, "
                    "so they will be sent again",
                    len(batch) - applied,
                    len(batch),
                )

    def _jobs(self, claimed: list[Claimed]) -> list[Coroutine[Any, Any, None]]:
        """One send per row, or one per destination for connectors that send batches."""
        jobs: list[Coroutine[Any, Any, None]] = []
        groups: dict[str, list[Claimed]] = {}
        for c in claimed:
            connector = self.connectors.get(c.destination.kind)
            if connector is not None and hasattr(connector, "send_batch"):
                groups.setdefault(c.destination.id, []).append(c)
            else:
                jobs.append(self._deliver([c]))
        # Batches of at most a quarter of the claim: their completions come back, and are
        # recorded, while the rest is still being sent, and the next claim overlaps too.
        size = max(1, self.batch // 4)
        for group in groups.values():
            jobs.extend(self._deliver(group[i : i + size]) for i in range(0, len(group), size))
        return jobs

    async def _deliver(self, items: list[Claimed]) -> None:
        dest = items[0].destination
        self._inflight_rows += len(items)
        try:
            await self._deliver_held(items, dest)
        finally:
            self._inflight_rows -= len(items)

    async def _deliver_held(self, items: list[Claimed], dest: Destination) -> None:
        connector = self.connectors.get(dest.kind)
        limit = getattr(connector, "concurrency", None) or self.concurrency
        semaphore = self._semaphores.get(dest.id)
        if semaphore is None:
            semaphore = self._semaphores[dest.id] = asyncio.Semaphore(limit)
        async with semaphore:
            now = time.time()
            if self._stopping or self.breaker.is_open(dest.id, now):
                for c in items:
                    if self._stopping:
                        self.stats.released += 1
                        self._done.append(Completion(c.row.id, self.owner, "release", now))
                    else:
                        self.stats.deferred += 1
                        self._done.append(
                            Completion(
                                c.row.id,
                                self.owner,
                                "defer",
                                now,
                                next_attempt_at=self.breaker.open_until(dest.id),
                            )
                        )
                return
            rows = [c.row for c in items]
            if connector is None:
                error = SendResult(error=f"no connector for destination kind {dest.kind!r}")
                results = [error] * len(rows)
            elif len(rows) > 1 or hasattr(connector, "send_batch"):
                results = await connector.send_batch(dest, rows)  # type: ignore[attr-defined]
            else:
                results = [await connector.send(dest, rows[0])]
        for row, result in zip(rows, results, strict=True):
            self._complete(row, dest, result)

    def _complete(self, row: OutboxRow, dest: Destination, result: SendResult) -> None:
        self._done.append(self._completion(row, dest, result, time.time()))

    def _completion(
        self, row: OutboxRow, dest: Destination, result: SendResult, now: float
    ) -> Completion:
        """What a send decided for ``row`` (counted in the stats and the breaker)."""
        decision = decide(result, row.attempts, self.policy, now, self.rng)
        if (decision.destination_failure or result.ok) and self.breaker.record(
            dest.id, failed=not result.ok, now=now
        ):
            log.warning(
                "destination %s: circuit open for %gs after repeated failures (last: %s)",
                dest.id,
                self.breaker.open_until(dest.id) - now,
                decision.reason,
            )
        attempt = row.attempts + 1
        notices: tuple[OutboundEvent, ...] = ()
        if decision.transition == "delivered":
            self.stats.delivered += 1
        elif decision.transition == "retry":
            self.stats.retried += 1
            log.debug(
                "row %d to destination %s: attempt %d failed (%s), next in %.1fs",
                row.id,
                dest.id,
                attempt,
                decision.reason,
                (decision.next_attempt_at or now) - now,
            )
        else:
            self.stats.dead_lettered += 1
            log.warning(
                "row %d (event %s) to destination %s dead-lettered after %d attempt%s: %s",
                row.id,
                row.event_id,
                dest.id,
                attempt,
                "" if attempt == 1 else "s",
                decision.reason,
            )
            if row.event_type != "delivery.dead_lettered":
                notices = (
                    dead_lettered(
                        row,
                        attempts=attempt,
                        reason=decision.reason or "dead-lettered",
                        last_status=result.status_code,
                        at=now,
                    ),
                )
        if decision.disable_destination is not None:
            log.error("destination %s disabled: %s", dest.id, decision.disable_destination)
        return Completion(
            row.id,
            self.owner,
            decision.transition,
            now,
            next_attempt_at=decision.next_attempt_at,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=decision.reason if decision.transition != "delivered" else None,
            response_excerpt=result.response_excerpt,
            disable_destination=decision.disable_destination,
            notices=notices,
        )
