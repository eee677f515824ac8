"""Delivery to a real local receiver: signatures, scripted failures, dead letters.

The worker runs in-process; the receiver is a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time

import orjson
import pytest
import standardwebhooks
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from outbox_support import SECRET_REF, TENANT, Receiver, Response, cloudevents

from agent_bom.connectors.webhook import WebhookConnector
from agent_bom.outbox import OutboundEvent, OutboxStore, Status
from agent_bom.outbox.policy import CircuitBreaker, RetryPolicy
from agent_bom.outbox.worker import OutboxWorker, WorkerStats
from agent_bom.signing import new_signing_key

NO_JITTER = RetryPolicy(jitter=0)


def add_receiver(store: OutboxStore, url: str, **kw: object) -> str:
    args: dict[str, object] = {
        "tenant_id": TENANT,
        "url": url,
        "secret_ref": SECRET_REF,
        "allow_http": True,
        "allow_private_network": True,
    }
    args.update(kw)
    return store.add_destination(**args).id  # type: ignore[arg-type]


def enqueue(store: OutboxStore, n: int, **kw: object) -> list[OutboundEvent]:
    evs = [OutboundEvent.from_cloudevent(line) for line in cloudevents(n, **kw)]  # type: ignore[arg-type]
    store.enqueue(evs)
    return evs


def run_once(
    store: OutboxStore,
    *,
    policy: RetryPolicy = NO_JITTER,
    timeout: float = 5.0,
    breaker: CircuitBreaker | None = None,
    concurrency: int = 8,
) -> WorkerStats:
    async def main() -> WorkerStats:
        connector = WebhookConnector(timeout=timeout, allow_private_networks=True)
        try:
            worker = OutboxWorker(
                store,
                {"webhook": connector},
                policy=policy,
                breaker=breaker,
                concurrency=concurrency,
                rng=random.Random(7),
            )
            return await worker.run(once=True)
        finally:
            await connector.aclose()

    return asyncio.run(main())


def make_due(store: OutboxStore, row_id: int) -> None:
    with store.transaction() as cur:
        cur.execute("UPDATE outbox SET next_attempt_at = 0 WHERE id = ?", (row_id,))


def only_row(store: OutboxStore, dest: str | None = None):  # type: ignore[no-untyped-def]
    (row,) = store.list_rows(destination_id=dest)
    return row


def test_every_delivery_verifies_with_the_standardwebhooks_library(
    store: OutboxStore, receiver: Receiver, secret: str
) -> None:
    add_receiver(store, receiver.url)
    evs = enqueue(store, 50)
    stats = run_once(store)
    assert stats.delivered == 50
    wh = standardwebhooks.Webhook(secret)
    by_id = {e.event_id: e.body for e in evs}
    assert sorted(receiver.ids()) == sorted(by_id)
    for d in receiver.deliveries:
        assert d.body == by_id[d.headers["webhook-id"]]  # the exact bytes that were queued
        assert d.headers["content-type"] == "application/cloudevents+json"
        assert d.headers["host"] == f"127.0.0.1:{receiver.port}"
        wh.verify(d.body, d.headers)  # raises on a bad signature
    assert {r.status for r in store.list_rows()} == {Status.DELIVERED}


def test_v1a_signatures_verify_with_cryptography_and_rotation_signs_with_every_key(
    store: OutboxStore, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    (old_sk, old_pk), (new_sk, new_pk) = new_signing_key(), new_signing_key()
    monkeypatch.setenv("ROTATING_KEYS", f"{old_sk}\n{new_sk}\n")
    add_receiver(store, receiver.url, secret_ref="env:ROTATING_KEYS", signing="v1a")
    enqueue(store, 3)
    assert run_once(store).delivered == 3
    for d in receiver.deliveries:
        sigs = d.headers["webhook-signature"].split()
        assert len(sigs) == 2 and all(s.startswith("v1a,") for s in sigs)
        content = f"{d.headers['webhook-id']}.{d.headers['webhook-timestamp']}.".encode() + d.body
        for sig, pk in zip(sigs, (old_pk, new_pk), strict=True):
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(pk.removeprefix("whpk_")))
            key.verify(base64.b64decode(sig.removeprefix("v1a,")), content)


def test_500_is_retried_on_schedule_and_then_delivered(
    store: OutboxStore, receiver: Receiver, secret: str
) -> None:
    add_receiver(store, receiver.url)
    (ev,) = enqueue(store, 1)
    receiver.respond(ev.event_id, Response(500, body=b"boom"))
    before = time.time()
    run_once(store)
    row = only_row(store)
    assert (row.status, row.attempts, row.last_status) == (Status.PENDING, 1, 500)
    assert before + 5 <= row.next_attempt_at <= time.time() + 5  # first step: 5 s, no jitter
    assert row.last_error == "HTTP 500"
    make_due(store, row.id)
    run_once(store)
    row = only_row(store)
    assert (row.status, row.attempts, row.last_status, row.last_error) == (
        Status.DELIVERED,
        2,
        204,
        None,
    )
    log = store.attempts(row.id)
    assert [(a.attempt, a.trigger, a.status_code) for a in log] == [
        (1, "scheduled", 500),
        (2, "scheduled", 204),
    ]
    assert log[0].response_excerpt == "boom"
    assert len({d.headers["webhook-id"] for d in receiver.deliveries}) == 1  # same id on retry


def test_second_failure_waits_the_second_step(
    store: OutboxStore, receiver: Receiver, secret: str
) -> None:
    add_receiver(store, receiver.url)
    (ev,) = enqueue(store, 1)
    receiver.respond(ev.event_id, Response(503), Response(502))
    run_once(store)
    make_due(store, only_row(store).id)
    before = time.time()
    run_once(store)
    row = only_row(store)
    assert row.attempts == 2 and before + 300 <= row.next_attempt_at <= time.time() + 300


def test_jitter_stays_within_twenty_percent(
    store: OutboxStore, receiver: Receiver, secret: str
) -> None:
    add_receiver(store, receiver.url)
    evs = enqueue(store, 20)
    receiver.default = Response(500)
    before = time.time()
    run_once(store, policy=RetryPolicy(), breaker=CircuitBreaker(threshold=1000))
    delays = [r.next_attempt_at - before for r in store.list_rows()]
    assert all(4.0 - 0.01 <= d <= 6.0 + 1 for d in delays)
    assert len({round(d, 3) for d in delays}) > 1  # actually spread
    assert len(evs) == 20


def test_timeout_is_a_retryable_failure(
    store: OutboxStore, receiver: Receiver, secret: str
) -> None:
    add_receiver(store, receiver.url)
    (ev,) = enqueue(store, 1)
    receiver.respond(ev.event_id, Response(204, delay=1.5))
    run_once(store, timeout=0.3)
    row = only_row(store)
    assert (row.status, row.attempts, row.last_status) == (Status.PENDING, 1, None)
    assert "timed out after 0.3s" in (row.last_error or "")


def test_connection_refused_is_a_retryable_failure(store: OutboxStore, secret: str) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    add_receiver(store, f"http://127.0.0.1:{port}/hook")
    enqueue(store, 1)
    run_once(store)
    row = only_row(store)
    assert row.status == Status.PENDING and "failed" in (row.last_error or "")


def test_429_honours_retry_after_within_bounds(
    store: OutboxStore, receiver: Receiver, secret: str
) -> None:
    add_receiver(store, receiver.url)
    a, b = enqueue(store, 2)
    receiver.respond(a.event_id, Response(429, headers={"Retry-After": "120"}))
    receiver.respond(b.event_id, Response(429, headers={"Retry-After": "99999999"}))
    before = time.time()
    run_once(store)
    rows = {r.event_id: r for r in store.list_rows()}
    assert before + 120 <= rows[a.event_id].next_attempt_at <= time.time() + 120
    capped = rows[b.event_id].next_attempt_at - before
    assert 36000 - 1 <= capped <= 36000 + 1  # clamped to the longest step
    assert rows[a.event_id].last_status == 429


def test_400_is_dead_lettered_at_once_with_audit_and_a_dead_lettered_event(
    store: OutboxStore, receiver: Receiver, secret: str
) -> None:
    failing = add_receiver(store, receiver.url + "/siem")
    observer = add_receiver(
        store, receiver.url + "/observer", event_types=["delivery.dead_lettered"]
    )
    (ev,) = enqueue(store, 1)
    receiver.respond(ev.event_id, Response(400, body=b'{"error":"schema"}'))
    run_once(store)
    row = only_row(store, failing)
    assert (row.status, row.attempts, row.last_status) == (Status.DEAD_LETTER, 1, 400)
    assert row.last_error == "HTTP 400 is not retryable"
    (audit,) = [r for r in store.audit_records(TENANT) if r["action"] == "delivery.dead_lettered"]
    assert audit["detail"]["event_id"] == ev.event_id and audit["detail"]["last_status"] == 400
    # The notice went to the observer (and not back to the failing destination).
    notice = only_row(store, observer)
    assert notice.event_type == "delivery.dead_lettered" and notice.status == Status.DELIVERED
    ce = orjson.loads(notice.body)
    assert ce["type"] == "io.agentbom.delivery.dead_lettered"
    assert ce["data"]["payload"] == {
        "destination_id": failing,
        "event_id": ev.event_id,
        "attempts": 1,
        "reason": "HTTP 400 is not retryable",
        "last_status": 400,
    }
    assert [d.path for d in receiver.deliveries] == ["/hook/siem", "/hook/observer"]


def test_410_dead_letters_and_disables_the_destination(
    store: OutboxStore, receiver: Receiver, secret: str
) -> None:
    dest = add_receiver(store, receiver.url)
    first, *rest = enqueue(store, 3)
    receiver.default = Response(410)
    run_once(store, concurrency=1)
    d = store.get_destination(dest)
    assert not d.enabled and "410" in (d.disabled_reason or "")
    dead = store.list_rows(status="dead_letter")
    assert len(dead) >= 1 and all(r.last_status == 410 for r in dead)
    # Rows not yet sent wait for the destination to be enabled again.
    assert len(receiver.deliveries) == len(dead)
    assert any(r["action"] == "destination.disabled" for r in store.audit_records(TENANT))
    assert len(rest) == 2 and first.event_id


def test_redirect_is_never_followed_even_to_a_private_address(
    store: OutboxStore, receiver: Receiver, secret: str
) -> None:
    metadata = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    add_receiver(store, receiver.url)
    (ev,) = enqueue(store, 1)
    receiver.respond(ev.event_id, Response(302, headers={"Location": metadata}))
    run_once(store)
    row = only_row(store)
    assert (row.status, row.last_status) == (Status.PENDING, 302)
    assert "redirect to " + metadata + " not followed" in (row.last_error or "")
    assert len(receiver.deliveries) == 1


def test_schedule_exhausted_ends_in_dead_letter_with_the_final_reason(
    store: OutboxStore, receiver: Receiver, secret: str
) -> None:
    add_receiver(store, receiver.url)
    enqueue(store, 1)
    receiver.default = Response(503)
    policy = RetryPolicy(schedule=(0, 0), jitter=0)
    for _ in range(3):
        run_once(store, policy=policy)
    row = only_row(store)
    assert (row.status, row.attempts) == (Status.DEAD_LETTER, 3)
    assert row.last_error == "retry schedule exhausted after 3 attempts; last: HTTP 503"
    assert len(receiver.deliveries) == 3


def test_circuit_breaker_stops_hammering_a_failing_endpoint(
    store: OutboxStore, receiver: Receiver, secret: str
) -> None:
    add_receiver(store, receiver.url)
    enqueue(store, 10)
    receiver.default = Response(503)
    stats = run_once(store, breaker=CircuitBreaker(threshold=3, cooldown=60), concurrency=1)
    assert len(receiver.deliveries) == 3
    assert stats.deferred == 7
    rows = store.list_rows()
    deferred = [r for r in rows if r.attempts == 0]
    assert len(deferred) == 7
    assert all(r.next_attempt_at >= time.time() + 50 for r in deferred)


def test_the_worker_logs_dead_letters_with_ids_and_reason_never_the_body_or_secret(
    store: OutboxStore, receiver: Receiver, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    dest = add_receiver(store, receiver.url)
    (ev,) = enqueue(store, 1)
    token = "ghp_R8fT2kLmQ9vXw3ZpN7bYc4HdJ6sAe1GuK0oV"
    receiver.respond(ev.event_id, Response(400, body=f"bad token={token}".encode()))
    with caplog.at_level(logging.DEBUG, logger="agent_bom.outbox"):
        run_once(store)
    row = only_row(store)
    (dead,) = [r for r in caplog.records if "dead-lettered after" in r.getMessage()]
    assert dead.levelno == logging.WARNING
    assert dead.getMessage() == (
        f"row {row.id} (event {ev.event_id}) to destination {dest} dead-lettered after "
        "1 attempt: HTTP 400 is not retryable"
    )
    assert [r.levelname for r in caplog.records if "worker" in r.getMessage()] == ["INFO"] * 2
    assert token not in caplog.text and secret not in caplog.text


def test_the_worker_logs_each_retry_at_debug_and_an_opening_circuit_once(
    store: OutboxStore, receiver: Receiver, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    dest = add_receiver(store, receiver.url)
    enqueue(store, 10)
    receiver.default = Response(503)
    with caplog.at_level(logging.DEBUG, logger="agent_bom.outbox"):
        run_once(store, breaker=CircuitBreaker(threshold=3, cooldown=60), concurrency=1)
    failed = "attempt 1 failed (HTTP 503), next in"
    retries = [r for r in caplog.records if failed in r.getMessage()]
    assert len(retries) == 3 and {r.levelno for r in retries} == {logging.DEBUG}
    (opened,) = [r for r in caplog.records if "circuit open" in r.getMessage()]
    assert opened.levelno == logging.WARNING
    assert opened.getMessage() == (
        f"destination {dest}: circuit open for 60s after repeated failures (last: HTTP 503)"
    )


def test_a_disabled_destination_is_logged_as_an_error(
    store: OutboxStore, receiver: Receiver, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    dest = add_receiver(store, receiver.url)
    enqueue(store, 1)
    receiver.default = Response(410)
    with caplog.at_level(logging.INFO, logger="agent_bom.outbox"):
        run_once(store)
    (disabled,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert disabled.getMessage().startswith(f"destination {dest} disabled: HTTP 410 Gone")


def test_an_outcome_whose_lease_was_taken_meanwhile_is_not_recorded_and_is_logged(
    store: OutboxStore, receiver: Receiver, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    add_receiver(store, receiver.url)
    (ev,) = enqueue(store, 1)
    receiver.respond(ev.event_id, Response(204, delay=1.0))

    async def main() -> WorkerStats:
        connector = WebhookConnector(timeout=5, allow_private_networks=True)
        try:
            worker = OutboxWorker(store, {"webhook": connector}, lease_seconds=30)
            run = asyncio.create_task(worker.run(once=True))
            while not receiver.deliveries:  # the send is in flight
                await asyncio.sleep(0.02)
            # Another worker, whose clock is past the lease, takes the row meanwhile.
            stolen = await asyncio.to_thread(
                store.claim_due, "thief", limit=1, lease_seconds=30, now=time.time() + 60
            )
            assert [c.row.id for c in stolen] == [only_row(store).id]
            return await run
        finally:
            await connector.aclose()

    with caplog.at_level(logging.INFO, logger="agent_bom.outbox"):
        stats = asyncio.run(main())
    assert stats.lost_leases == 1
    row = only_row(store)
    assert (row.status, row.lease_owner, row.attempts) == (Status.DELIVERING, "thief", 0)
    (lost,) = [r for r in caplog.records if "outcomes not recorded" in r.getMessage()]
    assert lost.levelno == logging.WARNING and lost.getMessage().startswith("1 of 1 outcomes")


def test_response_excerpt_is_capped_and_redacted(
    store: OutboxStore, receiver: Receiver, secret: str
) -> None:
    add_receiver(store, receiver.url)
    (ev,) = enqueue(store, 1)
    token = "ghp_R8fT2kLmQ9vXw3ZpN7bYc4HdJ6sAe1GuK0oV"
    leaked = f"token={token} ".encode() + b"x" * 5000
    receiver.respond(ev.event_id, Response(500, body=leaked))
    run_once(store)
    (attempt,) = store.attempts(only_row(store).id)
    excerpt = attempt.response_excerpt or ""
    assert token not in excerpt and "[REDACTED:" in excerpt
    assert len(excerpt.encode()) <= 2048 + 64


def test_missing_credential_keeps_the_row_retrying_with_a_clear_reason(
    store: OutboxStore, receiver: Receiver
) -> None:
    add_receiver(store, receiver.url, secret_ref="env:AGENT_BOM_TEST_UNSET_SECRET")
    enqueue(store, 1)
    run_once(store)
    row = only_row(store)
    assert row.status == Status.PENDING
    assert "environment variable AGENT_BOM_TEST_UNSET_SECRET is not set" in (row.last_error or "")
    assert receiver.deliveries == []


def test_a_private_destination_needs_the_operator_to_allow_it_too(
    store: OutboxStore, receiver: Receiver, secret: str
) -> None:
    add_receiver(store, receiver.url)
    enqueue(store, 1)

    async def main() -> None:
        connector = WebhookConnector(allow_private_networks=False)
        try:
            await OutboxWorker(store, {"webhook": connector}).run(once=True)
        finally:
            await connector.aclose()

    asyncio.run(main())
    row = only_row(store)
    assert row.status == Status.PENDING and "--allow-private-networks" in (row.last_error or "")
    assert receiver.deliveries == []


def test_a_destination_resolving_to_a_private_address_is_dead_lettered(
    store: OutboxStore, receiver: Receiver, secret: str
) -> None:
    add_receiver(store, f"http://localhost:{receiver.port}/hook", allow_private_network=False)
    enqueue(store, 1)
    run_once(store)
    row = only_row(store)
    assert row.status == Status.DEAD_LETTER and "localhost" in (row.last_error or "")
    assert receiver.deliveries == []
