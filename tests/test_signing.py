"""Standard Webhooks signatures, checked against the `standardwebhooks` reference
library (v1) and against `cryptography` directly (v1a), plus the receiver side:
every bad request or key is a `SignatureInvalid` that names the problem, and the
replay guard refuses an id it accepted within twice the tolerance."""

from __future__ import annotations

import base64
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from agent_bom import signing
from agent_bom.errors import ConfigError, IntegrityError, Replayed, SignatureInvalid

BODY = b'{"specversion":"1.0","id":"evt-1","data":{"note":"caf\xc3\xa9"}}'
NOW = 1_700_000_000
TOLERANCE = signing.DEFAULT_TOLERANCE


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


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
    assert signing.verify(headers, BODY, [secret]) == "evt-1"
    with pytest.raises(SignatureInvalid, match=r"no signature .* verifies"):
        signing.verify(headers, BODY, signing.new_secret())


@settings(max_examples=50, deadline=None)
@given(
    msg_id=st.text(
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp")),
        min_size=1,
        max_size=40,
    ).filter(lambda s: "." not in s and s.isprintable() and not any(c.isspace() for c in s)),
    text=st.text(st.characters(codec="utf-8"), max_size=200),
    nbytes=st.integers(min_value=24, max_value=64),
)
def test_reference_library_and_ours_agree_on_any_id_and_utf8_body(
    msg_id: str, text: str, nbytes: int
) -> None:
    secret = signing.new_secret(nbytes)
    now = int(time.time())
    body = text.encode()
    theirs = Webhook(secret).sign(msg_id, datetime.fromtimestamp(now, tz=UTC), text)
    ours = signing.sign(msg_id, now, body, secrets=[secret])
    assert ours == theirs
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(now), "webhook-signature": theirs}
    assert signing.verify(headers, body, secret, now=now) == msg_id
    Webhook(secret).verify(body, headers, json_parse=False)


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
    assert signing.verify(headers, BODY, [public]) == "evt-2"
    assert signing.verify(headers, BODY, [signing.new_secret(), new]) == "evt-2"


def test_v1a_is_ed25519_over_id_timestamp_and_exact_body_bytes() -> None:
    seed, public = signing.new_signing_key()
    header = signing.sign("evt-3", 1_700_000_000, BODY, signing_keys=[seed])
    sig = base64.b64decode(header.removeprefix("v1a,"))
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public.removeprefix("whpk_")))
    key.verify(sig, b"evt-3.1700000000." + BODY)  # raises if wrong


def test_v1a_signed_directly_with_cryptography_verifies_with_ours() -> None:
    private = Ed25519PrivateKey.generate()
    public = "whpk_" + _b64(private.public_key().public_bytes_raw())
    sig = private.sign(f"evt-3.{NOW}.".encode() + BODY)
    headers = {"webhook-id": "evt-3", "webhook-timestamp": str(NOW), "webhook-signature": ""}
    headers["webhook-signature"] = "v1a," + _b64(sig)
    assert signing.verify(headers, BODY, public, now=NOW) == "evt-3"
    headers["webhook-signature"] = "v1a," + _b64(sig[:-1] + bytes([sig[-1] ^ 1]))
    with pytest.raises(SignatureInvalid, match="no signature"):
        signing.verify(headers, BODY, public, now=NOW)


@pytest.mark.parametrize(
    "change",
    ["body", "id", "timestamp", "stale", "future", "missing", "garbage"],
)
def test_verify_rejects_any_change_and_stale_or_missing_headers(change: str) -> None:
    secret = signing.new_secret()
    headers = signing.signature_headers("evt-4", NOW, BODY, secrets=[secret])
    body = BODY
    verify_at = NOW
    if change == "body":
        body = BODY.replace(b"caf", b"cab")
    elif change == "id":
        headers["webhook-id"] = "evt-5"
    elif change == "timestamp":
        headers["webhook-timestamp"] = str(NOW + 1)
    elif change == "stale":
        verify_at = NOW + TOLERANCE + 1
    elif change == "future":
        verify_at = NOW - TOLERANCE - 1
    elif change == "missing":
        del headers["webhook-signature"]
    else:
        headers["webhook-signature"] = "v1,not base64!! v2,abc"
    with pytest.raises(SignatureInvalid):
        signing.verify(headers, body, [secret], now=verify_at)
    signing.verify(signing.signature_headers("evt-4", NOW, BODY, secrets=[secret]), BODY,
                   [secret], now=NOW)  # fmt: skip


def test_signature_invalid_is_an_integrity_error() -> None:
    assert issubclass(SignatureInvalid, IntegrityError)


def test_header_names_are_case_insensitive_and_httpx_headers_work() -> None:
    secret = signing.new_secret()
    signed = signing.signature_headers("evt-6", NOW, BODY, secrets=[secret])
    shouted = {k.upper(): v for k, v in signed.items()}
    assert signing.verify(shouted, BODY, secret, now=NOW) == "evt-6"
    assert signing.verify(httpx.Headers(shouted), BODY, secret, now=NOW) == "evt-6"


def test_timestamp_exactly_at_the_tolerance_edge_is_accepted() -> None:
    secret = signing.new_secret()
    headers = signing.signature_headers("evt-7", NOW, BODY, secrets=[secret])
    signing.verify(headers, BODY, secret, tolerance=10, now=NOW + 10)
    signing.verify(headers, BODY, secret, tolerance=10, now=NOW - 10)
    with pytest.raises(SignatureInvalid, match="11s old, beyond the 10s tolerance"):
        signing.verify(headers, BODY, secret, tolerance=10, now=NOW + 11)


SECRET = signing.new_secret()
GOOD = signing.signature_headers("evt-8", NOW, BODY, secrets=[SECRET])


def _with(**changes: str | None) -> dict[str, str]:
    headers = dict(GOOD)
    for name, value in changes.items():
        key = name.replace("_", "-")
        if value is None:
            del headers[key]
        else:
            headers[key] = value
    return headers


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        (_with(webhook_id=None), BODY, "missing or empty webhook-id header"),
        (_with(webhook_timestamp=None, webhook_signature=None), BODY,
         "missing or empty webhook-timestamp, webhook-signature header"),
        (_with(webhook_id=""), BODY, "missing or empty webhook-id"),
        ({**GOOD, "Webhook-Id": "evt-9"}, BODY, "webhook-id header appears more than once"),
        (_with(webhook_id="evt.8"), BODY, r"contains '\.', whitespace or a control character"),
        (_with(webhook_id="evt 8"), BODY, "whitespace or a control character"),
        (_with(webhook_id="evt\n8"), BODY, "whitespace or a control character"),
        (_with(webhook_id="evt\x008"), BODY, "whitespace or a control character"),
        (_with(webhook_id="e" * 257), BODY, "257 characters long, over the 256 limit"),
        (_with(webhook_timestamp="soon"), BODY, "webhook-timestamp 'soon' is not an integer"),
        (_with(webhook_timestamp="1.7e9"), BODY, "is not an integer"),
        (_with(webhook_timestamp=" 1700000000"), BODY, "is not an integer"),
        (_with(webhook_timestamp="1_700_000_000"), BODY, "is not an integer"),
        (_with(webhook_timestamp="\u0661\u0667" + "\u0660" * 8), BODY, "is not an integer"),
        (_with(webhook_timestamp="-1700000000"), BODY, "webhook-timestamp is negative"),
        (_with(webhook_timestamp="1700000000000"), BODY, "13 digits.*milliseconds"),
        (_with(webhook_timestamp="9" * 400), BODY, "400 digits"),
        (_with(webhook_timestamp=str(NOW - 301)), BODY, "301s old, beyond the 300s tolerance"),
        (_with(webhook_timestamp=str(NOW + 301)), BODY, "301s in the future"),
        (_with(webhook_signature="v1"), BODY, "no parsable signatures"),
        (_with(webhook_signature="v1,@@@ v2,abcd"), BODY, "no parsable signatures"),
        (_with(webhook_signature="v1," + "A" * 9000), BODY, "9003 characters, over the 8192"),
        (_with(webhook_signature=" ".join(["v1,AAAA"] * 65)), BODY, "65 entries, over the 64"),
        (_with(webhook_signature="v1a," + _b64(bytes(64))), BODY,
         "only v1a signatures but the keys are whsec_ only: add the sender's whpk_ public key"),
        (_with(webhook_signature="v1," + _b64(bytes(32))), BODY, "no signature .* verifies"),
        (GOOD, BODY + b" ", "no signature .* verifies with the given keys"),
        (GOOD, b"\xff\xfe", "body is not valid UTF-8"),
        (GOOD, BODY.decode(), "body must be the raw request bytes, got str"),
        (GOOD, None, "body must be the raw request bytes, got NoneType"),
        ([("webhook-id", "evt-8")], BODY, "headers must be a mapping"),
        (_with(webhook_timestamp=1700000000), BODY, "webhook-timestamp header must be text"),  # type: ignore[arg-type]
    ],
)  # fmt: skip
def test_malformed_requests_raise_signature_invalid_naming_the_problem(
    headers: object, body: object, message: str
) -> None:
    with pytest.raises(SignatureInvalid, match=message):
        signing.verify(headers, body, SECRET, now=NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([], "no keys to verify with"),
        (None, "keys must be a whsec_/whpk_ key string or a list of them, got NoneType"),
        (SECRET.encode(), "got bytes"),
        ([SECRET.encode()], r"keys\[0\] must be a string, got bytes"),
        ("abc", r"keys\[0\] must start with 'whsec_' \(v1 secret\) or 'whpk_'"),
        ([SECRET, "whsec_***"], r"keys\[1\] \(whsec_ secret\) is not valid base64"),
        ("whsec_" + _b64(b"x" * 23), "holds 23 bytes; use at least 24 random bytes"),
        ("whsec_", "holds 0 bytes"),
        ("whpk_" + _b64(bytes(31)), r"\(whpk_ public key\) must hold 32 bytes, got 31"),
        ("whpk_not*base64", "is not valid base64 after 'whpk_'"),
        (signing.new_signing_key()[0], "whsk_ private signing key: verify with its whpk_"),
    ],
)
def test_bad_keys_raise_signature_invalid_without_chained_errors(
    keys: object, message: str
) -> None:
    with pytest.raises(SignatureInvalid, match=message) as caught:
        signing.verify(GOOD, BODY, keys, now=NOW)  # type: ignore[arg-type]
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_bad_tolerance_is_signature_invalid() -> None:
    with pytest.raises(SignatureInvalid, match="tolerance must be a non-negative integer"):
        signing.verify(GOOD, BODY, SECRET, tolerance=-1, now=NOW)


def test_unpadded_secrets_are_accepted_like_the_reference_library() -> None:
    raw = bytes(range(25))  # 25 bytes: base64 needs padding
    secret = "whsec_" + _b64(raw).rstrip("=")
    headers = {
        "webhook-id": "evt-10",
        "webhook-timestamp": str(NOW),
        "webhook-signature": Webhook(secret).sign(
            "evt-10", datetime.fromtimestamp(NOW, tz=UTC), BODY.decode()
        ),
    }
    assert signing.verify(headers, BODY, secret, now=NOW) == "evt-10"


def _messages_for(secret: str) -> list[str]:
    seed, public = signing.new_signing_key()
    signed = signing.signature_headers("evt-11", NOW, BODY, secrets=[secret])
    attempts: list[tuple[object, object, object, float]] = [
        (signed, BODY + b"!", [secret], NOW),
        (signed, BODY, [secret], NOW + 10_000),
        (signed, b"\xff", [secret], NOW),
        ({**signed, "webhook-id": "a.b"}, BODY, [secret], NOW),
        ({**signed, "webhook-signature": "v1a,AAAA"}, BODY, [secret], NOW),
        (signed, BODY, [secret, seed], NOW),
        (signed, BODY, [public, secret + "*"], NOW),
        (signed, BODY, [secret[:-8]], NOW),
        (signed, BODY, [secret.removeprefix("whsec_")], NOW),
        (signed, BODY, ["whpk_" + secret.removeprefix("whsec_")], NOW),
        ({}, BODY, [secret], NOW),
    ]
    messages = []
    for headers, body, keys, now in attempts:
        with pytest.raises(SignatureInvalid) as caught:
            signing.verify(headers, body, keys, now=now)  # type: ignore[arg-type]
        messages.append(str(caught.value))
    return messages


@pytest.mark.parametrize("nbytes", [24, 32, 64])
def test_no_error_message_contains_the_secret_or_its_bytes(nbytes: int) -> None:
    secret = signing.new_secret(nbytes)
    encoded = secret.removeprefix("whsec_")
    raw = base64.b64decode(encoded)
    for message in _messages_for(secret):
        assert encoded[:12] not in message
        assert raw.hex()[:16] not in message
        assert raw.decode("latin-1") not in message
        assert repr(raw)[2:18] not in message


KEYS = st.one_of(
    st.text(max_size=60),
    st.builds(lambda s: "whsec_" + s, st.text(max_size=60)),
    st.builds(lambda s: "whpk_" + s, st.text(max_size=60)),
    st.builds(lambda b: "whsec_" + _b64(b), st.binary(min_size=16, max_size=64)),
    st.builds(lambda b: "whpk_" + _b64(b), st.binary(min_size=30, max_size=34)),
    st.just(SECRET),
)
HEADER_VALUES = st.one_of(
    st.text(max_size=80),
    st.from_regex(r"-?[0-9]{1,14}", fullmatch=True),
    st.builds(lambda b: "v1," + _b64(b), st.binary(max_size=40)),
    st.builds(lambda b: "v1a," + _b64(b), st.binary(min_size=60, max_size=70)),
    st.just(GOOD["webhook-signature"]),
    st.none(),
    st.integers(),
    st.binary(max_size=20),
)
HEADER_NAMES = st.one_of(
    st.sampled_from(["webhook-id", "Webhook-Timestamp", "WEBHOOK-SIGNATURE", "webhook-id "]),
    st.text(max_size=20),
)


@settings(max_examples=500, deadline=None)
@given(
    headers=st.one_of(
        st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=6),
        st.builds(lambda d: {**GOOD, **d}, st.dictionaries(HEADER_NAMES, HEADER_VALUES)),
        st.none(),
        st.lists(st.tuples(st.text(), st.text()), max_size=3),
    ),
    body=st.one_of(st.binary(max_size=100), st.just(BODY), st.text(max_size=20), st.none()),
    keys=st.one_of(KEYS, st.lists(KEYS, max_size=4), st.none(), st.integers()),
    now=st.sampled_from([NOW, NOW + 299, NOW - 400, 0.0, 1e12]),
)
def test_arbitrary_headers_bodies_and_keys_raise_only_signature_invalid(
    headers: object, body: object, keys: object, now: float
) -> None:
    try:
        result = signing.verify(headers, body, keys, now=now)  # type: ignore[arg-type]
    except SignatureInvalid as e:
        message = str(e)
        assert message and "Traceback" not in message
        assert SECRET.removeprefix("whsec_") not in message
        assert e.__cause__ is None
    else:
        assert result == GOOD["webhook-id"]


# Replay guard


def _signed(msg_id: str, at: int, secret: str = SECRET) -> dict[str, str]:
    return signing.signature_headers(msg_id, at, BODY, secrets=[secret])


def test_replay_guard_refuses_the_same_id_twice() -> None:
    guard = signing.ReplayGuard()
    headers = _signed("evt-20", NOW)
    assert signing.verify(headers, BODY, SECRET, now=NOW, replay_guard=guard) == "evt-20"
    with pytest.raises(Replayed, match=r"webhook-id 'evt-20' was already accepted.*replay"):
        signing.verify(headers, BODY, SECRET, now=NOW + 1, replay_guard=guard)
    # A fresh attempt of the same message (new timestamp and signature) is a replay too.
    with pytest.raises(SignatureInvalid, match="replay"):
        signing.verify(
            _signed("evt-20", NOW + 200), BODY, SECRET, now=NOW + 200, replay_guard=guard
        )
    assert signing.verify(_signed("evt-21", NOW), BODY, SECRET, now=NOW, replay_guard=guard)


def test_replay_guard_records_an_id_only_after_its_signature_verifies() -> None:
    guard = signing.ReplayGuard()
    forged = {**_signed("evt-22", NOW), "webhook-signature": "v1," + _b64(bytes(32))}
    with pytest.raises(SignatureInvalid, match="no signature"):
        signing.verify(forged, BODY, SECRET, now=NOW, replay_guard=guard)
    assert len(guard) == 0
    assert signing.verify(_signed("evt-22", NOW), BODY, SECRET, now=NOW, replay_guard=guard)


def test_replay_guard_remembers_for_twice_the_tolerance_then_forgets() -> None:
    guard = signing.ReplayGuard()
    tol = 60
    signing.verify(_signed("evt-23", NOW), BODY, SECRET, tol, now=NOW, replay_guard=guard)
    # The last moment the first attempt's timestamp could be accepted again is
    # NOW + tol; a sender clock skewed by +tol stretches the window to NOW + 2*tol.
    late = _signed("evt-23", NOW + tol)
    with pytest.raises(SignatureInvalid, match=f"within the last {2 * tol}s: replay"):
        signing.verify(late, BODY, SECRET, tol, now=NOW + 2 * tol, replay_guard=guard)
    retry = _signed("evt-23", NOW + 2 * tol + 1)
    assert signing.verify(retry, BODY, SECRET, tol, now=NOW + 2 * tol + 1, replay_guard=guard)


def test_replay_guard_purges_expired_ids_as_it_goes() -> None:
    guard = signing.ReplayGuard()
    for i in range(1000):
        assert guard.claim(f"id-{i}", now=NOW, keep_for=10)
    assert len(guard) == 1000
    assert guard.claim("later", now=NOW + 11, keep_for=10)
    assert len(guard) == 1
    assert guard.claim("id-0", now=NOW + 11, keep_for=10)


def test_replay_guard_refuses_new_ids_when_full_until_some_expire() -> None:
    guard = signing.ReplayGuard(max_entries=2)
    assert guard.claim("a", now=NOW, keep_for=10)
    assert guard.claim("b", now=NOW + 5, keep_for=10)
    assert not guard.claim("a", now=NOW + 6, keep_for=10)  # a repeat is still a replay
    with pytest.raises(SignatureInvalid, match=r"replay guard is full .*2 webhook-ids"):
        signing.verify(_signed("c", NOW + 6), BODY, SECRET, 5, now=NOW + 6, replay_guard=guard)
    assert len(guard) == 2
    assert guard.claim("c", now=NOW + 11, keep_for=10)  # 'a' expired
    with pytest.raises(ConfigError, match="max_entries must be a positive integer"):
        signing.ReplayGuard(max_entries=0)


def test_replay_guard_lets_exactly_one_of_many_concurrent_deliveries_through() -> None:
    guard = signing.ReplayGuard()
    headers = _signed("evt-24", NOW)
    start = threading.Barrier(16)
    accepted: list[str] = []
    refused: list[str] = []

    def deliver() -> None:
        start.wait()
        try:
            accepted.append(signing.verify(headers, BODY, SECRET, now=NOW, replay_guard=guard))
        except SignatureInvalid as e:
            refused.append(str(e))

    threads = [threading.Thread(target=deliver) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert accepted == ["evt-24"]
    assert len(refused) == 15 and all("replay" in m for m in refused)


def test_a_database_backed_store_plugs_in_through_the_replay_store_protocol() -> None:
    class SetStore:
        def __init__(self) -> None:
            self.calls: list[tuple[str, float, float]] = []

        def claim(self, msg_id: str, *, now: float, keep_for: float) -> bool:
            self.calls.append((msg_id, now, keep_for))
            return len(self.calls) == 1

    store: signing.ReplayStore = SetStore()
    signing.verify(_signed("evt-25", NOW), BODY, SECRET, now=NOW, replay_guard=store)
    with pytest.raises(SignatureInvalid, match="replay"):
        signing.verify(_signed("evt-25", NOW), BODY, SECRET, now=NOW, replay_guard=store)
    assert isinstance(store, SetStore) and store.calls[0] == ("evt-25", NOW, 2 * TOLERANCE)


# Sender side


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


@pytest.mark.parametrize("msg_id", ["", "a.b", "a b", "a\nb", "x" * 257])
def test_sign_refuses_ids_a_receiver_would_reject(msg_id: str) -> None:
    with pytest.raises(ConfigError, match="webhook-id"):
        signing.sign(msg_id, NOW, BODY, secrets=[SECRET])
