"""``OutboxWorker``: claim due rows under a lease, send them, record what happened.

asyncio for the network, the store's (blocking) calls on a thread. Completions are
committed in small batches: a crash between a send and its commit only means the
row is sent again with the same ``webhook-id``, which receivers deduplicate."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import socket
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agent_bom.outbox.model import Claimed, Completion, Destination, OutboundEvent, OutboxRow
from agent_bom.outbox.notices import dead_lettered
from agent_bom.outbox.policy import CircuitBreaker, RetryPolicy, SendResult, decide
from agent_bom.outbox.store import OutboxStore

__all__ = ["Connector", "OutboxWorker", "WorkerStats"]


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


def _owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class OutboxWorker:
    """``concurrency`` bounds in-flight sends per destination; ``batch`` bounds the
    rows leased at once. ``lease_seconds`` must outlast a send (the timeout)."""

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
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
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
                    for job in self._jobs(claimed):
                        task = asyncio.create_task(job)
                        inflight.add(task)
                        task.add_done_callback(inflight.discard)
                        task.add_done_callback(lambda _: wake.set())
                if once and not claimed and not inflight and not self._done:
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
        return self.stats

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _flush(self) -> None:
        batch, self._done = self._done, []
        if batch:
            applied = await asyncio.to_thread(self.store.finish, batch)
            self.stats.lost_leases += len(batch) - applied

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
        now = time.time()
        decision = decide(result, row.attempts, self.policy, now, self.rng)
        if decision.destination_failure or result.ok:
            self.breaker.record(dest.id, failed=not result.ok, now=now)
        notices: tuple[OutboundEvent, ...] = ()
        if decision.transition == "dead_letter" and row.event_type != "delivery.dead_lettered":
            notices = (
                dead_lettered(
                    row,
                    attempts=row.attempts + 1,
                    reason=decision.reason or "dead-lettered",
                    last_status=result.status_code,
                    at=now,
                ),
            )
        if decision.transition == "delivered":
            self.stats.delivered += 1
        elif decision.transition == "retry":
            self.stats.retried += 1
        else:
            self.stats.dead_lettered += 1
        self._done.append(
            Completion(
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
        )
