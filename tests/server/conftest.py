"""Fixtures: a live server on each store, two tenants with collectors and tokens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from server_support import CollectorClient, Deployment, LiveServer, Tenant

from agent_bom.outbox import OutboxStore
from agent_bom.server.app import ServerConfig, create_app
from agent_bom.server.keys import ServerKey, new_server_key
from agent_bom.server.store import EventStore
from agent_bom.signing import new_secret, new_signing_key


def _tenant(es: EventStore, key: ServerKey, url: str, name: str, hmac: bool) -> Tenant:
    es.add_tenant(name)
    if hmac:
        secret = new_secret()
        c = es.add_collector(name, key_type="hmac", public_key=None, secret_enc=b"", scope={})
        with es.db.transaction() as cur:
            cur.execute(
                "UPDATE collectors SET secret_enc = ? WHERE id = ?", (key.seal(c.id, secret), c.id)
            )
        client = CollectorClient(url, c.id, secret=secret)
    else:
        private, public = new_signing_key()
        c = es.add_collector(name, key_type="ed25519", public_key=public, secret_enc=None, scope={})
        client = CollectorClient(url, c.id, private_key=private)
    token, _ = es.add_token(name, "admin")
    return Tenant(name, client, token)


@pytest.fixture
def deployment(store: OutboxStore) -> Iterator[Deployment]:
    import base64

    key = ServerKey(base64.b64decode(new_server_key()))
    app = create_app(
        store, config=ServerConfig(checkpoint_every=100, max_body_bytes=1 << 20), server_key=key
    )
    server = LiveServer(app)
    es = EventStore(store, checkpoint_every=100)
    try:
        yield Deployment(
            server.url,
            store,
            es,
            key,
            _tenant(es, key, server.url, "acme", hmac=False),
            _tenant(es, key, server.url, "globex", hmac=True),
        )
    finally:
        server.close()
