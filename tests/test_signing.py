"""Standard Webhooks signatures, checked against the `standardwebhooks` reference
library (v1) and against `cryptography` directly (v1a)."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from agent_bom import signing
from agent_bom.errors import ConfigError, SignatureInvalid

BODY = b'{"specversion":"1.0","id":"evt-1","data":{"note":"caf\xc3\xa9"}}'


def test_our_v1_signature_verifies_with_the_reference_library() -> None:
    secret = signing.new_secret()
    headers = signing.signature_headers("evt-1", int(time.time()), BODY, secrets=[secret])
    assert Webhook(secret).verify(BODY, headers) == {
        "specversion": "1.0", "id": "evt-1", "data": {"note": "café"},
    }  # fmt: skip
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(BODY, headers)


def test_reference_library_signatures_verify_with_ours() -> None:
    secret = signing.new_secret()
    now = int(time.time())
    sig = Webhook(secret).sign("evt-1", datetime.fromtimestamp(now, tz=UTC), BODY.decode())
    headers = {"Webhook-Id": "evt-1", "Webhook-Timestamp": str(now), "Webhook-Signature": sig}
    signing.verify(BODY, headers, secrets=[secret])


def test_during_rotation_every_key_signs_and_either_verifies() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    seed, public = signing.new_signing_key()
    headers = signing.signature_headers(
        "evt-2", int(time.time()), BODY, secrets=[old, new], signing_keys=[seed]
    )
    versions = [part.split(",")[0] for part in headers["webhook-signature"].split()]
    assert versions == ["v1", "v1", "v1a"]
    Webhook(old).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)
    signing.verify(BODY, headers, public_keys=[public])


def test_v1a_is_ed25519_over_id_timestamp_and_exact_body_bytes() -> None:
    seed, public = signing.new_signing_key()
    header = signing.sign("evt-3", 1_700_000_000, BODY, signing_keys=[seed])
    sig = base64.b64decode(header.removeprefix("v1a,"))
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public.removeprefix("whpk_")))
    key.verify(sig, b"evt-3.1700000000." + BODY)  # raises if wrong


@pytest.mark.parametrize(
    "change",
    ["body", "id", "timestamp", "stale", "future", "missing", "garbage"],
)
def test_verify_rejects_any_change_and_stale_or_missing_headers(change: str) -> None:
    secret = signing.new_secret()
    now = 1_700_000_000
    headers = signing.signature_headers("evt-4", now, BODY, secrets=[secret])
    body = BODY
    verify_at = now
    if change == "body":
        body = BODY.replace(b"caf", b"cab")
    elif change == "id":
        headers["webhook-id"] = "evt-5"
    elif change == "timestamp":
        headers["webhook-timestamp"] = str(now + 1)
    elif change == "stale":
        verify_at = now + signing.DEFAULT_TOLERANCE + 1
    elif change == "future":
        verify_at = now - signing.DEFAULT_TOLERANCE - 1
    elif change == "missing":
        del headers["webhook-signature"]
    else:
        headers["webhook-signature"] = "v1,not base64!! v2,abc"
    with pytest.raises(SignatureInvalid):
        signing.verify(body, headers, secrets=[secret], now=verify_at)
    signing.verify(BODY, signing.signature_headers("evt-4", now, BODY, secrets=[secret]),
                   secrets=[secret], now=now)  # fmt: skip


def test_new_secret_is_at_least_24_random_bytes_in_whsec_form() -> None:
    a, b = signing.new_secret(), signing.new_secret()
    assert a.startswith("whsec_") and a != b
    assert len(base64.b64decode(a.removeprefix("whsec_"))) >= 24


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("abc", "must start with 'whsec_'"),
        ("whsec_***", "not valid base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "at least 24"),
    ],
)
def test_bad_secrets_are_refused_with_a_message_naming_the_problem(
    secret: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        signing.sign("evt", 1, BODY, secrets=[secret])
