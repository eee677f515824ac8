"""Standard Webhooks signatures: ``v1`` (HMAC-SHA256) and ``v1a`` (Ed25519).

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}`` over the
exact body bytes sent. Secrets are ``whsec_`` + base64 (at least 24 bytes);
Ed25519 keys are ``whsk_`` (32-byte seed) and ``whpk_`` (32-byte public key),
base64. During key rotation every active key signs and the header carries all
signatures, space-separated; a receiver accepts any one that verifies.

Senders use :func:`signature_headers` (or :func:`sign`). Receivers call
:func:`verify` with the request headers, the raw body bytes and their keys::

    guard = ReplayGuard()  # one per process, shared by every request

    try:
        msg_id = verify(request.headers, await request.body(), ["whsec_…"], replay_guard=guard)
    except SignatureInvalid as e:
        return Response(str(e), status_code=400)

Every way a request or a key can be wrong raises :class:`SignatureInvalid`
with a message that names the problem; messages never contain key material.
A :class:`ReplayGuard` remembers accepted ids for twice the timestamp
tolerance, so a captured request cannot be accepted twice; anything with the
:class:`ReplayStore` shape (say, a database table) can take its place.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import heapq
import hmac
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent_bom import _core
from agent_bom.errors import AgentBomError, ConfigError, Replayed, SignatureInvalid

__all__ = [
    "DEFAULT_TOLERANCE",
    "ReplayGuard",
    "ReplayStore",
    "new_secret",
    "new_signing_key",
    "sign",
    "signature_headers",
    "verify",
]

DEFAULT_TOLERANCE = 300
_MAX_ID_LENGTH = 256
_MAX_SIGNATURE_HEADER = 8192  # bytes of header text; a few keys' signatures take ~100 each
_MAX_SIGNATURES = 64
_SECRET, _SIGNING_KEY, _PUBLIC_KEY = "whsec_", "whsk_", "whpk_"
_MIN_SECRET_BYTES = 24
_TIMESTAMP_DIGITS = 12  # Unix seconds stay at 10-11 digits for millennia; 13 means milliseconds
_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_SIGNATURE_BYTES = {"v1": 32, "v1a": 64}  # HMAC-SHA256, Ed25519


def _decode(
    value: str,
    prefix: str,
    what: str,
    error: type[AgentBomError],
    *,
    exact: int | None = None,
    minimum: int = 1,
) -> bytes:
    """The key bytes after ``prefix``; never echoes ``value``, never chains the decoder's error."""
    if not value.startswith(prefix):
        raise error(f"{what} must start with {prefix!r} (Standard Webhooks format)")
    encoded = value[len(prefix) :]
    raw: bytes | None = None
    # Raised outside the handler so no decoder error is chained; unpadded base64 is
    # accepted, as the reference library does.
    with contextlib.suppress(ValueError):
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    if raw is None:
        raise error(f"{what} is not valid base64 after {prefix!r}; copy the key exactly as issued")
    if exact is not None and len(raw) != exact:
        raise error(
            f"{what} must hold {exact} bytes, got {len(raw)}; copy the key exactly as issued"
        )
    if len(raw) < minimum:
        raise error(f"{what} holds {len(raw)} bytes; use at least {minimum} random bytes")
    return raw


def new_secret(nbytes: int = 32) -> str:
    """A fresh ``whsec_`` secret for ``v1`` signatures."""
    if nbytes < _MIN_SECRET_BYTES:
        raise ConfigError("a webhook secret needs at least 24 random bytes")
    return _SECRET + base64.b64encode(os.urandom(nbytes)).decode()


def new_signing_key() -> tuple[str, str]:
    """A fresh Ed25519 pair for ``v1a``: (``whsk_`` signing key, ``whpk_`` public key)."""
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return (
        _SIGNING_KEY + base64.b64encode(seed).decode(),
        _PUBLIC_KEY + base64.b64encode(public).decode(),
    )


def _preview(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


def _id_problem(msg_id: str) -> str | None:
    """Why ``msg_id`` cannot be a webhook-id, or None. Sender and receiver share the rule."""
    if not msg_id:
        return "webhook-id is empty"
    if len(msg_id) > _MAX_ID_LENGTH:
        return f"webhook-id is {len(msg_id)} characters long, over the {_MAX_ID_LENGTH} limit"
    # isprintable() also rules out control characters, newlines and lone surrogates.
    if "." in msg_id or not msg_id.isprintable() or any(c.isspace() for c in msg_id):
        return (
            f"webhook-id {_preview(msg_id)} contains '.', whitespace or a control character; "
            "the id is joined to the timestamp with '.' in the signed content"
        )
    return None


def _content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    problem = _id_problem(msg_id)
    if problem is not None:
        raise ConfigError(f"{problem}: use an id without '.', spaces or newlines")
    return f"{msg_id}.{timestamp}.".encode() + body


def sign(
    msg_id: str,
    timestamp: int,
    body: bytes,
    *,
    secrets: Sequence[str] = (),
    signing_keys: Sequence[str] = (),
) -> str:
    """The ``webhook-signature`` header value: one signature per active key."""
    content = _content(msg_id, timestamp, body)
    parts = []
    for s in secrets:
        key = _decode(s, _SECRET, "webhook secret", ConfigError, minimum=_MIN_SECRET_BYTES)
        mac = hmac.new(key, content, hashlib.sha256).digest()
        parts.append("v1," + base64.b64encode(mac).decode())
    for k in signing_keys:
        seed = _decode(k, _SIGNING_KEY, "webhook signing key", ConfigError, exact=32)
        sig = Ed25519PrivateKey.from_private_bytes(seed).sign(content)
        parts.append("v1a," + base64.b64encode(sig).decode())
    if not parts:
        raise ConfigError("nothing to sign with: give at least one secret or signing key")
    return " ".join(parts)


def signature_headers(
    msg_id: str,
    timestamp: int,
    body: bytes,
    *,
    secrets: Sequence[str] = (),
    signing_keys: Sequence[str] = (),
) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` for one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(
            msg_id, timestamp, body, secrets=secrets, signing_keys=signing_keys
        ),
    }


class ReplayStore(Protocol):
    """Where :func:`verify` records the webhook-ids it accepted.

    :class:`ReplayGuard` keeps them in memory for one process; a database table
    with a unique id column implements the same call to share them across processes.
    """

    def claim(self, msg_id: str, *, now: float, keep_for: float) -> bool:
        """Atomically record ``msg_id`` until ``now + keep_for`` and return True, or
        return False if it is already recorded and has not expired. May raise
        :class:`SignatureInvalid` when it cannot record (for instance when full)."""
        ...


class ReplayGuard:
    """In-memory, thread-safe :class:`ReplayStore` with at most ``max_entries`` live ids.

    Each ``claim`` first drops the entries that expired (each entry is dropped
    once, so the cost is amortized); when ``max_entries`` live ids remain, new
    ids are refused rather than letting memory grow.
    """

    def __init__(self, max_entries: int = 1_000_000) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigError(f"max_entries must be a positive integer, got {max_entries!r}")
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._expires: dict[str, float] = {}
        self._queue: list[tuple[float, str]] = []  # min-heap of (expiry, id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._expires)

    def claim(self, msg_id: str, *, now: float, keep_for: float) -> bool:
        with self._lock:
            self._purge(now)
            if msg_id in self._expires:
                return False
            if len(self._expires) >= self.max_entries:
                raise SignatureInvalid(
                    f"replay guard is full ({self.max_entries} webhook-ids within the window): "
                    f"refusing webhook-id {msg_id!r} until older ids expire; raise max_entries "
                    "or share a database-backed ReplayStore"
                )
            self._expires[msg_id] = now + keep_for
            heapq.heappush(self._queue, (now + keep_for, msg_id))
            return True

    def _purge(self, now: float) -> None:
        # Live through now == expiry inclusive: verify() still accepts that timestamp then.
        while self._queue and self._queue[0][0] < now:
            expires, msg_id = heapq.heappop(self._queue)
            if self._expires.get(msg_id) == expires:
                del self._expires[msg_id]


def _parse_keys(keys: object) -> tuple[list[bytes], list[bytes]]:
    """The HMAC secrets and the raw Ed25519 public keys (32 bytes each) of ``keys``."""
    if isinstance(keys, str):
        keys = (keys,)
    if isinstance(keys, bytes | bytearray | memoryview) or not isinstance(keys, Sequence):
        raise SignatureInvalid(
            f"keys must be a whsec_/whpk_ key string or a list of them, got {type(keys).__name__}"
        )
    if not keys:
        raise SignatureInvalid("no keys to verify with: pass the sender's whsec_ or whpk_ keys")
    secrets: list[bytes] = []
    public_keys: list[bytes] = []
    for i, key in enumerate(keys):
        what = f"keys[{i}]"
        if not isinstance(key, str):
            raise SignatureInvalid(f"{what} must be a string, got {type(key).__name__}")
        if key.startswith(_SECRET):
            secret = _decode(
                key, _SECRET, f"{what} (whsec_ secret)", SignatureInvalid, minimum=_MIN_SECRET_BYTES
            )
            secrets.append(secret)
        elif key.startswith(_PUBLIC_KEY):
            raw = _decode(
                key, _PUBLIC_KEY, f"{what} (whpk_ public key)", SignatureInvalid, exact=32
            )
            public: Ed25519PublicKey | None = None
            with contextlib.suppress(ValueError):
                public = Ed25519PublicKey.from_public_bytes(raw)
            if public is None:
                raise SignatureInvalid(f"{what} is not a valid Ed25519 public key")
            public_keys.append(raw)
        elif key.startswith(_SIGNING_KEY):
            raise SignatureInvalid(
                f"{what} is a whsk_ private signing key: verify with its whpk_ public key, "
                "and keep the whsk_ key only on the sender"
            )
        else:
            raise SignatureInvalid(
                f"{what} must start with 'whsec_' (v1 secret) or 'whpk_' (v1a public key)"
            )
    return secrets, public_keys


def _webhook_headers(headers: object) -> tuple[str, str, str]:
    items = getattr(headers, "items", None)
    if not callable(items):
        raise SignatureInvalid(
            "headers must be a mapping of header name to value (such as request.headers), "
            f"got {type(headers).__name__}"
        )
    found: dict[str, object] = {}
    for name, value in items():
        if not isinstance(name, str) or (lowered := name.lower()) not in _HEADERS:
            continue
        if lowered in found and found[lowered] != value:
            raise SignatureInvalid(
                f"{lowered} header appears more than once with different values; "
                "a sender sends it once per request"
            )
        found[lowered] = value
    missing = [h for h in _HEADERS if not found.get(h)]
    if missing:
        raise SignatureInvalid(
            f"missing or empty {', '.join(missing)} header: Standard Webhooks requests carry "
            "webhook-id, webhook-timestamp and webhook-signature; check that the sender signs "
            "this endpoint and no proxy strips the headers"
        )
    for h in _HEADERS:
        if not isinstance(found[h], str):
            raise SignatureInvalid(f"{h} header must be text, got {type(found[h]).__name__}")
    msg_id, stamp, signature = (str(found[h]) for h in _HEADERS)
    return msg_id, stamp, signature


def _timestamp(stamp: str, now: float, tolerance: int) -> int:
    if re.fullmatch(r"-[0-9]+", stamp):
        raise SignatureInvalid("webhook-timestamp is negative; it must be Unix time in seconds")
    if not re.fullmatch(r"[0-9]+", stamp):
        raise SignatureInvalid(
            f"webhook-timestamp {_preview(stamp)} is not an integer; "
            "it must be Unix time in whole seconds"
        )
    if len(stamp) > _TIMESTAMP_DIGITS:
        raise SignatureInvalid(
            f"webhook-timestamp has {len(stamp)} digits, too large for Unix time in seconds; "
            "check the sender does not send milliseconds"
        )
    timestamp = int(stamp)
    if now - timestamp > tolerance:
        raise SignatureInvalid(
            f"webhook-timestamp is {now - timestamp:.0f}s old, beyond the {tolerance}s tolerance: "
            "a stale or replayed request, or a slow clock — check both clocks (NTP)"
        )
    if timestamp - now > tolerance:
        raise SignatureInvalid(
            f"webhook-timestamp is {timestamp - now:.0f}s in the future, beyond the {tolerance}s "
            "tolerance: check the sender's and receiver's clocks (NTP)"
        )
    return timestamp


def _signatures(header: str) -> list[tuple[str, bytes]]:
    if len(header) > _MAX_SIGNATURE_HEADER:
        raise SignatureInvalid(
            f"webhook-signature header is {len(header)} characters, over the "
            f"{_MAX_SIGNATURE_HEADER} limit; a sender signs with a handful of keys at most"
        )
    entries = header.split()
    if len(entries) > _MAX_SIGNATURES:
        raise SignatureInvalid(
            f"webhook-signature carries {len(entries)} entries, over the {_MAX_SIGNATURES} limit; "
            "a sender signs with a handful of keys at most"
        )
    parsed = []
    for entry in entries:
        version, _, encoded = entry.partition(",")
        size = _SIGNATURE_BYTES.get(version)
        if size is None:
            continue  # a scheme this receiver does not know; another entry may still verify
        try:
            sig = base64.b64decode(encoded, validate=True)
        except ValueError:
            continue
        if len(sig) == size:
            parsed.append((version, sig))
    if not parsed:
        raise SignatureInvalid(
            "webhook-signature has no parsable signatures: expected space-separated "
            "'v1,<base64 of 32 bytes>' or 'v1a,<base64 of 64 bytes>' entries"
        )
    return parsed


def verify(
    headers: Mapping[str, str],
    body: bytes,
    keys: Sequence[str] | str,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
    replay_guard: ReplayStore | None = None,
) -> str:
    """Verify one Standard Webhooks request and return its webhook-id.

    ``headers`` is any mapping (a dict, httpx or Starlette ``Headers``; names
    are case-insensitive), ``body`` the exact bytes received, ``keys`` one or
    more ``whsec_`` secrets (``v1``) and ``whpk_`` public keys (``v1a``); one
    signature verifying with any key is enough. The timestamp must be within
    ``tolerance`` seconds of ``now`` (default: the current time). With a
    ``replay_guard`` the id is recorded once the signature verifies and a
    repeat within ``2 * tolerance`` seconds is refused. Every problem raises
    :class:`SignatureInvalid`.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise SignatureInvalid(
            f"tolerance must be a non-negative integer number of seconds, got {tolerance!r}"
        )
    secrets, public_keys = _parse_keys(keys)
    if isinstance(body, bytearray | memoryview):
        body = bytes(body)
    if not isinstance(body, bytes):
        raise SignatureInvalid(
            f"body must be the raw request bytes, got {type(body).__name__}: pass the body "
            "as received (e.g. await request.body()), since re-encoding text can change it"
        )
    msg_id, stamp, header = _webhook_headers(headers)
    problem = _id_problem(msg_id)
    if problem is not None:
        raise SignatureInvalid(f"{problem}; check the sender's webhook-id header")
    current = time.time() if now is None else now
    timestamp = _timestamp(stamp, current, tolerance)
    signatures = _signatures(header)
    utf8 = True
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        utf8 = False
    if not utf8:
        raise SignatureInvalid(
            "body is not valid UTF-8; Standard Webhooks payloads are UTF-8 JSON — check "
            "the body was not decoded and re-encoded in another charset on the way"
        )

    versions = {version for version, _ in signatures}
    if not (secrets and "v1" in versions) and not (public_keys and "v1a" in versions):
        have = " and ".join(k for k, v in (("whsec_", secrets), ("whpk_", public_keys)) if v)
        raise SignatureInvalid(
            f"webhook-signature carries only {'/'.join(sorted(versions))} signatures but the "
            f"keys are {have} only: add the sender's "
            f"{'whpk_ public key' if 'v1a' in versions else 'whsec_ secret'}"
        )
    content = f"{msg_id}.{timestamp}.".encode() + body
    macs = [hmac.new(s, content, hashlib.sha256).digest() for s in secrets]
    verified = False
    for version, sig in signatures:
        if version == "v1":
            for mac in macs:
                # No short-circuit: every entry is compared against every secret.
                verified |= hmac.compare_digest(mac, sig)
        else:
            for public in public_keys:
                # The core's check lets go of the GIL: hashing a large body does not stall
                # the server's other requests. Strict: no malleable or small-order forms.
                verified |= _core.ed25519_verify(public, content, sig)
    if not verified:
        raise SignatureInvalid(
            "no signature in webhook-signature verifies with the given keys: check the keys "
            "are the sender's current ones and the body is passed exactly as received"
        )
    if replay_guard is not None and not replay_guard.claim(
        msg_id, now=current, keep_for=2 * tolerance
    ):
        raise Replayed(
            f"webhook-id {msg_id!r} was already accepted within the last {2 * tolerance}s: "
            "replay (if the sender retried after a lost response, acknowledge it as a duplicate)"
        )
    return msg_id
