"""Signed webhook delivery (Standard Webhooks) behind the SSRF guard.

The body is the CloudEvent's exact bytes; the signature covers those bytes.
Every address the host resolves to is checked, and the request goes to the
checked address (pinned), with the original host kept in ``Host`` and TLS SNI,
so a DNS answer cannot change between the check and the connection. Redirects
are never followed and proxies from the environment are ignored."""

from __future__ import annotations

import email.utils
import ssl
import time
from collections.abc import Awaitable, Callable

import httpx

from agent_bom import __version__
from agent_bom.connectors.netguard import UnsafeDestination, check_url, pinned_url, resolve
from agent_bom.errors import ConfigError, DeliveryError
from agent_bom.outbox.credentials import signing_material
from agent_bom.outbox.model import Destination, OutboxRow
from agent_bom.outbox.policy import SendResult
from agent_bom.redaction import redact
from agent_bom.signing import signature_headers

__all__ = ["DEFAULT_TIMEOUT", "EXCERPT_BYTES", "WebhookConnector", "check_destination_url"]

DEFAULT_TIMEOUT = 15.0
EXCERPT_BYTES = 2048
CONTENT_TYPE = "application/cloudevents+json"

Resolver = Callable[[str, int], Awaitable[list[str]]]


def check_destination_url(dest_url: str, *, allow_private_network: bool, allow_http: bool) -> None:
    """The static SSRF checks, for refusing a destination when it is added."""
    check_url(dest_url, allow_private_network=allow_private_network, allow_http=allow_http)


def _retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def _excerpt(raw: bytes) -> str | None:
    if not raw:
        return None
    text = raw[:EXCERPT_BYTES].decode("utf-8", "replace")
    return str(redact(text).value)


class WebhookConnector:
    """Sends outbox rows to ``webhook`` destinations with one shared HTTP client.

    Private networks need both the destination's ``allow_private_network`` and the
    operator's ``allow_private_networks`` (``outbox run --allow-private-networks``)."""

    kind = "webhook"

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        allow_private_networks: bool = False,
        max_connections: int = 256,
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | str = "",
    ) -> None:
        """``verify``: a CA bundle path or an SSLContext for receivers behind a private CA
        (default: the system's trust store). Certificate checking is never turned off."""
        self.timeout = timeout
        self.allow_private_networks = allow_private_networks
        self._resolver = resolver
        if isinstance(verify, str):
            verify = ssl.create_default_context(cafile=verify or None)
        self._client = httpx.AsyncClient(
            verify=verify,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    async def send(self, dest: Destination, row: OutboxRow) -> SendResult:
        started = time.perf_counter()

        def elapsed() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        allow_private = dest.allow_private_network and self.allow_private_networks
        try:
            target = check_url(
                dest.url, allow_private_network=allow_private, allow_http=dest.allow_http
            )
            addresses = await resolve(
                target, allow_private_network=allow_private, resolver=self._resolver
            )
        except UnsafeDestination as e:
            if dest.allow_private_network and not self.allow_private_networks:
                # Operator policy, not the destination, refused it: fixable, so keep retrying.
                return SendResult(
                    error=f"{e} (the destination allows private networks but this worker "
                    "does not: run it with --allow-private-networks)",
                    latency_ms=elapsed(),
                )
            return SendResult(error=str(e), permanent=True, latency_ms=elapsed())
        except DeliveryError as e:
            return SendResult(error=str(e), latency_ms=elapsed())
        if dest.secret_ref is None:
            return SendResult(error="destination has no secret reference", permanent=True)
        try:
            keys = signing_material(dest.secret_ref, dest.signing)
            headers = signature_headers(
                row.event_id,
                int(time.time()),
                row.body,
                secrets=keys.secrets,
                signing_keys=keys.signing_keys,
            )
        except ConfigError as e:
            # The operator can fix a missing or bad credential; keep the row retrying.
            return SendResult(error=str(e), latency_ms=elapsed())
        headers["host"] = target.host_header
        headers["content-type"] = CONTENT_TYPE
        headers["user-agent"] = f"agent-bom/{__version__}"
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        url = pinned_url(target, addresses[0])
        try:
            async with self._client.stream(
                "POST", url, content=row.body, headers=headers, extensions=extensions
            ) as resp:
                raw = b""
                async for chunk in resp.aiter_raw():
                    raw += chunk
                    if len(raw) >= EXCERPT_BYTES:
                        break
                return SendResult(
                    status_code=resp.status_code,
                    latency_ms=elapsed(),
                    response_excerpt=_excerpt(raw),
                    retry_after=_retry_after(resp.headers.get("retry-after"), time.time()),
                    location=resp.headers.get("location"),
                )
        except httpx.TimeoutException:
            return SendResult(
                error=f"timed out after {self.timeout:g}s ({target.host})", latency_ms=elapsed()
            )
        except httpx.HTTPError as e:
            detail = str(e) or e.__class__.__name__
            return SendResult(
                error=f"connection to {target.host} ({addresses[0]}) failed: {detail}",
                latency_ms=elapsed(),
            )

    async def aclose(self) -> None:
        await self._client.aclose()
