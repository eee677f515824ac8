"""Worker processes against a real receiver: SIGKILLed at random moments, and two at once."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

import orjson
import standardwebhooks
from outbox_support import SECRET_REF, TENANT, Receiver, Response, cloudevents

from agent_bom.outbox import OutboundEvent, OutboxStore, Status

N = 2000
WORKER = [sys.executable, "-c", "from agent_bom.cli import main; main()", "outbox", "run"]


def worker_cmd(store_url: str, *extra: str, timeout: str = "1", lease: str = "2.5") -> list[str]:
    return [
        *WORKER,
        "--database",
        store_url,
        "--allow-private-networks",
        "--timeout",
        timeout,
        "--lease",
        lease,
        "--batch",
        "32",
        "--poll",
        "0.05",
        *extra,
    ]


def setup(store: OutboxStore, receiver: Receiver) -> dict[str, bytes]:
    store.add_destination(
        tenant_id=TENANT,
        url=receiver.url,
        secret_ref=SECRET_REF,
        allow_http=True,
        allow_private_network=True,
    )
    events = [OutboundEvent.from_cloudevent(line) for line in cloudevents(N)]
    assert store.enqueue(events).rows == N
    return {e.event_id: e.body for e in events}


def check_deliveries(receiver: Receiver, bodies: dict[str, bytes], secret: str) -> None:
    wh = standardwebhooks.Webhook(secret)
    for d in receiver.deliveries:
        event_id = d.headers["webhook-id"]
        # A repeat is the same message: same webhook-id, same bytes, a valid signature.
        assert orjson.loads(d.body)["id"] == event_id
        assert d.body == bodies[event_id]
        wh.verify(d.body, d.headers)
    assert set(receiver.ids()) == set(bodies)


def test_sigkilled_worker_loses_nothing_and_repeats_only_the_same_webhook_id(
    store: OutboxStore, store_url: str, receiver: Receiver, secret: str
) -> None:
    bodies = setup(store, receiver)
    receiver.default = Response(204, delay=0.01)
    rng = random.Random(20261122)
    kills = 0
    for _ in range(20):
        p = subprocess.Popen(
            worker_cmd(store_url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        time.sleep(rng.uniform(0.4, 1.4))
        p.kill()
        p.wait()
        kills += 1
    before_drain = len(receiver.deliveries)
    deadline = time.time() + 60
    while time.time() < deadline:
        if store.stats()["totals"]["delivered"] == N:
            break
        time.sleep(0.5)  # leases held by killed workers expire after 2.5 s
        subprocess.run(worker_cmd(store_url, "--once"), check=True, capture_output=True)
    assert kills == 20 and before_drain > 0
    rows = store.list_rows(limit=N + 1)
    assert len(rows) == N
    assert {r.status for r in rows} == {Status.DELIVERED}, store.stats()
    assert all(r.lease_owner is None for r in rows)
    check_deliveries(receiver, bodies, secret)


def test_two_workers_at_once_never_deliver_an_event_twice(
    store: OutboxStore, store_url: str, receiver: Receiver, secret: str
) -> None:
    bodies = setup(store, receiver)
    receiver.default = Response(204, delay=0.002)
    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            worker_cmd(store_url, "--once", "--json", timeout="10", lease="30"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outputs]
    delivered = [orjson.loads(out)["delivered"] for out, _ in outputs]
    assert sum(delivered) == N and all(d > 0 for d in delivered), outputs  # both worked
    ids = receiver.ids()
    assert len(ids) == N and len(set(ids)) == N
    check_deliveries(receiver, bodies, secret)
    assert {r.status for r in store.list_rows(limit=N + 1)} == {Status.DELIVERED}
