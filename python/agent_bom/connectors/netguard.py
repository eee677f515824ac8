"""SSRF guard for outbound webhook delivery.

``check_url`` does the static checks (no DNS); ``resolve`` resolves the host and checks
*every* address it returns. The caller connects to a checked address (``pinned_url``) while
keeping ``Host`` and TLS SNI at ``Target.host``, and never follows redirects, so a DNS answer
that changes between check and connect (rebinding) cannot move the request elsewhere.

Private networks are allowed only with ``allow_private_network``, which the caller sets when
both the destination and the operator policy allow it. Some destinations are refused even
then: non-canonical numeric IPv4 spellings, IPv6 zone ids, unspecified, multicast and
broadcast addresses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import quote

import idna

from agent_bom.errors import ConfigError, DeliveryError

__all__ = [
    "IPAddress",
    "Resolver",
    "Target",
    "UnsafeDestination",
    "check_url",
    "describe",
    "is_public",
    "pinned_url",
    "resolve",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver: TypeAlias = Callable[[str, int], Awaitable[list[str]]]


class UnsafeDestination(ConfigError):
    """A destination URL or the address it resolves to is refused by the SSRF guard."""


@dataclass(frozen=True)
class Target:
    """A destination that passed ``check_url``.

    ``host`` is lowercase ASCII (IDNA-encoded); IPv6 literals are kept without brackets."""

    url: str
    scheme: str
    host: str
    port: int
    path: str

    @property
    def host_header(self) -> str:
        """The ``Host`` header value: brackets for IPv6, the port only when not the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


_DEFAULT_PORTS = {"https": 443, "http": 80}

_PRIVATE_HINT = "pass --allow-private-network if this destination is meant to be internal"
_NEVER_HINT = "no webhook receiver can live there; use the receiver's public address"

# Names that reach the host itself (RFC 6761 reserves *.localhost; the rest are /etc/hosts
# defaults on common distributions).
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})

# Instance-metadata endpoints by name. Their addresses (169.254.169.254, fd00:ec2::254,
# 100.100.100.200, 192.0.0.192) are refused by the address checks; these names are refused
# before DNS because some resolve to addresses that look public or come from a search domain.
_METADATA_NAMES = frozenset(
    {
        "metadata",  # GCP, via the search domain
        "metadata.goog",  # GCP
        "metadata.google.internal",  # GCP
        "instance-data",  # AWS, via the search domain
        "instance-data.ec2.internal",  # AWS
        "metadata.azure.internal",  # Azure
        "metadata.tencentyun.com",  # Tencent Cloud
        "api.metadata.cloud.ibm.com",  # IBM Cloud VPC
        "metadata.platformequinix.com",  # Equinix Metal
        "metadata.packet.net",  # Equinix Metal (former Packet)
        "rancher-metadata",  # Rancher
    }
)

_PRINTABLE_ASCII = "".join(chr(c) for c in range(0x21, 0x7F))
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_CANONICAL_OCTET = re.compile(r"0|[1-9][0-9]{0,2}")
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True)
class _Reason:
    """Why an address is not public. ``always``: refused even on private networks."""

    kind: str
    note: str = ""
    always: bool = False

    def __str__(self) -> str:
        return f"{self.kind} ({self.note})" if self.note else self.kind

    def sentence(self, addr: IPAddress) -> str:
        article = "an" if self.kind.startswith(("unspecified", "IPv4", "IETF")) else "a"
        tail = f" ({self.note})" if self.note else ""
        return f"{addr} is {article} {self.kind} address{tail}"

    def hint(self) -> str:
        return _NEVER_HINT if self.always else _PRIVATE_HINT


# Order matters: the first match names the reason (255.255.255.255 before 240/4).
_V4_REFUSED: tuple[tuple[ipaddress.IPv4Network, _Reason], ...] = tuple(
    (ipaddress.IPv4Network(cidr), _Reason(kind, note, always))
    for cidr, kind, note, always in (
        ("0.0.0.0/8", "unspecified", "0.0.0.0/8 reaches the local host", True),
        ("10.0.0.0/8", "private", "RFC 1918", False),
        ("100.64.0.0/10", "carrier-grade NAT", "RFC 6598", False),
        ("127.0.0.0/8", "loopback", "", False),
        ("169.254.0.0/16", "link-local / cloud metadata", "", False),
        ("172.16.0.0/12", "private", "RFC 1918", False),
        ("192.0.0.0/24", "IETF protocol assignment", "RFC 6890", False),
        ("192.0.2.0/24", "documentation", "RFC 5737", False),
        ("192.88.99.0/24", "6to4 relay anycast", "deprecated, RFC 7526", False),
        ("192.168.0.0/16", "private", "RFC 1918", False),
        ("198.18.0.0/15", "benchmarking", "RFC 2544", False),
        ("198.51.100.0/24", "documentation", "RFC 5737", False),
        ("203.0.113.0/24", "documentation", "RFC 5737", False),
        ("224.0.0.0/4", "multicast", "", True),
        ("255.255.255.255/32", "broadcast", "", True),
        ("240.0.0.0/4", "reserved", "240.0.0.0/4", False),
    )
)

_V6_REFUSED: tuple[tuple[ipaddress.IPv6Network, _Reason], ...] = tuple(
    (ipaddress.IPv6Network(cidr), _Reason(kind, note, always))
    for cidr, kind, note, always in (
        ("100::/64", "discard-only", "RFC 6666", False),
        ("64:ff9b:1::/48", "local-use NAT64", "RFC 8215", False),
        ("2001:db8::/32", "documentation", "RFC 3849", False),
        ("3fff::/20", "documentation", "RFC 9637", False),
        ("fc00::/7", "unique local", "RFC 4193", False),
        ("fe80::/10", "link-local", "fe80::/10", False),
        ("fec0::/10", "site-local", "deprecated, RFC 3879", False),
        ("ff00::/8", "multicast", "", True),
    )
)

_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NOT_GLOBAL = _Reason("special-purpose", "not globally routable per the IANA registry")


def _reason_v4(addr: ipaddress.IPv4Address) -> _Reason | None:
    for net, reason in _V4_REFUSED:
        if addr in net:
            return reason
    return None if addr.is_global else _NOT_GLOBAL


def _embedded(form: str, v4: ipaddress.IPv4Address) -> _Reason | None:
    """The reason an IPv6 form embedding ``v4`` is refused, or None if ``v4`` is public."""
    inner = _reason_v4(v4)
    if inner is None:
        return None
    note = f"{v4}, {inner.note}" if inner.note else str(v4)
    return _Reason(f"{form} {inner.kind}", note, inner.always)


def _reason_v6(addr: ipaddress.IPv6Address) -> _Reason | None:
    addr = ipaddress.IPv6Address(int(addr))  # drop any zone id
    if addr == ipaddress.IPv6Address("::"):
        return _Reason("unspecified", "::", True)
    if addr == ipaddress.IPv6Address("::1"):
        return _Reason("loopback")
    if addr.ipv4_mapped is not None:
        return _embedded("IPv4-mapped", addr.ipv4_mapped)
    if addr in _V4_COMPATIBLE:
        v4 = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        # Deprecated (RFC 4291 §2.5.5.1) and never routable, whatever it embeds.
        return _embedded("IPv4-compatible", v4) or _Reason("IPv4-compatible", f"{v4}, deprecated")
    if addr in _NAT64:
        return _embedded("NAT64", ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    if addr.sixtofour is not None:
        return _embedded("6to4", addr.sixtofour)
    if addr.teredo is not None:
        server, client = addr.teredo
        # Teredo relays packets to the embedded client over UDP: refused whatever it embeds.
        return (
            _embedded("Teredo", client)
            or _embedded("Teredo server", server)
            or _Reason("Teredo tunnel", f"2001::/32, relays to {client}")
        )
    for net, reason in _V6_REFUSED:
        if addr in net:
            return reason
    if addr not in _GLOBAL_UNICAST:
        return _Reason("reserved", "outside global unicast 2000::/3")
    return None if addr.is_global else _NOT_GLOBAL


def _reason(addr: IPAddress) -> _Reason | None:
    if isinstance(addr, ipaddress.IPv4Address):
        return _reason_v4(addr)
    return _reason_v6(addr)


def is_public(addr: IPAddress) -> bool:
    """True only for globally routable unicast addresses.

    IPv4-mapped, IPv4-compatible, NAT64, 6to4 and Teredo forms are unwrapped and the embedded
    IPv4 address is checked too; IPv4-compatible and Teredo forms are never public."""
    return _reason(addr) is None


def describe(addr: IPAddress) -> str:
    """A short human reason why ``addr`` is not public ("loopback", "private (RFC 1918)")."""
    reason = _reason(addr)
    return "public" if reason is None else str(reason)


def _refuse(where: str, problem: str, fix: str) -> UnsafeDestination:
    return UnsafeDestination(f"webhook {where} refused: {problem}; {fix}")


def _origin(scheme: str, host: str, port: int) -> str:
    """The URL without path or query, which may carry secrets (e.g. Slack hook tokens)."""
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" if port == _DEFAULT_PORTS[scheme] else f"{scheme}://{shown}:{port}"


def _whatwg_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """How a WHATWG URL parser (and inet_aton, mostly) reads a numeric host; None if invalid."""
    parts = host.split(".")
    if len(parts) > 4:
        return None
    numbers = []
    for part in parts:
        try:
            if part.startswith("0x"):
                numbers.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                numbers.append(int(part[1:], 8))
            else:
                numbers.append(int(part, 10))
        except ValueError:
            return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _check_host(host: str, origin: str, *, allow_private_network: bool) -> IPAddress | None:
    """Check a host; its address if it is an IP literal, None for a hostname."""
    where = f"destination {origin}"
    host = host.lower().removesuffix(".")  # already so from check_url; Targets can be built
    if ":" in host:
        try:
            addr: IPAddress = ipaddress.IPv6Address(host)
        except ValueError:
            raise _refuse(where, f"{host!r} is not a valid IPv6 address", "fix the URL") from None
    else:
        labels = host.split(".")
        if _NUMERIC_LABEL.fullmatch(labels[-1]):
            canonical = len(labels) == 4 and all(
                _CANONICAL_OCTET.fullmatch(octet) and int(octet) <= 255 for octet in labels
            )
            if not canonical:
                read_as = _whatwg_ipv4(host)
                problem = (
                    f"{host} is a non-canonical numeric IPv4 spelling (decimal, octal, hex or "
                    f"shortened) that resolvers may read as {read_as}"
                    if read_as is not None
                    else f"{host} ends in a numeric label but is not a valid IPv4 address"
                )
                raise _refuse(where, problem, "write the address as four decimal octets")
            addr = ipaddress.IPv4Address(host)
        else:
            if not allow_private_network:
                if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
                    raise _refuse(where, f"{host} is a loopback name", _PRIVATE_HINT)
                if host in _METADATA_NAMES:
                    raise _refuse(where, f"{host} is a cloud metadata endpoint", _PRIVATE_HINT)
            return None
    reason = _reason(addr)
    if reason is not None and (reason.always or not allow_private_network):
        raise _refuse(where, reason.sentence(addr), reason.hint())
    return addr


def _normalize_hostname(text: str) -> str:
    """Lowercase ASCII, IDNA (UTS #46) for non-ASCII, one trailing dot dropped; validated."""
    if text.isascii():
        host = text.lower()
    else:
        try:
            # UTS #46 maps look-alikes the way browsers do (fullwidth digits and dots to ASCII).
            host = idna.encode(text, uts46=True).decode("ascii")
        except idna.IDNAError:
            raise _refuse(
                "URL host", "it is not a valid internationalized domain name", "fix the host"
            ) from None
    if host.endswith("."):
        host = host[:-1]
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise _refuse(
            "URL host",
            f"{host!r} is not a valid hostname",
            "use letters, digits and hyphens in dot-separated labels",
        )
    return host


def check_url(url: str, *, allow_private_network: bool = False, allow_http: bool = False) -> Target:
    """Static checks of a webhook URL, without DNS; the parsed ``Target``.

    Refused: schemes other than https (http too with ``allow_http``), credentials in the URL,
    fragments, backslashes, whitespace, percent-encoded hosts, zone ids, invalid ports,
    non-canonical numeric IPv4 spellings (always), and unless ``allow_private_network``:
    non-public IP literals (see ``is_public``), ``localhost`` names and cloud metadata names.
    """
    for i, ch in enumerate(url):
        if ch.isspace() or not ch.isprintable():
            raise _refuse(
                "URL",
                f"it contains whitespace or a control character at position {i}",
                "remove it, or percent-encode it if it belongs in the path",
            )
        if ch == "\\":
            raise _refuse(
                "URL",
                f"it contains a backslash at position {i}, which browsers and some clients "
                "read as '/'",
                "percent-encode it as %5C if it belongs in the path",
            )
    match = _SCHEME.match(url)
    if match is None:
        raise _refuse("URL", "it has no scheme", "write it as https://HOST/PATH")
    scheme = match.group()[:-1].lower()
    if scheme == "http" and not allow_http:
        raise _refuse(
            "URL scheme 'http'",
            "plain http sends events and signatures unencrypted",
            "use https, or pass --allow-http for a test receiver",
        )
    if scheme not in _DEFAULT_PORTS:
        raise _refuse(
            f"URL scheme {scheme!r}", "webhooks are delivered over https only", "use https://"
        )
    rest = url[match.end() :]
    if not rest.startswith("//"):
        raise _refuse("URL", "the scheme is not followed by '//'", "write it as https://HOST/PATH")
    if "#" in rest:
        raise _refuse(
            "URL",
            "it has a fragment ('#...'), which is never sent and is a common way to make URL "
            "parsers disagree about the host",
            "remove the '#' and everything after it",
        )
    rest = rest[2:]
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, path = rest[:end], rest[end:]
    if "@" in unicodedata.normalize("NFKC", authority):  # NFKC: a fullwidth at sign is "@"
        raise _refuse(
            "URL",
            "it contains credentials or a user name before the host ('...@')",
            "remove them; put the secret in the destination's credential reference "
            "(env:NAME or file:/path), not in the URL",
        )
    if "%" in authority:
        if authority.startswith("["):
            raise _refuse(
                "URL host",
                "its IPv6 literal has a zone id ('%...'), which selects a local interface",
                "use an address without a zone id; link-local receivers are not supported",
            )
        raise _refuse(
            "URL host",
            "it is percent-encoded, which URL parsers decode differently",
            "write the host without '%' escapes",
        )

    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise _refuse("URL host", "the IPv6 literal has no closing ']'", "fix the brackets")
        literal, after = authority[1:close], authority[close + 1 :]
        if after and not after.startswith(":"):
            raise _refuse("URL host", "text follows the IPv6 literal", "fix the URL")
        port_text = after[1:] if after else ""
        try:
            host = str(ipaddress.IPv6Address(literal))
        except ValueError:
            raise _refuse(
                "URL host", f"[{literal}] is not a valid IPv6 address", "fix the address"
            ) from None
    else:
        if authority.count(":") > 1:
            raise _refuse("URL host", "an IPv6 address must be in brackets", "write [ADDRESS]")
        host_text, _, port_text = authority.partition(":")
        if not host_text:
            raise _refuse("URL", "it has no host", "write it as https://HOST/PATH")
        host = _normalize_hostname(host_text)

    if not port_text:
        port = _DEFAULT_PORTS[scheme]
    elif _PORT.fullmatch(port_text) and 1 <= int(port_text) <= 65535:
        port = int(port_text)
    else:
        # Not echoed: in "user:secret@host" spelled with a look-alike "@", it is the secret.
        raise _refuse("URL port", "it is not a number from 1 to 65535", "fix the port")

    origin = _origin(scheme, host, port)
    _check_host(host, origin, allow_private_network=allow_private_network)
    path = quote(path, safe=_PRINTABLE_ASCII)  # only non-ASCII changes: UTF-8, percent-encoded
    if not path.startswith("/"):
        path = "/" + path
    return Target(url=origin + path, scheme=scheme, host=host, port=port, path=path)


async def _system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve(
    target: Target, *, allow_private_network: bool = False, resolver: Resolver | None = None
) -> list[IPAddress]:
    """Resolve ``target.host`` and check every address; the addresses, deduplicated, in order.

    Any non-public address among them refuses the whole name (unless private networks are
    allowed): connecting elsewhere than the checked addresses is what SSRF is. IP literals
    skip DNS. The default resolver is the event loop's ``getaddrinfo``.

    Raises ``UnsafeDestination`` for a refused address and ``DeliveryError`` when the name
    does not resolve (transient: the delivery is retried)."""
    origin = _origin(target.scheme, target.host, target.port)
    literal = _check_host(target.host, origin, allow_private_network=allow_private_network)
    if literal is not None:
        return [literal]
    try:
        answers = await (resolver or _system_resolver)(target.host, target.port)
    except OSError as e:
        raise DeliveryError(
            f"could not resolve {target.host}: {e}; check the hostname and DNS, "
            "the delivery will be retried"
        ) from None
    if not answers:
        raise DeliveryError(
            f"could not resolve {target.host}: no addresses; check the hostname and DNS, "
            "the delivery will be retried"
        )
    checked: list[IPAddress] = []
    for answer in answers:
        try:
            addr = ipaddress.ip_address(answer)
        except ValueError:
            raise _refuse(
                f"destination {origin}",
                f"the resolver returned {answer!r} for {target.host}, which is not an IP address",
                "check the resolver",
            ) from None
        reason = _reason(addr)
        if reason is not None and (reason.always or not allow_private_network):
            raise _refuse(
                f"destination {origin}",
                f"{target.host} resolves to {reason.sentence(addr)}",
                reason.hint(),
            )
        if addr not in checked:
            checked.append(addr)
    return checked


def pinned_url(target: Target, addr: IPAddress) -> str:
    """``target``'s URL with the host replaced by ``addr`` (a checked address) and the port
    explicit. Send it with ``headers={"Host": target.host_header}`` and
    ``extensions={"sni_hostname": target.host}``; IPv6 zone ids are kept (RFC 6874)."""
    if isinstance(addr, ipaddress.IPv6Address):
        bare = ipaddress.IPv6Address(int(addr))
        zone = f"%25{addr.scope_id}" if addr.scope_id else ""
        host = f"[{bare}{zone}]"
    else:
        host = str(addr)
    return f"{target.scheme}://{host}:{target.port}{target.path}"
